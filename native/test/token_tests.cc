// Native tests of the token: PIN lockout, objects, operations and masked records,
// driven through Module exactly as the binding drives it.
#include <cstring>

#include "harness.h"
#include "templates.h"
#include "token/module.h"

using namespace hsm;

namespace {
using hsmtest::encodeTemplate;
ByteView text(const char* s) { return ByteView(reinterpret_cast<const uint8_t*>(s), std::strlen(s)); }

struct Fixture {
  Module module;
  CK_ULONG session = 0;
  Fixture() : module(ModuleConfig{0, 3, 8, false, Bytes()}) {
    CHECK(module.initToken(0, text("so-pin-1"), text("native")) == CKR_OK);
    CHECK(module.openSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, session) == CKR_OK);
    CHECK(module.login(session, CKU_SO, text("so-pin-1")) == CKR_OK);
    CHECK(module.initPin(session, text("user-pin-1")) == CKR_OK);
    CHECK(module.logout(session) == CKR_OK);
    CHECK(module.login(session, CKU_USER, text("user-pin-1")) == CKR_OK);
  }
};
}  // namespace

TEST(slots_grow_and_lockout_counts) {
  Fixture f;
  CHECK_EQ(f.module.slotList(true).size(), size_t(2));
  CHECK(f.module.logout(f.session) == CKR_OK);
  for (int i = 0; i < 3; ++i) CHECK(f.module.login(f.session, CKU_USER, text("wrong")) == CKR_PIN_INCORRECT);
  CHECK(f.module.login(f.session, CKU_USER, text("user-pin-1")) == CKR_PIN_LOCKED);
  TokenInfo info;
  CHECK(f.module.tokenInfo(0, info) == CKR_OK);
  CHECK((info.flags & CKF_USER_PIN_LOCKED) != 0);
}

TEST(template_decoding_rejects_malformed_input) {
  Template t;
  const uint8_t truncated[] = {1, 0, 0, 0, 3, 0, 0, 0, 200, 0, 0, 0, 1};
  CHECK(decodeTemplate(ByteView(truncated, sizeof truncated), t) == CKR_ARGUMENTS_BAD);
  const uint8_t huge[] = {255, 255, 255, 255};
  CHECK(decodeTemplate(ByteView(huge, sizeof huge), t) == CKR_ARGUMENTS_BAD);
  CHECK(decodeTemplate(ByteView(), t) == CKR_ARGUMENTS_BAD);
  Bytes ok = encodeTemplate({{CKA_LABEL, toBytes(std::string("x"))}});
  CHECK(decodeTemplate(ok, t) == CKR_OK);
  CHECK_EQ(t.size(), size_t(1));
}

TEST(encrypt_decrypt_and_masked_records) {
  Fixture f;
  Bytes tmpl = encodeTemplate({{CKA_CLASS, encodeUlong(CKO_SECRET_KEY)}, {CKA_KEY_TYPE, encodeUlong(CKK_AES)},
                               {CKA_VALUE, Bytes(32, 0x42)}, {CKA_TOKEN, encodeBool(true)}});
  Template t;
  CHECK(decodeTemplate(tmpl, t) == CKR_OK);
  CK_ULONG key = 0;
  CHECK(f.module.createObject(f.session, t, key) == CKR_OK);
  Bytes iv(12, 1);
  Mechanism m;
  m.type = CKM_AES_GCM;
  m.hasParameter = true;
  m.bytesA = iv;
  m.numberA = 128;
  CHECK(f.module.encryptInit(f.session, m, key) == CKR_OK);
  uint8_t out[64];
  size_t length = 0;
  CHECK(f.module.encrypt(f.session, text("hello"), nullptr, length) == CKR_OK);  // length query
  CHECK_EQ(length, size_t(21));
  length = 4;
  CHECK(f.module.encrypt(f.session, text("hello"), out, length) == CKR_BUFFER_TOO_SMALL);
  length = sizeof out;
  CHECK(f.module.encrypt(f.session, text("hello"), out, length) == CKR_OK);
  Bytes record;
  CHECK(f.module.exportMasked(0, key, 1, record) == CKR_OK);
  CK_ULONG copy = 0;
  CHECK(f.module.importMasked(0, record, copy) == CKR_OK);
  CHECK(f.module.decryptInit(f.session, m, copy) == CKR_OK);
  uint8_t plain[64];
  size_t plainLength = sizeof plain;
  CHECK(f.module.decrypt(f.session, ByteView(out, length), plain, plainLength) == CKR_OK);
  CHECK(plainLength == 5 && std::memcmp(plain, "hello", 5) == 0);
  record[record.size() - 1] ^= 1;
  CHECK(f.module.importMasked(0, record, copy) == CKR_DATA_INVALID);
}

