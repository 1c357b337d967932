#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "pkey.h"

namespace hsm {

namespace {
struct BnDeleter { void operator()(BIGNUM* b) { BN_clear_free(b); } };
using BnPtr = std::unique_ptr<BIGNUM, BnDeleter>;

BnPtr bn(const Bytes& b) { return BnPtr(b.empty() ? nullptr : BN_bin2bn(b.data(), static_cast<int>(b.size()), nullptr)); }
BnPtr bn(ByteView b) { return BnPtr(BN_bin2bn(b.data, static_cast<int>(b.size), nullptr)); }

EVP_PKEY* fromParts(const RsaComponents& parts, bool withPrivate) {
  BnPtr n = bn(parts.modulus), e = bn(parts.publicExponent), d = bn(parts.privateExponent);
  BnPtr p = bn(parts.prime1), q = bn(parts.prime2), dp = bn(parts.exponent1), dq = bn(parts.exponent2),
        qi = bn(parts.coefficient);
  if (!n || !e || (withPrivate && !d)) return nullptr;
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  if (bld == nullptr) return nullptr;
  bool crt = p && q && dp && dq && qi;
  bool ok = OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n.get()) &&
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e.get()) &&
            (!withPrivate || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, d.get())) &&
            (!withPrivate || !crt ||
             (OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR1, p.get()) &&
              OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR2, q.get()) &&
              OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT1, dp.get()) &&
              OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT2, dq.get()) &&
              OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, qi.get())));
  OSSL_PARAM* params = ok ? OSSL_PARAM_BLD_to_param(bld) : nullptr;
  EVP_PKEY_CTX* ctx = params ? EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr) : nullptr;
  EVP_PKEY* pkey = nullptr;
  if (ctx == nullptr || EVP_PKEY_fromdata_init(ctx) != 1 ||
      EVP_PKEY_fromdata(ctx, &pkey, withPrivate ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) != 1) {
    EVP_PKEY_free(pkey);
    pkey = nullptr;
  }
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  return pkey;
}

Bytes bnParam(EVP_PKEY* pkey, const char* name) {
  BIGNUM* value = nullptr;
  Bytes out;
  if (EVP_PKEY_get_bn_param(pkey, name, &value) == 1 && value != nullptr) {
    out.assign(static_cast<size_t>(BN_num_bytes(value)), 0);
    BN_bn2bin(value, out.data());
  }
  BN_clear_free(value);
  return out;
}

// A fresh context per operation: padding and hash parameters differ between calls.
EVP_PKEY_CTX* operationContext(Pkey& key, const RsaParams& params, int (*init)(EVP_PKEY_CTX*)) {
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, static_cast<EVP_PKEY*>(key.raw()), nullptr);
  if (ctx == nullptr) return nullptr;
  int padding = params.padding == RsaPadding::Pkcs1 ? RSA_PKCS1_PADDING
                : params.padding == RsaPadding::Pss ? RSA_PKCS1_PSS_PADDING
                : params.padding == RsaPadding::Oaep ? RSA_PKCS1_OAEP_PADDING
                                                     : RSA_NO_PADDING;
  bool ok = init(ctx) == 1 && EVP_PKEY_CTX_set_rsa_padding(ctx, padding) == 1;
  if (ok && params.padding == RsaPadding::Pkcs1 && params.hashSet)
    ok = EVP_PKEY_CTX_set_signature_md(ctx, fetchedDigest(params.hash)) == 1;
  if (ok && params.padding == RsaPadding::Pss) {
    ok = EVP_PKEY_CTX_set_signature_md(ctx, fetchedDigest(params.hash)) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, fetchedDigest(params.mgfHash)) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, static_cast<int>(params.saltLength)) == 1;
  }
  if (ok && params.padding == RsaPadding::Oaep) {
    ok = EVP_PKEY_CTX_set_rsa_oaep_md(ctx, fetchedDigest(params.hash)) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, fetchedDigest(params.mgfHash)) == 1;
    if (ok && params.label.size > 0) {
      // OpenSSL takes ownership of the label buffer.
      unsigned char* label = static_cast<unsigned char*>(OPENSSL_memdup(params.label.data, params.label.size));
      ok = label != nullptr && EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, label, static_cast<int>(params.label.size)) == 1;
      if (!ok) OPENSSL_free(label);
    }
  }
  if (!ok) {
    EVP_PKEY_CTX_free(ctx);
    return nullptr;
  }
  return ctx;
}

