#include "object.h"

#include <cstring>

namespace hsm {

namespace {
uint32_t readU32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}
}  // namespace

CK_RV decodeTemplate(ByteView encoded, Template& out) {
  out.clear();
  if (encoded.size < 4) return CKR_ARGUMENTS_BAD;
  uint32_t count = readU32(encoded.data);
  size_t offset = 4;
  if (count > kMaxTemplateAttributes) return CKR_ARGUMENTS_BAD;
  out.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    if (encoded.size - offset < 8) return CKR_ARGUMENTS_BAD;
    uint32_t type = readU32(encoded.data + offset);
    uint32_t length = readU32(encoded.data + offset + 4);
    offset += 8;
    if (encoded.size - offset < length) return CKR_ARGUMENTS_BAD;
    out.push_back({type, ByteView(encoded.data + offset, length)});
    offset += length;
  }
  return offset == encoded.size ? CKR_OK : CKR_ARGUMENTS_BAD;
}

Bytes encodeUlong(CK_ULONG value) {
  Bytes out(sizeof(CK_ULONG));
  memcpy(out.data(), &value, sizeof value);
  return out;
}

Bytes encodeBool(bool value) { return Bytes(1, value ? 1 : 0); }

bool readUlong(ByteView value, CK_ULONG* out) {
  if (value.size != sizeof(CK_ULONG)) return false;
  memcpy(out, value.data, sizeof(CK_ULONG));
  return true;
}

bool Object::flag(CK_ULONG type, bool fallback) const {
  if (type >= CKA_ENCRYPT && type <= CKA_DERIVE && has(type)) return (hot_.usage >> (type - CKA_ENCRYPT)) & 1;
  auto it = attributes.find(type);
  if (it == attributes.end() || it->second.size() != 1) return fallback;
  return it->second[0] != 0;
}

CK_ULONG Object::ulong(CK_ULONG type, CK_ULONG fallback) const {
  auto it = attributes.find(type);
  CK_ULONG value;
  if (it == attributes.end() || !readUlong(it->second, &value)) return fallback;
  return value;
}

const Bytes* Object::bytes(CK_ULONG type) const {
  auto it = attributes.find(type);
  return it == attributes.end() ? nullptr : &it->second;
}

ByteView Object::view(CK_ULONG type) const {
  const Bytes* b = bytes(type);
  return b ? ByteView(*b) : ByteView();
}

void Object::refreshHot() {
  auto readFlag = [this](CK_ULONG type) {
    auto it = attributes.find(type);
    return it != attributes.end() && it->second.size() == 1 && it->second[0] != 0;
  };
  hot_.objectClass = ulong(CKA_CLASS);
  hot_.keyType = ulong(CKA_KEY_TYPE);
  hot_.owner = ulong(CKA_HSMSIM_OWNER, 0);
  hot_.isToken = readFlag(CKA_TOKEN);
  hot_.isPrivate = readFlag(CKA_PRIVATE);
  const Bytes* list = bytes(CKA_ALLOWED_MECHANISMS);
  hot_.restricted = list != nullptr && !list->empty();
  hot_.usage = 0;
  for (CK_ULONG type = CKA_ENCRYPT; type <= CKA_DERIVE; ++type)
    if (readFlag(type)) hot_.usage |= 1u << (type - CKA_ENCRYPT);
}

bool Object::allowsMechanism(CK_ULONG mechanism) const {
  if (!hot_.restricted) return true;
  const Bytes* list = bytes(CKA_ALLOWED_MECHANISMS);
  if (list == nullptr || list->empty()) return true;
  for (size_t i = 0; i + sizeof(CK_ULONG) <= list->size(); i += sizeof(CK_ULONG)) {
    CK_ULONG m;
    memcpy(&m, list->data() + i, sizeof m);
    if (m == mechanism) return true;
  }
  return false;
}

std::vector<CK_ULONG> Object::sharedWith() const {
  std::vector<CK_ULONG> out;
  const Bytes* list = bytes(CKA_HSMSIM_SHARED);
  for (size_t i = 0; list && i + sizeof(CK_ULONG) <= list->size(); i += sizeof(CK_ULONG)) {
    CK_ULONG p;
    memcpy(&p, list->data() + i, sizeof p);
    out.push_back(p);
  }
  return out;
}

bool Object::isSharedWith(CK_ULONG principal) const {
  for (CK_ULONG p : sharedWith())
    if (p == principal) return true;
  return false;
}

void Object::setSharedWith(const std::vector<CK_ULONG>& principals) {
  Bytes list(principals.size() * sizeof(CK_ULONG));
  if (!principals.empty()) memcpy(list.data(), principals.data(), list.size());
  set(CKA_HSMSIM_SHARED, std::move(list));
}

size_t Object::size() const {
  size_t total = 0;
  for (const auto& entry : attributes) total += 16 + entry.second.size();
  return total;
}

}  // namespace hsm
