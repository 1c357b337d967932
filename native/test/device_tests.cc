// Native tests of the device hooks of the data folder and revocation: masked records bound
// to an identity, the chip's keyed MAC, and revoking a principal.
#include <cstring>

#include "harness.h"
#include "templates.h"
#include "token/module.h"

using namespace hsm;

namespace {
ByteView text(const char* s) { return ByteView(reinterpret_cast<const uint8_t*>(s), std::strlen(s)); }

Bytes aesKeyTemplate(bool tokenObject) {
  std::vector<std::pair<CK_ULONG, Bytes>> attrs = {{CKA_CLASS, encodeUlong(CKO_SECRET_KEY)},
                                                   {CKA_KEY_TYPE, encodeUlong(CKK_AES)},
                                                   {CKA_VALUE, Bytes(32, 0x42)},
                                                   {CKA_TOKEN, encodeBool(tokenObject)},
                                                   {CKA_ENCRYPT, encodeBool(true)}};
  return hsmtest::encodeTemplate(attrs);
}

/** A token labelled `label` with a session of a new application, logged in as `principal`. */
CK_ULONG principalSession(Module& m, const char* label, CK_ULONG principal) {
  CHECK(m.initToken(0, text("so-pin-1"), text(label)) == CKR_OK);
  CK_ULONG app = m.newApplication(), s = 0;
  CHECK(m.openSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, s, app) == CKR_OK);
  CHECK(m.loginPrincipal(s, principal) == CKR_OK);
  return s;
}

CK_ULONG createKey(Module& m, CK_ULONG session, bool tokenObject) {
  Template t;
  Bytes tmpl = aesKeyTemplate(tokenObject);
  CHECK(decodeTemplate(tmpl, t) == CKR_OK);
  CK_ULONG handle = 0;
  CHECK(m.createObject(session, t, handle) == CKR_OK);
  return handle;
}

CK_ULONG createReadableKey(Module& m, CK_ULONG session) {
  std::vector<std::pair<CK_ULONG, Bytes>> attrs = {{CKA_CLASS, encodeUlong(CKO_SECRET_KEY)},
                                                   {CKA_KEY_TYPE, encodeUlong(CKK_AES)},
                                                   {CKA_VALUE, Bytes(32, 0x42)},
                                                   {CKA_TOKEN, encodeBool(true)},
                                                   {CKA_SENSITIVE, encodeBool(false)},
                                                   {CKA_EXTRACTABLE, encodeBool(true)},
                                                   {CKA_ENCRYPT, encodeBool(true)}};
  CK_ULONG handle = 0;
  CHECK(hsmtest::createObject(m, session, attrs, handle) == CKR_OK);
  return handle;
}

Mechanism gcm(const Bytes& iv) {
  Mechanism m;
  m.type = CKM_AES_GCM;
  m.hasParameter = true;
  m.bytesA = iv;
  m.numberA = 128;
  return m;
}
}  // namespace

TEST(masked_records_are_bound_to_their_identity) {
  Module m(ModuleConfig{0, 5, 8, false, Bytes()});
  CK_ULONG s = principalSession(m, "bind", 7);
  CK_ULONG key = createKey(m, s, true);
  for (int algorithm = 1; algorithm <= 2; ++algorithm) {
    Bytes record;
    CHECK(m.exportMasked(0, key, algorithm, text("key 1 version 5"), record) == CKR_OK);
    CK_ULONG copy = 0;
    CHECK(m.importMasked(0, record, text("key 1 version 5"), copy) == CKR_OK);
    CHECK(m.importMasked(0, record, text("key 1 version 4"), copy) == CKR_DATA_INVALID);
    CHECK(m.importMasked(0, record, text("key 2 version 5"), copy) == CKR_DATA_INVALID);
    CHECK(m.importMasked(0, record, ByteView(), copy) == CKR_DATA_INVALID);
    Bytes unbound;
    CHECK(m.exportMasked(0, key, algorithm, unbound) == CKR_OK);
    CHECK(m.importMasked(0, unbound, text("key 1 version 5"), copy) == CKR_DATA_INVALID);
    CHECK(m.importMasked(0, unbound, copy) == CKR_OK);
  }
}

TEST(device_mac_is_keyed_by_the_masking_key_and_purpose) {
  Module a(ModuleConfig{0, 5, 8, false, Bytes()}), b(ModuleConfig{0, 5, 8, false, Bytes()});
  CHECK(a.initToken(0, text("so-pin-1"), text("a")) == CKR_OK);
  CHECK(b.initToken(0, text("so-pin-1"), text("b")) == CKR_OK);
  Bytes macA1, macA1again, macA2, macB1;
  CHECK(a.deviceMac(0, 1, text("entry"), macA1) == CKR_OK);
  CHECK(a.deviceMac(0, 1, text("entry"), macA1again) == CKR_OK);
  CHECK(a.deviceMac(0, 2, text("entry"), macA2) == CKR_OK);
  CHECK(b.deviceMac(0, 1, text("entry"), macB1) == CKR_OK);
  CHECK_EQ(macA1.size(), size_t(32));
  CHECK(macA1 == macA1again);
  CHECK(macA1 != macA2);  // one key per purpose
  CHECK(macA1 != macB1);  // another masking key
  CHECK(a.shareMaskingKey(0, b, 0) == CKR_OK);
  CHECK(b.deviceMac(0, 1, text("entry"), macB1) == CKR_OK);
  CHECK(macA1 == macB1);  // derived again after the masking key changed
  Bytes out;
  CHECK(a.deviceMac(0, 0, text("x"), out) == CKR_ARGUMENTS_BAD);
  CHECK(a.deviceMac(0, 256, text("x"), out) == CKR_ARGUMENTS_BAD);
  CHECK(a.deviceMac(9, 1, text("x"), out) == CKR_SLOT_ID_INVALID);
}

