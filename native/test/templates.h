// Encodes a template as the binding receives it from JavaScript (count, then type, length,
// value for each attribute, little-endian), for tests that drive Module directly.
#pragma once
#include <utility>
#include <vector>

#include "token/module.h"

namespace hsmtest {

inline hsm::Bytes encodeTemplate(const std::vector<std::pair<hsm::CK_ULONG, hsm::Bytes>>& attrs) {
  hsm::Bytes out;
  auto u32 = [&out](uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  u32(static_cast<uint32_t>(attrs.size()));
  for (const auto& a : attrs) {
    u32(static_cast<uint32_t>(a.first));
    u32(static_cast<uint32_t>(a.second.size()));
    out.insert(out.end(), a.second.begin(), a.second.end());
  }
  return out;
}

// Creates an object from `attrs` in `session` as C_CreateObject would; `handle` receives it.
inline hsm::CK_RV createObject(hsm::Module& m, hsm::CK_ULONG session, const std::vector<std::pair<hsm::CK_ULONG, hsm::Bytes>>& attrs,
                               hsm::CK_ULONG& handle) {
  hsm::Bytes encoded = encodeTemplate(attrs);
  hsm::Template t;
  hsm::CK_RV rv = hsm::decodeTemplate(encoded, t);
  return rv != hsm::CKR_OK ? rv : m.createObject(session, t, handle);
}

}  // namespace hsmtest
