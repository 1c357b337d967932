#include "drbg.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/sha.h>

#include <cstring>
#include <stdexcept>

namespace hsm {

struct Drbg::State {
  EVP_RAND_CTX* parent = nullptr;  // TEST-RAND holding the seed, deterministic mode only
  EVP_RAND_CTX* drbg = nullptr;
  ~State() {
    EVP_RAND_CTX_free(drbg);
    EVP_RAND_CTX_free(parent);
  }
};

namespace {
constexpr unsigned int kStrength = 256;
// Each request may ask for at most this many bytes (OpenSSL's max_request is 64 KiB).
constexpr size_t kMaxRequest = 1 << 16;

EVP_RAND_CTX* newSeedSource(const uint8_t* seed, size_t seedLength) {
  // Expand the seed to entropy (48 bytes) plus nonce (16 bytes) with SHA-512 over a label,
  // so seeds of any length give full-strength, distinct instantiations.
  uint8_t material[SHA512_DIGEST_LENGTH];
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  bool ok = md && EVP_DigestInit_ex(md, EVP_sha512(), nullptr) &&
            EVP_DigestUpdate(md, "hsmsim-drbg-seed", 16) &&
            EVP_DigestUpdate(md, seed, seedLength) &&
            EVP_DigestFinal_ex(md, material, nullptr);
  EVP_MD_CTX_free(md);
  if (!ok) return nullptr;
  EVP_RAND* testRand = EVP_RAND_fetch(nullptr, "TEST-RAND", nullptr);
  if (testRand == nullptr) return nullptr;
  EVP_RAND_CTX* parent = EVP_RAND_CTX_new(testRand, nullptr);
  EVP_RAND_free(testRand);
  if (parent == nullptr) return nullptr;
  unsigned int strength = kStrength;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_uint(OSSL_RAND_PARAM_STRENGTH, &strength),
      OSSL_PARAM_construct_octet_string(OSSL_RAND_PARAM_TEST_ENTROPY, material, 48),
      OSSL_PARAM_construct_octet_string(OSSL_RAND_PARAM_TEST_NONCE, material + 48, 16),
      OSSL_PARAM_construct_end()};
  ok = EVP_RAND_CTX_set_params(parent, params) &&
       EVP_RAND_instantiate(parent, kStrength, 0, nullptr, 0, nullptr);
  secureWipe(material, sizeof material);
  if (!ok) {
    EVP_RAND_CTX_free(parent);
    return nullptr;
  }
  return parent;
}
}  // namespace

Drbg::Drbg(const uint8_t* seed, size_t seedLength)
    : state_(new State), deterministic_(seed != nullptr) {
  if (deterministic_) {
    state_->parent = newSeedSource(seed, seedLength);
    if (state_->parent == nullptr) throw std::runtime_error("cannot create DRBG seed source");
  }
  EVP_RAND* ctr = EVP_RAND_fetch(nullptr, "CTR-DRBG", nullptr);
  if (ctr == nullptr) throw std::runtime_error("CTR-DRBG unavailable");
  state_->drbg = EVP_RAND_CTX_new(ctr, state_->parent);
  EVP_RAND_free(ctr);
  if (state_->drbg == nullptr) throw std::runtime_error("cannot create CTR-DRBG");
  // Deterministic mode never reseeds (the seed source holds one instantiation's worth);
  // OS mode keeps OpenSSL's default reseeding.
  unsigned int zero = 0;
  uint64_t zeroTime = 0;
  OSSL_PARAM params[4];
  int n = 0;
  params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_DRBG_PARAM_CIPHER, const_cast<char*>("AES-256-CTR"), 0);
  if (deterministic_) {
    params[n++] = OSSL_PARAM_construct_uint(OSSL_DRBG_PARAM_RESEED_REQUESTS, &zero);
    params[n++] = OSSL_PARAM_construct_time_t(OSSL_DRBG_PARAM_RESEED_TIME_INTERVAL, reinterpret_cast<time_t*>(&zeroTime));
  }
  params[n] = OSSL_PARAM_construct_end();
  static const char kPersonalization[] = "hsmsim token";
  if (!EVP_RAND_CTX_set_params(state_->drbg, params) ||
      !EVP_RAND_instantiate(state_->drbg, kStrength, 0,
                            reinterpret_cast<const unsigned char*>(kPersonalization),
                            sizeof kPersonalization - 1, nullptr)) {
    throw std::runtime_error("cannot instantiate CTR-DRBG");
  }
}

Drbg::~Drbg() = default;

namespace {
constexpr size_t kPoolBytes = 4096;
constexpr size_t kPooledRequestMax = 512;
}  // namespace

bool Drbg::generate(uint8_t* out, size_t length) {
  if (length == 0) return true;
  if (length > kPooledRequestMax) return generateDirect(out, length);
  if (pool_.size() - poolUsed_ < length) {
    pool_.assign(kPoolBytes, 0);
    poolUsed_ = 0;
    if (!generateDirect(pool_.data(), pool_.size())) {
      pool_.clear();
      return false;
    }
  }
  std::memcpy(out, pool_.data() + poolUsed_, length);
  secureWipe(pool_.data() + poolUsed_, length);  // served bytes do not stay behind
  poolUsed_ += length;
  return true;
}

bool Drbg::generateDirect(uint8_t* out, size_t length) {
  while (length > 0) {
    size_t chunk = length < kMaxRequest ? length : kMaxRequest;
    if (!EVP_RAND_generate(state_->drbg, out, chunk, kStrength, 0, nullptr, 0)) return false;
    out += chunk;
    length -= chunk;
  }
  return true;
}

bool Drbg::addInput(const uint8_t* data, size_t length) {
  // Bytes pooled before the new input must not be served after it.
  secureWipe(pool_.data(), pool_.size());
  pool_.clear();
  poolUsed_ = 0;
  // Additional input on a zero-length request mixes the bytes into the state (SP 800-90A),
  // which keeps deterministic mode deterministic for the same calls.
  uint8_t scratch[1];
  while (length > 0) {
    size_t chunk = length < 4096 ? length : 4096;
    if (!EVP_RAND_generate(state_->drbg, scratch, 0, kStrength, 0, data, chunk)) return false;
    data += chunk;
    length -= chunk;
  }
  return true;
}

}  // namespace hsm
