// Native tests of the crypto core against published vectors.
#include <cstring>
#include <string>

#include "crypto/aes_gcm.h"
#include "crypto/aes_wrap.h"
#include "crypto/drbg.h"
#include "crypto/hash_mac.h"
#include "crypto/pkey.h"
#include "harness.h"

using namespace hsm;

static Bytes unhex(const std::string& s) {
  Bytes out;
  for (size_t i = 0; i + 1 < s.size(); i += 2) out.push_back(static_cast<uint8_t>(std::stoi(s.substr(i, 2), nullptr, 16)));
  return out;
}
static std::string hexOf(const Bytes& b) { return hsmtest::hex(b.data(), b.size()); }

TEST(gcm_nist_test_case_4) {
  // NIST GCM spec test case 4 (AES-128, 60-byte plaintext, 20-byte AAD).
  Bytes key = unhex("feffe9928665731c6d6a8f9467308308");
  Bytes iv = unhex("cafebabefacedbaddecaf888");
  Bytes pt = unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39");
  Bytes aad = unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
  GcmCipher gcm;
  Bytes out(pt.size());
  uint8_t tag[16];
  CHECK(gcm.init(true, key, 1, iv, aad, 16) == CryptoStatus::Ok);
  CHECK(gcm.update(pt, out.data()) == CryptoStatus::Ok);
  CHECK(gcm.finishEncrypt(tag) == CryptoStatus::Ok);
  CHECK_EQ(hexOf(out), std::string("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091"));
  CHECK_EQ(hsmtest::hex(tag, 16), std::string("5bc94fbc3221a5db94fae95ae7121a47"));
  // Reusing the keyed context with the same key id gives the same result.
  CHECK(gcm.init(false, key, 1, iv, aad, 16) == CryptoStatus::Ok);
  Bytes back(pt.size());
  CHECK(gcm.update(out, back.data()) == CryptoStatus::Ok);
  CHECK(gcm.finishDecrypt(tag) == CryptoStatus::Ok);
  CHECK(back == pt);
  tag[0] ^= 1;
  CHECK(gcm.init(false, key, 1, iv, aad, 16) == CryptoStatus::Ok);
  CHECK(gcm.update(out, back.data()) == CryptoStatus::Ok);
  CHECK(gcm.finishDecrypt(tag) == CryptoStatus::AuthFailed);
}

TEST(gcm_long_iv_matches_between_paths) {
  // A 129-byte IV takes the CRYPTO_gcm128 path; decrypting must invert encrypting.
  Bytes key(32, 7), iv(129, 3), pt(100, 9), out(100), back(100);
  uint8_t tag[16];
  GcmCipher gcm;
  CHECK(gcm.init(true, key, 2, iv, Bytes(), 16) == CryptoStatus::Ok);
  CHECK(gcm.update(pt, out.data()) == CryptoStatus::Ok);
  CHECK(gcm.finishEncrypt(tag) == CryptoStatus::Ok);
  CHECK(gcm.init(false, key, 2, iv, Bytes(), 16) == CryptoStatus::Ok);
  CHECK(gcm.update(out, back.data()) == CryptoStatus::Ok);
  CHECK(gcm.finishDecrypt(tag) == CryptoStatus::Ok);
  CHECK(back == pt);
  CHECK(gcm.init(true, key, 2, Bytes(), Bytes(), 16) == CryptoStatus::BadParam);
  CHECK(gcm.init(true, Bytes(15, 1), 3, iv, Bytes(), 16) == CryptoStatus::BadKey);
}

TEST(aes_key_wrap_rfc3394_and_rfc5649) {
  Bytes kek = unhex("000102030405060708090a0b0c0d0e0f");
  Bytes data = unhex("00112233445566778899aabbccddeeff");
  Bytes wrapped, back;
  CHECK(aesWrap(false, kek, data, wrapped) == CryptoStatus::Ok);
  CHECK_EQ(hexOf(wrapped), std::string("1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5"));
  CHECK(aesUnwrap(false, kek, wrapped, back) == CryptoStatus::Ok);
  CHECK(back == data);
  wrapped[3] ^= 1;
  CHECK(aesUnwrap(false, kek, wrapped, back) == CryptoStatus::AuthFailed);
  // RFC 5649 section 6, 7-byte example with a 192-bit KEK.
  Bytes kek2 = unhex("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8");
  CHECK(aesWrap(true, kek2, unhex("466f7250617369"), wrapped) == CryptoStatus::Ok);
  CHECK_EQ(hexOf(wrapped), std::string("afbeb0f07dfbf5419200f2ccb50bb24f"));
  CHECK(aesWrap(false, kek, unhex("0011"), wrapped) == CryptoStatus::BadInput);
}

