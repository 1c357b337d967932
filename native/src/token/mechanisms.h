// The mechanisms the token offers and the mapping of crypto results to CKR codes.
#pragma once
#include "../crypto/algorithms.h"
#include "../crypto/status.h"
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

}  // namespace hsm
