#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include <cstring>

#include "pkey.h"

namespace hsm {

Pkey::~Pkey() { reset(nullptr); }
Pkey::Pkey(Pkey&& other) noexcept { *this = std::move(other); }
Pkey& Pkey::operator=(Pkey&& other) noexcept {
  if (this != &other) {
    reset(nullptr);
    key_ = other.key_;
    signCtx_ = other.signCtx_;
    verifyCtx_ = other.verifyCtx_;
    signTag_ = other.signTag_;
    verifyTag_ = other.verifyTag_;
    other.key_ = other.signCtx_ = other.verifyCtx_ = nullptr;
    other.signTag_ = other.verifyTag_ = 0;
  }
  return *this;
}
void Pkey::reset(void* evpPkey) {
  EVP_PKEY_CTX_free(static_cast<EVP_PKEY_CTX*>(signCtx_));
  EVP_PKEY_CTX_free(static_cast<EVP_PKEY_CTX*>(verifyCtx_));
  EVP_PKEY_free(static_cast<EVP_PKEY*>(key_));
  signCtx_ = verifyCtx_ = nullptr;
  signTag_ = verifyTag_ = 0;
  key_ = evpPkey;
}
void* Pkey::ecdsaContext(bool sign) {
  void*& slot = sign ? signCtx_ : verifyCtx_;
  if (slot == nullptr && key_ != nullptr) {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, static_cast<EVP_PKEY*>(key_), nullptr);
    if (ctx && (sign ? EVP_PKEY_sign_init(ctx) : EVP_PKEY_verify_init(ctx)) == 1) {
      slot = ctx;
    } else {
      EVP_PKEY_CTX_free(ctx);
    }
  }
  return slot;
}

namespace {
const uint8_t kP256Oid[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
const uint8_t kP384Oid[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};

const char* groupName(Curve curve) { return curve == Curve::P256 ? "P-256" : "P-384"; }
int curveNid(Curve curve) { return curve == Curve::P256 ? NID_X9_62_prime256v1 : NID_secp384r1; }

struct BnDeleter { void operator()(BIGNUM* b) { BN_clear_free(b); } };
using BnPtr = std::unique_ptr<BIGNUM, BnDeleter>;

EVP_PKEY* fromData(Curve curve, const BIGNUM* privateScalar, const uint8_t* point, size_t pointLength) {
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  if (bld == nullptr) return nullptr;
  EVP_PKEY* pkey = nullptr;
  OSSL_PARAM* params = nullptr;
  EVP_PKEY_CTX* ctx = nullptr;
  bool ok = OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, groupName(curve), 0) &&
            (point == nullptr || OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, pointLength)) &&
            (privateScalar == nullptr || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, privateScalar)) &&
            (params = OSSL_PARAM_BLD_to_param(bld)) != nullptr &&
            (ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr)) != nullptr &&
            EVP_PKEY_fromdata_init(ctx) == 1 &&
            EVP_PKEY_fromdata(ctx, &pkey, privateScalar ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) == 1;
  if (!ok) {
    EVP_PKEY_free(pkey);
    pkey = nullptr;
  }
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);  // OpenSSL clears private BN params on free
  OSSL_PARAM_BLD_free(bld);
  return pkey;
}

// d*G, uncompressed; also checks 0 < d < n.
CryptoStatus publicPoint(Curve curve, const BIGNUM* d, Bytes& point) {
  EC_GROUP* group = EC_GROUP_new_by_curve_name(curveNid(curve));
  if (group == nullptr) return CryptoStatus::Internal;
  CryptoStatus status = CryptoStatus::Ok;
  EC_POINT* q = nullptr;
  const BIGNUM* order = EC_GROUP_get0_order(group);
  if (BN_is_zero(d) || BN_is_negative(d) || BN_cmp(d, order) >= 0) {
    status = CryptoStatus::BadKey;
  } else if ((q = EC_POINT_new(group)) == nullptr || !EC_POINT_mul(group, q, d, nullptr, nullptr, nullptr)) {
    status = CryptoStatus::Internal;
  } else {
    point.assign(1 + 2 * curveFieldBytes(curve), 0);
    if (EC_POINT_point2oct(group, q, POINT_CONVERSION_UNCOMPRESSED, point.data(), point.size(), nullptr) != point.size())
      status = CryptoStatus::Internal;
  }
  EC_POINT_free(q);
  EC_GROUP_free(group);
  return status;
}

