// Sealed token records: a whole token — label, serial, the SO and user PIN verifiers with
// their failure counters, and every token object with its key material — sealed in one
// AES-256-GCM record under the token's masking key, so a layer above can keep a token in a
// file across processes without a PIN verifier or a key ever leaving native memory in clear.
// Session objects, sessions and logins never go into a record.
//
// Record: "HSMK" | version (1) | IV (12) | ciphertext | tag (16); AAD = the 5-byte header | binding.
// Plaintext: u32 pinHashIterations | label (32) | serial (16) | SO PIN | user PIN |
//            u32 object count | per object: u32 length | attributes (record_codec.h)
// PIN: u8 set | u32 failures | u8 salt length | salt | u8 hash length | hash
// The binding (the layer above's file header) is authenticated, not stored: a record read
// back under another header — another token's name, an edited label — does not open.
#include <cstring>

#include "module.h"
#include "record_codec.h"

namespace hsm {

namespace {
const uint8_t kMagic[4] = {'H', 'S', 'M', 'K'};
constexpr uint8_t kVersion = 1;
constexpr size_t kHeader = 5;
constexpr size_t kMaxBinding = 4096;
constexpr size_t kMaxRecord = size_t{1} << 30;
constexpr size_t kLabel = 32, kSerial = 16;

void putPin(Bytes& out, const PinRecord& pin) {
  out.push_back(pin.set ? 1 : 0);
  putLe(out, pin.failures > 0xffffffffu ? 0xffffffffu : pin.failures, 4);
  out.push_back(static_cast<uint8_t>(pin.salt.size()));
  out.insert(out.end(), pin.salt.begin(), pin.salt.end());
  out.push_back(static_cast<uint8_t>(pin.hash.size()));
  out.insert(out.end(), pin.hash.begin(), pin.hash.end());
}

// A bounds-checked reader over the plaintext: every read fails once past the end.
struct Reader {
  ByteView in;
  size_t offset = 0;
  bool ok = true;
  bool take(size_t n, const uint8_t*& p) {
    if (!ok || in.size - offset < n) return ok = false;
    p = in.data + offset;
    offset += n;
    return true;
  }
  uint64_t le(int bytes) {
    const uint8_t* p = nullptr;
    return take(bytes, p) ? getLe(p, bytes) : 0;
  }
  Bytes bytes(size_t n) {
    const uint8_t* p = nullptr;
    return take(n, p) ? Bytes(p, p + n) : Bytes();
  }
};

bool readPin(Reader& r, PinRecord& pin) {
  uint64_t set = r.le(1);
  pin.failures = r.le(4);
  pin.salt = r.bytes(r.le(1));
  pin.hash = r.bytes(r.le(1));
  pin.set = set == 1;
  // An unset PIN has no verifier; a set one has PBKDF2's 16-byte salt and 32-byte hash.
  return r.ok && set <= 1 && (pin.set ? pin.salt.size() == 16 && pin.hash.size() == 32 : pin.salt.empty() && pin.hash.empty());
}
}  // namespace

CK_RV Module::exportToken(CK_ULONG slotId, ByteView binding, Bytes& record) {
  if (binding.size > kMaxBinding) return CKR_ARGUMENTS_BAD;
  Token* t = token(slotId);
  if (t == nullptr) return CKR_SLOT_ID_INVALID;
  if (!t->initialized || t->maskingKey.size() != 32) return CKR_TOKEN_NOT_RECOGNIZED;
  Bytes plain;
  putLe(plain, config_.pinHashIterations, 4);
  plain.insert(plain.end(), t->label.begin(), t->label.end());
  plain.insert(plain.end(), t->serial.begin(), t->serial.end());
  putPin(plain, t->soPin);
  putPin(plain, t->userPin);
  size_t countAt = plain.size();
  putLe(plain, 0, 4);
  uint32_t count = 0;
  for (const auto& entry : objects_) {
    const Object& o = *entry.second;
    if (o.slotId != slotId || !o.isToken()) continue;
    Bytes attributes = serializeAttributes(o.attributes);
    putLe(plain, attributes.size(), 4);
    plain.insert(plain.end(), attributes.begin(), attributes.end());
    ++count;
  }
  for (int i = 0; i < 4; ++i) plain[countAt + i] = static_cast<uint8_t>(count >> (8 * i));
  record.assign(kMagic, kMagic + 4);
  record.push_back(kVersion);
  return sealRecord(*t, record, kHeader, binding, plain);
}

CK_RV Module::importToken(CK_ULONG slotId, ByteView record, ByteView binding) {
  if (binding.size > kMaxBinding || record.size > kMaxRecord) return CKR_ARGUMENTS_BAD;
  Token* t = token(slotId);
  if (t == nullptr) return CKR_SLOT_ID_INVALID;
  if (!t->initialized || t->maskingKey.size() != 32) return CKR_TOKEN_NOT_RECOGNIZED;
  for (const auto& entry : sessions_)
    if (entry.second->slotId == slotId) return CKR_SESSION_EXISTS;
  if (record.size < kHeader || memcmp(record.data, kMagic, 4) != 0 || record.data[4] != kVersion) return CKR_DATA_INVALID;
  Bytes plain;
  if (!openRecord(*t, record, kHeader, binding, plain)) return CKR_DATA_INVALID;  // tampered, another binding, or another masking key

  // Everything is parsed and built before the token changes: an import is all or nothing.
  Reader r{ByteView(plain.data(), plain.size())};
  // PIN verifiers are PBKDF2 with the module's iteration count: another count could never verify.
  if (r.le(4) != config_.pinHashIterations) return CKR_DATA_INVALID;
  Bytes label = r.bytes(kLabel), serial = r.bytes(kSerial);
  PinRecord so, user;
  if (!r.ok || !readPin(r, so) || !readPin(r, user) || !so.set) return CKR_DATA_INVALID;
  uint64_t count = r.le(4);
  std::vector<ObjectPtr> loaded;
  for (uint64_t i = 0; r.ok && i < count; ++i) {
    uint64_t length = r.le(4);
    const uint8_t* p = nullptr;
    if (!r.take(length, p)) break;
    auto object = std::make_shared<Object>();
    if (!deserializeAttributes(ByteView(p, length), object->attributes)) return CKR_DATA_INVALID;
    object->refreshHot();
    if (!object->isToken() || buildKeyMaterial(*object) != CKR_OK) return CKR_DATA_INVALID;
    loaded.push_back(std::move(object));
  }
  if (!r.ok || r.offset != plain.size()) return CKR_DATA_INVALID;

  for (auto it = objects_.begin(); it != objects_.end();) {
    if (it->second->slotId == slotId) it = objects_.erase(it); else ++it;
  }
  t->label.assign(label.begin(), label.end());
  t->serial.assign(serial.begin(), serial.end());
  t->soPin = std::move(so);
  t->userPin = std::move(user);
  t->logins.clear();
  for (auto& object : loaded) {
    object->slotId = slotId;
    object->handle = nextObject_++;
    object->keyId = nextKeyId_++;
    objects_[object->handle] = std::move(object);
  }
  return CKR_OK;
}

}  // namespace hsm
