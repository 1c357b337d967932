#include "algorithms.h"

#include <cstdio>

namespace hsm {

namespace {
struct Registry {
  EVP_MD* digests[5];
  EVP_CIPHER* aes[5][3];
  EVP_MAC* hmac;
  Registry() {
    static const HashAlg algs[] = {HashAlg::Sha1, HashAlg::Sha224, HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512};
    for (int i = 0; i < 5; ++i) digests[i] = EVP_MD_fetch(nullptr, digestName(algs[i]), nullptr);
    static const char* modes[] = {"GCM", "CBC", "ECB", "WRAP", "WRAP-PAD"};
    static const int bits[] = {128, 192, 256};
    char name[32];
    for (int m = 0; m < 5; ++m) {
      for (int b = 0; b < 3; ++b) {
        snprintf(name, sizeof name, "AES-%d-%s", bits[b], modes[m]);
        aes[m][b] = EVP_CIPHER_fetch(nullptr, name, nullptr);
      }
    }
    hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  }
};

const Registry& registry() {
  static const Registry instance;  // thread-safe one-time init (C++11 statics)
  return instance;
}
}  // namespace

const char* digestName(HashAlg alg) {
  switch (alg) {
    case HashAlg::Sha1: return "SHA1";
    case HashAlg::Sha224: return "SHA224";
    case HashAlg::Sha256: return "SHA256";
    case HashAlg::Sha384: return "SHA384";
    case HashAlg::Sha512: return "SHA512";
  }
  return "SHA256";
}

size_t digestLength(HashAlg alg) {
  switch (alg) {
    case HashAlg::Sha1: return 20;
    case HashAlg::Sha224: return 28;
    case HashAlg::Sha256: return 32;
    case HashAlg::Sha384: return 48;
    case HashAlg::Sha512: return 64;
  }
  return 0;
}

const EVP_MD* fetchedDigest(HashAlg alg) { return registry().digests[static_cast<int>(alg)]; }

const EVP_CIPHER* fetchedAes(AesMode mode, size_t keyBytes) {
  int index = keyBytes == 16 ? 0 : keyBytes == 24 ? 1 : keyBytes == 32 ? 2 : -1;
  if (index < 0) return nullptr;
  return registry().aes[static_cast<int>(mode)][index];
}

EVP_MAC* fetchedHmac() { return registry().hmac; }

}  // namespace hsm
