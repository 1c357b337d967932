// The token set of one application (one loaded PKCS#11 module): slots, tokens, sessions
// and objects, with the PKCS#11 v2.40 rules. Pure C++; the binding serializes calls with
// lock(). Methods follow the C_ functions; the ones that produce output follow the
// two-call convention: out == nullptr asks for the length, a short buffer gives
// CKR_BUFFER_TOO_SMALL and keeps the operation active.
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "policy.h"
#include "session.h"
#include "token.h"

namespace hsm {

struct ModuleConfig {
  size_t fixedSlotCount = 0;  // 0: one free slot always (SoftHSMv2 style)
  CK_ULONG maxPinFailures = 5;
  unsigned pinHashIterations = 4096;
  bool deterministic = false;
  Bytes seed;
  // Key quotas per token (0: none): all keys, and public plus private keys among them.
  size_t maxKeys = 0;
  size_t maxAsymmetricKeys = 0;
  // Device profile (the HSM's chip): keys are created and used only by a principal logged in
  // through loginPrincipal, PIN logins on applications are refused, CKA_EXTRACTABLE is fixed.
  bool deviceProfile = false;
  // Open sessions one application may hold (CKR_SESSION_COUNT beyond).
  size_t maxSessionsPerApplication = 1024;
};

struct TokenInfo {
  std::string label, serial;
  CK_ULONG flags = 0, sessionCount = 0, rwSessionCount = 0, minPinLength = 4, maxPinLength = 255;
  CK_ULONG totalMemory = 0, freeMemory = 0;
};

struct SessionInfo {
  CK_ULONG slotId = 0, state = 0, flags = 0;
};

struct MechanismInfo {
  CK_ULONG minKeySize = 0, maxKeySize = 0, flags = 0;
};

// A CK_ATTRIBUTE query of C_GetAttributeValue: value empty and length set on success.
struct AttributeQuery {
  CK_ULONG type = 0;
  CK_ULONG length = CK_UNAVAILABLE_INFORMATION;
  Bytes value;
};

class Module {
 public:
  explicit Module(ModuleConfig config);
  ~Module();
  std::mutex& lock() { return mutex_; }

  // Slots and tokens
  std::vector<CK_ULONG> slotList(bool tokenPresent) const;
  CK_RV tokenInfo(CK_ULONG slotId, TokenInfo& out) const;
  CK_RV mechanismList(CK_ULONG slotId, std::vector<CK_ULONG>& out) const;
  CK_RV mechanismInfo(CK_ULONG slotId, CK_ULONG type, MechanismInfo& out) const;
  CK_RV initToken(CK_ULONG slotId, ByteView soPin, ByteView label);

  // Sessions and login
  // Applications: 0 is the default one; a layer serving several clients gives each its own
  // (newApplication), so each has its own login state, as PKCS#11 has per application.
  CK_ULONG newApplication() { return nextApplication_++; }
  // Who is calling: an application's calls reach only its own sessions; the device itself
  // (kAnyApplication) reaches every session. Set under lock() before every call.
  static constexpr CK_ULONG kAnyApplication = ~static_cast<CK_ULONG>(0);
  void setCaller(CK_ULONG application) { caller_ = application; }
  // Closes every session of an application on every slot (its object was collected).
  void closeApplication(CK_ULONG application);
  CK_RV openSession(CK_ULONG slotId, CK_ULONG flags, CK_ULONG& handle, CK_ULONG application = 0);
  CK_RV closeSession(CK_ULONG handle);
  CK_RV closeAllSessions(CK_ULONG slotId, CK_ULONG application = 0);
  CK_RV sessionInfo(CK_ULONG handle, SessionInfo& out);
  CK_RV login(CK_ULONG session, CK_ULONG userType, ByteView pin);
  CK_RV logout(CK_ULONG session);
  CK_RV initPin(CK_ULONG session, ByteView pin);
  CK_RV setPin(CK_ULONG session, ByteView oldPin, ByteView newPin);

