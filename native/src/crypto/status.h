// Results of crypto primitives. The token layer maps them to CKR codes, so the crypto
// layer stays free of PKCS#11 vocabulary.
#pragma once

namespace hsm {

enum class CryptoStatus {
  Ok,
  BadKey,          // key length or key object unusable
  BadInput,        // input length or format not acceptable
  BadParam,        // IV, tag length, curve or similar parameter not acceptable
  AuthFailed,      // tag, padding, unwrap integrity or signature check failed
  BufferTooSmall,  // output length insufficient
  Internal,        // OpenSSL refused for a reason outside the caller's control
};

}  // namespace hsm
