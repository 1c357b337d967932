// Benchmark reference: AES-GCM encryption straight through OpenSSL EVP, no token in
// between, so the bench can report hsmsim as a share of what OpenSSL alone does.
#pragma once
#include "bytes.h"

namespace hsm {

// Encrypts `in` `iterations` times with a fresh IV setup each time (the key schedule kept,
// as hsmsim keeps it). Returns false when OpenSSL refuses.
bool rawGcmEncryptLoop(ByteView key, ByteView iv, ByteView in, uint8_t* out, uint8_t* tag, unsigned iterations);

}  // namespace hsm
