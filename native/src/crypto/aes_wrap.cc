#include "aes_wrap.h"

#include <openssl/evp.h>

#include "algorithms.h"

namespace hsm {

namespace {
CryptoStatus run(bool padded, bool wrap, ByteView kek, ByteView in, Bytes& out) {
  const EVP_CIPHER* cipher = fetchedAes(padded ? AesMode::WrapPad : AesMode::Wrap, kek.size);
  if (cipher == nullptr) return CryptoStatus::BadKey;
  if (in.size > (1u << 30)) return CryptoStatus::BadInput;
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (ctx == nullptr) return CryptoStatus::Internal;
  EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  out.assign(in.size + 16, 0);
  int written = 0, tail = 0;
  bool ok = EVP_CipherInit_ex2(ctx, cipher, kek.data, nullptr, wrap ? 1 : 0, nullptr) &&
            EVP_CipherUpdate(ctx, out.data(), &written, in.data, static_cast<int>(in.size)) && written >= 0 &&
            EVP_CipherFinal_ex(ctx, out.data() + written, &tail);
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) {
    out.clear();
    return wrap ? CryptoStatus::BadInput : CryptoStatus::AuthFailed;
  }
  out.resize(static_cast<size_t>(written + tail));
  return CryptoStatus::Ok;
}
}  // namespace

size_t aesWrapLength(bool padded, size_t plaintextLength) {
  return padded ? ((plaintextLength + 7) / 8) * 8 + 8 : plaintextLength + 8;
}

CryptoStatus aesWrap(bool padded, ByteView kek, ByteView plaintext, Bytes& wrapped) {
  if (padded ? plaintext.size == 0 : (plaintext.size < 16 || plaintext.size % 8 != 0)) return CryptoStatus::BadInput;
  return run(padded, true, kek, plaintext, wrapped);
}

CryptoStatus aesUnwrap(bool padded, ByteView kek, ByteView wrapped, Bytes& plaintext) {
  if (wrapped.size < (padded ? 16u : 24u) || wrapped.size % 8 != 0) return CryptoStatus::BadInput;
  return run(padded, false, kek, wrapped, plaintext);
}

}  // namespace hsm
