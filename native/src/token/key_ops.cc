// C_GenerateKey, C_GenerateKeyPair, C_WrapKey, C_UnwrapKey and C_DeriveKey.
#include <algorithm>
#include <cstring>

#include "../crypto/aes_wrap.h"
#include "../crypto/pkcs8.h"
#include "mechanisms.h"
#include "module.h"

namespace hsm {

CK_RV Module::newKeyObject(Session& s, const Template& tmpl, CK_ULONG cls, CK_ULONG keyType, Origin origin,
                           ObjectPtr& out) {
  CK_RV rv = requirePrincipal(s);
  if (rv != CKR_OK) return rv;
  CK_ULONG given;
  if (templateUlong(tmpl, CKA_CLASS, &given) && given != cls) return CKR_TEMPLATE_INCONSISTENT;
  if (templateUlong(tmpl, CKA_KEY_TYPE, &given) && given != keyType) return CKR_TEMPLATE_INCONSISTENT;
  rv = checkTemplate(tmpl, cls, keyType, origin, loginOf(s).user == CKU_SO);
  if (rv != CKR_OK) return rv;
  auto object = std::make_shared<Object>();
  object->setUlong(CKA_CLASS, cls);
  object->setUlong(CKA_KEY_TYPE, keyType);
  applyTemplate(*object, tmpl);
  rv = checkWritable(s, object->isToken(), object->isPrivate());
  if (rv != CKR_OK) return rv;
  out = std::move(object);
  return CKR_OK;
}

CK_RV Module::generateKey(CK_ULONG session, const Mechanism& m, const Template& tmpl, CK_ULONG& handle) {
  Session* s = nullptr;
  CK_RV rv = findSession(session, s);
  if (rv != CKR_OK) return rv;
  CK_ULONG keyType;
  if (m.type == CKM_AES_KEY_GEN) keyType = CKK_AES;
  else if (m.type == CKM_GENERIC_SECRET_KEY_GEN) keyType = CKK_GENERIC_SECRET;
  else return CKR_MECHANISM_INVALID;
  CK_ULONG length = 0;
  if (!templateUlong(tmpl, CKA_VALUE_LEN, &length)) return CKR_TEMPLATE_INCOMPLETE;
  if (keyType == CKK_AES ? (length != 16 && length != 24 && length != 32) : (length == 0 || length > 512))
    return CKR_ATTRIBUTE_VALUE_INVALID;
  ObjectPtr key;
  if ((rv = newKeyObject(*s, tmpl, CKO_SECRET_KEY, keyType, Origin::Generate, key)) != CKR_OK) return rv;
  Bytes value(length, 0);
  if (!tokenOf(*s).drbg->generate(value.data(), value.size())) return CKR_FUNCTION_FAILED;
  key->set(CKA_VALUE, std::move(value));
  if ((rv = buildKeyMaterial(*key)) != CKR_OK) return rv;
  setProvenance(*key, true, m.type);
  return storeObject(*s, std::move(key), handle);
}

namespace {
Bytes derOctetString(const Bytes& content) {
  Bytes out{0x04};
  if (content.size() > 127) out.push_back(0x81);
  out.push_back(static_cast<uint8_t>(content.size()));
  out.insert(out.end(), content.begin(), content.end());
  return out;
}
}  // namespace

CK_RV Module::generateKeyPair(CK_ULONG session, const Mechanism& m, const Template& publicTemplate,
                              const Template& privateTemplate, CK_ULONG& publicHandle, CK_ULONG& privateHandle) {
  Session* s = nullptr;
  CK_RV rv = findSession(session, s);
  if (rv != CKR_OK) return rv;
  CK_ULONG keyType;
  if (m.type == CKM_EC_KEY_PAIR_GEN) keyType = CKK_EC;
  else if (m.type == CKM_RSA_PKCS_KEY_PAIR_GEN) keyType = CKK_RSA;
  else return CKR_MECHANISM_INVALID;
  ObjectPtr pub, priv;
  if ((rv = newKeyObject(*s, publicTemplate, CKO_PUBLIC_KEY, keyType, Origin::Generate, pub)) != CKR_OK) return rv;
  if ((rv = newKeyObject(*s, privateTemplate, CKO_PRIVATE_KEY, keyType, Origin::Generate, priv)) != CKR_OK) return rv;
  if (keyType == CKK_EC) {
    const Bytes* params = pub->bytes(CKA_EC_PARAMS);
    if (params == nullptr) return CKR_TEMPLATE_INCOMPLETE;
    Curve curve = curveFromParams(*params);
    if (curve == Curve::None) return CKR_CURVE_NOT_SUPPORTED;
    Bytes scalar, point;
    if (ecGenerate(curve, *tokenOf(*s).drbg, scalar, point) != CryptoStatus::Ok) return CKR_FUNCTION_FAILED;
    pub->set(CKA_EC_POINT, derOctetString(point));
    priv->set(CKA_EC_PARAMS, *params);
    priv->set(CKA_VALUE, std::move(scalar));
  } else {
    CK_ULONG bits = 0;
    if (!templateUlong(publicTemplate, CKA_MODULUS_BITS, &bits)) return CKR_TEMPLATE_INCOMPLETE;
    RsaComponents parts;
    CryptoStatus st = rsaGenerate(bits, pub->view(CKA_PUBLIC_EXPONENT), parts);
    if (st != CryptoStatus::Ok) return st == CryptoStatus::BadParam ? CKR_KEY_SIZE_RANGE : CKR_FUNCTION_FAILED;
    pub->set(CKA_MODULUS, parts.modulus);
    pub->set(CKA_PUBLIC_EXPONENT, parts.publicExponent);
    priv->set(CKA_MODULUS, parts.modulus);
    priv->set(CKA_PUBLIC_EXPONENT, parts.publicExponent);
    priv->set(CKA_PRIVATE_EXPONENT, parts.privateExponent);
    priv->set(CKA_PRIME_1, parts.prime1);
    priv->set(CKA_PRIME_2, parts.prime2);
    priv->set(CKA_EXPONENT_1, parts.exponent1);
    priv->set(CKA_EXPONENT_2, parts.exponent2);
    priv->set(CKA_COEFFICIENT, parts.coefficient);
  }
  if ((rv = buildKeyMaterial(*pub)) != CKR_OK || (rv = buildKeyMaterial(*priv)) != CKR_OK) return rv;
  setProvenance(*pub, true, m.type);
  setProvenance(*priv, true, m.type);
  if ((rv = checkQuota(s->slotId, 2, 2)) != CKR_OK) return rv;  // both fit, or neither is stored
  storeObject(*s, std::move(pub), publicHandle);
  return storeObject(*s, std::move(priv), privateHandle);
}

namespace {
// Encrypts or decrypts key material with a wrapping mechanism, outside session state.
CK_RV runWrapMechanism(const Mechanism& m, Object& wrappingKey, bool wrap, ByteView in, Bytes& out) {
  CK_RV lengthError = wrap ? CKR_KEY_SIZE_RANGE : CKR_WRAPPED_KEY_LEN_RANGE;
  CK_RV invalid = wrap ? CKR_FUNCTION_FAILED : CKR_WRAPPED_KEY_INVALID;
  CK_RV typeError = wrap ? CKR_WRAPPING_KEY_TYPE_INCONSISTENT : CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT;
  bool aes = wrappingKey.keyType() == CKK_AES;
  switch (m.type) {
    case CKM_AES_KEY_WRAP: case CKM_AES_KEY_WRAP_PAD: case CKM_AES_KEY_WRAP_KWP: {
      if (!aes) return typeError;
      bool padded = m.type != CKM_AES_KEY_WRAP;
      CryptoStatus st = wrap ? aesWrap(padded, wrappingKey.view(CKA_VALUE), in, out)
                             : aesUnwrap(padded, wrappingKey.view(CKA_VALUE), in, out);
      return toRv(st, lengthError, invalid);
    }
    case CKM_AES_GCM: {
      if (!aes) return typeError;
      if (!m.hasParameter || m.bytesA.size == 0 || m.bytesA.size > kMaxGcmIvBytes || !gcmTagBitsAllowed(m.numberA))
        return CKR_MECHANISM_PARAM_INVALID;
      GcmCipher gcm;
      size_t tag = m.numberA / 8;
      CryptoStatus st = gcm.init(wrap, wrappingKey.view(CKA_VALUE), 0, m.bytesA, m.bytesB, tag);
      if (st != CryptoStatus::Ok) return toRv(st, lengthError, invalid);
      if (wrap) {
        out.assign(in.size + tag, 0);
        st = gcm.update(in, out.data());
        if (st == CryptoStatus::Ok) st = gcm.finishEncrypt(out.data() + in.size);
      } else {
        if (in.size < tag) return CKR_WRAPPED_KEY_LEN_RANGE;
        out.assign(in.size - tag, 0);
        st = gcm.update(ByteView(in.data, out.size()), out.data());
        if (st == CryptoStatus::Ok) st = gcm.finishDecrypt(in.data + out.size());
      }
      if (st != CryptoStatus::Ok) out.clear();
      return toRv(st, lengthError, invalid);
    }
    case CKM_AES_CBC_PAD: {
      if (!aes) return typeError;
      if (m.bytesA.size != 16) return CKR_MECHANISM_PARAM_INVALID;
      if (!wrap && (in.size == 0 || in.size % 16 != 0)) return CKR_WRAPPED_KEY_LEN_RANGE;
      AesBlockCipher cbc;
      CryptoStatus st = cbc.init(AesBlockCipher::Mode::Cbc, wrap, true, wrappingKey.view(CKA_VALUE), m.bytesA);
      out.assign(in.size + 16, 0);
      size_t a = 0, b = 0;
      if (st == CryptoStatus::Ok) st = cbc.update(in, out.data(), &a);
      if (st == CryptoStatus::Ok) st = cbc.finish(out.data() + a, &b);
      out.resize(st == CryptoStatus::Ok ? a + b : 0);
      return toRv(st, lengthError, invalid);
    }
    case CKM_RSA_PKCS_OAEP: {
      if (wrappingKey.keyType() != CKK_RSA ||
          wrappingKey.objectClass() != (wrap ? CKO_PUBLIC_KEY : CKO_PRIVATE_KEY))
        return typeError;
      RsaParams params;
      params.padding = RsaPadding::Oaep;
      if (!m.hasParameter || !hashFromMechanism(m.numberA, &params.hash) || !hashFromMgf(m.numberB, &params.mgfHash))
        return CKR_MECHANISM_PARAM_INVALID;
      params.label = m.bytesA;
      if (wrap) {
        out.assign(rsaModulusBytes(wrappingKey.pkey), 0);
        size_t length = out.size();
        CryptoStatus st = rsaEncrypt(wrappingKey.pkey, params, in, out.data(), &length);
        out.resize(st == CryptoStatus::Ok ? length : 0);
        return toRv(st, lengthError, invalid);
      }
      return toRv(rsaDecrypt(wrappingKey.pkey, params, in, out), lengthError, invalid);
    }
    default:
      return CKR_MECHANISM_INVALID;
  }
}
}  // namespace

CK_RV Module::wrapKey(CK_ULONG session, const Mechanism& m, CK_ULONG wrappingHandle, CK_ULONG keyHandle,
                      uint8_t* out, size_t& outLength) {
  Session* s = nullptr;
  CK_RV rv = findSession(session, s);
  if (rv != CKR_OK) return rv;
  ObjectPtr wrapping, key;
  rv = keyForOperation(*s, wrappingHandle, CKA_WRAP, m.type, wrapping, CKR_WRAPPING_KEY_HANDLE_INVALID);
  if (rv != CKR_OK) return rv;
  if (visibleObject(*s, keyHandle, key) != CKR_OK) return CKR_KEY_HANDLE_INVALID;
  CK_ULONG cls = key->objectClass();
  if (cls != CKO_SECRET_KEY && cls != CKO_PRIVATE_KEY) return CKR_KEY_NOT_WRAPPABLE;
  if (!key->flag(CKA_EXTRACTABLE)) return CKR_KEY_UNEXTRACTABLE;
  if ((rv = checkOwner(*s, *key, CKR_KEY_NOT_WRAPPABLE)) != CKR_OK) return rv;
  if (key->flag(CKA_WRAP_WITH_TRUSTED) && !wrapping->flag(CKA_TRUSTED)) return CKR_KEY_NOT_WRAPPABLE;
  Bytes material, wrapped;
  if (cls == CKO_SECRET_KEY) {
    material = *key->bytes(CKA_VALUE);
  } else if (privateKeyToPkcs8(key->pkey, material) != CryptoStatus::Ok) {
    return CKR_KEY_NOT_WRAPPABLE;
  }
  if ((rv = runWrapMechanism(m, *wrapping, true, material, wrapped)) != CKR_OK) return rv;
  if (!needOutput(out, outLength, wrapped.size(), rv)) return rv;
  memcpy(out, wrapped.data(), wrapped.size());
  outLength = wrapped.size();
  return CKR_OK;
}

CK_RV Module::unwrapKey(CK_ULONG session, const Mechanism& m, CK_ULONG unwrappingHandle, ByteView wrapped,
                        const Template& tmpl, CK_ULONG& handle) {
  Session* s = nullptr;
  CK_RV rv = findSession(session, s);
  if (rv != CKR_OK) return rv;
  ObjectPtr unwrapping, key;
  rv = keyForOperation(*s, unwrappingHandle, CKA_UNWRAP, m.type, unwrapping, CKR_UNWRAPPING_KEY_HANDLE_INVALID);
  if (rv != CKR_OK) return rv;
  CK_ULONG cls, keyType;
  if (!templateUlong(tmpl, CKA_CLASS, &cls) || !templateUlong(tmpl, CKA_KEY_TYPE, &keyType))
    return CKR_TEMPLATE_INCOMPLETE;
  if (cls != CKO_SECRET_KEY && cls != CKO_PRIVATE_KEY) return CKR_TEMPLATE_INCONSISTENT;
  if ((rv = newKeyObject(*s, tmpl, cls, keyType, Origin::Unwrap, key)) != CKR_OK) return rv;
  Bytes material;
  if ((rv = runWrapMechanism(m, *unwrapping, false, wrapped, material)) != CKR_OK) return rv;
  if (cls == CKO_SECRET_KEY) {
    CK_ULONG length;
    if (templateUlong(tmpl, CKA_VALUE_LEN, &length)) {
      if (length > material.size()) return CKR_TEMPLATE_INCONSISTENT;
      material.resize(length);  // unpadded mechanisms may carry trailing fill
    }
    key->set(CKA_VALUE, std::move(material));
  } else {
    DecodedPrivateKey decoded;
    if (privateKeyFromPkcs8(material, decoded) != CryptoStatus::Ok) return CKR_WRAPPED_KEY_INVALID;
    if (decoded.isEc != (keyType == CKK_EC) || (!decoded.isEc && keyType != CKK_RSA)) return CKR_TEMPLATE_INCONSISTENT;
    if (decoded.isEc) {
      key->set(CKA_EC_PARAMS, curveParams(decoded.curve));
      key->set(CKA_VALUE, std::move(decoded.ecScalar));
    } else {
      key->set(CKA_MODULUS, decoded.rsa.modulus);
      key->set(CKA_PUBLIC_EXPONENT, decoded.rsa.publicExponent);
      key->set(CKA_PRIVATE_EXPONENT, decoded.rsa.privateExponent);
      key->set(CKA_PRIME_1, decoded.rsa.prime1);
      key->set(CKA_PRIME_2, decoded.rsa.prime2);
      key->set(CKA_EXPONENT_1, decoded.rsa.exponent1);
      key->set(CKA_EXPONENT_2, decoded.rsa.exponent2);
      key->set(CKA_COEFFICIENT, decoded.rsa.coefficient);
    }
  }
  if ((rv = buildKeyMaterial(*key)) != CKR_OK) return rv == CKR_ATTRIBUTE_VALUE_INVALID ? CKR_WRAPPED_KEY_INVALID : rv;
  setProvenance(*key, false, 0);
  return storeObject(*s, std::move(key), handle);
}

namespace {
// ANSI X9.63 KDF: hash(Z || counter || sharedInfo) blocks, counter from 1, big-endian.
bool x963Kdf(HashAlg hash, ByteView z, ByteView sharedInfo, size_t length, Bytes& out) {
  out.clear();
  Digest digest;
  uint8_t block[64];
  for (uint32_t counter = 1; out.size() < length; ++counter) {
    uint8_t c[4] = {uint8_t(counter >> 24), uint8_t(counter >> 16), uint8_t(counter >> 8), uint8_t(counter)};
    if (digest.init(hash) != CryptoStatus::Ok || digest.update(z) != CryptoStatus::Ok ||
        digest.update(ByteView(c, 4)) != CryptoStatus::Ok || digest.update(sharedInfo) != CryptoStatus::Ok ||
        digest.finish(block) != CryptoStatus::Ok)
      return false;
    size_t take = std::min(digest.length(), length - out.size());
    out.insert(out.end(), block, block + take);
  }
  secureWipe(block, sizeof block);
  return true;
}

bool kdfHash(CK_ULONG kdf, HashAlg* hash) {
  switch (kdf) {
    case CKD_SHA1_KDF: *hash = HashAlg::Sha1; return true;
    case CKD_SHA224_KDF: *hash = HashAlg::Sha224; return true;
    case CKD_SHA256_KDF: *hash = HashAlg::Sha256; return true;
    case CKD_SHA384_KDF: *hash = HashAlg::Sha384; return true;
    case CKD_SHA512_KDF: *hash = HashAlg::Sha512; return true;
    default: return false;
  }
}
}  // namespace

CK_RV Module::deriveKey(CK_ULONG session, const Mechanism& m, CK_ULONG baseHandle, const Template& tmpl,
                        CK_ULONG& handle) {
  Session* s = nullptr;
  CK_RV rv = findSession(session, s);
  if (rv != CKR_OK) return rv;
  if (m.type != CKM_ECDH1_DERIVE) return CKR_MECHANISM_INVALID;
  ObjectPtr base, key;
  if ((rv = keyForOperation(*s, baseHandle, CKA_DERIVE, m.type, base)) != CKR_OK) return rv;
  if (base->keyType() != CKK_EC || base->objectClass() != CKO_PRIVATE_KEY) return CKR_KEY_TYPE_INCONSISTENT;
  HashAlg hash = HashAlg::Sha256;
  bool useKdf = m.numberA != CKD_NULL;
  if (!m.hasParameter || (useKdf && !kdfHash(m.numberA, &hash)) || (!useKdf && m.bytesB.size != 0) ||
      m.bytesA.size == 0)
    return CKR_MECHANISM_PARAM_INVALID;
  CK_ULONG cls = CKO_SECRET_KEY, keyType;
  templateUlong(tmpl, CKA_CLASS, &cls);
  if (cls != CKO_SECRET_KEY) return CKR_TEMPLATE_INCONSISTENT;
  if (!templateUlong(tmpl, CKA_KEY_TYPE, &keyType)) return CKR_TEMPLATE_INCOMPLETE;
  if ((rv = newKeyObject(*s, tmpl, cls, keyType, Origin::Derive, key)) != CKR_OK) return rv;
  Bytes z;
  if (ecdhDerive(base->pkey, base->curve, m.bytesA, z) != CryptoStatus::Ok) return CKR_MECHANISM_PARAM_INVALID;
  CK_ULONG length = z.size();
  bool lengthGiven = templateUlong(tmpl, CKA_VALUE_LEN, &length);
  if (keyType == CKK_AES && !lengthGiven) return CKR_TEMPLATE_INCOMPLETE;
  if (length == 0 || length > 512 || (!useKdf && length > z.size())) return CKR_TEMPLATE_INCONSISTENT;
  Bytes value;
  if (useKdf) {
    if (!x963Kdf(hash, z, m.bytesB, length, value)) return CKR_FUNCTION_FAILED;
  } else {
    // As SoftHSMv2: a shorter key keeps the trailing bytes of Z.
    value = Bytes(z.end() - static_cast<long>(length), z.end());
  }
  key->set(CKA_VALUE, std::move(value));
  if ((rv = buildKeyMaterial(*key)) != CKR_OK) return rv;
  setProvenance(*key, false, 0);
  key->setFlag(CKA_ALWAYS_SENSITIVE, base->flag(CKA_ALWAYS_SENSITIVE) && key->flag(CKA_SENSITIVE));
  key->setFlag(CKA_NEVER_EXTRACTABLE, base->flag(CKA_NEVER_EXTRACTABLE) && !key->flag(CKA_EXTRACTABLE));
  return storeObject(*s, std::move(key), handle);
}

}  // namespace hsm