  // Objects
  CK_RV createObject(CK_ULONG session, const Template& tmpl, CK_ULONG& handle);
  CK_RV copyObject(CK_ULONG session, CK_ULONG object, const Template& tmpl, CK_ULONG& handle);
  CK_RV destroyObject(CK_ULONG session, CK_ULONG object);
  CK_RV objectSize(CK_ULONG session, CK_ULONG object, CK_ULONG& size);
  CK_RV getAttributes(CK_ULONG session, CK_ULONG object, std::vector<AttributeQuery>& queries);
  CK_RV setAttributes(CK_ULONG session, CK_ULONG object, const Template& tmpl);
  CK_RV findInit(CK_ULONG session, const Template& tmpl);
  CK_RV find(CK_ULONG session, size_t maxCount, std::vector<CK_ULONG>& out);
  CK_RV findFinal(CK_ULONG session);

  // Encryption and decryption
  CK_RV encryptInit(CK_ULONG session, const Mechanism& mechanism, CK_ULONG key);
  CK_RV encrypt(CK_ULONG session, ByteView in, uint8_t* out, size_t& outLength);
  CK_RV encryptUpdate(CK_ULONG session, ByteView in, uint8_t* out, size_t& outLength);
  CK_RV encryptFinal(CK_ULONG session, uint8_t* out, size_t& outLength);
  CK_RV decryptInit(CK_ULONG session, const Mechanism& mechanism, CK_ULONG key);
  CK_RV decrypt(CK_ULONG session, ByteView in, uint8_t* out, size_t& outLength);
  CK_RV decryptUpdate(CK_ULONG session, ByteView in, uint8_t* out, size_t& outLength);
  CK_RV decryptFinal(CK_ULONG session, uint8_t* out, size_t& outLength);

  // Digests, signatures and MACs
  CK_RV digestInit(CK_ULONG session, const Mechanism& mechanism);
  CK_RV digest(CK_ULONG session, ByteView in, uint8_t* out, size_t& outLength);
  CK_RV digestUpdate(CK_ULONG session, ByteView in);
  CK_RV digestKey(CK_ULONG session, CK_ULONG key);
  CK_RV digestFinal(CK_ULONG session, uint8_t* out, size_t& outLength);
  CK_RV signInit(CK_ULONG session, const Mechanism& mechanism, CK_ULONG key);
  CK_RV sign(CK_ULONG session, ByteView in, uint8_t* out, size_t& outLength);
  CK_RV signUpdate(CK_ULONG session, ByteView in);
  CK_RV signFinal(CK_ULONG session, uint8_t* out, size_t& outLength);
  CK_RV verifyInit(CK_ULONG session, const Mechanism& mechanism, CK_ULONG key);
  CK_RV verify(CK_ULONG session, ByteView in, ByteView signature);
  CK_RV verifyUpdate(CK_ULONG session, ByteView in);
  CK_RV verifyFinal(CK_ULONG session, ByteView signature);

  // Keys
  CK_RV generateKey(CK_ULONG session, const Mechanism& mechanism, const Template& tmpl, CK_ULONG& handle);
  CK_RV generateKeyPair(CK_ULONG session, const Mechanism& mechanism, const Template& publicTemplate,
                        const Template& privateTemplate, CK_ULONG& publicHandle, CK_ULONG& privateHandle);
  CK_RV wrapKey(CK_ULONG session, const Mechanism& mechanism, CK_ULONG wrappingKey, CK_ULONG key, uint8_t* out,
                size_t& outLength);
  CK_RV unwrapKey(CK_ULONG session, const Mechanism& mechanism, CK_ULONG unwrappingKey, ByteView wrapped,
                  const Template& tmpl, CK_ULONG& handle);
  CK_RV deriveKey(CK_ULONG session, const Mechanism& mechanism, CK_ULONG baseKey, const Template& tmpl,
                  CK_ULONG& handle);

  // Random numbers
  CK_RV seedRandom(CK_ULONG session, ByteView seed);
  CK_RV generateRandom(CK_ULONG session, uint8_t* out, size_t length);

