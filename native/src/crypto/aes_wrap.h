// AES key wrap: RFC 3394 (KW, input a multiple of 8 bytes, at least 16) and RFC 5649
// (KWP, any non-empty input).
#pragma once
#include "bytes.h"
#include "status.h"

namespace hsm {

CryptoStatus aesWrap(bool padded, ByteView kek, ByteView plaintext, Bytes& wrapped);
CryptoStatus aesUnwrap(bool padded, ByteView kek, ByteView wrapped, Bytes& plaintext);
size_t aesWrapLength(bool padded, size_t plaintextLength);

}  // namespace hsm
