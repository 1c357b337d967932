#include "aes_gcm.h"

#define OPENSSL_SUPPRESS_DEPRECATED  // AES_KEY + CRYPTO_gcm128 serve IVs over 128 bytes only
#include <openssl/aes.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/modes.h>

#include "algorithms.h"

namespace hsm {

namespace {
// OpenSSL 3.0's GCM provider keeps at most 128 IV bytes (GCM_IV_MAX_SIZE).
constexpr size_t kProviderMaxIv = 128;
inline EVP_CIPHER_CTX* cctx(void* p) { return static_cast<EVP_CIPHER_CTX*>(p); }
}  // namespace

struct GcmCipher::LongIv {
  AES_KEY key;
  GCM128_CONTEXT* gcm = nullptr;
  ~LongIv() {
    if (gcm) CRYPTO_gcm128_release(gcm);
    secureWipe(&key, sizeof key);
  }
};

GcmCipher::GcmCipher() : ctx_(EVP_CIPHER_CTX_new()) {}

GcmCipher::~GcmCipher() { EVP_CIPHER_CTX_free(cctx(ctx_)); }

CryptoStatus GcmCipher::init(bool encrypt, ByteView key, uint64_t keyId, ByteView iv, ByteView aad, size_t tagBytes) {
  if (ctx_ == nullptr) return CryptoStatus::Internal;
  const EVP_CIPHER* cipher = fetchedAes(AesMode::Gcm, key.size);
  if (cipher == nullptr) return CryptoStatus::BadKey;
  if (iv.size == 0 || tagBytes < 4 || tagBytes > 16) return CryptoStatus::BadParam;
  tagBytes_ = tagBytes;
  encrypt_ = encrypt;
  useLongIv_ = iv.size > kProviderMaxIv;
  if (useLongIv_) {
    keyedWith_ = 0;  // the EVP context is not keyed on this path
    ivBytes_ = 0;
    longIv_.reset(new LongIv);
    if (AES_set_encrypt_key(key.data, static_cast<int>(key.size * 8), &longIv_->key) != 0) return CryptoStatus::BadKey;
    longIv_->gcm = CRYPTO_gcm128_new(&longIv_->key, reinterpret_cast<block128_f>(AES_encrypt));
    if (longIv_->gcm == nullptr) return CryptoStatus::Internal;
    CRYPTO_gcm128_setiv(longIv_->gcm, iv.data, iv.size);
    if (aad.size > 0 && CRYPTO_gcm128_aad(longIv_->gcm, aad.data, aad.size) != 0) return CryptoStatus::BadInput;
    return CryptoStatus::Ok;
  }
  EVP_CIPHER_CTX* c = cctx(ctx_);
  if (keyedWith_ != keyId || keyId == 0) {
    keyedWith_ = 0;
    ivBytes_ = 0;
    if (!EVP_CipherInit_ex2(c, cipher, key.data, nullptr, encrypt ? 1 : 0, nullptr)) return CryptoStatus::Internal;
    keyedWith_ = keyId;
  }
  if (ivBytes_ != iv.size) {  // setting parameters costs OpenSSL a name lookup: only when it changes
    size_t ivLength = iv.size;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_CIPHER_PARAM_AEAD_IVLEN, &ivLength), OSSL_PARAM_construct_end()};
    if (!EVP_CIPHER_CTX_set_params(c, params)) return CryptoStatus::BadParam;
    ivBytes_ = iv.size;
  }
  if (!EVP_CipherInit_ex2(c, nullptr, nullptr, iv.data, encrypt ? 1 : 0, nullptr)) {
    keyedWith_ = 0;
    ivBytes_ = 0;
    return CryptoStatus::Internal;
  }
  if (aad.size > 0) {
    int outLength = 0;
    if (!EVP_CipherUpdate(c, nullptr, &outLength, aad.data, static_cast<int>(aad.size))) return CryptoStatus::BadInput;
  }
  return CryptoStatus::Ok;
}

CryptoStatus GcmCipher::update(ByteView in, uint8_t* out) {
  if (in.size == 0) return CryptoStatus::Ok;
  if (useLongIv_) {
    int rc = encrypt_ ? CRYPTO_gcm128_encrypt(longIv_->gcm, in.data, out, in.size)
                      : CRYPTO_gcm128_decrypt(longIv_->gcm, in.data, out, in.size);
    return rc == 0 ? CryptoStatus::Ok : CryptoStatus::BadInput;
  }
  // EVP takes int lengths: feed large inputs in pieces.
  size_t done = 0;
  while (done < in.size) {
    size_t chunk = in.size - done > (1u << 30) ? (1u << 30) : in.size - done;
    int outLength = 0;
    if (!EVP_CipherUpdate(cctx(ctx_), out + done, &outLength, in.data + done, static_cast<int>(chunk)))
      return CryptoStatus::BadInput;
    done += chunk;
  }
  return CryptoStatus::Ok;
}

CryptoStatus GcmCipher::finishEncrypt(uint8_t* tagOut) {
  if (useLongIv_) {
    CRYPTO_gcm128_tag(longIv_->gcm, tagOut, tagBytes_);
    longIv_.reset();
    return CryptoStatus::Ok;
  }
  int outLength = 0;
  uint8_t unused[16];
  if (!EVP_CipherFinal_ex(cctx(ctx_), unused, &outLength)) return CryptoStatus::Internal;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tagOut, tagBytes_),
                         OSSL_PARAM_construct_end()};
  return EVP_CIPHER_CTX_get_params(cctx(ctx_), params) ? CryptoStatus::Ok : CryptoStatus::Internal;
}

CryptoStatus GcmCipher::finishDecrypt(const uint8_t* tag) {
  if (useLongIv_) {
    int rc = CRYPTO_gcm128_finish(longIv_->gcm, tag, tagBytes_);
    longIv_.reset();
    return rc == 0 ? CryptoStatus::Ok : CryptoStatus::AuthFailed;
  }
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, const_cast<uint8_t*>(tag), tagBytes_),
      OSSL_PARAM_construct_end()};
  if (!EVP_CIPHER_CTX_set_params(cctx(ctx_), params)) return CryptoStatus::BadParam;
  int outLength = 0;
  uint8_t unused[16];
  return EVP_CipherFinal_ex(cctx(ctx_), unused, &outLength) ? CryptoStatus::Ok : CryptoStatus::AuthFailed;
}

}  // namespace hsm
