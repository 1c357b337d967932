#include "mechanisms.h"

#include "module.h"

namespace hsm {

CK_RV toRv(CryptoStatus status, CK_RV badInput, CK_RV authFailed) {
  switch (status) {
    case CryptoStatus::Ok: return CKR_OK;
    case CryptoStatus::BadKey: return CKR_KEY_SIZE_RANGE;
    case CryptoStatus::BadInput: return badInput;
    case CryptoStatus::BadParam: return CKR_MECHANISM_PARAM_INVALID;
    case CryptoStatus::AuthFailed: return authFailed;
    case CryptoStatus::BufferTooSmall: return CKR_BUFFER_TOO_SMALL;
    case CryptoStatus::Internal: return CKR_FUNCTION_FAILED;
  }
  return CKR_GENERAL_ERROR;
}

bool hashFromMechanism(CK_ULONG mechanism, HashAlg* out) {
  switch (mechanism) {
    case CKM_SHA_1: *out = HashAlg::Sha1; return true;
    case CKM_SHA224: *out = HashAlg::Sha224; return true;
    case CKM_SHA256: *out = HashAlg::Sha256; return true;
    case CKM_SHA384: *out = HashAlg::Sha384; return true;
    case CKM_SHA512: *out = HashAlg::Sha512; return true;
    default: return false;
  }
}

bool hashFromMgf(CK_ULONG mgf, HashAlg* out) {
  switch (mgf) {
    case CKG_MGF1_SHA1: *out = HashAlg::Sha1; return true;
    case CKG_MGF1_SHA224: *out = HashAlg::Sha224; return true;
    case CKG_MGF1_SHA256: *out = HashAlg::Sha256; return true;
    case CKG_MGF1_SHA384: *out = HashAlg::Sha384; return true;
    case CKG_MGF1_SHA512: *out = HashAlg::Sha512; return true;
    default: return false;
  }
}

bool gcmTagBitsAllowed(CK_ULONG bits) {
  // NIST SP 800-38D: 128, 120, 112, 104, 96, and 64 or 32 for special uses.
  return bits == 32 || bits == 64 || (bits >= 96 && bits <= 128 && bits % 8 == 0);
}

namespace {
struct MechanismEntry {
  CK_ULONG type;
  MechanismInfo info;
};
const MechanismEntry kMechanisms[] = {
    {CKM_AES_KEY_GEN, {16, 32, CKF_HW | CKF_GENERATE}},
    {CKM_AES_ECB, {16, 32, CKF_HW | CKF_ENCRYPT | CKF_DECRYPT}},
    {CKM_AES_CBC, {16, 32, CKF_HW | CKF_ENCRYPT | CKF_DECRYPT}},
    {CKM_AES_CBC_PAD, {16, 32, CKF_HW | CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP}},
    {CKM_AES_GCM, {16, 32, CKF_HW | CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP}},
    {CKM_CLOUDHSM_AES_GCM, {16, 32, CKF_HW | CKF_ENCRYPT | CKF_DECRYPT}},
    {CKM_AES_KEY_WRAP, {16, 32, CKF_HW | CKF_WRAP | CKF_UNWRAP}},
    {CKM_AES_KEY_WRAP_PAD, {16, 32, CKF_HW | CKF_WRAP | CKF_UNWRAP}},
    {CKM_AES_KEY_WRAP_KWP, {16, 32, CKF_HW | CKF_WRAP | CKF_UNWRAP}},
    {CKM_GENERIC_SECRET_KEY_GEN, {1, 512, CKF_HW | CKF_GENERATE}},
    {CKM_SHA_1, {0, 0, CKF_HW | CKF_DIGEST}},
    {CKM_SHA224, {0, 0, CKF_HW | CKF_DIGEST}},
    {CKM_SHA256, {0, 0, CKF_HW | CKF_DIGEST}},
    {CKM_SHA384, {0, 0, CKF_HW | CKF_DIGEST}},
    {CKM_SHA512, {0, 0, CKF_HW | CKF_DIGEST}},
    {CKM_SHA256_HMAC, {1, 512, CKF_HW | CKF_SIGN | CKF_VERIFY}},
    {CKM_SHA256_HMAC_GENERAL, {1, 512, CKF_HW | CKF_SIGN | CKF_VERIFY}},
    {CKM_SHA384_HMAC, {1, 512, CKF_HW | CKF_SIGN | CKF_VERIFY}},
    {CKM_SHA384_HMAC_GENERAL, {1, 512, CKF_HW | CKF_SIGN | CKF_VERIFY}},
    {CKM_SHA512_HMAC, {1, 512, CKF_HW | CKF_SIGN | CKF_VERIFY}},
    {CKM_SHA512_HMAC_GENERAL, {1, 512, CKF_HW | CKF_SIGN | CKF_VERIFY}},
    {CKM_EC_KEY_PAIR_GEN, {256, 384, CKF_HW | CKF_GENERATE_KEY_PAIR | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS}},
    {CKM_ECDSA, {256, 384, CKF_HW | CKF_SIGN | CKF_VERIFY | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS}},
    {CKM_ECDSA_SHA256, {256, 384, CKF_HW | CKF_SIGN | CKF_VERIFY | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS}},
    {CKM_ECDSA_SHA384, {256, 384, CKF_HW | CKF_SIGN | CKF_VERIFY | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS}},
    {CKM_ECDSA_SHA512, {256, 384, CKF_HW | CKF_SIGN | CKF_VERIFY | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS}},
    {CKM_ECDH1_DERIVE, {256, 384, CKF_HW | CKF_DERIVE | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS}},
    {CKM_RSA_PKCS_KEY_PAIR_GEN, {1024, 8192, CKF_HW | CKF_GENERATE_KEY_PAIR}},
    {CKM_RSA_PKCS, {1024, 8192, CKF_HW | CKF_ENCRYPT | CKF_DECRYPT | CKF_SIGN | CKF_VERIFY}},
    {CKM_RSA_PKCS_OAEP, {1024, 8192, CKF_HW | CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP}},
    {CKM_RSA_PKCS_PSS, {1024, 8192, CKF_HW | CKF_SIGN | CKF_VERIFY}},
    {CKM_SHA256_RSA_PKCS, {1024, 8192, CKF_HW | CKF_SIGN | CKF_VERIFY}},
    {CKM_SHA384_RSA_PKCS, {1024, 8192, CKF_HW | CKF_SIGN | CKF_VERIFY}},
    {CKM_SHA512_RSA_PKCS, {1024, 8192, CKF_HW | CKF_SIGN | CKF_VERIFY}},
    {CKM_SHA256_RSA_PKCS_PSS, {1024, 8192, CKF_HW | CKF_SIGN | CKF_VERIFY}},
    {CKM_SHA384_RSA_PKCS_PSS, {1024, 8192, CKF_HW | CKF_SIGN | CKF_VERIFY}},
    {CKM_SHA512_RSA_PKCS_PSS, {1024, 8192, CKF_HW | CKF_SIGN | CKF_VERIFY}},
};
}  // namespace

CK_RV Module::mechanismList(CK_ULONG slotId, std::vector<CK_ULONG>& out) const {
  if (token(slotId) == nullptr) return CKR_SLOT_ID_INVALID;
  out.clear();
  for (const MechanismEntry& e : kMechanisms) out.push_back(e.type);
  return CKR_OK;
}

CK_RV Module::mechanismInfo(CK_ULONG slotId, CK_ULONG type, MechanismInfo& out) const {
  if (token(slotId) == nullptr) return CKR_SLOT_ID_INVALID;
  for (const MechanismEntry& e : kMechanisms) {
    if (e.type == type) {
      out = e.info;
      return CKR_OK;
    }
  }
  return CKR_MECHANISM_INVALID;
}

}  // namespace hsm
