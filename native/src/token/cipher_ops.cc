// C_Encrypt* and C_Decrypt*: AES-GCM, AES-CBC(-PAD), AES-ECB, RSA PKCS#1 v1.5 and OAEP.
#include <cstring>

#include "mechanisms.h"
#include "module.h"

namespace hsm {

CK_RV Module::keyForOperation(Session& s, CK_ULONG handle, CK_ULONG usage, CK_ULONG mechanism, ObjectPtr& out,
                              CK_RV invalidHandle) {
  ObjectPtr key;
  CK_RV rv = visibleObject(s, handle, key);
  if (rv == CKR_USER_NOT_LOGGED_IN) return rv;
  if (rv != CKR_OK) return invalidHandle;
  CK_ULONG cls = key->objectClass();
  if (cls != CKO_SECRET_KEY && cls != CKO_PUBLIC_KEY && cls != CKO_PRIVATE_KEY) return invalidHandle;
  if (!key->flag(usage)) return CKR_KEY_FUNCTION_NOT_PERMITTED;
  if (!key->allowsMechanism(mechanism)) return CKR_MECHANISM_INVALID;
  out = std::move(key);
  return CKR_OK;
}

namespace {
bool rsaEncryptionParams(const Mechanism& m, RsaParams& p) {
  if (m.type == CKM_RSA_PKCS) {
    p.padding = RsaPadding::Pkcs1;
    return true;
  }
  if (!m.hasParameter) return false;
  p.padding = RsaPadding::Oaep;
  if (!hashFromMechanism(m.numberA, &p.hash) || !hashFromMgf(m.numberB, &p.mgfHash)) return false;
  return m.numberC == 0 || m.numberC == CKZ_DATA_SPECIFIED;
}
}  // namespace

CK_RV Module::cipherInit(Session& s, CipherOperation& op, bool encrypt, const Mechanism& m, CK_ULONG keyHandle) {
  if (op.active) return CKR_OPERATION_ACTIVE;
  op.reset();  // filled in place, keeping its buffers; reset again unless setup succeeds
  CK_RV rv = cipherSetup(s, op, encrypt, m, keyHandle);
  if (rv != CKR_OK) op.reset();
  op.active = rv == CKR_OK;
  return rv;
}

CK_RV Module::cipherSetup(Session& s, CipherOperation& next, bool encrypt, const Mechanism& m, CK_ULONG keyHandle) {
  next.mechanism = m.type;
  CK_RV rv = keyForOperation(s, keyHandle, encrypt ? CKA_ENCRYPT : CKA_DECRYPT, m.type, next.key);
  if (rv != CKR_OK) return rv;
  const Object& key = *next.key;
  switch (m.type) {
    case CKM_AES_GCM: {
      if (key.keyType() != CKK_AES) return CKR_KEY_TYPE_INCONSISTENT;
      if (!m.hasParameter || m.bytesA.size == 0 || m.bytesA.size > kMaxGcmIvBytes || !gcmTagBitsAllowed(m.numberA))
        return CKR_MECHANISM_PARAM_INVALID;
      GcmCipher& gcm = encrypt ? s.gcmEncrypt : s.gcmDecrypt;
      rv = toRv(gcm.init(encrypt, key.view(CKA_VALUE), key.keyId, m.bytesA, m.bytesB, m.numberA / 8),
                CKR_MECHANISM_PARAM_INVALID, CKR_FUNCTION_FAILED);
      next.impl = CipherImpl::Gcm;
      break;
    }
    case CKM_CLOUDHSM_AES_GCM: {
      // The token picks a fresh 12-byte IV per encryption and puts it before the ciphertext;
      // any IV in the parameter is ignored, as CloudHSM does.
      if (key.keyType() != CKK_AES) return CKR_KEY_TYPE_INCONSISTENT;
      CK_ULONG tagBits = m.hasParameter ? m.numberA : 128;
      if (!gcmTagBitsAllowed(tagBits)) return CKR_MECHANISM_PARAM_INVALID;
      next.vendorTagBytes = tagBits / 8;
      next.impl = CipherImpl::VendorGcm;
      if (!encrypt) {
        next.vendorAad = toBytes(m.bytesB.data, m.bytesB.size);
        break;
      }
      next.vendorIv.assign(kVendorGcmIvBytes, 0);
      if (!tokenOf(s).drbg->generate(next.vendorIv.data(), kVendorGcmIvBytes)) return CKR_FUNCTION_FAILED;
      rv = toRv(s.gcmEncrypt.init(true, key.view(CKA_VALUE), key.keyId, next.vendorIv, m.bytesB, next.vendorTagBytes),
                CKR_MECHANISM_PARAM_INVALID, CKR_FUNCTION_FAILED);
      break;
    }
    case CKM_AES_CBC: case CKM_AES_CBC_PAD: case CKM_AES_ECB: {
      if (key.keyType() != CKK_AES) return CKR_KEY_TYPE_INCONSISTENT;
      bool cbc = m.type != CKM_AES_ECB;
      if (cbc && m.bytesA.size != 16) return CKR_MECHANISM_PARAM_INVALID;
      AesBlockCipher& block = encrypt ? s.blockEncrypt : s.blockDecrypt;
      rv = toRv(block.init(cbc ? AesBlockCipher::Mode::Cbc : AesBlockCipher::Mode::Ecb, encrypt,
                           m.type == CKM_AES_CBC_PAD, key.view(CKA_VALUE), m.bytesA),
                CKR_MECHANISM_PARAM_INVALID, CKR_FUNCTION_FAILED);
      next.impl = CipherImpl::Block;
      break;
    }
    case CKM_RSA_PKCS: case CKM_RSA_PKCS_OAEP: {
      if (key.keyType() != CKK_RSA || key.objectClass() != (encrypt ? CKO_PUBLIC_KEY : CKO_PRIVATE_KEY))
        return CKR_KEY_TYPE_INCONSISTENT;
      if (!rsaEncryptionParams(m, next.rsa)) return CKR_MECHANISM_PARAM_INVALID;
      next.rsaLabel = toBytes(m.bytesA.data, m.bytesA.size);
      next.rsa.label = next.rsaLabel;
      next.impl = CipherImpl::Rsa;
      break;
    }
    default:
      return CKR_MECHANISM_INVALID;
  }
  return rv;
}

CK_RV Module::encryptInit(CK_ULONG session, const Mechanism& m, CK_ULONG key) {
  Session* s = nullptr;
  CK_RV rv = findSession(session, s);
  return rv != CKR_OK ? rv : cipherInit(*s, s->encrypt, true, m, key);
}

CK_RV Module::decryptInit(CK_ULONG session, const Mechanism& m, CK_ULONG key) {
  Session* s = nullptr;
  CK_RV rv = findSession(session, s);
  return rv != CKR_OK ? rv : cipherInit(*s, s->decrypt, false, m, key);
}

// Looks up the session and its active operation of the requested direction.
#define ACTIVE_CIPHER(direction)                      \
  Session* s = nullptr;                               \
  CK_RV rv = findSession(session, s);                 \
  if (rv != CKR_OK) return rv;                        \
  CipherOperation& op = s->direction;                 \
  if (!op.active) return CKR_OPERATION_NOT_INITIALIZED

CK_RV Module::encrypt(CK_ULONG session, ByteView in, uint8_t* out, size_t& outLength) {
  ACTIVE_CIPHER(encrypt);
  if (op.multiPart) {
    op.reset();
    return CKR_OPERATION_ACTIVE;
  }
  bool pad = op.mechanism == CKM_AES_CBC_PAD;
  size_t required = 0;
  switch (op.impl) {
    case CipherImpl::Gcm: required = in.size + s->gcmEncrypt.tagBytes(); break;
    case CipherImpl::VendorGcm: required = kVendorGcmIvBytes + in.size + op.vendorTagBytes; break;
    case CipherImpl::Block:
      if (!pad && in.size % 16 != 0) {
        op.reset();
        return CKR_DATA_LEN_RANGE;
      }
      required = pad ? (in.size / 16 + 1) * 16 : in.size;
      break;
    case CipherImpl::Rsa: required = rsaModulusBytes(op.key->pkey); break;
    default: return CKR_GENERAL_ERROR;
  }
  if (!needOutput(out, outLength, required, rv)) return rv;
  CryptoStatus st = CryptoStatus::Internal;
  if (op.impl == CipherImpl::Gcm || op.impl == CipherImpl::VendorGcm) {
    size_t ivBytes = op.impl == CipherImpl::VendorGcm ? kVendorGcmIvBytes : 0;
    if (ivBytes) memcpy(out, op.vendorIv.data(), ivBytes);
    st = s->gcmEncrypt.update(in, out + ivBytes);
    if (st == CryptoStatus::Ok) st = s->gcmEncrypt.finishEncrypt(out + ivBytes + in.size);
    outLength = required;
  } else if (op.impl == CipherImpl::Block) {
    size_t a = 0, b = 0;
    st = s->blockEncrypt.update(in, out, &a);
    if (st == CryptoStatus::Ok) st = s->blockEncrypt.finish(out + a, &b);
    outLength = a + b;
  } else {
    st = rsaEncrypt(op.key->pkey, op.rsa, in, out, &outLength);
  }
  op.reset();
  return toRv(st, CKR_DATA_LEN_RANGE, CKR_FUNCTION_FAILED);
}

CK_RV Module::encryptUpdate(CK_ULONG session, ByteView in, uint8_t* out, size_t& outLength) {
  ACTIVE_CIPHER(encrypt);
  size_t required = 0;
  if (op.impl == CipherImpl::Gcm) required = in.size;
  else if (op.impl == CipherImpl::Block) required = s->blockEncrypt.updateOutputLength(in.size);
  else {
    op.reset();
    return CKR_FUNCTION_NOT_SUPPORTED;  // RSA and CKM_CLOUDHSM_AES_GCM are single-part only
  }
  if (!needOutput(out, outLength, required, rv)) return rv;
  op.multiPart = true;
  CryptoStatus st;
  if (op.impl == CipherImpl::Gcm) {
    st = s->gcmEncrypt.update(in, out);
    outLength = in.size;
  } else {
    st = s->blockEncrypt.update(in, out, &outLength);
  }
  if (st != CryptoStatus::Ok) op.reset();
  return toRv(st, CKR_DATA_LEN_RANGE, CKR_FUNCTION_FAILED);
}

CK_RV Module::encryptFinal(CK_ULONG session, uint8_t* out, size_t& outLength) {
  ACTIVE_CIPHER(encrypt);
  size_t required = 0;
  if (op.impl == CipherImpl::Gcm) required = s->gcmEncrypt.tagBytes();
  else if (op.impl == CipherImpl::Block) {
    if (op.mechanism != CKM_AES_CBC_PAD && s->blockEncrypt.buffered() != 0) {
      op.reset();
      return CKR_DATA_LEN_RANGE;
    }
    required = op.mechanism == CKM_AES_CBC_PAD ? 16 : 0;
  } else {
    op.reset();
    return CKR_FUNCTION_NOT_SUPPORTED;
  }
  if (!needOutput(out, outLength, required, rv)) return rv;
  CryptoStatus st;
  if (op.impl == CipherImpl::Gcm) {
    st = s->gcmEncrypt.finishEncrypt(out);
    outLength = required;
  } else {
    st = s->blockEncrypt.finish(out, &outLength);
  }
  op.reset();
  return toRv(st, CKR_DATA_LEN_RANGE, CKR_FUNCTION_FAILED);
}

CK_RV Module::decrypt(CK_ULONG session, ByteView in, uint8_t* out, size_t& outLength) {
  ACTIVE_CIPHER(decrypt);
  if (op.multiPart) {
    op.reset();
    return CKR_OPERATION_ACTIVE;
  }
  size_t required = 0;
  switch (op.impl) {
    case CipherImpl::Gcm: {
      size_t tag = s->gcmDecrypt.tagBytes();
      if (in.size < tag) {
        op.reset();
        return CKR_ENCRYPTED_DATA_LEN_RANGE;
      }
      required = in.size - tag;
      break;
    }
    case CipherImpl::VendorGcm:
      if (in.size < kVendorGcmIvBytes + op.vendorTagBytes) {
        op.reset();
        return CKR_ENCRYPTED_DATA_LEN_RANGE;
      }
      required = in.size - kVendorGcmIvBytes - op.vendorTagBytes;
      break;
    case CipherImpl::Block:
      if (in.size % 16 != 0 || (op.mechanism == CKM_AES_CBC_PAD && in.size == 0)) {
        op.reset();
        return CKR_ENCRYPTED_DATA_LEN_RANGE;
      }
      required = in.size;  // an upper bound when padded
      break;
    case CipherImpl::Rsa: required = rsaModulusBytes(op.key->pkey); break;
    default: return CKR_GENERAL_ERROR;
  }
  if (!needOutput(out, outLength, required, rv)) return rv;
  CryptoStatus st;
  if (op.impl == CipherImpl::VendorGcm) {
    ByteView iv(in.data, kVendorGcmIvBytes);
    st = s->gcmDecrypt.init(false, op.key->view(CKA_VALUE), op.key->keyId, iv, op.vendorAad, op.vendorTagBytes);
    if (st == CryptoStatus::Ok) st = s->gcmDecrypt.update(ByteView(in.data + kVendorGcmIvBytes, required), out);
    if (st == CryptoStatus::Ok) st = s->gcmDecrypt.finishDecrypt(in.data + kVendorGcmIvBytes + required);
    if (st != CryptoStatus::Ok) secureWipe(out, required);
    outLength = st == CryptoStatus::Ok ? required : 0;
  } else if (op.impl == CipherImpl::Gcm) {
    ByteView body(in.data, required);
    st = s->gcmDecrypt.update(body, out);
    if (st == CryptoStatus::Ok) st = s->gcmDecrypt.finishDecrypt(in.data + required);
    if (st != CryptoStatus::Ok) secureWipe(out, required);  // no unauthenticated plaintext escapes
    outLength = st == CryptoStatus::Ok ? required : 0;
  } else if (op.impl == CipherImpl::Block) {
    size_t a = 0, b = 0;
    st = s->blockDecrypt.update(in, out, &a);
    if (st == CryptoStatus::Ok) st = s->blockDecrypt.finish(out + a, &b);
    if (st != CryptoStatus::Ok) secureWipe(out, required);
    outLength = a + b;
  } else {
    Bytes plain;
    st = rsaDecrypt(op.key->pkey, op.rsa, in, plain);
    if (st == CryptoStatus::Ok) memcpy(out, plain.data(), plain.size());
    outLength = plain.size();
  }
  op.reset();
  return toRv(st, CKR_ENCRYPTED_DATA_LEN_RANGE, CKR_ENCRYPTED_DATA_INVALID);
}

CK_RV Module::decryptUpdate(CK_ULONG session, ByteView in, uint8_t* out, size_t& outLength) {
  ACTIVE_CIPHER(decrypt);
  if (op.impl == CipherImpl::Gcm) {
    // PKCS#11 v2.40: GCM decryption releases plaintext only after the tag verifies.
    if (op.pending.size() + in.size > (1u << 30)) {
      op.reset();
      return CKR_ENCRYPTED_DATA_LEN_RANGE;
    }
    op.multiPart = true;
    op.pending.insert(op.pending.end(), in.data, in.data + in.size);
    outLength = 0;
    return CKR_OK;
  }
  if (op.impl != CipherImpl::Block) {
    op.reset();
    return CKR_FUNCTION_NOT_SUPPORTED;
  }
  size_t required = s->blockDecrypt.updateOutputLength(in.size);
  if (!needOutput(out, outLength, required, rv)) return rv;
  op.multiPart = true;
  CryptoStatus st = s->blockDecrypt.update(in, out, &outLength);
  if (st != CryptoStatus::Ok) op.reset();
  return toRv(st, CKR_ENCRYPTED_DATA_LEN_RANGE, CKR_ENCRYPTED_DATA_INVALID);
}

CK_RV Module::decryptFinal(CK_ULONG session, uint8_t* out, size_t& outLength) {
  ACTIVE_CIPHER(decrypt);
  if (op.impl == CipherImpl::Gcm) {
    size_t tag = s->gcmDecrypt.tagBytes();
    if (op.pending.size() < tag) {
      op.reset();
      return CKR_ENCRYPTED_DATA_LEN_RANGE;
    }
    size_t required = op.pending.size() - tag;
    if (!needOutput(out, outLength, required, rv)) return rv;
    CryptoStatus st = s->gcmDecrypt.update(ByteView(op.pending.data(), required), out);
    if (st == CryptoStatus::Ok) st = s->gcmDecrypt.finishDecrypt(op.pending.data() + required);
    if (st != CryptoStatus::Ok) secureWipe(out, required);
    outLength = st == CryptoStatus::Ok ? required : 0;
    op.reset();
    return toRv(st, CKR_ENCRYPTED_DATA_LEN_RANGE, CKR_ENCRYPTED_DATA_INVALID);
  }
  if (op.impl != CipherImpl::Block) {
    op.reset();
    return CKR_FUNCTION_NOT_SUPPORTED;
  }
  bool pad = op.mechanism == CKM_AES_CBC_PAD;
  size_t held = s->blockDecrypt.buffered();
  if ((pad && held != 16) || (!pad && held != 0)) {
    op.reset();
    return CKR_ENCRYPTED_DATA_LEN_RANGE;
  }
  if (!needOutput(out, outLength, pad ? 15 : 0, rv)) return rv;
  CryptoStatus st = s->blockDecrypt.finish(out, &outLength);
  op.reset();
  return toRv(st, CKR_ENCRYPTED_DATA_LEN_RANGE, CKR_ENCRYPTED_DATA_INVALID);
}

}  // namespace hsm
