#include "raw_loop.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "algorithms.h"

namespace hsm {

bool rawGcmEncryptLoop(ByteView key, ByteView iv, ByteView in, uint8_t* out, uint8_t* tag, unsigned iterations) {
  const EVP_CIPHER* cipher = fetchedAes(AesMode::Gcm, key.size);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  bool ok = cipher && ctx && iv.size == 12 && in.size < (1u << 30) &&
            EVP_EncryptInit_ex2(ctx, cipher, key.data, nullptr, nullptr);
  for (unsigned i = 0; ok && i < iterations; ++i) {
    int n = 0, m = 0;
    ok = EVP_EncryptInit_ex2(ctx, nullptr, nullptr, iv.data, nullptr) &&
         EVP_EncryptUpdate(ctx, out, &n, in.data, static_cast<int>(in.size)) &&
         EVP_EncryptFinal_ex(ctx, out + n, &m) &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
  }
  EVP_CIPHER_CTX_free(ctx);
  return ok;
}

}  // namespace hsm