TEST(revoking_a_principal_logs_its_applications_out) {
  Module m(ModuleConfig{0, 5, 8, false, Bytes()});
  CHECK(m.initToken(0, text("so-pin-1"), text("revoke")) == CKR_OK);
  CK_ULONG victimApp = m.newApplication(), otherApp = m.newApplication(), s1 = 0, s2 = 0, other = 0;
  CHECK(m.openSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, s1, victimApp) == CKR_OK);
  CHECK(m.openSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, s2, victimApp) == CKR_OK);
  CHECK(m.openSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, other, otherApp) == CKR_OK);
  CHECK(m.loginPrincipal(s1, 7) == CKR_OK);
  CHECK(m.loginPrincipal(other, 8) == CKR_OK);
  CK_ULONG tokenKey = createKey(m, s1, true), sessionKey = createKey(m, s2, false);
  CK_ULONG otherKey = createKey(m, other, false);
  Bytes iv(12, 1);
  CHECK(m.encryptInit(s2, gcm(iv), tokenKey) == CKR_OK);
  CHECK(m.revokePrincipal(7) == CKR_OK);
  SessionInfo info;
  CHECK(m.sessionInfo(s1, info) == CKR_OK);
  CHECK(info.state == CKS_RW_PUBLIC_SESSION);
  uint8_t out[64];
  size_t length = sizeof out;
  CHECK(m.encrypt(s2, text("hello"), out, length) == CKR_OPERATION_NOT_INITIALIZED);
  CHECK(m.encryptInit(s2, gcm(iv), tokenKey) == CKR_KEY_HANDLE_INVALID);
  CK_ULONG size = 0;
  CHECK(m.objectSize(s1, sessionKey, size) == CKR_OBJECT_HANDLE_INVALID);  // destroyed
  Template t;
  Bytes tmpl = aesKeyTemplate(true);
  CHECK(decodeTemplate(tmpl, t) == CKR_OK);
  CK_ULONG handle = 0;
  CHECK(m.createObject(s1, t, handle) != CKR_OK);  // no longer the user
  // Another principal's application is untouched.
  CHECK(m.sessionInfo(other, info) == CKR_OK);
  CHECK(info.state == CKS_RW_USER_FUNCTIONS);
  CHECK(m.objectSize(other, otherKey, size) == CKR_OK);
  CHECK(m.loginPrincipal(s1, 7) == CKR_OK);  // a new login (the device checked a password again) works
  CHECK(m.revokePrincipal(0) == CKR_ARGUMENTS_BAD);
}

TEST(device_profile_secret_components_are_readable_by_the_owner_only) {
  ModuleConfig config;
  config.pinHashIterations = 1;
  config.deviceProfile = true;
  Module m(config);
  CHECK(m.initToken(0, text("so-pin-1"), text("share")) == CKR_OK);
  CK_ULONG ownerApp = m.newApplication(), shareeApp = m.newApplication(), owner = 0, sharee = 0;
  CHECK(m.openSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, owner, ownerApp) == CKR_OK);
  CHECK(m.openSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, sharee, shareeApp) == CKR_OK);
  CHECK(m.loginPrincipal(owner, 7) == CKR_OK);
  CHECK(m.loginPrincipal(sharee, 8) == CKR_OK);
  CK_ULONG key = createReadableKey(m, owner);  // CKA_SENSITIVE false, extractable: readable by its owner
  CHECK(m.shareObject(0, key, 7, 8, true) == CKR_OK);
  auto read = [&](CK_ULONG session, CK_ULONG type, Bytes* out) {
    std::vector<AttributeQuery> q(1);
    q[0].type = type;
    CK_RV rv = m.getAttributes(session, key, q);
    if (out) *out = q[0].value;
    return rv;
  };
  Bytes value;
  CHECK(read(owner, CKA_VALUE, &value) == CKR_OK);
  CHECK(value == Bytes(32, 0x42));
  CHECK(read(sharee, CKA_VALUE, &value) == CKR_ATTRIBUTE_SENSITIVE);
  CHECK(value.empty());
  CHECK(read(sharee, CKA_VALUE_LEN, nullptr) == CKR_OK);  // public attributes stay readable
  CHECK(read(sharee, CKA_ENCRYPT, nullptr) == CKR_OK);
  Mechanism sha;
  sha.type = CKM_SHA256;
  CHECK(m.digestInit(owner, sha) == CKR_OK);
  CHECK(m.digestKey(owner, key) == CKR_OK);
  CHECK(m.digestInit(sharee, sha) == CKR_OK);
  CHECK(m.digestKey(sharee, key) == CKR_KEY_INDIGESTIBLE);
  // The sharee still uses it.
  Bytes iv(12, 1);
  CHECK(m.encryptInit(sharee, gcm(iv), key) == CKR_OK);
}

TEST(memory_profile_secret_components_follow_pkcs11_only) {
  Module m(ModuleConfig{0, 5, 8, false, Bytes()});
  CK_ULONG s = principalSession(m, "plain", 7);
  CK_ULONG key = createReadableKey(m, s);
  CHECK(m.shareObject(0, key, 7, 8, true) == CKR_OK);
  CHECK(m.revokePrincipal(7) == CKR_OK);
  CHECK(m.loginPrincipal(s, 8) == CKR_OK);  // not the owner, on the memory: profile
  std::vector<AttributeQuery> q(1);
  q[0].type = CKA_VALUE;
  CHECK(m.getAttributes(s, key, q) == CKR_OK);
}
