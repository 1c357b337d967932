#include "hash_mac.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

namespace hsm {

Digest::Digest() : ctx_(EVP_MD_CTX_new()) {}
Digest::~Digest() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

CryptoStatus Digest::init(HashAlg alg) {
  alg_ = alg;
  const EVP_MD* md = fetchedDigest(alg);
  if (ctx_ == nullptr || md == nullptr) return CryptoStatus::Internal;
  return EVP_DigestInit_ex2(static_cast<EVP_MD_CTX*>(ctx_), md, nullptr) ? CryptoStatus::Ok : CryptoStatus::Internal;
}

CryptoStatus Digest::update(ByteView in) {
  if (in.size == 0) return CryptoStatus::Ok;
  return EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), in.data, in.size) ? CryptoStatus::Ok : CryptoStatus::Internal;
}

CryptoStatus Digest::finish(uint8_t* out) {
  unsigned int n = 0;
  return EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), out, &n) ? CryptoStatus::Ok : CryptoStatus::Internal;
}

Hmac::Hmac() : ctx_(EVP_MAC_CTX_new(fetchedHmac())) {}
Hmac::~Hmac() { EVP_MAC_CTX_free(static_cast<EVP_MAC_CTX*>(ctx_)); }

CryptoStatus Hmac::init(HashAlg alg, ByteView key, uint64_t keyId) {
  if (ctx_ == nullptr) return CryptoStatus::Internal;
  EVP_MAC_CTX* c = static_cast<EVP_MAC_CTX*>(ctx_);
  if (keyId != 0 && keyId == keyedWith_ && alg == alg_) {
    // Same key and hash: OpenSSL restarts from the stored inner and outer pads.
    return EVP_MAC_init(c, nullptr, 0, nullptr) ? CryptoStatus::Ok : CryptoStatus::Internal;
  }
  keyedWith_ = 0;
  alg_ = alg;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(digestName(alg)), 0),
      OSSL_PARAM_construct_end()};
  // OpenSSL refuses an empty key; HMAC defines it as all-zero padding, the same as one zero byte.
  static const uint8_t zero = 0;
  const uint8_t* keyData = key.size ? key.data : &zero;
  size_t keyLength = key.size ? key.size : 1;
  if (!EVP_MAC_init(c, keyData, keyLength, params)) return CryptoStatus::BadKey;
  keyedWith_ = keyId;
  return CryptoStatus::Ok;
}

CryptoStatus Hmac::update(ByteView in) {
  if (in.size == 0) return CryptoStatus::Ok;
  return EVP_MAC_update(static_cast<EVP_MAC_CTX*>(ctx_), in.data, in.size) ? CryptoStatus::Ok : CryptoStatus::Internal;
}

CryptoStatus Hmac::finish(uint8_t* out) {
  size_t n = 0;
  return EVP_MAC_final(static_cast<EVP_MAC_CTX*>(ctx_), out, &n, length()) ? CryptoStatus::Ok : CryptoStatus::Internal;
}

}  // namespace hsm

namespace hsm {
bool pbkdf2Sha256(ByteView secret, ByteView salt, unsigned iterations, uint8_t* out, size_t outLength) {
  static const char empty = 0;
  const char* pass = secret.size ? reinterpret_cast<const char*>(secret.data) : &empty;
  return PKCS5_PBKDF2_HMAC(pass, static_cast<int>(secret.size), salt.data, static_cast<int>(salt.size),
                           static_cast<int>(iterations), fetchedDigest(HashAlg::Sha256), static_cast<int>(outLength),
                           out) == 1;
}
}  // namespace hsm

namespace hsm {
bool hkdfSha256(ByteView secret, ByteView salt, ByteView info, uint8_t* out, size_t outLength) {
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  EVP_KDF_CTX* ctx = kdf ? EVP_KDF_CTX_new(kdf) : nullptr;
  EVP_KDF_free(kdf);
  if (ctx == nullptr) return false;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(secret.data), secret.size),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt.data), salt.size),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<uint8_t*>(info.data), info.size),
      OSSL_PARAM_construct_end()};
  bool ok = EVP_KDF_derive(ctx, out, outLength, params) == 1;
  EVP_KDF_CTX_free(ctx);
  return ok;
}
}  // namespace hsm
