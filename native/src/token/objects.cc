// Object management: create, copy, destroy, attributes and search, with visibility
// (private objects need a user login) and write access (token objects need R/W).
#include <cstring>

#include "module.h"
#include "policy.h"

namespace hsm {

CK_RV Module::visibleObject(const Session& s, CK_ULONG handle, ObjectPtr& out) const {
  auto it = objects_.find(handle);
  if (it == objects_.end()) return CKR_OBJECT_HANDLE_INVALID;
  const Object& o = *it->second;
  if (o.slotId != s.slotId) return CKR_OBJECT_HANDLE_INVALID;
  // Device profile: an unauthenticated session reaches no object at all.
  if (config_.deviceProfile && loginOf(s).principal == 0) return CKR_USER_NOT_LOGGED_IN;
  if (!isVisible(loginOf(s), o)) return CKR_OBJECT_HANDLE_INVALID;
  // A session object belongs to the application whose session created it.
  if (!o.isToken() && o.ownerApplication != s.application) return CKR_OBJECT_HANDLE_INVALID;
  out = it->second;
  return CKR_OK;
}

bool Module::isVisible(const Login& l, const Object& o) {
  if (o.isPrivate() && l.user != CKU_USER) return false;
  // An owned object (device profile) is visible only to its owner and those it is shared with.
  CK_ULONG owner = o.owner();
  return owner == 0 || owner == l.principal || (l.principal != 0 && o.isSharedWith(l.principal));
}

CK_RV Module::checkOwner(const Session& s, const Object& o, CK_RV refusal) const {
  CK_ULONG principal = loginOf(s).principal, owner = o.owner();
  return principal == 0 || owner == 0 || owner == principal ? CKR_OK : refusal;
}

bool Module::mayReadSecret(const Session& s, const Object& o, CK_ULONG type) const {
  // Device profile: a key's secret components (CKA_VALUE, private-key components) are its
  // owner's alone. Users it is shared with may use it, never read it (CloudHSM's sharing).
  if (!config_.deviceProfile) return true;
  const AttrInfo* info = attributeInfo(type, o.objectClass(), o.keyType());
  if (info == nullptr || !(info->rules & kSecret)) return true;
  return o.owner() == 0 || o.owner() == loginOf(s).principal;
}

CK_RV Module::checkExtractableFixed(const Object& o, const TemplateAttribute& change) const {
  // CloudHSM: CKA_EXTRACTABLE is set at creation and never changes, either way.
  if (!config_.deviceProfile || change.type != CKA_EXTRACTABLE) return CKR_OK;
  if (change.value.size != 1) return CKR_ATTRIBUTE_VALUE_INVALID;
  return (change.value.data[0] != 0) == o.flag(CKA_EXTRACTABLE) ? CKR_OK : CKR_ATTRIBUTE_READ_ONLY;
}

CK_RV Module::checkQuota(CK_ULONG slotId, size_t keys, size_t asymmetricKeys) const {
  if (config_.maxKeys == 0 && config_.maxAsymmetricKeys == 0) return CKR_OK;
  size_t haveKeys = 0, haveAsymmetric = 0;
  for (const auto& entry : objects_) {
    const Object& o = *entry.second;
    if (o.slotId != slotId || o.objectClass() == CKO_DATA) continue;
    ++haveKeys;
    if (o.isAsymmetric()) ++haveAsymmetric;
  }
  if (config_.maxKeys && haveKeys + keys > config_.maxKeys) return CKR_DEVICE_MEMORY;
  if (config_.maxAsymmetricKeys && haveAsymmetric + asymmetricKeys > config_.maxAsymmetricKeys) return CKR_DEVICE_MEMORY;
  return CKR_OK;
}

CK_RV Module::sessionAndObject(CK_ULONG session, CK_ULONG object, Session*& s, ObjectPtr& o) {
  CK_RV rv = findSession(session, s);
  return rv != CKR_OK ? rv : visibleObject(*s, object, o);
}

CK_RV Module::checkWritable(const Session& s, bool tokenObject, bool privateObject) const {
  CK_ULONG who = loginOf(s).user;
  if (privateObject && who != CKU_USER) return CKR_USER_NOT_LOGGED_IN;
  if (tokenObject && !s.readWrite) return CKR_SESSION_READ_ONLY;
  return CKR_OK;
}

CK_RV Module::storeObject(Session& s, ObjectPtr object, CK_ULONG& handle) {
  if (object->objectClass() != CKO_DATA) {
    CK_RV rv = checkQuota(s.slotId, 1, object->isAsymmetric() ? 1 : 0);
    if (rv != CKR_OK) return rv;
  }
  CK_ULONG principal = loginOf(s).principal;
  // Device profile: every object has an owner, the crypto user who created it.
  if (config_.deviceProfile && principal == 0) return CKR_USER_NOT_LOGGED_IN;
  if (principal != 0) object->setUlong(CKA_HSMSIM_OWNER, principal);
  object->slotId = s.slotId;
  object->ownerSession = object->isToken() ? 0 : s.handle;
  object->ownerApplication = object->isToken() ? 0 : s.application;
  object->handle = nextObject_++;
  object->keyId = nextKeyId_++;
  handle = object->handle;
  objects_[handle] = std::move(object);
  return CKR_OK;
}

// Validates the key material of a new key and builds its OpenSSL form where it has one.
CK_RV Module::buildKeyMaterial(Object& o) {
  CK_ULONG cls = o.objectClass(), type = o.keyType();
  if (cls == CKO_SECRET_KEY) {
    const Bytes* value = o.bytes(CKA_VALUE);
    if (value == nullptr) return CKR_TEMPLATE_INCOMPLETE;
    if (type == CKK_AES && value->size() != 16 && value->size() != 24 && value->size() != 32)
      return CKR_ATTRIBUTE_VALUE_INVALID;
    if (type == CKK_GENERIC_SECRET && value->empty()) return CKR_ATTRIBUTE_VALUE_INVALID;
    if (type != CKK_AES && type != CKK_GENERIC_SECRET) return CKR_ATTRIBUTE_VALUE_INVALID;
    o.setUlong(CKA_VALUE_LEN, value->size());
    return CKR_OK;
  }
  if (cls != CKO_PUBLIC_KEY && cls != CKO_PRIVATE_KEY) return CKR_OK;
  if (type == CKK_EC) {
    const Bytes* params = o.bytes(CKA_EC_PARAMS);
    if (params == nullptr) return CKR_TEMPLATE_INCOMPLETE;
    o.curve = curveFromParams(*params);
    if (o.curve == Curve::None) return CKR_CURVE_NOT_SUPPORTED;
    if (cls == CKO_PRIVATE_KEY) {
      if (!o.has(CKA_VALUE)) return CKR_TEMPLATE_INCOMPLETE;
      return ecPrivateKey(o.curve, o.view(CKA_VALUE), o.pkey, nullptr) == CryptoStatus::Ok
                 ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
    }
    ByteView point = o.view(CKA_EC_POINT);
    if (!o.has(CKA_EC_POINT)) return CKR_TEMPLATE_INCOMPLETE;
    // CKA_EC_POINT is a DER OCTET STRING; a raw point is accepted and stored wrapped.
    size_t raw = 1 + 2 * curveFieldBytes(o.curve);
    Bytes inner;
    if (point.size == raw && point.data[0] == 0x04) {
      inner = toBytes(point.data, point.size);
      Bytes wrapped{0x04};
      if (raw > 127) wrapped.push_back(0x81);
      wrapped.push_back(static_cast<uint8_t>(raw));
      wrapped.insert(wrapped.end(), inner.begin(), inner.end());
      o.set(CKA_EC_POINT, wrapped);
    } else {
      size_t header = point.size > 2 && point.data[1] == 0x81 ? 3 : 2;
      if (point.size < header || point.data[0] != 0x04) return CKR_ATTRIBUTE_VALUE_INVALID;
      size_t length = header == 3 ? point.data[2] : point.data[1];
      if (point.size != header + length) return CKR_ATTRIBUTE_VALUE_INVALID;
      inner = toBytes(point.data + header, length);
    }
    return ecPublicKey(o.curve, inner, o.pkey) == CryptoStatus::Ok ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
  }
  if (type == CKK_RSA) {
    if (!o.has(CKA_MODULUS) || !o.has(CKA_PUBLIC_EXPONENT)) return CKR_TEMPLATE_INCOMPLETE;
    CryptoStatus st;
    if (cls == CKO_PUBLIC_KEY) {
      st = rsaPublicKey(o.view(CKA_MODULUS), o.view(CKA_PUBLIC_EXPONENT), o.pkey);
    } else {
      if (!o.has(CKA_PRIVATE_EXPONENT)) return CKR_TEMPLATE_INCOMPLETE;
      RsaComponents parts;
      auto copy = [&o](CK_ULONG t, Bytes& dst) {
        if (const Bytes* b = o.bytes(t)) dst = *b;
      };
      copy(CKA_MODULUS, parts.modulus);
      copy(CKA_PUBLIC_EXPONENT, parts.publicExponent);
      copy(CKA_PRIVATE_EXPONENT, parts.privateExponent);
      copy(CKA_PRIME_1, parts.prime1);
      copy(CKA_PRIME_2, parts.prime2);
      copy(CKA_EXPONENT_1, parts.exponent1);
      copy(CKA_EXPONENT_2, parts.exponent2);
      copy(CKA_COEFFICIENT, parts.coefficient);
      st = rsaPrivateKey(parts, o.pkey);
    }
    if (st != CryptoStatus::Ok) return CKR_ATTRIBUTE_VALUE_INVALID;
    if (cls == CKO_PUBLIC_KEY) o.setUlong(CKA_MODULUS_BITS, rsaModulusBytes(o.pkey) * 8);
    return CKR_OK;
  }
  return CKR_ATTRIBUTE_VALUE_INVALID;
}

CK_RV Module::createObject(CK_ULONG handle, const Template& tmpl, CK_ULONG& out) {
  Session* s = nullptr;
  CK_RV rv = findSession(handle, s);
  if (rv != CKR_OK) return rv;
  if ((rv = requirePrincipal(*s)) != CKR_OK) return rv;
  CK_ULONG cls = 0, keyType = CK_UNAVAILABLE_INFORMATION;
  if (!templateUlong(tmpl, CKA_CLASS, &cls)) return CKR_TEMPLATE_INCOMPLETE;
  bool key = cls == CKO_PUBLIC_KEY || cls == CKO_PRIVATE_KEY || cls == CKO_SECRET_KEY;
  if (cls != CKO_DATA && !key) return CKR_ATTRIBUTE_VALUE_INVALID;
  if (key && !templateUlong(tmpl, CKA_KEY_TYPE, &keyType)) return CKR_TEMPLATE_INCOMPLETE;
  rv = checkTemplate(tmpl, cls, keyType, Origin::Create, loginOf(*s).user == CKU_SO);
  if (rv != CKR_OK) return rv;
  auto object = std::make_shared<Object>();
  applyTemplate(*object, tmpl);
  rv = checkWritable(*s, object->isToken(), object->isPrivate());
  if (rv != CKR_OK) return rv;
  rv = buildKeyMaterial(*object);
  if (rv != CKR_OK) return rv;
  if (key) setProvenance(*object, false, 0);
  return storeObject(*s, std::move(object), out);
}

CK_RV Module::copyObject(CK_ULONG handle, CK_ULONG source, const Template& tmpl, CK_ULONG& out) {
  Session* s = nullptr;
  CK_RV rv = findSession(handle, s);
  if (rv != CKR_OK) return rv;
  ObjectPtr original;
  if ((rv = visibleObject(*s, source, original)) != CKR_OK) return rv;
  if (!original->flag(CKA_COPYABLE, true)) return CKR_ACTION_PROHIBITED;
  if ((rv = checkOwner(*s, *original)) != CKR_OK) return rv;
  bool isSO = loginOf(*s).user == CKU_SO;
  for (const TemplateAttribute& change : tmpl) {
    if ((rv = checkExtractableFixed(*original, change)) != CKR_OK) return rv;
    rv = checkChange(*original, change, Origin::Copy, isSO);
    if (rv != CKR_OK) return rv;
  }
  auto copy = std::make_shared<Object>();
  copy->attributes = original->attributes;
  copy->refreshHot();
  for (const TemplateAttribute& change : tmpl) copy->set(change.type, toBytes(change.value.data, change.value.size));
  if (copy->has(CKA_HSMSIM_SHARED)) copy->setSharedWith({});  // a copy starts unshared
  rv = checkWritable(*s, copy->isToken(), copy->isPrivate());
  if (rv != CKR_OK) return rv;
  if ((rv = buildKeyMaterial(*copy)) != CKR_OK) return rv;
  return storeObject(*s, std::move(copy), out);
}

CK_RV Module::destroyObject(CK_ULONG handle, CK_ULONG object) {
  Session* s = nullptr;
  ObjectPtr o;
  CK_RV rv = sessionAndObject(handle, object, s, o);
  if (rv != CKR_OK) return rv;
  if ((rv = checkWritable(*s, o->isToken(), o->isPrivate())) != CKR_OK) return rv;
  if ((rv = checkOwner(*s, *o)) != CKR_OK) return rv;
  if (!o->flag(CKA_DESTROYABLE, true)) return CKR_ACTION_PROHIBITED;
  objects_.erase(object);
  return CKR_OK;
}

CK_RV Module::objectSize(CK_ULONG handle, CK_ULONG object, CK_ULONG& size) {
  Session* s = nullptr;
  ObjectPtr o;
  CK_RV rv = sessionAndObject(handle, object, s, o);
  if (rv != CKR_OK) return rv;
  size = o->size();
  return CKR_OK;
}

CK_RV Module::getAttributes(CK_ULONG handle, CK_ULONG object, std::vector<AttributeQuery>& queries) {
  Session* s = nullptr;
  ObjectPtr o;
  CK_RV rv = sessionAndObject(handle, object, s, o);
  if (rv != CKR_OK) return rv;
  // Every attribute is processed; the result reports the most relevant failure.
  CK_RV result = CKR_OK;
  for (AttributeQuery& q : queries) {
    q.value.clear();
    q.length = CK_UNAVAILABLE_INFORMATION;
    const Bytes* value = o->bytes(q.type);
    if (value == nullptr || attributeInfo(q.type, o->objectClass(), o->keyType()) == nullptr) {
      if (result == CKR_OK) result = CKR_ATTRIBUTE_TYPE_INVALID;
      continue;
    }
    if (!isReadable(*o, q.type) || !mayReadSecret(*s, *o, q.type)) {
      result = CKR_ATTRIBUTE_SENSITIVE;
      continue;
    }
    q.value = *value;
    q.length = value->size();
  }
  return result;
}

CK_RV Module::setAttributes(CK_ULONG handle, CK_ULONG object, const Template& tmpl) {
  Session* s = nullptr;
  ObjectPtr o;
  CK_RV rv = sessionAndObject(handle, object, s, o);
  if (rv != CKR_OK) return rv;
  if ((rv = checkWritable(*s, o->isToken(), o->isPrivate())) != CKR_OK) return rv;
  if ((rv = checkOwner(*s, *o)) != CKR_OK) return rv;
  if (!o->flag(CKA_MODIFIABLE, true)) return CKR_ACTION_PROHIBITED;
  bool isSO = loginOf(*s).user == CKU_SO;
  // All or nothing: check every change before applying any.
  for (const TemplateAttribute& change : tmpl) {
    if ((rv = checkExtractableFixed(*o, change)) != CKR_OK) return rv;
    if ((rv = checkChange(*o, change, Origin::Set, isSO)) != CKR_OK) return rv;
  }
  for (const TemplateAttribute& change : tmpl) o->set(change.type, toBytes(change.value.data, change.value.size));
  return CKR_OK;
}

CK_RV Module::findInit(CK_ULONG handle, const Template& tmpl) {
  Session* s = nullptr;
  CK_RV rv = findSession(handle, s);
  if (rv != CKR_OK) return rv;
  if (s->find.active) return CKR_OPERATION_ACTIVE;
  FindOperation op;
  const Login& login = loginOf(*s);
  // Device profile: an unauthenticated session finds nothing.
  bool blind = config_.deviceProfile && login.principal == 0;
  for (const auto& entry : objects_) {
    if (blind) break;
    const Object& o = *entry.second;
    if (o.slotId != s->slotId || !isVisible(login, o)) continue;
    if (!o.isToken() && o.ownerApplication != s->application) continue;
    bool match = true;
    for (const TemplateAttribute& want : tmpl) {
      const Bytes* have = o.bytes(want.type);
      // Secret values never match a search: comparing them would leak the key.
      if (have == nullptr || have->size() != want.value.size || !isReadable(o, want.type) ||
          (want.value.size && memcmp(have->data(), want.value.data, want.value.size) != 0)) {
        match = false;
        break;
      }
    }
    if (match) op.results.push_back(o.handle);
  }
  op.active = true;
  s->find = std::move(op);
  return CKR_OK;
}

CK_RV Module::find(CK_ULONG handle, size_t maxCount, std::vector<CK_ULONG>& out) {
  Session* s = nullptr;
  CK_RV rv = findSession(handle, s);
  if (rv != CKR_OK) return rv;
  if (!s->find.active) return CKR_OPERATION_NOT_INITIALIZED;
  out.clear();
  while (out.size() < maxCount && s->find.position < s->find.results.size()) {
    CK_ULONG h = s->find.results[s->find.position++];
    if (objects_.count(h)) out.push_back(h);  // skip objects destroyed since the search began
  }
  return CKR_OK;
}

CK_RV Module::findFinal(CK_ULONG handle) {
  Session* s = nullptr;
  CK_RV rv = findSession(handle, s);
  if (rv != CKR_OK) return rv;
  if (!s->find.active) return CKR_OPERATION_NOT_INITIALIZED;
  s->find = FindOperation();
  return CKR_OK;
}

}  // namespace hsm
