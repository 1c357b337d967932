// C_Digest*, C_Sign* and C_Verify*: SHA-2, HMAC-SHA-2, ECDSA and RSA (PKCS#1 v1.5, PSS).
#include <cstring>

#include "mechanisms.h"
#include "module.h"

namespace hsm {

namespace {
bool hmacHash(CK_ULONG mechanism, HashAlg* hash, bool* general) {
  switch (mechanism) {
    case CKM_SHA256_HMAC: *hash = HashAlg::Sha256; *general = false; return true;
    case CKM_SHA384_HMAC: *hash = HashAlg::Sha384; *general = false; return true;
    case CKM_SHA512_HMAC: *hash = HashAlg::Sha512; *general = false; return true;
    case CKM_SHA256_HMAC_GENERAL: *hash = HashAlg::Sha256; *general = true; return true;
    case CKM_SHA384_HMAC_GENERAL: *hash = HashAlg::Sha384; *general = true; return true;
    case CKM_SHA512_HMAC_GENERAL: *hash = HashAlg::Sha512; *general = true; return true;
    default: return false;
  }
}

// Hash-then-sign mechanisms: the digest the token computes first.
bool signingHash(CK_ULONG mechanism, HashAlg* hash) {
  switch (mechanism) {
    case CKM_ECDSA_SHA256: case CKM_SHA256_RSA_PKCS: case CKM_SHA256_RSA_PKCS_PSS: *hash = HashAlg::Sha256; return true;
    case CKM_ECDSA_SHA384: case CKM_SHA384_RSA_PKCS: case CKM_SHA384_RSA_PKCS_PSS: *hash = HashAlg::Sha384; return true;
    case CKM_ECDSA_SHA512: case CKM_SHA512_RSA_PKCS: case CKM_SHA512_RSA_PKCS_PSS: *hash = HashAlg::Sha512; return true;
    default: return false;
  }
}

bool isPss(CK_ULONG m) {
  return m == CKM_RSA_PKCS_PSS || m == CKM_SHA256_RSA_PKCS_PSS || m == CKM_SHA384_RSA_PKCS_PSS ||
         m == CKM_SHA512_RSA_PKCS_PSS;
}
bool isEcdsa(CK_ULONG m) {
  return m == CKM_ECDSA || m == CKM_ECDSA_SHA256 || m == CKM_ECDSA_SHA384 || m == CKM_ECDSA_SHA512;
}
}  // namespace

CK_RV Module::signInitCommon(Session& s, SignOperation& op, bool signing, const Mechanism& m, CK_ULONG keyHandle) {
  if (op.active) return CKR_OPERATION_ACTIVE;
  SignOperation next;
  next.mechanism = m.type;
  CK_RV rv = keyForOperation(s, keyHandle, signing ? CKA_SIGN : CKA_VERIFY, m.type, next.key);
  if (rv != CKR_OK) return rv;
  const Object& key = *next.key;
  HashAlg hash;
  bool general = false;
  if (hmacHash(m.type, &hash, &general)) {
    if (key.objectClass() != CKO_SECRET_KEY || key.keyType() != CKK_GENERIC_SECRET) return CKR_KEY_TYPE_INCONSISTENT;
    next.impl = SignImpl::Hmac;
    next.macLength = digestLength(hash);
    if (general) {
      if (!m.hasParameter || m.numberA == 0 || m.numberA > next.macLength) return CKR_MECHANISM_PARAM_INVALID;
      next.macLength = m.numberA;
    }
    Hmac& hmac = signing ? s.hmacSign : s.hmacVerify;
    rv = toRv(hmac.init(hash, key.view(CKA_VALUE), key.keyId), CKR_FUNCTION_FAILED, CKR_FUNCTION_FAILED);
  } else if (isEcdsa(m.type)) {
    if (key.keyType() != CKK_EC || key.objectClass() != (signing ? CKO_PRIVATE_KEY : CKO_PUBLIC_KEY))
      return CKR_KEY_TYPE_INCONSISTENT;
    next.impl = SignImpl::Ecdsa;
  } else if (m.type == CKM_RSA_PKCS || isPss(m.type) || signingHash(m.type, &hash)) {
    if (key.keyType() != CKK_RSA || key.objectClass() != (signing ? CKO_PRIVATE_KEY : CKO_PUBLIC_KEY))
      return CKR_KEY_TYPE_INCONSISTENT;
    next.impl = SignImpl::Rsa;
    next.rsa.padding = isPss(m.type) ? RsaPadding::Pss : RsaPadding::Pkcs1;
    if (isPss(m.type)) {
      if (!m.hasParameter || !hashFromMechanism(m.numberA, &next.rsa.hash) ||
          !hashFromMgf(m.numberB, &next.rsa.mgfHash) || m.numberC > 1024)
        return CKR_MECHANISM_PARAM_INVALID;
      next.rsa.saltLength = m.numberC;
      HashAlg mechanismHash;
      // The hashing forms must name the same hash in their parameters.
      if (signingHash(m.type, &mechanismHash) && mechanismHash != next.rsa.hash) return CKR_MECHANISM_PARAM_INVALID;
    }
  } else {
    return CKR_MECHANISM_INVALID;
  }
  if (rv != CKR_OK) return rv;
  if (signingHash(m.type, &hash)) {
    next.hashFirst = true;
    next.hash = hash;
    next.rsa.hash = hash;
    next.rsa.hashSet = true;
    Digest& d = signing ? s.signDigester : s.verifyDigester;
    if (d.init(hash) != CryptoStatus::Ok) return CKR_FUNCTION_FAILED;
  }
  next.active = true;
  op = std::move(next);
  return CKR_OK;
}

CK_RV Module::signInit(CK_ULONG session, const Mechanism& m, CK_ULONG key) {
  Session* s = nullptr;
  CK_RV rv = findSession(session, s);
  return rv != CKR_OK ? rv : signInitCommon(*s, s->sign, true, m, key);
}

CK_RV Module::verifyInit(CK_ULONG session, const Mechanism& m, CK_ULONG key) {
  Session* s = nullptr;
  CK_RV rv = findSession(session, s);
  return rv != CKR_OK ? rv : signInitCommon(*s, s->verify, false, m, key);
}

namespace {
size_t signatureLength(SignOperation& op) {
  switch (op.impl) {
    case SignImpl::Hmac: return op.macLength;
    case SignImpl::Ecdsa: return 2 * curveFieldBytes(op.key->curve);
    case SignImpl::Rsa: return rsaModulusBytes(op.key->pkey);
    default: return 0;
  }
}

// Feeds data to a multi-part capable operation; raw (single-part) mechanisms refuse.
CK_RV feed(SignOperation& op, Hmac& hmac, Digest& digest, ByteView in) {
  if (op.impl == SignImpl::Hmac) return hmac.update(in) == CryptoStatus::Ok ? CKR_OK : CKR_FUNCTION_FAILED;
  if (op.hashFirst) return digest.update(in) == CryptoStatus::Ok ? CKR_OK : CKR_FUNCTION_FAILED;
  return CKR_FUNCTION_NOT_SUPPORTED;
}

// Produces the signature (or MAC) of everything fed so far, plus `in` for single-part raw forms.
CK_RV produce(SignOperation& op, Hmac& hmac, Digest& digest, ByteView raw, uint8_t* out, size_t& outLength) {
  uint8_t buffer[64];
  ByteView input = raw;
  if (op.impl == SignImpl::Hmac) {
    if (hmac.finish(buffer) != CryptoStatus::Ok) return CKR_FUNCTION_FAILED;
    memcpy(out, buffer, op.macLength);
    outLength = op.macLength;
    return CKR_OK;
  }
  if (op.hashFirst) {
    if (digest.finish(buffer) != CryptoStatus::Ok) return CKR_FUNCTION_FAILED;
    input = ByteView(buffer, digestLength(op.hash));
  }
  if (op.impl == SignImpl::Ecdsa) {
    outLength = 2 * curveFieldBytes(op.key->curve);
    return toRv(ecdsaSign(op.key->pkey, op.key->curve, input, out), CKR_DATA_LEN_RANGE, CKR_FUNCTION_FAILED);
  }
  if (op.rsa.padding == RsaPadding::Pss && !op.hashFirst && input.size != digestLength(op.rsa.hash))
    return CKR_DATA_LEN_RANGE;
  return toRv(rsaSign(op.key->pkey, op.rsa, input, out, &outLength), CKR_DATA_LEN_RANGE, CKR_FUNCTION_FAILED);
}

CK_RV check(SignOperation& op, Hmac& hmac, Digest& digest, ByteView raw, ByteView signature) {
  size_t expected = signatureLength(op);
  if (signature.size != expected) return CKR_SIGNATURE_LEN_RANGE;
  uint8_t buffer[64];
  ByteView input = raw;
  if (op.impl == SignImpl::Hmac) {
    if (hmac.finish(buffer) != CryptoStatus::Ok) return CKR_FUNCTION_FAILED;
    return constantTimeEqual(buffer, signature.data, expected) ? CKR_OK : CKR_SIGNATURE_INVALID;
  }
  if (op.hashFirst) {
    if (digest.finish(buffer) != CryptoStatus::Ok) return CKR_FUNCTION_FAILED;
    input = ByteView(buffer, digestLength(op.hash));
  }
  CryptoStatus st = op.impl == SignImpl::Ecdsa ? ecdsaVerify(op.key->pkey, op.key->curve, input, signature)
                                               : rsaVerify(op.key->pkey, op.rsa, input, signature);
  return toRv(st, CKR_SIGNATURE_LEN_RANGE, CKR_SIGNATURE_INVALID);
}
}  // namespace

#define ACTIVE_SIGN(which)                   \
  Session* s = nullptr;                      \
  CK_RV rv = findSession(session, s);        \
  if (rv != CKR_OK) return rv;               \
  SignOperation& op = s->which;              \
  if (!op.active) return CKR_OPERATION_NOT_INITIALIZED

CK_RV Module::sign(CK_ULONG session, ByteView in, uint8_t* out, size_t& outLength) {
  ACTIVE_SIGN(sign);
  if (op.multiPart) {
    op = SignOperation();
    return CKR_OPERATION_ACTIVE;
  }
  size_t required = signatureLength(op);
  if (!needOutput(out, outLength, required, rv)) return rv;
  bool raw = op.impl != SignImpl::Hmac && !op.hashFirst;
  rv = raw ? CKR_OK : feed(op, s->hmacSign, s->signDigester, in);
  if (rv == CKR_OK) rv = produce(op, s->hmacSign, s->signDigester, raw ? in : ByteView(), out, outLength);
  op = SignOperation();
  return rv;
}

CK_RV Module::signUpdate(CK_ULONG session, ByteView in) {
  ACTIVE_SIGN(sign);
  op.multiPart = true;
  rv = feed(op, s->hmacSign, s->signDigester, in);
  if (rv != CKR_OK) op = SignOperation();
  return rv;
}

CK_RV Module::signFinal(CK_ULONG session, uint8_t* out, size_t& outLength) {
  ACTIVE_SIGN(sign);
  if (op.impl != SignImpl::Hmac && !op.hashFirst) {
    op = SignOperation();
    return CKR_FUNCTION_NOT_SUPPORTED;
  }
  size_t required = signatureLength(op);
  if (!needOutput(out, outLength, required, rv)) return rv;
  rv = produce(op, s->hmacSign, s->signDigester, ByteView(), out, outLength);
  op = SignOperation();
  return rv;
}

CK_RV Module::verify(CK_ULONG session, ByteView in, ByteView signature) {
  ACTIVE_SIGN(verify);
  if (op.multiPart) {
    op = SignOperation();
    return CKR_OPERATION_ACTIVE;
  }
  bool raw = op.impl != SignImpl::Hmac && !op.hashFirst;
  rv = raw ? CKR_OK : feed(op, s->hmacVerify, s->verifyDigester, in);
  if (rv == CKR_OK) rv = check(op, s->hmacVerify, s->verifyDigester, raw ? in : ByteView(), signature);
  op = SignOperation();
  return rv;
}

CK_RV Module::verifyUpdate(CK_ULONG session, ByteView in) {
  ACTIVE_SIGN(verify);
  op.multiPart = true;
  rv = feed(op, s->hmacVerify, s->verifyDigester, in);
  if (rv != CKR_OK) op = SignOperation();
  return rv;
}

CK_RV Module::verifyFinal(CK_ULONG session, ByteView signature) {
  ACTIVE_SIGN(verify);
  if (op.impl != SignImpl::Hmac && !op.hashFirst) {
    op = SignOperation();
    return CKR_FUNCTION_NOT_SUPPORTED;
  }
  rv = check(op, s->hmacVerify, s->verifyDigester, ByteView(), signature);
  op = SignOperation();
  return rv;
}

CK_RV Module::digestInit(CK_ULONG session, const Mechanism& m) {
  Session* s = nullptr;
  CK_RV rv = findSession(session, s);
  if (rv != CKR_OK) return rv;
  if (s->digest.active) return CKR_OPERATION_ACTIVE;
  HashAlg hash;
  if (!hashFromMechanism(m.type, &hash)) return CKR_MECHANISM_INVALID;
  if (s->digester.init(hash) != CryptoStatus::Ok) return CKR_FUNCTION_FAILED;
  s->digest = DigestOperation();
  s->digest.active = true;
  return CKR_OK;
}

CK_RV Module::digest(CK_ULONG session, ByteView in, uint8_t* out, size_t& outLength) {
  Session* s = nullptr;
  CK_RV rv = findSession(session, s);
  if (rv != CKR_OK) return rv;
  if (!s->digest.active) return CKR_OPERATION_NOT_INITIALIZED;
  if (s->digest.multiPart) {
    s->digest = DigestOperation();
    return CKR_OPERATION_ACTIVE;
  }
  size_t required = s->digester.length();
  if (!needOutput(out, outLength, required, rv)) return rv;
  bool ok = s->digester.update(in) == CryptoStatus::Ok && s->digester.finish(out) == CryptoStatus::Ok;
  outLength = required;
  s->digest = DigestOperation();
  return ok ? CKR_OK : CKR_FUNCTION_FAILED;
}

CK_RV Module::digestUpdate(CK_ULONG session, ByteView in) {
  Session* s = nullptr;
  CK_RV rv = findSession(session, s);
  if (rv != CKR_OK) return rv;
  if (!s->digest.active) return CKR_OPERATION_NOT_INITIALIZED;
  s->digest.multiPart = true;
  if (s->digester.update(in) == CryptoStatus::Ok) return CKR_OK;
  s->digest = DigestOperation();
  return CKR_FUNCTION_FAILED;
}

CK_RV Module::digestKey(CK_ULONG session, CK_ULONG keyHandle) {
  Session* s = nullptr;
  CK_RV rv = findSession(session, s);
  if (rv != CKR_OK) return rv;
  if (!s->digest.active) return CKR_OPERATION_NOT_INITIALIZED;
  ObjectPtr key;
  if ((rv = visibleObject(*s, keyHandle, key)) != CKR_OK)
    return rv == CKR_USER_NOT_LOGGED_IN ? rv : CKR_KEY_HANDLE_INVALID;
  if (key->objectClass() != CKO_SECRET_KEY) return CKR_KEY_INDIGESTIBLE;
  // A digest of a secret value is a test oracle for it (guess and compare): only a key whose
  // value could be read anyway may be digested.
  if (key->flag(CKA_SENSITIVE) || !key->flag(CKA_EXTRACTABLE)) return CKR_KEY_INDIGESTIBLE;
  // Device profile: only the key's owner, who could read its value, may digest it.
  if (!mayReadSecret(*s, *key, CKA_VALUE)) return CKR_KEY_INDIGESTIBLE;
  s->digest.multiPart = true;
  return s->digester.update(key->view(CKA_VALUE)) == CryptoStatus::Ok ? CKR_OK : CKR_FUNCTION_FAILED;
}

CK_RV Module::digestFinal(CK_ULONG session, uint8_t* out, size_t& outLength) {
  Session* s = nullptr;
  CK_RV rv = findSession(session, s);
  if (rv != CKR_OK) return rv;
  if (!s->digest.active) return CKR_OPERATION_NOT_INITIALIZED;
  size_t required = s->digester.length();
  if (!needOutput(out, outLength, required, rv)) return rv;
  bool ok = s->digester.finish(out) == CryptoStatus::Ok;
  outLength = required;
  s->digest = DigestOperation();
  return ok ? CKR_OK : CKR_FUNCTION_FAILED;
}

}  // namespace hsm