TEST(hmac_rfc4231_case_2_and_digest) {
  Hmac hmac;
  uint8_t out[64];
  Bytes key = toBytes(std::string("Jefe"));
  Bytes msg = toBytes(std::string("what do ya want for nothing?"));
  CHECK(hmac.init(HashAlg::Sha256, key, 5) == CryptoStatus::Ok);
  CHECK(hmac.update(msg) == CryptoStatus::Ok);
  CHECK(hmac.finish(out) == CryptoStatus::Ok);
  CHECK_EQ(hsmtest::hex(out, 32), std::string("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));
  CHECK(hmac.init(HashAlg::Sha256, key, 5) == CryptoStatus::Ok);  // keyed reuse
  CHECK(hmac.update(msg) == CryptoStatus::Ok);
  uint8_t again[64];
  CHECK(hmac.finish(again) == CryptoStatus::Ok);
  CHECK(std::memcmp(out, again, 32) == 0);
  Digest digest;
  CHECK(digest.init(HashAlg::Sha256) == CryptoStatus::Ok);
  CHECK(digest.update(toBytes(std::string("abc"))) == CryptoStatus::Ok);
  CHECK(digest.finish(out) == CryptoStatus::Ok);
  CHECK_EQ(hsmtest::hex(out, 32), std::string("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
}

TEST(drbg_is_deterministic_only_with_a_seed) {
  const uint8_t seed[] = {1, 2, 3};
  Drbg a(seed, 3), b(seed, 3), os(nullptr, 0);
  uint8_t x[100000], y[100000], z[32];
  CHECK(a.generate(x, sizeof x));
  CHECK(b.generate(y, sizeof y));
  CHECK(std::memcmp(x, y, sizeof x) == 0);
  CHECK(a.addInput(seed, 3));
  CHECK(b.addInput(seed, 3));
  CHECK(a.generate(x, 32) && b.generate(y, 32) && std::memcmp(x, y, 32) == 0);
  CHECK(os.generate(z, 32));
  CHECK(std::memcmp(x, z, 32) != 0);
  CHECK(a.deterministic() && !os.deterministic());
}

TEST(ecdsa_and_ecdh_round_trips) {
  const uint8_t seed[] = {9};
  Drbg drbg(seed, 1);
  for (Curve curve : {Curve::P256, Curve::P384}) {
    Bytes scalar, point, scalar2, point2;
    CHECK(ecGenerate(curve, drbg, scalar, point) == CryptoStatus::Ok);
    CHECK(ecGenerate(curve, drbg, scalar2, point2) == CryptoStatus::Ok);
    Pkey priv, pub, priv2;
    CHECK(ecPrivateKey(curve, scalar, priv, nullptr) == CryptoStatus::Ok);
    CHECK(ecPublicKey(curve, point, pub) == CryptoStatus::Ok);
    CHECK(ecPrivateKey(curve, scalar2, priv2, nullptr) == CryptoStatus::Ok);
    uint8_t digest[48] = {1, 2, 3}, sig[96];
    ByteView d(digest, curve == Curve::P256 ? 32 : 48);
    CHECK(ecdsaSign(priv, curve, d, sig) == CryptoStatus::Ok);
    CHECK(ecdsaVerify(pub, curve, d, ByteView(sig, 2 * curveFieldBytes(curve))) == CryptoStatus::Ok);
    sig[3] ^= 1;
    CHECK(ecdsaVerify(pub, curve, d, ByteView(sig, 2 * curveFieldBytes(curve))) == CryptoStatus::AuthFailed);
    Bytes z1, z2;
    CHECK(ecdhDerive(priv, curve, point2, z1) == CryptoStatus::Ok);
    CHECK(ecdhDerive(priv2, curve, point, z2) == CryptoStatus::Ok);
    CHECK(z1 == z2);
    point[10] ^= 1;
    CHECK(ecPublicKey(curve, point, pub) == CryptoStatus::BadKey);
    CHECK(ecPrivateKey(curve, Bytes(curveFieldBytes(curve), 0xff), priv, nullptr) == CryptoStatus::BadKey);
  }
  CHECK(curveFromParams(unhex("06082a8648ce3d030107")) == Curve::P256);
  CHECK(curveFromParams(unhex("06052b8104000a")) == Curve::None);
}

TEST(rsa_cached_contexts_follow_the_parameters) {
  // The key keeps the context of the parameters last used: switching padding, hash or salt
  // length must give a new one, and a failed call must not leave a broken one behind.
  RsaComponents parts;
  CHECK(rsaGenerate(1024, ByteView(), parts) == CryptoStatus::Ok);
  Pkey priv, pub;
  CHECK(rsaPrivateKey(parts, priv) == CryptoStatus::Ok);
  CHECK(rsaPublicKey(parts.modulus, parts.publicExponent, pub) == CryptoStatus::Ok);
  uint8_t digest[32] = {7, 7, 7};
  ByteView d(digest, sizeof digest);
  RsaParams pkcs1;
  pkcs1.hashSet = true;
  RsaParams pss;
  pss.padding = RsaPadding::Pss;
  pss.saltLength = 32;
  RsaParams pss20 = pss;
  pss20.saltLength = 20;
  RsaParams sha384 = pkcs1;
  sha384.hash = HashAlg::Sha384;

  uint8_t first[128], again[128], pssSig[128];
  size_t length = sizeof first;
  CHECK(rsaSign(priv, pkcs1, d, first, &length) == CryptoStatus::Ok && length == 128);
  CHECK(rsaVerify(pub, pkcs1, d, ByteView(first, 128)) == CryptoStatus::Ok);
  CHECK(rsaVerify(pub, pss, d, ByteView(first, 128)) == CryptoStatus::AuthFailed);
  CHECK(rsaVerify(pub, sha384, d, ByteView(first, 128)) == CryptoStatus::AuthFailed);
  CHECK(rsaVerify(pub, pkcs1, d, ByteView(first, 128)) == CryptoStatus::Ok);

  length = sizeof pssSig;
  CHECK(rsaSign(priv, pss, d, pssSig, &length) == CryptoStatus::Ok && length == 128);
  CHECK(rsaVerify(pub, pss, d, ByteView(pssSig, 128)) == CryptoStatus::Ok);
  CHECK(rsaVerify(pub, pss20, d, ByteView(pssSig, 128)) == CryptoStatus::AuthFailed);
  CHECK(rsaVerify(pub, pss, d, ByteView(pssSig, 128)) == CryptoStatus::Ok);
  CHECK(rsaVerify(pub, pkcs1, d, ByteView(pssSig, 128)) == CryptoStatus::AuthFailed);

  // Back to PKCS#1 v1.5 (deterministic): the same bytes as the first time, not a PSS signature.
  length = sizeof again;
  CHECK(rsaSign(priv, pkcs1, d, again, &length) == CryptoStatus::Ok);
  CHECK(std::memcmp(first, again, 128) == 0);

  // A failed sign (digest of the wrong length for SHA-256) drops the context; the next call works.
  CHECK(rsaSign(priv, pkcs1, ByteView(digest, 20), again, &length) != CryptoStatus::Ok);
  length = sizeof again;
  CHECK(rsaSign(priv, pkcs1, d, again, &length) == CryptoStatus::Ok);
  CHECK(std::memcmp(first, again, 128) == 0);

  // The cached contexts move with the key.
  Pkey moved(std::move(priv));
  CHECK(priv.empty());
  length = sizeof again;
  CHECK(rsaSign(moved, pkcs1, d, again, &length) == CryptoStatus::Ok);
  CHECK(std::memcmp(first, again, 128) == 0);
  Pkey movedPublic;
  movedPublic = std::move(pub);
  CHECK(rsaVerify(movedPublic, pkcs1, d, ByteView(first, 128)) == CryptoStatus::Ok);
}
