// The little-endian attribute codec masked records use (masked.cc), shared with the sealed
// token records (token_record.cc).
#pragma once
#include "object.h"

namespace hsm {

void putLe(Bytes& out, uint64_t value, int bytes);
uint64_t getLe(const uint8_t* p, int bytes);
// u32 count, then per attribute u64 type, u32 length, bytes.
Bytes serializeAttributes(const AttributeMap& attributes);
// False on any malformed or trailing byte.
bool deserializeAttributes(ByteView in, AttributeMap& out);

}  // namespace hsm
