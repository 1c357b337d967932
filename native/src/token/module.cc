// Slots, tokens, sessions, login and PINs.
#include "module.h"

#include <cstdio>

#include "../crypto/hash_mac.h"
#include "../crypto/algorithms.h"

namespace hsm {

namespace {
constexpr size_t kMinPin = 4, kMaxPin = 255;
constexpr uint64_t kHandleMask = (uint64_t{1} << 53) - 1;  // handles stay exact in a JavaScript number

std::string padded(ByteView text, size_t width) {
  std::string s(reinterpret_cast<const char*>(text.data), text.size < width ? text.size : width);
  s.resize(width, ' ');
  return s;
}
}  // namespace

Module::Module(ModuleConfig config) : config_(std::move(config)) {
  if (config_.maxPinFailures == 0) config_.maxPinFailures = 5;
  size_t initial = config_.fixedSlotCount ? config_.fixedSlotCount : 1;
  for (size_t i = 0; i < initial; ++i) addSlot();
  if (config_.deterministic) {
    Bytes seed = config_.seed;
    const char label[] = "session handles";
    seed.insert(seed.end(), label, label + sizeof label - 1);
    handleDrbg_ = std::make_unique<Drbg>(seed.data(), seed.size());
  } else {
    handleDrbg_ = std::make_unique<Drbg>(nullptr, 0);
  }
}

Module::~Module() = default;

void Module::addSlot() {
  auto t = std::make_unique<Token>();
  t->slotId = slots_.size();
  if (config_.deterministic) {
    // Each slot's DRBG is seeded from the module seed and the slot number.
    Bytes seed = config_.seed;
    for (int i = 0; i < 8; ++i) seed.push_back(static_cast<uint8_t>(t->slotId >> (8 * i)));
    t->drbg = std::make_unique<Drbg>(seed.data(), seed.size());
  } else {
    t->drbg = std::make_unique<Drbg>(nullptr, 0);
  }
  slots_.push_back(std::move(t));
}

Token* Module::token(CK_ULONG slotId) const { return slotId < slots_.size() ? slots_[slotId].get() : nullptr; }

std::vector<CK_ULONG> Module::slotList(bool tokenPresent) const {
  (void)tokenPresent;  // every slot holds a token, initialized or not
  std::vector<CK_ULONG> out;
  for (const auto& t : slots_) out.push_back(t->slotId);
  return out;
}


CK_RV Module::tokenInfo(CK_ULONG slotId, TokenInfo& out) const {
  Token* t = token(slotId);
  if (t == nullptr) return CKR_SLOT_ID_INVALID;
  out.label = t->initialized ? t->label : std::string(32, ' ');
  out.serial = t->serial.empty() ? std::string(16, ' ') : t->serial;
  out.flags = CKF_RNG | CKF_LOGIN_REQUIRED | CKF_RESTORE_KEY_NOT_NEEDED;
  if (t->initialized) out.flags |= CKF_TOKEN_INITIALIZED;
  if (t->userPin.set) out.flags |= CKF_USER_PIN_INITIALIZED;
  auto pinFlags = [this](const PinRecord& r, CK_ULONG low, CK_ULONG finalTry, CK_ULONG locked) {
    CK_ULONG f = 0;
    if (r.failures >= config_.maxPinFailures) return locked;
    if (r.failures > 0) f |= low;
    if (r.failures + 1 == config_.maxPinFailures) f |= finalTry;
    return f;
  };
  out.flags |= pinFlags(t->userPin, CKF_USER_PIN_COUNT_LOW, CKF_USER_PIN_FINAL_TRY, CKF_USER_PIN_LOCKED);
  out.flags |= pinFlags(t->soPin, CKF_SO_PIN_COUNT_LOW, CKF_SO_PIN_FINAL_TRY, CKF_SO_PIN_LOCKED);
  out.sessionCount = out.rwSessionCount = 0;
  for (const auto& entry : sessions_) {
    if (entry.second->slotId != slotId) continue;
    ++out.sessionCount;
    if (entry.second->readWrite) ++out.rwSessionCount;
  }
  out.minPinLength = kMinPin;
  out.maxPinLength = kMaxPin;
  size_t used = 0;
  for (const auto& entry : objects_)
    if (entry.second->slotId == slotId) used += entry.second->size();
  out.totalMemory = 64u << 20;
  out.freeMemory = used < out.totalMemory ? out.totalMemory - used : 0;
  return CKR_OK;
}

CK_RV Module::initToken(CK_ULONG slotId, ByteView soPin, ByteView label) {
  Token* t = token(slotId);
  if (t == nullptr) return CKR_SLOT_ID_INVALID;
  // The device's accounts replace PKCS#11's PINs: only the device initializes its token.
  if (config_.deviceProfile && callerIsApplication()) return CKR_FUNCTION_NOT_SUPPORTED;
  for (const auto& entry : sessions_)
    if (entry.second->slotId == slotId) return CKR_SESSION_EXISTS;
  if (t->initialized) {
    CK_RV rv = checkPin(t->soPin, soPin);
    if (rv != CKR_OK) return rv;
  }
  if (soPin.size < kMinPin || soPin.size > kMaxPin) return CKR_PIN_LEN_RANGE;
  bool wasNew = !t->initialized;
  for (auto it = objects_.begin(); it != objects_.end();) {
    if (it->second->slotId == slotId) it = objects_.erase(it); else ++it;
  }
  t->userPin = PinRecord();
  setPinRecord(*t, t->soPin, soPin);
  t->label = padded(label, 32);
  t->maskingKey.assign(32, 0);
  if (!t->drbg->generate(t->maskingKey.data(), t->maskingKey.size())) return CKR_FUNCTION_FAILED;
  uint8_t serialBytes[8];
  t->drbg->generate(serialBytes, sizeof serialBytes);
  char serial[17];
  for (int i = 0; i < 8; ++i) snprintf(serial + 2 * i, 3, "%02x", serialBytes[i]);
  t->serial = serial;
  t->initialized = true;
  t->logins.clear();
  // SoftHSMv2 style: initializing the last free slot makes a new free one appear.
  if (wasNew && config_.fixedSlotCount == 0 && slotId + 1 == slots_.size()) addSlot();
  return CKR_OK;
}

void Module::setPinRecord(Token& t, PinRecord& record, ByteView pin) {
  record.salt.assign(16, 0);
  t.drbg->generate(record.salt.data(), record.salt.size());
  record.hash.assign(32, 0);
  pbkdf2Sha256(pin, record.salt, config_.pinHashIterations, record.hash.data(), record.hash.size());
  record.failures = 0;
  record.set = true;
}

CK_RV Module::checkPin(PinRecord& record, ByteView pin) {
  if (!record.set) return CKR_USER_PIN_NOT_INITIALIZED;
  if (record.failures >= config_.maxPinFailures) return CKR_PIN_LOCKED;
  uint8_t candidate[32];
  bool ok = pbkdf2Sha256(pin, record.salt, config_.pinHashIterations, candidate, sizeof candidate) &&
            constantTimeEqual(candidate, record.hash.data(), sizeof candidate);
  secureWipe(candidate, sizeof candidate);
  if (!ok) {
    ++record.failures;
    return CKR_PIN_INCORRECT;
  }
  record.failures = 0;
  return CKR_OK;
}

CK_RV Module::findSession(CK_ULONG handle, Session*& out) {
  Session* s = lastSession_;
  if (handle == 0 || handle != lastSessionHandle_) {
    auto it = sessions_.find(handle);
    if (it == sessions_.end()) return CKR_SESSION_HANDLE_INVALID;
    s = it->second.get();
    lastSessionHandle_ = handle;
    lastSession_ = s;
  }
  // Another application's session does not exist for this caller.
  if (s->application != caller_ && caller_ != kAnyApplication) return CKR_SESSION_HANDLE_INVALID;
  if (s->busy && handle != executingAsync_) return CKR_OPERATION_ACTIVE;
  out = s;
  return CKR_OK;
}

CK_RV Module::markBusy(CK_ULONG handle) {
  Session* s = nullptr;
  CK_RV rv = findSession(handle, s);
  if (rv == CKR_OK) s->busy = true;
  return rv;
}

void Module::clearBusy(CK_ULONG handle) {
  auto it = sessions_.find(handle);
  if (it != sessions_.end()) it->second->busy = false;
}

CK_RV Module::openSession(CK_ULONG slotId, CK_ULONG flags, CK_ULONG& handle, CK_ULONG application) {
  Token* t = token(slotId);
  if (t == nullptr) return CKR_SLOT_ID_INVALID;
  if (!(flags & CKF_SERIAL_SESSION)) return CKR_SESSION_PARALLEL_NOT_SUPPORTED;
  if (!t->initialized) return CKR_TOKEN_NOT_RECOGNIZED;
  bool rw = (flags & CKF_RW_SESSION) != 0;
  if (application >= nextApplication_) return CKR_ARGUMENTS_BAD;
  if (!rw && t->logins[application].user == CKU_SO) return CKR_SESSION_READ_WRITE_SO_EXISTS;
  size_t& count = sessionCounts_[application];
  if (count >= config_.maxSessionsPerApplication) return CKR_SESSION_COUNT;
  auto s = std::make_unique<Session>();
  CK_RV rv = newSessionHandle(s->handle);
  if (rv != CKR_OK) return rv;
  s->slotId = slotId;
  s->application = application;
  s->readWrite = rw;
  handle = s->handle;
  sessions_[handle] = std::move(s);
  ++count;
  return CKR_OK;
}

CK_RV Module::newSessionHandle(CK_ULONG& out) {
  // Random, nonzero, unique and below 2^53: another application cannot guess a live handle.
  for (int attempt = 0; attempt < 64; ++attempt) {
    uint64_t value = 0;
    if (!handleDrbg_->generate(reinterpret_cast<uint8_t*>(&value), sizeof value)) return CKR_FUNCTION_FAILED;
    value &= kHandleMask;
    if (value != 0 && sessions_.count(static_cast<CK_ULONG>(value)) == 0) {
      out = static_cast<CK_ULONG>(value);
      return CKR_OK;
    }
  }
  return CKR_FUNCTION_FAILED;
}

void Module::forgetSession(const Session& s) {
  auto count = sessionCounts_.find(s.application);
  if (count != sessionCounts_.end() && --count->second == 0) sessionCounts_.erase(count);
  lastSessionHandle_ = 0;
  lastSession_ = nullptr;
}

CK_RV Module::closeSession(CK_ULONG handle) {
  auto it = sessions_.find(handle);
  if (it == sessions_.end()) return CKR_SESSION_HANDLE_INVALID;
  CK_ULONG slotId = it->second->slotId, application = it->second->application;
  if (application != caller_ && caller_ != kAnyApplication) return CKR_SESSION_HANDLE_INVALID;
  destroySessionObjects(slotId, handle, false);
  forgetSession(*it->second);
  sessions_.erase(it);
  // The application's last session on the token closed: the application logs out.
  if (!hasSessions(slotId, application)) token(slotId)->logins.erase(application);
  return CKR_OK;
}

bool Module::hasSessions(CK_ULONG slotId, CK_ULONG application) const {
  for (const auto& entry : sessions_)
    if (entry.second->slotId == slotId && entry.second->application == application) return true;
  return false;
}

CK_RV Module::closeAllSessions(CK_ULONG slotId, CK_ULONG application) {
  Token* t = token(slotId);
  if (t == nullptr) return CKR_SLOT_ID_INVALID;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (it->second->slotId == slotId && it->second->application == application) {
      destroySessionObjects(slotId, it->first, false);
      forgetSession(*it->second);
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
  t->logins.erase(application);
  return CKR_OK;
}

void Module::closeApplication(CK_ULONG application) {
  for (const auto& t : slots_) closeAllSessions(t->slotId, application);
}

void Module::destroySessionObjects(CK_ULONG slotId, CK_ULONG sessionHandle, bool onlyPrivate, CK_ULONG application) {
  for (auto it = objects_.begin(); it != objects_.end();) {
    const Object& o = *it->second;
    bool mine;
    if (sessionHandle != 0) {
      mine = o.ownerSession == sessionHandle;
    } else {
      mine = o.ownerApplication == application;
    }
    bool match = o.slotId == slotId && !o.isToken() && mine && (!onlyPrivate || o.isPrivate());
    if (match) it = objects_.erase(it); else ++it;
  }
}

CK_RV Module::sessionInfo(CK_ULONG handle, SessionInfo& out) {
  Session* s = nullptr;
  CK_RV rv = findSession(handle, s);
  if (rv != CKR_OK) return rv;
  CK_ULONG who = loginOf(*s).user;
  out.slotId = s->slotId;
  out.flags = CKF_SERIAL_SESSION | (s->readWrite ? CKF_RW_SESSION : 0);
  if (who == CKU_SO) out.state = CKS_RW_SO_FUNCTIONS;
  else if (who == CKU_USER) out.state = s->readWrite ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS;
  else out.state = s->readWrite ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION;
  return CKR_OK;
}

CK_RV Module::login(CK_ULONG handle, CK_ULONG userType, ByteView pin) {
  Session* s = nullptr;
  CK_RV rv = findSession(handle, s);
  if (rv != CKR_OK) return rv;
  // Device profile: the device checks passwords and calls loginPrincipal; no PIN login here.
  if (config_.deviceProfile) return CKR_FUNCTION_NOT_SUPPORTED;
  Token& t = tokenOf(*s);
  Login& l = loginOf(*s);
  if (userType != CKU_SO && userType != CKU_USER && userType != CKU_CONTEXT_SPECIFIC) return CKR_USER_TYPE_INVALID;
  if (userType == CKU_CONTEXT_SPECIFIC) {
    if (l.user == CKU_NONE) return CKR_USER_NOT_LOGGED_IN;
    return checkPin(l.user == CKU_SO ? t.soPin : t.userPin, pin);
  }
  if (l.user == userType) return CKR_USER_ALREADY_LOGGED_IN;
  if (l.user != CKU_NONE) return CKR_USER_ANOTHER_ALREADY_LOGGED_IN;
  if (userType == CKU_SO) {
    for (const auto& entry : sessions_) {
      const Session& other = *entry.second;
      if (other.slotId == s->slotId && other.application == s->application && !other.readWrite)
        return CKR_SESSION_READ_ONLY_EXISTS;
    }
  }
  rv = checkPin(userType == CKU_SO ? t.soPin : t.userPin, pin);
  if (rv == CKR_OK) l.user = userType;
  return rv;
}

CK_RV Module::logout(CK_ULONG handle) {
  Session* s = nullptr;
  CK_RV rv = findSession(handle, s);
  if (rv != CKR_OK) return rv;
  Login& l = loginOf(*s);
  if (l.user == CKU_NONE) return CKR_USER_NOT_LOGGED_IN;
  l = Login();
  destroySessionObjects(s->slotId, 0, true, s->application);
  // Operations on keys that just became invisible end with the login.
  for (auto& entry : sessions_) {
    Session& other = *entry.second;
    if (other.slotId != s->slotId || other.application != s->application) continue;
    for (CipherOperation* op : {&other.encrypt, &other.decrypt})
      if (op->active && op->key && op->key->isPrivate()) *op = CipherOperation();
    for (SignOperation* op : {&other.sign, &other.verify})
      if (op->active && op->key && op->key->isPrivate()) *op = SignOperation();
    other.find = FindOperation();
  }
  return CKR_OK;
}

CK_RV Module::initPin(CK_ULONG handle, ByteView pin) {
  Session* s = nullptr;
  CK_RV rv = findSession(handle, s);
  if (rv != CKR_OK) return rv;
  if (config_.deviceProfile) return CKR_FUNCTION_NOT_SUPPORTED;
  Token& t = tokenOf(*s);
  if (loginOf(*s).user != CKU_SO) return CKR_USER_NOT_LOGGED_IN;
  if (!s->readWrite) return CKR_SESSION_READ_ONLY;
  if (pin.size < kMinPin || pin.size > kMaxPin) return CKR_PIN_LEN_RANGE;
  setPinRecord(t, t.userPin, pin);  // also unlocks a locked user PIN
  return CKR_OK;
}

CK_RV Module::setPin(CK_ULONG handle, ByteView oldPin, ByteView newPin) {
  Session* s = nullptr;
  CK_RV rv = findSession(handle, s);
  if (rv != CKR_OK) return rv;
  if (config_.deviceProfile) return CKR_FUNCTION_NOT_SUPPORTED;
  if (!s->readWrite) return CKR_SESSION_READ_ONLY;
  Token& t = tokenOf(*s);
  PinRecord& record = loginOf(*s).user == CKU_SO ? t.soPin : t.userPin;
  rv = checkPin(record, oldPin);
  if (rv != CKR_OK) return rv;
  if (newPin.size < kMinPin || newPin.size > kMaxPin) return CKR_PIN_LEN_RANGE;
  setPinRecord(t, record, newPin);
  return CKR_OK;
}

CK_RV Module::requirePrincipal(const Session& s) const {
  if (!config_.deviceProfile) return CKR_OK;
  auto login = token(s.slotId)->logins.find(s.application);
  return login != token(s.slotId)->logins.end() && login->second.principal != 0 ? CKR_OK : CKR_USER_NOT_LOGGED_IN;
}

CK_RV Module::seedRandom(CK_ULONG handle, ByteView seed) {
  Session* s = nullptr;
  CK_RV rv = findSession(handle, s);
  if (rv != CKR_OK) return rv;
  return tokenOf(*s).drbg->addInput(seed.data, seed.size) ? CKR_OK : CKR_FUNCTION_FAILED;
}

CK_RV Module::generateRandom(CK_ULONG handle, uint8_t* out, size_t length) {
  Session* s = nullptr;
  CK_RV rv = findSession(handle, s);
  if (rv != CKR_OK) return rv;
  return tokenOf(*s).drbg->generate(out, length) ? CKR_OK : CKR_FUNCTION_FAILED;
}

}  // namespace hsm
