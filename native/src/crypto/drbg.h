// Per-token random source: an OpenSSL EVP_RAND CTR-DRBG (AES-256). Seeded from the
// operating system, or, in deterministic mode, only from a caller's seed so that two
// tokens with the same seed and the same calls produce the same bytes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "bytes.h"

namespace hsm {

class Drbg {
 public:
  // seed == nullptr: operating-system entropy. Otherwise the DRBG is deterministic.
  Drbg(const uint8_t* seed, size_t seedLength);
  ~Drbg();
  Drbg(const Drbg&) = delete;
  Drbg& operator=(const Drbg&) = delete;

  bool generate(uint8_t* out, size_t length);
  // Mixes caller bytes into the state (C_SeedRandom); never replaces the entropy.
  bool addInput(const uint8_t* data, size_t length);
  bool deterministic() const { return deterministic_; }

 private:
  bool generateDirect(uint8_t* out, size_t length);

  struct State;
  std::unique_ptr<State> state_;
  bool deterministic_;
  // Small requests are served from a pool filled 4 KiB at a time: each CTR-DRBG call
  // re-keys AES, which costs more than the bytes of a 32-byte request.
  Bytes pool_;
  size_t poolUsed_ = 0;
};

}  // namespace hsm
