// SHA-2 digests and HMAC, single- and multi-part, with contexts reused across operations.
#pragma once
#include <cstdint>

#include "algorithms.h"
#include "bytes.h"
#include "status.h"

namespace hsm {

class Digest {
 public:
  Digest();
  ~Digest();
  Digest(const Digest&) = delete;
  Digest& operator=(const Digest&) = delete;
  CryptoStatus init(HashAlg alg);
  CryptoStatus update(ByteView in);
  CryptoStatus finish(uint8_t* out);  // writes length() bytes
  size_t length() const { return digestLength(alg_); }

 private:
  void* ctx_;
  HashAlg alg_ = HashAlg::Sha256;
};

class Hmac {
 public:
  Hmac();
  ~Hmac();
  Hmac(const Hmac&) = delete;
  Hmac& operator=(const Hmac&) = delete;
  // keyId as in GcmCipher: the same id means the same key bytes, so the pads are reused.
  CryptoStatus init(HashAlg alg, ByteView key, uint64_t keyId);
  CryptoStatus update(ByteView in);
  CryptoStatus finish(uint8_t* out);  // writes length() bytes
  size_t length() const { return digestLength(alg_); }

 private:
  void* ctx_;
  HashAlg alg_ = HashAlg::Sha256;
  uint64_t keyedWith_ = 0;
};

}  // namespace hsm

namespace hsm {
// PBKDF2-HMAC-SHA-256, for PIN records (deliberately slow: DESIGN invariant 6).
bool pbkdf2Sha256(ByteView secret, ByteView salt, unsigned iterations, uint8_t* out, size_t outLength);
// HKDF-SHA-256 (RFC 5869), for keys agreed between chips.
bool hkdfSha256(ByteView secret, ByteView salt, ByteView info, uint8_t* out, size_t outLength);
}  // namespace hsm
