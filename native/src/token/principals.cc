// The device profile's hooks: principals logged in by the layer above, ownership and
// sharing of objects, and the masking key kept in a file.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "../crypto/hash_mac.h"
#include "module.h"

namespace hsm {

CK_RV Module::loginPrincipal(CK_ULONG handle, CK_ULONG principal) {
  Session* s = nullptr;
  CK_RV rv = findSession(handle, s);
  if (rv != CKR_OK) return rv;
  if (principal == 0) return CKR_ARGUMENTS_BAD;
  Login& l = loginOf(*s);
  if (l.user == CKU_USER && l.principal == principal) return CKR_USER_ALREADY_LOGGED_IN;
  if (l.user != CKU_NONE) return CKR_USER_ANOTHER_ALREADY_LOGGED_IN;
  l.user = CKU_USER;
  l.principal = principal;
  return CKR_OK;
}

CK_RV Module::shareObject(CK_ULONG slotId, CK_ULONG object, CK_ULONG actingPrincipal, CK_ULONG principal, bool share) {
  if (token(slotId) == nullptr) return CKR_SLOT_ID_INVALID;
  auto it = objects_.find(object);
  if (it == objects_.end() || it->second->slotId != slotId) return CKR_OBJECT_HANDLE_INVALID;
  Object& o = *it->second;
  if (actingPrincipal == 0 || principal == 0) return CKR_ARGUMENTS_BAD;
  if (o.owner() != actingPrincipal) {
    // Someone the key is shared with may know it exists; anyone else may not.
    return o.isSharedWith(actingPrincipal) ? CKR_ACTION_PROHIBITED : CKR_OBJECT_HANDLE_INVALID;
  }
  if (o.objectClass() == CKO_DATA) return CKR_KEY_HANDLE_INVALID;  // only keys are shared
  std::vector<CK_ULONG> shared = o.sharedWith();
  auto at = std::find(shared.begin(), shared.end(), principal);
  if (share && at == shared.end() && principal != actingPrincipal) shared.push_back(principal);
  if (!share && at != shared.end()) shared.erase(at);
  o.setSharedWith(shared);
  return CKR_OK;
}

CK_RV Module::setTrusted(CK_ULONG slotId, CK_ULONG object, bool trusted) {
  if (token(slotId) == nullptr) return CKR_SLOT_ID_INVALID;
  auto it = objects_.find(object);
  if (it == objects_.end() || it->second->slotId != slotId) return CKR_OBJECT_HANDLE_INVALID;
  Object& o = *it->second;
  if (o.objectClass() != CKO_PUBLIC_KEY && o.objectClass() != CKO_SECRET_KEY) return CKR_ATTRIBUTE_TYPE_INVALID;
  o.setFlag(CKA_TRUSTED, trusted);
  return CKR_OK;
}

CK_RV Module::removeObject(CK_ULONG slotId, CK_ULONG object) {
  if (token(slotId) == nullptr) return CKR_SLOT_ID_INVALID;
  auto it = objects_.find(object);
  if (it == objects_.end() || it->second->slotId != slotId || !it->second->isToken()) return CKR_OBJECT_HANDLE_INVALID;
  objects_.erase(it);
  return CKR_OK;
}

CK_RV Module::ownership(CK_ULONG slotId, CK_ULONG object, CK_ULONG& owner, std::vector<CK_ULONG>& shared) const {
  auto it = objects_.find(object);
  if (token(slotId) == nullptr) return CKR_SLOT_ID_INVALID;
  if (it == objects_.end() || it->second->slotId != slotId) return CKR_OBJECT_HANDLE_INVALID;
  owner = it->second->owner();
  shared = it->second->sharedWith();
  return CKR_OK;
}

CK_RV Module::saveMaskingKey(CK_ULONG slotId, const std::string& path) const {
  const Token* t = token(slotId);
  if (t == nullptr) return CKR_SLOT_ID_INVALID;
  if (!t->initialized) return CKR_TOKEN_NOT_RECOGNIZED;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return CKR_FUNCTION_FAILED;
  bool ok = ::write(fd, t->maskingKey.data(), t->maskingKey.size()) == static_cast<ssize_t>(t->maskingKey.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) ::unlink(path.c_str());
  return ok ? CKR_OK : CKR_FUNCTION_FAILED;
}

CK_RV Module::loadMaskingKey(CK_ULONG slotId, const std::string& path) {
  Token* t = token(slotId);
  if (t == nullptr) return CKR_SLOT_ID_INVALID;
  if (!t->initialized) return CKR_TOKEN_NOT_RECOGNIZED;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return CKR_FUNCTION_FAILED;
  struct stat info;
  Bytes key(33, 0);  // one byte more than a key: a longer file is not a masking key
  bool ok = ::fstat(fd, &info) == 0 && (info.st_mode & 077) == 0 && ::read(fd, key.data(), key.size()) == 32;
  ::close(fd);
  if (!ok) return CKR_FUNCTION_FAILED;
  key.resize(32);
  t->maskingKey = std::move(key);
  return CKR_OK;
}

CK_RV Module::revokePrincipal(CK_ULONG principal) {
  if (principal == 0) return CKR_ARGUMENTS_BAD;
  for (const auto& slot : slots_) {
    Token& t = *slot;
    for (auto& entry : t.logins) {
      if (entry.second.principal != principal) continue;
      entry.second = Login();  // the application's sessions are public sessions from now on
      CK_ULONG application = entry.first;
      destroySessionObjects(t.slotId, 0, true, application);
      for (auto& held : sessions_) {
        Session& s = *held.second;
        if (s.slotId != t.slotId || s.application != application) continue;
        // Every operation ends: none may go on with a key the principal no longer reaches.
        s.encrypt.reset();
        s.decrypt.reset();
        s.sign = SignOperation();
        s.verify = SignOperation();
        s.digest = DigestOperation();
        s.find = FindOperation();
      }
    }
  }
  // Session objects the principal made (public ones included) go with it.
  for (auto it = objects_.begin(); it != objects_.end();) {
    if (!it->second->isToken() && it->second->owner() == principal) it = objects_.erase(it); else ++it;
  }
  return CKR_OK;
}

namespace {
constexpr size_t kMacKeyBytes = 32;
}  // namespace

CK_RV Module::deviceMac(CK_ULONG slotId, CK_ULONG purpose, ByteView data, Bytes& mac) {
  Token* t = token(slotId);
  if (t == nullptr) return CKR_SLOT_ID_INVALID;
  if (!t->initialized || t->maskingKey.size() != 32) return CKR_TOKEN_NOT_RECOGNIZED;
  if (purpose == 0 || purpose > 255) return CKR_ARGUMENTS_BAD;
  DerivedMacKey& derived = macKeys_[{slotId, purpose}];
  // Derived again whenever the masking key changed (loaded from a file, received from another chip).
  if (derived.key.size() != kMacKeyBytes || derived.source.size() != t->maskingKey.size() ||
      !constantTimeEqual(derived.source.data(), t->maskingKey.data(), t->maskingKey.size())) {
    static const char kLabel[] = "hsmsim device mac";
    const uint8_t info[2] = {'P', static_cast<uint8_t>(purpose)};
    derived.key.assign(kMacKeyBytes, 0);
    if (!hkdfSha256(t->maskingKey, ByteView(reinterpret_cast<const uint8_t*>(kLabel), sizeof kLabel - 1),
                    ByteView(info, sizeof info), derived.key.data(), kMacKeyBytes)) {
      derived.key.clear();
      return CKR_FUNCTION_FAILED;
    }
    derived.source = t->maskingKey;
    derived.hmac = std::make_shared<Hmac>();
  }
  mac.assign(32, 0);
  Hmac& hmac = *derived.hmac;
  if (hmac.init(HashAlg::Sha256, derived.key, 1) != CryptoStatus::Ok || hmac.update(data) != CryptoStatus::Ok ||
      hmac.finish(mac.data()) != CryptoStatus::Ok)
    return CKR_FUNCTION_FAILED;
  return CKR_OK;
}

}  // namespace hsm
