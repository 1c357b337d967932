// AES-GCM (NIST SP 800-38D) for 128/192/256-bit keys, IVs of 1 byte or more and tags of
// 4..16 bytes. One object per session operation; it stays keyed between operations so a
// new IV on the same key skips the key schedule.
#pragma once
#include <cstdint>
#include <memory>

#include "bytes.h"
#include "status.h"

namespace hsm {

class GcmCipher {
 public:
  GcmCipher();
  ~GcmCipher();
  GcmCipher(const GcmCipher&) = delete;
  GcmCipher& operator=(const GcmCipher&) = delete;

  // keyId identifies the key's bytes: the same id means the same bytes (reuse the schedule).
  CryptoStatus init(bool encrypt, ByteView key, uint64_t keyId, ByteView iv, ByteView aad, size_t tagBytes);
  // Writes exactly in.size bytes to out.
  CryptoStatus update(ByteView in, uint8_t* out);
  CryptoStatus finishEncrypt(uint8_t* tagOut);
  CryptoStatus finishDecrypt(const uint8_t* tag);
  size_t tagBytes() const { return tagBytes_; }

 private:
  struct LongIv;
  void* ctx_;  // EVP_CIPHER_CTX*
  std::unique_ptr<LongIv> longIv_;  // IVs longer than OpenSSL's provider accepts
  bool useLongIv_ = false;
  bool encrypt_ = true;
  uint64_t keyedWith_ = 0;
  size_t tagBytes_ = 16;
  size_t ivBytes_ = 0;  // IV length the keyed context is set up for
};

}  // namespace hsm