  // Masked records: a token object sealed under the token's masking key (chip-internal,
  // for persistence and replication by the layers above).
  // algorithm 1: AES-256-GCM, 2: AES-256-KWP.
  CK_RV exportMasked(CK_ULONG slotId, CK_ULONG object, int algorithm, Bytes& record);
  CK_RV importMasked(CK_ULONG slotId, ByteView record, CK_ULONG& handle);
  // Gives `target`'s token the same masking key, without the key leaving native memory.
  CK_RV shareMaskingKey(CK_ULONG slotId, Module& target, CK_ULONG targetSlotId);
  // The same across processes: the receiving chip publishes a transport public key; the
  // sending chip seals its masking key to it (ECDH P-256, HKDF-SHA-256, AES key wrap with
  // padding); only the receiver can open the result. JavaScript carries ciphertext only.
  CK_RV transportPublicKey(CK_ULONG slotId, Bytes& point);
  CK_RV exportMaskingKeyFor(CK_ULONG slotId, ByteView recipientPoint, Bytes& sealed);
  CK_RV importMaskingKey(CK_ULONG slotId, ByteView sealed);

  // Device profile: a layer above authenticates users and names them by opaque principal
  // numbers. loginPrincipal logs `principal` in as the token's user (no PIN: the layer above
  // checked the password); objects then carry their owner, are visible to the owner and to
  // principals they are shared with, and only the owner may change, copy, wrap, destroy or
  // share them.
  CK_RV loginPrincipal(CK_ULONG session, CK_ULONG principal);
  // Sharing is a management operation, not a PKCS#11 one: the acting principal must own the key.
  CK_RV shareObject(CK_ULONG slotId, CK_ULONG object, CK_ULONG actingPrincipal, CK_ULONG principal, bool share);
  CK_RV ownership(CK_ULONG slotId, CK_ULONG object, CK_ULONG& owner, std::vector<CK_ULONG>& shared) const;
  // CKA_TRUSTED set by the device's crypto officer (who has no PKCS#11 session).
  CK_RV setTrusted(CK_ULONG slotId, CK_ULONG object, bool trusted);
  // Drops a token object whatever its owner: the device replaces or deletes a key because
  // another HSM of its cluster changed it. Operations already running keep their own reference.
  CK_RV removeObject(CK_ULONG slotId, CK_ULONG object);
  // The masking key in a file only the owner may read (written with mode 0600, never over an
  // existing file), so it never passes through JavaScript.
  CK_RV saveMaskingKey(CK_ULONG slotId, const std::string& path) const;
  CK_RV loadMaskingKey(CK_ULONG slotId, const std::string& path);

  // Masked records bound to an identity (the device passes key id, version and owner): the
  // binding is authenticated with the record (GCM AAD; inside the wrapped payload for KWP),
  // so a record imported under another binding fails CKR_DATA_INVALID.
  CK_RV exportMasked(CK_ULONG slotId, CK_ULONG object, int algorithm, ByteView binding, Bytes& record);
  CK_RV importMasked(CK_ULONG slotId, ByteView record, ByteView binding, CK_ULONG& handle);
  // A whole token sealed in one record under its masking key (token_record.cc): label, serial,
  // PIN verifiers and failure counters, every token object. importToken replaces the token's
  // state and token objects with the record's, all or nothing (no session may be open on the
  // slot); a record altered, sealed under another key or bound to another binding fails
  // CKR_DATA_INVALID and changes nothing.
  CK_RV exportToken(CK_ULONG slotId, ByteView binding, Bytes& record);
  CK_RV importToken(CK_ULONG slotId, ByteView record, ByteView binding);
  // Revocation: every application logged in as `principal` (any slot) is logged out (its
  // sessions become public sessions), its active operations end, and the session objects
  // `principal` owns are destroyed.
  CK_RV revokePrincipal(CK_ULONG principal);
  // A keyed MAC only the chip can compute: HMAC-SHA-256 under a key derived (HKDF-SHA-256)
  // from the masking key, one key per purpose (1-255). The derived keys stay in native memory.
  CK_RV deviceMac(CK_ULONG slotId, CK_ULONG purpose, ByteView data, Bytes& mac);

  // An asynchronous call marks its session busy from the call until its callback runs;
  // other calls on that session get CKR_OPERATION_ACTIVE. While the worker executes, the
  // session is reachable to that worker alone.
  CK_RV markBusy(CK_ULONG session);
  void clearBusy(CK_ULONG session);
  void beginAsync(CK_ULONG session) { executingAsync_ = session; }
  void endAsync() { executingAsync_ = 0; }

