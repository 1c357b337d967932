// Token objects: attribute maps (every value in wiping memory) plus cached key contexts.
#pragma once
#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "../crypto/bytes.h"
#include "../crypto/pkey.h"
#include "ck.h"

namespace hsm {

// Attributes sorted by type in one vector: an object has a few dozen, and lookups on the
// hot path (usage flags, key type, value) stay in one cache-friendly block.
class AttributeMap {
 public:
  using Entry = std::pair<CK_ULONG, Bytes>;
  using const_iterator = std::vector<Entry>::const_iterator;
  const_iterator begin() const { return entries_.begin(); }
  const_iterator end() const { return entries_.end(); }
  size_t size() const { return entries_.size(); }
  const_iterator find(CK_ULONG type) const {
    auto it = lower(type);
    return it != entries_.end() && it->first == type ? it : entries_.end();
  }
  size_t count(CK_ULONG type) const { return find(type) != end() ? 1 : 0; }
  Bytes& operator[](CK_ULONG type) {
    auto it = std::lower_bound(entries_.begin(), entries_.end(), type,
                               [](const Entry& e, CK_ULONG t) { return e.first < t; });
    if (it == entries_.end() || it->first != type) it = entries_.insert(it, Entry(type, Bytes()));
    return it->second;
  }

 private:
  const_iterator lower(CK_ULONG type) const {
    return std::lower_bound(entries_.begin(), entries_.end(), type,
                            [](const Entry& e, CK_ULONG t) { return e.first < t; });
  }
  std::vector<Entry> entries_;
};

// One attribute of a caller's template: a view into the caller's encoded buffer.
struct TemplateAttribute {
  CK_ULONG type;
  ByteView value;
};
using Template = std::vector<TemplateAttribute>;

// Wire format from TypeScript: u32 count, then per attribute u32 type, u32 length, bytes.
// At most kMaxTemplateAttributes attributes (CKR_ARGUMENTS_BAD beyond).
constexpr uint32_t kMaxTemplateAttributes = 4096;
CK_RV decodeTemplate(ByteView encoded, Template& out);

Bytes encodeUlong(CK_ULONG value);
Bytes encodeBool(bool value);
bool readUlong(ByteView value, CK_ULONG* out);

struct Object {
  CK_ULONG handle = 0;
  CK_ULONG slotId = 0;
  CK_ULONG ownerSession = 0;  // session objects only
  CK_ULONG ownerApplication = 0;  // session objects: visible to this application's sessions only
  uint64_t keyId = 0;         // identifies this key material for keyed-context reuse
  AttributeMap attributes;

  // Lazily built asymmetric key; guarded by the module lock like everything here.
  Pkey pkey;
  Curve curve = Curve::None;

  bool has(CK_ULONG type) const { return attributes.count(type) != 0; }
  bool flag(CK_ULONG type, bool fallback = false) const;
  CK_ULONG ulong(CK_ULONG type, CK_ULONG fallback = CK_UNAVAILABLE_INFORMATION) const;
  const Bytes* bytes(CK_ULONG type) const;
  ByteView view(CK_ULONG type) const;
  CK_ULONG objectClass() const { return hot_.objectClass; }
  CK_ULONG keyType() const { return hot_.keyType; }
  bool isToken() const { return hot_.isToken; }
  bool isPrivate() const { return hot_.isPrivate; }
  void set(CK_ULONG type, Bytes value) {
    attributes[type] = std::move(value);
    if (type <= CKA_PRIVATE || type == CKA_KEY_TYPE || (type >= CKA_ENCRYPT && type <= CKA_DERIVE) ||
        type == CKA_ALLOWED_MECHANISMS || type == CKA_HSMSIM_OWNER)
      refreshHot();
  }
  void setFlag(CK_ULONG type, bool value) { set(type, encodeBool(value)); }
  void setUlong(CK_ULONG type, CK_ULONG value) { set(type, encodeUlong(value)); }
  // Whether `mechanism` is allowed by CKA_ALLOWED_MECHANISMS (absent or empty: all).
  bool allowsMechanism(CK_ULONG mechanism) const;
  // Recomputes the cached hot attributes; call after writing `attributes` directly.
  void refreshHot();
  // Serialized size of the attributes, for C_GetObjectSize.
  size_t size() const;
  // Ownership (device profile): 0 means no owner, visible as standard PKCS#11 says.
  CK_ULONG owner() const { return hot_.owner; }
  std::vector<CK_ULONG> sharedWith() const;
  bool isSharedWith(CK_ULONG principal) const;
  void setSharedWith(const std::vector<CK_ULONG>& principals);
  bool isAsymmetric() const { return objectClass() == CKO_PUBLIC_KEY || objectClass() == CKO_PRIVATE_KEY; }

 private:
  // What every operation checks, read without searching the attribute map.
  struct Hot {
    CK_ULONG objectClass = CK_UNAVAILABLE_INFORMATION;
    CK_ULONG keyType = CK_UNAVAILABLE_INFORMATION;
    CK_ULONG owner = 0;
    bool isToken = false, isPrivate = false, restricted = false;
    uint32_t usage = 0;  // bit (type - CKA_ENCRYPT) for CKA_ENCRYPT..CKA_DERIVE
  } hot_;
};

using ObjectPtr = std::shared_ptr<Object>;

}  // namespace hsm
