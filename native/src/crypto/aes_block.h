// AES-CBC and AES-ECB, with or without PKCS#7 padding, single- and multi-part.
#pragma once
#include <cstdint>

#include "bytes.h"
#include "status.h"

namespace hsm {

class AesBlockCipher {
 public:
  enum class Mode { Cbc, Ecb };
  AesBlockCipher();
  ~AesBlockCipher();
  AesBlockCipher(const AesBlockCipher&) = delete;
  AesBlockCipher& operator=(const AesBlockCipher&) = delete;

  CryptoStatus init(Mode mode, bool encrypt, bool pad, ByteView key, ByteView iv);
  // Exact bytes update(in) will write, so the token can answer length queries first.
  size_t updateOutputLength(size_t inLength) const;
  size_t finalOutputLength() const;  // upper bound for decrypt with padding
  CryptoStatus update(ByteView in, uint8_t* out, size_t* written);
  CryptoStatus finish(uint8_t* out, size_t* written);
  size_t buffered() const { return buffered_; }

 private:
  void* ctx_;
  bool encrypt_ = true;
  bool pad_ = false;
  size_t buffered_ = 0;  // bytes held inside OpenSSL, not yet output
};

}  // namespace hsm
