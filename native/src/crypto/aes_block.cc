#include "aes_block.h"

#include <openssl/evp.h>

#include "algorithms.h"

namespace hsm {

namespace {
constexpr size_t kBlock = 16;
inline EVP_CIPHER_CTX* cctx(void* p) { return static_cast<EVP_CIPHER_CTX*>(p); }
}  // namespace

AesBlockCipher::AesBlockCipher() : ctx_(EVP_CIPHER_CTX_new()) {}
AesBlockCipher::~AesBlockCipher() { EVP_CIPHER_CTX_free(cctx(ctx_)); }

CryptoStatus AesBlockCipher::init(Mode mode, bool encrypt, bool pad, ByteView key, ByteView iv) {
  if (ctx_ == nullptr) return CryptoStatus::Internal;
  const EVP_CIPHER* cipher = fetchedAes(mode == Mode::Cbc ? AesMode::Cbc : AesMode::Ecb, key.size);
  if (cipher == nullptr) return CryptoStatus::BadKey;
  if (mode == Mode::Cbc && iv.size != kBlock) return CryptoStatus::BadParam;
  encrypt_ = encrypt;
  pad_ = pad;
  buffered_ = 0;
  if (!EVP_CipherInit_ex2(cctx(ctx_), cipher, key.data, mode == Mode::Cbc ? iv.data : nullptr, encrypt ? 1 : 0, nullptr))
    return CryptoStatus::Internal;
  EVP_CIPHER_CTX_set_padding(cctx(ctx_), pad ? 1 : 0);
  return CryptoStatus::Ok;
}

size_t AesBlockCipher::updateOutputLength(size_t inLength) const {
  size_t total = buffered_ + inLength;
  size_t whole = total / kBlock * kBlock;
  // Decrypting with padding, OpenSSL holds back the last whole block until final.
  if (!encrypt_ && pad_ && whole > 0 && total % kBlock == 0) whole -= kBlock;
  return whole;
}

size_t AesBlockCipher::finalOutputLength() const {
  if (!pad_) return 0;
  return encrypt_ ? kBlock : kBlock - 1;
}

CryptoStatus AesBlockCipher::update(ByteView in, uint8_t* out, size_t* written) {
  size_t expected = updateOutputLength(in.size);
  size_t done = 0;
  *written = 0;
  while (done < in.size) {
    size_t chunk = in.size - done > (1u << 30) ? (1u << 30) : in.size - done;
    int outLength = 0;
    if (!EVP_CipherUpdate(cctx(ctx_), out + *written, &outLength, in.data + done, static_cast<int>(chunk)))
      return CryptoStatus::BadInput;
    *written += static_cast<size_t>(outLength);
    done += chunk;
  }
  buffered_ = buffered_ + in.size - expected;
  return *written == expected ? CryptoStatus::Ok : CryptoStatus::Internal;
}

CryptoStatus AesBlockCipher::finish(uint8_t* out, size_t* written) {
  *written = 0;
  if (!pad_ && buffered_ != 0) return CryptoStatus::BadInput;
  if (!encrypt_ && pad_ && buffered_ != kBlock) return CryptoStatus::BadInput;
  uint8_t block[kBlock];
  int outLength = 0;
  if (!EVP_CipherFinal_ex(cctx(ctx_), block, &outLength)) {
    secureWipe(block, sizeof block);
    return encrypt_ ? CryptoStatus::Internal : CryptoStatus::AuthFailed;  // bad padding
  }
  for (int i = 0; i < outLength; ++i) out[i] = block[i];
  secureWipe(block, sizeof block);
  *written = static_cast<size_t>(outLength);
  buffered_ = 0;
  return CryptoStatus::Ok;
}

}  // namespace hsm
