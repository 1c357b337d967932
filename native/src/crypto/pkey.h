// Asymmetric keys (EC P-256/P-384 and RSA) held as OpenSSL EVP_PKEY objects, behind an
// opaque handle so the token layer never includes OpenSSL headers.
#pragma once
#include <cstdint>

#include "algorithms.h"
#include "bytes.h"
#include "drbg.h"
#include "status.h"

namespace hsm {

class Pkey {
 public:
  Pkey() = default;
  ~Pkey();
  Pkey(const Pkey&) = delete;
  Pkey& operator=(const Pkey&) = delete;
  Pkey(Pkey&& other) noexcept;
  Pkey& operator=(Pkey&& other) noexcept;
  bool empty() const { return key_ == nullptr; }
  void reset(void* evpPkey);
  void* raw() const { return key_; }
  // Cached signing context (EC keys only: ECDSA takes no per-call parameters).
  void* ecdsaContext(bool sign);
  // RSA keys: the signing (or verifying) context of the last parameters used, named by `tag`
  // (never 0), or null when the tag differs. storeContext takes ownership and frees the old one.
  void* cachedContext(bool sign, uint64_t tag) const;
  void storeContext(bool sign, uint64_t tag, void* ctx);

 private:
  void* key_ = nullptr;        // EVP_PKEY*
  void* signCtx_ = nullptr;    // EVP_PKEY_CTX*
  void* verifyCtx_ = nullptr;  // EVP_PKEY_CTX*
  uint64_t signTag_ = 0, verifyTag_ = 0;  // RSA parameters the cached contexts were set up for
};

// ---- Elliptic curves ----
enum class Curve { None, P256, P384 };
// DER-encoded namedCurve OID (CKA_EC_PARAMS) to curve; None when unsupported.
Curve curveFromParams(ByteView der);
Bytes curveParams(Curve curve);
size_t curveFieldBytes(Curve curve);  // 32 or 48

CryptoStatus ecGenerate(Curve curve, Drbg& drbg, Bytes& scalar, Bytes& uncompressedPoint);
// Builds a private key from its scalar, checking 0 < d < n; the point is returned when asked.
CryptoStatus ecPrivateKey(Curve curve, ByteView scalar, Pkey& out, Bytes* uncompressedPoint);
// Accepts a raw point (uncompressed or compressed) on the curve.
CryptoStatus ecPublicKey(Curve curve, ByteView point, Pkey& out);
// ECDSA over a digest; the signature is r||s, each curveFieldBytes long.
CryptoStatus ecdsaSign(Pkey& key, Curve curve, ByteView digest, uint8_t* signature);
CryptoStatus ecdsaVerify(Pkey& key, Curve curve, ByteView digest, ByteView signature);
// ECDH: the peer's public key as a raw point, a DER OCTET STRING around one, or a DER
// SubjectPublicKeyInfo that must name the same curve. z receives the x-coordinate.
CryptoStatus ecdhDerive(Pkey& key, Curve curve, ByteView peer, Bytes& z);

// ---- RSA ----
struct RsaComponents {
  Bytes modulus, publicExponent, privateExponent, prime1, prime2, exponent1, exponent2, coefficient;
};
enum class RsaPadding { Pkcs1, Pss, Oaep, Raw };
struct RsaParams {
  RsaPadding padding = RsaPadding::Pkcs1;
  bool hashSet = false;  // for Pkcs1 signing: wrap the digest in DigestInfo for `hash`
  HashAlg hash = HashAlg::Sha256;
  HashAlg mgfHash = HashAlg::Sha256;
  size_t saltLength = 0;
  ByteView label;
};

CryptoStatus rsaGenerate(size_t modulusBits, ByteView publicExponent, RsaComponents& out);
CryptoStatus rsaPrivateKey(const RsaComponents& parts, Pkey& out);
CryptoStatus rsaPublicKey(ByteView modulus, ByteView publicExponent, Pkey& out);
size_t rsaModulusBytes(Pkey& key);
CryptoStatus rsaSign(Pkey& key, const RsaParams& params, ByteView input, uint8_t* out, size_t* outLength);
CryptoStatus rsaVerify(Pkey& key, const RsaParams& params, ByteView input, ByteView signature);
CryptoStatus rsaEncrypt(Pkey& key, const RsaParams& params, ByteView input, uint8_t* out, size_t* outLength);
CryptoStatus rsaDecrypt(Pkey& key, const RsaParams& params, ByteView input, Bytes& out);

}  // namespace hsm