bool curveMatches(EVP_PKEY* pkey, Curve curve) {
  char name[64];
  size_t length = 0;
  if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC) return false;
  // RFC 5480: a public key names its curve; explicit parameters (even P-256's) are refused.
  char encoding[32];
  if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_EC_ENCODING, encoding, sizeof encoding, &length) ||
      strcmp(encoding, OSSL_PKEY_EC_ENCODING_GROUP) != 0)
    return false;
  if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name, &length)) return false;
  return OBJ_txt2nid(name) == curveNid(curve) || EC_curve_nist2nid(name) == curveNid(curve);
}
}  // namespace

Curve curveFromParams(ByteView der) {
  if (der.size == sizeof kP256Oid && memcmp(der.data, kP256Oid, der.size) == 0) return Curve::P256;
  if (der.size == sizeof kP384Oid && memcmp(der.data, kP384Oid, der.size) == 0) return Curve::P384;
  return Curve::None;
}

Bytes curveParams(Curve curve) {
  if (curve == Curve::P256) return Bytes(kP256Oid, kP256Oid + sizeof kP256Oid);
  if (curve == Curve::P384) return Bytes(kP384Oid, kP384Oid + sizeof kP384Oid);
  return Bytes();
}

size_t curveFieldBytes(Curve curve) { return curve == Curve::P256 ? 32 : curve == Curve::P384 ? 48 : 0; }

CryptoStatus ecGenerate(Curve curve, Drbg& drbg, Bytes& scalar, Bytes& uncompressedPoint) {
  size_t n = curveFieldBytes(curve);
  if (n == 0) return CryptoStatus::BadParam;
  // Rejection sampling from the token's DRBG keeps keys reproducible in deterministic mode.
  for (int attempt = 0; attempt < 64; ++attempt) {
    scalar.assign(n, 0);
    if (!drbg.generate(scalar.data(), n)) return CryptoStatus::Internal;
    BnPtr d(BN_bin2bn(scalar.data(), static_cast<int>(n), nullptr));
    if (!d) return CryptoStatus::Internal;
    CryptoStatus status = publicPoint(curve, d.get(), uncompressedPoint);
    if (status != CryptoStatus::BadKey) return status;
  }
  return CryptoStatus::Internal;
}

CryptoStatus ecPrivateKey(Curve curve, ByteView scalar, Pkey& out, Bytes* uncompressedPoint) {
  size_t n = curveFieldBytes(curve);
  if (n == 0) return CryptoStatus::BadParam;
  while (scalar.size > n && scalar.data[0] == 0) scalar = ByteView(scalar.data + 1, scalar.size - 1);
  if (scalar.size == 0 || scalar.size > n) return CryptoStatus::BadKey;
  BnPtr d(BN_bin2bn(scalar.data, static_cast<int>(scalar.size), nullptr));
  if (!d) return CryptoStatus::Internal;
  Bytes point;
  CryptoStatus status = publicPoint(curve, d.get(), point);
  if (status != CryptoStatus::Ok) return status;
  EVP_PKEY* pkey = fromData(curve, d.get(), point.data(), point.size());
  if (pkey == nullptr) return CryptoStatus::BadKey;
  out.reset(pkey);
  if (uncompressedPoint) *uncompressedPoint = std::move(point);
  return CryptoStatus::Ok;
}

CryptoStatus ecPublicKey(Curve curve, ByteView point, Pkey& out) {
  size_t n = curveFieldBytes(curve);
  if (n == 0) return CryptoStatus::BadParam;
  bool uncompressed = point.size == 2 * n + 1 && point.data[0] == 0x04;
  bool compressed = point.size == n + 1 && (point.data[0] == 0x02 || point.data[0] == 0x03);
  if (!uncompressed && !compressed) return CryptoStatus::BadKey;
  EVP_PKEY* pkey = fromData(curve, nullptr, point.data, point.size);  // rejects points off the curve
  if (pkey == nullptr) return CryptoStatus::BadKey;
  out.reset(pkey);
  return CryptoStatus::Ok;
}