// Signing and verifying contexts are kept on the key for the parameters last used: setting one up
// (signature provider fetch, padding, digest fetches) took a fifth to a quarter of an RSA-2048
// verify call. Blinding belongs to the key, not the context, so it stays on; PSS draws a new
// salt on every call. Encryption is not cached: an OAEP label differs from call to call.
uint64_t contextTag(const RsaParams& p) {
  if ((p.padding != RsaPadding::Pkcs1 && p.padding != RsaPadding::Pss) || p.saltLength > 0xffffffffu) return 0;
  return 1u | static_cast<uint64_t>(p.padding) << 1 | static_cast<uint64_t>(p.hashSet) << 3 |
         static_cast<uint64_t>(p.hash) << 4 | static_cast<uint64_t>(p.mgfHash) << 8 |
         static_cast<uint64_t>(p.saltLength) << 16;
}

// A context for one sign or verify call: the key's cached one (owned = false) or a new one.
struct SignatureContext {
  EVP_PKEY_CTX* ctx = nullptr;
  bool owned = false;
  ~SignatureContext() {
    if (owned) EVP_PKEY_CTX_free(ctx);
  }
};

void signatureContext(Pkey& key, const RsaParams& params, bool sign, SignatureContext& out) {
  uint64_t tag = contextTag(params);
  out.ctx = tag ? static_cast<EVP_PKEY_CTX*>(key.cachedContext(sign, tag)) : nullptr;
  if (out.ctx != nullptr) return;
  out.ctx = operationContext(key, params, sign ? EVP_PKEY_sign_init : EVP_PKEY_verify_init);
  if (out.ctx != nullptr && tag != 0) {
    key.storeContext(sign, tag, out.ctx);
  } else {
    out.owned = true;
  }
}

// After a failed call the cached context is dropped rather than trusted again.
void dropContext(Pkey& key, bool sign, SignatureContext& used) {
  if (used.owned) return;  // freed by its destructor
  key.storeContext(sign, 0, nullptr);
  used.ctx = nullptr;
}
}  // namespace

void* Pkey::cachedContext(bool sign, uint64_t tag) const {
  return tag != 0 && tag == (sign ? signTag_ : verifyTag_) ? (sign ? signCtx_ : verifyCtx_) : nullptr;
}

void Pkey::storeContext(bool sign, uint64_t tag, void* ctx) {
  void*& slot = sign ? signCtx_ : verifyCtx_;
  if (slot != ctx) EVP_PKEY_CTX_free(static_cast<EVP_PKEY_CTX*>(slot));
  slot = ctx;
  (sign ? signTag_ : verifyTag_) = ctx != nullptr ? tag : 0;
}

CryptoStatus rsaGenerate(size_t modulusBits, ByteView publicExponent, RsaComponents& out) {
  if (modulusBits < 1024 || modulusBits > 8192 || modulusBits % 8 != 0) return CryptoStatus::BadParam;
  BnPtr e = publicExponent.size ? bn(publicExponent) : BnPtr(BN_new());
  if (!e) return CryptoStatus::Internal;
  if (publicExponent.size == 0) BN_set_word(e.get(), 65537);
  if (!BN_is_odd(e.get()) || BN_is_one(e.get())) return CryptoStatus::BadParam;
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
  EVP_PKEY* pkey = nullptr;
  bool ok = ctx && EVP_PKEY_keygen_init(ctx) == 1 &&
            EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, static_cast<int>(modulusBits)) == 1 &&
            EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx, e.get()) == 1 && EVP_PKEY_generate(ctx, &pkey) == 1;
  EVP_PKEY_CTX_free(ctx);
  if (!ok) return CryptoStatus::Internal;
  out.modulus = bnParam(pkey, OSSL_PKEY_PARAM_RSA_N);
  out.publicExponent = bnParam(pkey, OSSL_PKEY_PARAM_RSA_E);
  out.privateExponent = bnParam(pkey, OSSL_PKEY_PARAM_RSA_D);
  out.prime1 = bnParam(pkey, OSSL_PKEY_PARAM_RSA_FACTOR1);
  out.prime2 = bnParam(pkey, OSSL_PKEY_PARAM_RSA_FACTOR2);
  out.exponent1 = bnParam(pkey, OSSL_PKEY_PARAM_RSA_EXPONENT1);
  out.exponent2 = bnParam(pkey, OSSL_PKEY_PARAM_RSA_EXPONENT2);
  out.coefficient = bnParam(pkey, OSSL_PKEY_PARAM_RSA_COEFFICIENT1);
  EVP_PKEY_free(pkey);
  return CryptoStatus::Ok;
}