TEST(busy_sessions_refuse_other_calls) {
  Fixture f;
  CHECK(f.module.markBusy(f.session) == CKR_OK);
  CK_ULONG unused = 0;
  CHECK(f.module.objectSize(f.session, 1, unused) == CKR_OPERATION_ACTIVE);
  f.module.beginAsync(f.session);
  SessionInfo info;
  CHECK(f.module.sessionInfo(f.session, info) == CKR_OK);
  f.module.endAsync();
  f.module.clearBusy(f.session);
  CHECK(f.module.sessionInfo(f.session, info) == CKR_OK);
}

TEST(device_profile_ownership_quota_and_transfer) {
  ModuleConfig config{0, 5, 8, false, Bytes()};
  config.maxKeys = 2;
  Module a(config), b(ModuleConfig{0, 5, 8, false, Bytes()});
  CHECK(a.initToken(0, text("so-pin-1"), text("a")) == CKR_OK);
  CHECK(b.initToken(0, text("so-pin-1"), text("b")) == CKR_OK);
  CK_ULONG app = a.newApplication(), s1 = 0, s2 = 0;
  CHECK(a.openSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, s1, app) == CKR_OK);
  CHECK(a.openSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, s2) == CKR_OK);  // another application
  CHECK(a.loginPrincipal(s1, 7) == CKR_OK);
  CHECK(a.loginPrincipal(s2, 8) == CKR_OK);  // per-application login state
  Bytes tmpl = encodeTemplate({{CKA_CLASS, encodeUlong(CKO_SECRET_KEY)}, {CKA_KEY_TYPE, encodeUlong(CKK_AES)},
                               {CKA_VALUE, Bytes(16, 1)}, {CKA_TOKEN, encodeBool(true)}});
  Template t;
  CHECK(decodeTemplate(tmpl, t) == CKR_OK);
  CK_ULONG k1 = 0, k2 = 0, k3 = 0;
  CHECK(a.createObject(s1, t, k1) == CKR_OK);
  CHECK(a.createObject(s1, t, k2) == CKR_OK);
  CHECK(a.createObject(s1, t, k3) == CKR_DEVICE_MEMORY);
  CK_ULONG size = 0;
  CHECK(a.objectSize(s2, k1, size) == CKR_OBJECT_HANDLE_INVALID);  // principal 8 does not see 7's key
  CHECK(a.shareObject(0, k1, 7, 8, true) == CKR_OK);
  CHECK(a.objectSize(s2, k1, size) == CKR_OK);
  CHECK(a.destroyObject(s2, k1) == CKR_ACTION_PROHIBITED);
  // Masking key transfer a -> b, then b opens a's record.
  Bytes point, sealed, record;
  CHECK(b.transportPublicKey(0, point) == CKR_OK);
  CHECK(a.exportMaskingKeyFor(0, point, sealed) == CKR_OK);
  CHECK(a.exportMasked(0, k1, 1, record) == CKR_OK);
  CK_ULONG imported = 0;
  CHECK(b.importMasked(0, record, imported) == CKR_DATA_INVALID);
  sealed[sealed.size() - 2] ^= 1;
  CHECK(b.importMaskingKey(0, sealed) == CKR_WRAPPED_KEY_INVALID);
  sealed[sealed.size() - 2] ^= 1;
  CHECK(b.importMaskingKey(0, sealed) == CKR_OK);
  CHECK(b.importMasked(0, record, imported) == CKR_OK);
  CK_ULONG owner = 0;
  std::vector<CK_ULONG> shared;
  CHECK(b.ownership(0, imported, owner, shared) == CKR_OK);
  CHECK(owner == 7 && shared.size() == 1 && shared[0] == 8);
}