CryptoStatus ecdsaSign(Pkey& key, Curve curve, ByteView digest, uint8_t* signature) {
  EVP_PKEY_CTX* ctx = static_cast<EVP_PKEY_CTX*>(key.ecdsaContext(true));
  if (ctx == nullptr) return CryptoStatus::BadKey;
  uint8_t der[160];
  size_t derLength = sizeof der;
  if (EVP_PKEY_sign(ctx, der, &derLength, digest.data, digest.size) != 1) return CryptoStatus::Internal;
  const uint8_t* p = der;
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(derLength));
  if (sig == nullptr) return CryptoStatus::Internal;
  int n = static_cast<int>(curveFieldBytes(curve));
  bool ok = BN_bn2binpad(ECDSA_SIG_get0_r(sig), signature, n) == n &&
            BN_bn2binpad(ECDSA_SIG_get0_s(sig), signature + n, n) == n;
  ECDSA_SIG_free(sig);
  return ok ? CryptoStatus::Ok : CryptoStatus::Internal;
}

CryptoStatus ecdsaVerify(Pkey& key, Curve curve, ByteView digest, ByteView signature) {
  size_t n = curveFieldBytes(curve);
  if (signature.size != 2 * n) return CryptoStatus::BadInput;
  EVP_PKEY_CTX* ctx = static_cast<EVP_PKEY_CTX*>(key.ecdsaContext(false));
  if (ctx == nullptr) return CryptoStatus::BadKey;
  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(signature.data, static_cast<int>(n), nullptr);
  BIGNUM* s = BN_bin2bn(signature.data + n, static_cast<int>(n), nullptr);
  if (sig == nullptr || r == nullptr || s == nullptr || !ECDSA_SIG_set0(sig, r, s)) {
    ECDSA_SIG_free(sig);
    BN_free(r);
    BN_free(s);
    return CryptoStatus::Internal;
  }
  uint8_t* der = nullptr;
  int derLength = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  if (derLength <= 0) return CryptoStatus::Internal;
  int rc = EVP_PKEY_verify(ctx, der, static_cast<size_t>(derLength), digest.data, digest.size);
  OPENSSL_free(der);
  return rc == 1 ? CryptoStatus::Ok : CryptoStatus::AuthFailed;
}

CryptoStatus ecdhDerive(Pkey& key, Curve curve, ByteView peer, Bytes& z) {
  size_t n = curveFieldBytes(curve);
  if (n == 0 || peer.size == 0) return CryptoStatus::BadParam;
  Pkey peerKey;
  if (peer.data[0] == 0x30) {
    const uint8_t* p = peer.data;
    EVP_PKEY* spki = d2i_PUBKEY(nullptr, &p, static_cast<long>(peer.size));
    if (spki == nullptr || p != peer.data + peer.size || !curveMatches(spki, curve)) {
      EVP_PKEY_free(spki);
      return CryptoStatus::BadParam;
    }
    peerKey.reset(spki);
  } else {
    ByteView point = peer;
    // A DER OCTET STRING around the point (the CKA_EC_POINT form), short or 0x81 length.
    if (peer.data[0] == 0x04 && peer.size >= 2 && peer.size != 2 * n + 1) {
      size_t header = peer.data[1] == 0x81 ? 3 : 2;
      size_t length = peer.data[1] == 0x81 && peer.size > 2 ? peer.data[2] : peer.data[1];
      if (peer.size != header + length) return CryptoStatus::BadParam;
      point = ByteView(peer.data + header, length);
    }
    if (ecPublicKey(curve, point, peerKey) != CryptoStatus::Ok) return CryptoStatus::BadParam;
  }
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, static_cast<EVP_PKEY*>(key.raw()), nullptr);
  if (ctx == nullptr) return CryptoStatus::Internal;
  size_t length = n;
  z.assign(n, 0);
  bool ok = EVP_PKEY_derive_init(ctx) == 1 &&
            EVP_PKEY_derive_set_peer_ex(ctx, static_cast<EVP_PKEY*>(peerKey.raw()), 1) == 1 &&
            EVP_PKEY_derive(ctx, z.data(), &length) == 1 && length == n;
  EVP_PKEY_CTX_free(ctx);
  if (!ok) {
    z.clear();
    return CryptoStatus::BadParam;
  }
  return CryptoStatus::Ok;
}

}  // namespace hsm
