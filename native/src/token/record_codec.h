// The little-endian attribute codec masked records use (masked.cc), and their AES-256-GCM seal
// under the token's masking key, shared with the sealed token records (token_record.cc).
#pragma once
#include "object.h"
#include "token.h"

namespace hsm {

void putLe(Bytes& out, uint64_t value, int bytes);
uint64_t getLe(const uint8_t* p, int bytes);
// u32 count, then per attribute u64 type, u32 length, bytes.
Bytes serializeAttributes(const AttributeMap& attributes);
// False on any malformed or trailing byte.
bool deserializeAttributes(ByteView in, AttributeMap& out);

// Appends iv (12) ‖ AES-256-GCM(plain) ‖ tag (16) under `token`'s masking key to `record`, which
// holds `headerSize` bytes of header; the header and `binding` are the authenticated data.
CK_RV sealRecord(Token& token, Bytes& record, size_t headerSize, ByteView binding, const Bytes& plain);
// Opens what sealRecord made into `plain`; false when a byte was changed, the binding differs or
// another masking key sealed it.
bool openRecord(const Token& token, ByteView record, size_t headerSize, ByteView binding, Bytes& plain);

}  // namespace hsm
