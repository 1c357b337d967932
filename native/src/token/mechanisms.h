// The mechanisms the token offers and the mapping of crypto results to CKR codes.
#pragma once
#include "../crypto/algorithms.h"
#include "../crypto/status.h"
#include <cstddef>
#include <cstdint>

#include "ck.h"

namespace hsm {

// Maps a crypto result; badInput and authFailed name the codes that fit the calling operation.
CK_RV toRv(CryptoStatus status, CK_RV badInput, CK_RV authFailed);
// CKM_SHA256 (etc.) or CKG_MGF1_SHA256 (etc.) to a hash; false when unsupported.
bool hashFromMechanism(CK_ULONG mechanism, HashAlg* out);
bool hashFromMgf(CK_ULONG mgf, HashAlg* out);
// GCM tag lengths accepted, in bits.
bool gcmTagBitsAllowed(CK_ULONG bits);
constexpr size_t kMaxGcmIvBytes = 65535;
constexpr size_t kVendorGcmIvBytes = 12;  // CKM_CLOUDHSM_AES_GCM

// The two-call convention: with no buffer, report the length; with a short one, report
// it and keep the operation. Returns true when the caller should produce output.
inline bool needOutput(uint8_t* out, size_t& outLength, size_t required, CK_RV& rv) {
  if (out == nullptr) {
    outLength = required;
    rv = CKR_OK;
    return false;
  }
  if (outLength < required) {
    outLength = required;
    rv = CKR_BUFFER_TOO_SMALL;
    return false;
  }
  return true;
}

}  // namespace hsm