 private:
  friend struct ModuleAccess;
  CK_RV findSession(CK_ULONG handle, Session*& out);
  Token* token(CK_ULONG slotId) const;
  Token& tokenOf(const Session& s) const { return *token(s.slotId); }
  Login& loginOf(const Session& s) const { return token(s.slotId)->logins[s.application]; }
  bool hasSessions(CK_ULONG slotId, CK_ULONG application) const;
  CK_RV visibleObject(const Session& s, CK_ULONG handle, ObjectPtr& out) const;
  static bool isVisible(const Login& login, const Object& o);
  CK_RV sessionAndObject(CK_ULONG session, CK_ULONG object, Session*& s, ObjectPtr& o);
  CK_RV checkWritable(const Session& s, bool tokenObject, bool privateObject) const;
  // CKR_OK when the session's principal may change `o` (it owns it, or ownership is off).
  CK_RV checkOwner(const Session& s, const Object& o, CK_RV refusal = CKR_ACTION_PROHIBITED) const;
  // Whether the session's principal may read secret attribute `type` of `o` (device profile: its owner only).
  bool mayReadSecret(const Session& s, const Object& o, CK_ULONG type) const;
  CK_RV checkQuota(CK_ULONG slotId, size_t keys, size_t asymmetricKeys) const;
  CK_RV checkPin(PinRecord& record, ByteView pin);
  void setPinRecord(Token& t, PinRecord& record, ByteView pin);
  CK_RV storeObject(Session& s, ObjectPtr object, CK_ULONG& handle);
  // Session objects of one session, or (sessionHandle 0) of every session of `application`.
  void destroySessionObjects(CK_ULONG slotId, CK_ULONG sessionHandle, bool onlyPrivate, CK_ULONG application = 0);
  void addSlot();
  CK_RV buildKeyMaterial(Object& object);
  CK_RV keyForOperation(Session& s, CK_ULONG handle, CK_ULONG usage, CK_ULONG mechanism, ObjectPtr& out,
                        CK_RV invalidHandle = CKR_KEY_HANDLE_INVALID);
  CK_RV cipherInit(Session& s, CipherOperation& op, bool encrypt, const Mechanism& m, CK_ULONG key);
  CK_RV cipherSetup(Session& s, CipherOperation& op, bool encrypt, const Mechanism& m, CK_ULONG key);
  CK_RV signInitCommon(Session& s, SignOperation& op, bool signing, const Mechanism& m, CK_ULONG key);
  CK_RV newKeyObject(Session& s, const Template& tmpl, CK_ULONG cls, CK_ULONG keyType, Origin origin,
                     ObjectPtr& out);

  ModuleConfig config_;
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Token>> slots_;
  std::map<CK_ULONG, std::unique_ptr<Session>> sessions_;
  std::map<CK_ULONG, ObjectPtr> objects_;
  CK_ULONG nextSession_ = 1;
  CK_ULONG nextObject_ = 1;
  uint64_t nextKeyId_ = 1;
  CK_ULONG executingAsync_ = 0;
  // The session of the previous call: most calls come in a row on one session (init, then
  // the operation), so this saves a map lookup on the hot path. Cleared when sessions close.
  CK_ULONG lastSessionHandle_ = 0;
  Session* lastSession_ = nullptr;
  CK_ULONG nextApplication_ = 1;
  CK_ULONG caller_ = kAnyApplication;
  std::map<CK_ULONG, size_t> sessionCounts_;  // open sessions by application
  // Session handles are drawn from a generator of their own, so that handles are unguessable
  // and (in deterministic mode) reproducible without shifting the tokens' key material.
  std::unique_ptr<Drbg> handleDrbg_;
  CK_RV newSessionHandle(CK_ULONG& out);
  void forgetSession(const Session& s);
  // Device profile: CKR_USER_NOT_LOGGED_IN unless a principal is logged in for the session's application.
  CK_RV requirePrincipal(const Session& s) const;
  bool callerIsApplication() const { return caller_ != kAnyApplication; }
  CK_RV checkExtractableFixed(const Object& o, const TemplateAttribute& change) const;
  // deviceMac's derived keys by (slot, purpose), with the masking key they came from.
  struct DerivedMacKey {
    Bytes source, key;
    std::shared_ptr<Hmac> hmac;  // keyed once with `key`: each MAC restarts from its pads
  };
  std::map<std::pair<CK_ULONG, CK_ULONG>, DerivedMacKey> macKeys_;
};

}  // namespace hsm