CryptoStatus rsaPrivateKey(const RsaComponents& parts, Pkey& out) {
  if (parts.modulus.size() < 64 || parts.modulus.size() > 1024) return CryptoStatus::BadKey;
  EVP_PKEY* pkey = fromParts(parts, true);
  if (pkey == nullptr) return CryptoStatus::BadKey;
  out.reset(pkey);
  return CryptoStatus::Ok;
}

CryptoStatus rsaPublicKey(ByteView modulus, ByteView publicExponent, Pkey& out) {
  if (modulus.size < 64 || modulus.size > 1024 || publicExponent.size == 0 || publicExponent.size > 8)
    return CryptoStatus::BadKey;
  RsaComponents parts;
  parts.modulus = toBytes(modulus.data, modulus.size);
  parts.publicExponent = toBytes(publicExponent.data, publicExponent.size);
  EVP_PKEY* pkey = fromParts(parts, false);
  if (pkey == nullptr) return CryptoStatus::BadKey;
  out.reset(pkey);
  return CryptoStatus::Ok;
}

size_t rsaModulusBytes(Pkey& key) {
  return key.empty() ? 0 : static_cast<size_t>(EVP_PKEY_get_size(static_cast<EVP_PKEY*>(key.raw())));
}

CryptoStatus rsaSign(Pkey& key, const RsaParams& params, ByteView input, uint8_t* out, size_t* outLength) {
  SignatureContext context;
  signatureContext(key, params, true, context);
  if (context.ctx == nullptr) return CryptoStatus::BadParam;
  size_t length = *outLength;
  if (EVP_PKEY_sign(context.ctx, out, &length, input.data, input.size) != 1) {
    dropContext(key, true, context);
    return CryptoStatus::BadInput;
  }
  *outLength = length;
  return CryptoStatus::Ok;
}

CryptoStatus rsaVerify(Pkey& key, const RsaParams& params, ByteView input, ByteView signature) {
  if (signature.size != rsaModulusBytes(key)) return CryptoStatus::BadInput;
  SignatureContext context;
  signatureContext(key, params, false, context);
  if (context.ctx == nullptr) return CryptoStatus::BadParam;
  if (EVP_PKEY_verify(context.ctx, signature.data, signature.size, input.data, input.size) != 1) {
    dropContext(key, false, context);
    return CryptoStatus::AuthFailed;
  }
  return CryptoStatus::Ok;
}

CryptoStatus rsaEncrypt(Pkey& key, const RsaParams& params, ByteView input, uint8_t* out, size_t* outLength) {
  EVP_PKEY_CTX* ctx = operationContext(key, params, EVP_PKEY_encrypt_init);
  if (ctx == nullptr) return CryptoStatus::BadParam;
  size_t length = *outLength;
  int rc = EVP_PKEY_encrypt(ctx, out, &length, input.data, input.size);
  EVP_PKEY_CTX_free(ctx);
  if (rc != 1) return CryptoStatus::BadInput;
  *outLength = length;
  return CryptoStatus::Ok;
}

CryptoStatus rsaDecrypt(Pkey& key, const RsaParams& params, ByteView input, Bytes& out) {
  if (input.size != rsaModulusBytes(key)) return CryptoStatus::BadInput;
  EVP_PKEY_CTX* ctx = operationContext(key, params, EVP_PKEY_decrypt_init);
  if (ctx == nullptr) return CryptoStatus::BadParam;
  out.assign(input.size, 0);
  size_t length = out.size();
  int rc = EVP_PKEY_decrypt(ctx, out.data(), &length, input.data, input.size);
  EVP_PKEY_CTX_free(ctx);
  if (rc != 1) {
    out.clear();
    return CryptoStatus::AuthFailed;
  }
  out.resize(length);
  return CryptoStatus::Ok;
}

}  // namespace hsm
