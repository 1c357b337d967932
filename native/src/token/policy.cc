#include "policy.h"

#include <set>

namespace hsm {

namespace {
constexpr unsigned CG = kOnCreate | kOnGenerate;
constexpr unsigned CGM = kOnCreate | kOnGenerate | kModifiable;

const AttrInfo kBool_CG{AttrKind::Bool, CG}, kBool_CGM{AttrKind::Bool, CGM},
    kBool_Copy{AttrKind::Bool, CG | kCopyChange}, kBool_Token{AttrKind::Bool, 0},
    kUlong_CG{AttrKind::Ulong, CG}, kUlong_Token{AttrKind::Ulong, 0}, kUlong_Gen{AttrKind::Ulong, kOnGenerate},
    kBytes_CGM{AttrKind::Bytes, CGM}, kBytes_CM{AttrKind::Bytes, kOnCreate | kModifiable},
    kBytes_C{AttrKind::Bytes, kOnCreate}, kBytes_CG{AttrKind::Bytes, CG},
    kSecret_C{AttrKind::Bytes, kOnCreate | kSecret}, kDate_CGM{AttrKind::Date, CGM},
    kMech_CG{AttrKind::MechList, CG};

bool isKey(CK_ULONG c) { return c == CKO_PUBLIC_KEY || c == CKO_PRIVATE_KEY || c == CKO_SECRET_KEY; }
}  // namespace

const AttrInfo* attributeInfo(CK_ULONG type, CK_ULONG cls, CK_ULONG keyType) {
  switch (type) {
    case CKA_CLASS: return &kUlong_CG;
    case CKA_TOKEN: case CKA_PRIVATE: case CKA_MODIFIABLE: case CKA_DESTROYABLE: return &kBool_Copy;
    case CKA_COPYABLE: return &kBool_CGM;
    case CKA_LABEL: return &kBytes_CGM;
    default: break;
  }
  if (cls == CKO_DATA) {
    if (type == CKA_APPLICATION || type == CKA_OBJECT_ID || type == CKA_VALUE) return &kBytes_CM;
    return nullptr;
  }
  if (!isKey(cls)) return nullptr;
  switch (type) {
    case CKA_KEY_TYPE: return &kUlong_CG;
    case CKA_ID: return &kBytes_CGM;
    case CKA_START_DATE: case CKA_END_DATE: return &kDate_CGM;
    case CKA_DERIVE: return &kBool_CGM;
    case CKA_LOCAL: return &kBool_Token;
    case CKA_KEY_GEN_MECHANISM: return &kUlong_Token;
    case CKA_ALLOWED_MECHANISMS: return &kMech_CG;
    default: break;
  }
  bool pub = cls == CKO_PUBLIC_KEY, priv = cls == CKO_PRIVATE_KEY, secret = cls == CKO_SECRET_KEY;
  switch (type) {
    case CKA_SUBJECT: return pub || priv ? &kBytes_CGM : nullptr;
    case CKA_ENCRYPT: case CKA_VERIFY: case CKA_WRAP: return pub || secret ? &kBool_CGM : nullptr;
    case CKA_VERIFY_RECOVER: return pub ? &kBool_CGM : nullptr;
    case CKA_DECRYPT: case CKA_SIGN: case CKA_UNWRAP: return priv || secret ? &kBool_CGM : nullptr;
    case CKA_SIGN_RECOVER: return priv ? &kBool_CGM : nullptr;
    case CKA_TRUSTED: return pub || secret ? &kBool_CGM : nullptr;
    case CKA_SENSITIVE: case CKA_EXTRACTABLE: case CKA_WRAP_WITH_TRUSTED:
      return priv || secret ? &kBool_CGM : nullptr;
    case CKA_ALWAYS_SENSITIVE: case CKA_NEVER_EXTRACTABLE: return priv || secret ? &kBool_Token : nullptr;
    case CKA_ALWAYS_AUTHENTICATE: return priv ? &kBool_CG : nullptr;
    default: break;
  }
  if (secret) {
    if (type == CKA_VALUE) return &kSecret_C;
    if (type == CKA_VALUE_LEN) return &kUlong_Gen;
    return nullptr;
  }
  if (keyType == CKK_EC) {
    if (type == CKA_EC_PARAMS) return pub ? &kBytes_CG : &kBytes_C;
    if (type == CKA_EC_POINT) return pub ? &kBytes_C : nullptr;
    if (type == CKA_VALUE) return priv ? &kSecret_C : nullptr;
    return nullptr;
  }
  if (keyType == CKK_RSA) {
    if (type == CKA_MODULUS) return &kBytes_C;
    if (type == CKA_PUBLIC_EXPONENT) return pub ? &kBytes_CG : &kBytes_C;
    if (type == CKA_MODULUS_BITS) return pub ? &kUlong_Gen : nullptr;
    if (priv && (type == CKA_PRIVATE_EXPONENT || type == CKA_PRIME_1 || type == CKA_PRIME_2 ||
                 type == CKA_EXPONENT_1 || type == CKA_EXPONENT_2 || type == CKA_COEFFICIENT))
      return &kSecret_C;
  }
  return nullptr;
}

namespace {
bool kindMatches(AttrKind kind, ByteView value) {
  switch (kind) {
    case AttrKind::Bool: return value.size == 1;
    case AttrKind::Ulong: return value.size == sizeof(CK_ULONG);
    case AttrKind::Date: return value.size == 0 || value.size == 8;
    case AttrKind::MechList: return value.size % sizeof(CK_ULONG) == 0;
    case AttrKind::Bytes: return true;
  }
  return false;
}
}  // namespace

CK_RV checkTemplate(const Template& tmpl, CK_ULONG cls, CK_ULONG keyType, Origin origin, bool isSO) {
  std::set<CK_ULONG> seen;
  for (const TemplateAttribute& attr : tmpl) {
    const AttrInfo* info = attributeInfo(attr.type, cls, keyType);
    if (info == nullptr) return CKR_ATTRIBUTE_TYPE_INVALID;
    if (!kindMatches(info->kind, attr.value)) return CKR_ATTRIBUTE_VALUE_INVALID;
    if (!seen.insert(attr.type).second) return CKR_TEMPLATE_INCONSISTENT;
    unsigned needed = origin == Origin::Create ? kOnCreate : kOnGenerate;
    if ((info->rules & needed) == 0) return CKR_ATTRIBUTE_READ_ONLY;
    if (attr.type == CKA_TRUSTED && attr.value.data[0] != 0 && !isSO) return CKR_ATTRIBUTE_READ_ONLY;
  }
  return CKR_OK;
}

CK_RV checkChange(const Object& object, const TemplateAttribute& change, Origin origin, bool isSO) {
  const AttrInfo* info = attributeInfo(change.type, object.objectClass(), object.keyType());
  if (info == nullptr) return CKR_ATTRIBUTE_TYPE_INVALID;
  if (!kindMatches(info->kind, change.value)) return CKR_ATTRIBUTE_VALUE_INVALID;
  bool allowed = (info->rules & kModifiable) || (origin == Origin::Copy && (info->rules & kCopyChange));
  if (!allowed) return CKR_ATTRIBUTE_READ_ONLY;
  if (info->kind != AttrKind::Bool) return CKR_OK;
  bool now = object.flag(change.type), next = change.value.data[0] != 0;
  if (now == next) return CKR_OK;
  switch (change.type) {
    case CKA_SENSITIVE: case CKA_WRAP_WITH_TRUSTED: return next ? CKR_OK : CKR_ATTRIBUTE_READ_ONLY;
    case CKA_EXTRACTABLE: case CKA_COPYABLE: return next ? CKR_ATTRIBUTE_READ_ONLY : CKR_OK;
    case CKA_TRUSTED: return isSO ? CKR_OK : CKR_ATTRIBUTE_READ_ONLY;
    // Copies may become token or session objects, private or public, and lose modifiability.
    case CKA_MODIFIABLE: case CKA_DESTROYABLE: return next ? CKR_ATTRIBUTE_READ_ONLY : CKR_OK;
    default: return CKR_OK;
  }
}

void applyTemplate(Object& object, const Template& tmpl) {
  for (const TemplateAttribute& attr : tmpl) object.set(attr.type, toBytes(attr.value.data, attr.value.size));
  applyDefaults(object);
}

void applyDefaults(Object& o) {
  CK_ULONG cls = o.objectClass();
  auto flagDefault = [&o](CK_ULONG type, bool value) {
    if (!o.has(type)) o.setFlag(type, value);
  };
  auto bytesDefault = [&o](CK_ULONG type) {
    if (!o.has(type)) o.set(type, Bytes());
  };
  flagDefault(CKA_TOKEN, false);
  // Keys holding secrets are private unless the template says otherwise (token-specific default).
  flagDefault(CKA_PRIVATE, cls == CKO_PRIVATE_KEY || cls == CKO_SECRET_KEY);
  flagDefault(CKA_MODIFIABLE, true);
  flagDefault(CKA_COPYABLE, true);
  flagDefault(CKA_DESTROYABLE, true);
  bytesDefault(CKA_LABEL);
  if (cls == CKO_DATA) {
    bytesDefault(CKA_APPLICATION);
    bytesDefault(CKA_OBJECT_ID);
    bytesDefault(CKA_VALUE);
    return;
  }
  if (!isKey(cls)) return;
  bytesDefault(CKA_ID);
  bytesDefault(CKA_START_DATE);
  bytesDefault(CKA_END_DATE);
  bytesDefault(CKA_ALLOWED_MECHANISMS);
  flagDefault(CKA_DERIVE, false);
  if (!o.has(CKA_LOCAL)) o.setFlag(CKA_LOCAL, false);
  if (!o.has(CKA_KEY_GEN_MECHANISM)) o.setUlong(CKA_KEY_GEN_MECHANISM, CK_UNAVAILABLE_INFORMATION);
  bool pub = cls == CKO_PUBLIC_KEY, priv = cls == CKO_PRIVATE_KEY, secret = cls == CKO_SECRET_KEY;
  if (pub || priv) bytesDefault(CKA_SUBJECT);
  if (pub || secret) {
    flagDefault(CKA_ENCRYPT, true);
    flagDefault(CKA_VERIFY, true);
    flagDefault(CKA_WRAP, true);
    flagDefault(CKA_TRUSTED, false);
  }
  if (pub) flagDefault(CKA_VERIFY_RECOVER, false);
  if (priv || secret) {
    flagDefault(CKA_DECRYPT, true);
    flagDefault(CKA_SIGN, true);
    flagDefault(CKA_UNWRAP, true);
    flagDefault(CKA_SENSITIVE, true);
    flagDefault(CKA_EXTRACTABLE, true);
    flagDefault(CKA_WRAP_WITH_TRUSTED, false);
    flagDefault(CKA_ALWAYS_SENSITIVE, false);
    flagDefault(CKA_NEVER_EXTRACTABLE, false);
  }
  if (priv) {
    flagDefault(CKA_SIGN_RECOVER, false);
    flagDefault(CKA_ALWAYS_AUTHENTICATE, false);
  }
  if (secret && !o.has(CKA_VALUE_LEN)) {
    const Bytes* value = o.bytes(CKA_VALUE);
    o.setUlong(CKA_VALUE_LEN, value ? value->size() : 0);
  }
}

void setProvenance(Object& o, bool local, CK_ULONG mechanism) {
  o.setFlag(CKA_LOCAL, local);
  o.setUlong(CKA_KEY_GEN_MECHANISM, local ? mechanism : CK_UNAVAILABLE_INFORMATION);
  CK_ULONG cls = o.objectClass();
  if (cls == CKO_PRIVATE_KEY || cls == CKO_SECRET_KEY) {
    o.setFlag(CKA_ALWAYS_SENSITIVE, local && o.flag(CKA_SENSITIVE));
    o.setFlag(CKA_NEVER_EXTRACTABLE, local && !o.flag(CKA_EXTRACTABLE));
  }
}

bool isReadable(const Object& o, CK_ULONG type) {
  const AttrInfo* info = attributeInfo(type, o.objectClass(), o.keyType());
  if (info == nullptr) return false;
  if (info->rules & kSecret) return !o.flag(CKA_SENSITIVE) && o.flag(CKA_EXTRACTABLE);
  return true;
}

const TemplateAttribute* findAttribute(const Template& tmpl, CK_ULONG type) {
  for (const TemplateAttribute& attr : tmpl)
    if (attr.type == type) return &attr;
  return nullptr;
}

bool templateUlong(const Template& tmpl, CK_ULONG type, CK_ULONG* out) {
  const TemplateAttribute* attr = findAttribute(tmpl, type);
  return attr != nullptr && readUlong(attr->value, out);
}

bool templateBool(const Template& tmpl, CK_ULONG type, bool fallback) {
  const TemplateAttribute* attr = findAttribute(tmpl, type);
  return attr && attr->value.size == 1 ? attr->value.data[0] != 0 : fallback;
}

}  // namespace hsm
