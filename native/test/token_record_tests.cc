// Native tests of sealed token records (token_record.cc): a token's PIN verifiers, failure
// counters and token objects survive export and import into another module holding the same
// masking key; anything altered, re-bound or sealed under another key fails and changes nothing.
#include <cstring>

#include "harness.h"
#include "templates.h"
#include "token/module.h"

using namespace hsm;

namespace {
ByteView text(const char* s) { return ByteView(reinterpret_cast<const uint8_t*>(s), std::strlen(s)); }

ModuleConfig config(unsigned iterations = 8) { return ModuleConfig{0, 5, iterations, false, Bytes()}; }

CK_ULONG createKey(Module& m, CK_ULONG session, bool tokenObject, uint8_t fill) {
  std::vector<std::pair<CK_ULONG, Bytes>> attrs = {{CKA_CLASS, encodeUlong(CKO_SECRET_KEY)},
                                                   {CKA_KEY_TYPE, encodeUlong(CKK_AES)},
                                                   {CKA_VALUE, Bytes(32, fill)},
                                                   {CKA_TOKEN, encodeBool(tokenObject)},
                                                   {CKA_ENCRYPT, encodeBool(true)}};
  CK_ULONG handle = 0;
  CHECK(hsmtest::createObject(m, session, attrs, handle) == CKR_OK);
  return handle;
}

// A token with a user PIN, one token key, one session key and two wrong user PINs counted.
Bytes sealedToken(Module& m, ByteView binding) {
  CHECK(m.initToken(0, text("so-pin-1"), text("persisted")) == CKR_OK);
  CK_ULONG s = 0;
  CHECK(m.openSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, s) == CKR_OK);
  CHECK(m.login(s, CKU_SO, text("so-pin-1")) == CKR_OK);
  CHECK(m.initPin(s, text("user-pin")) == CKR_OK);
  CHECK(m.logout(s) == CKR_OK);
  CHECK(m.login(s, CKU_USER, text("user-pin")) == CKR_OK);
  createKey(m, s, true, 0x11);
  createKey(m, s, false, 0x22);
  CHECK(m.logout(s) == CKR_OK);
  CHECK(m.login(s, CKU_USER, text("wrong-pin")) == CKR_PIN_INCORRECT);
  CHECK(m.login(s, CKU_USER, text("wrong-pin")) == CKR_PIN_INCORRECT);
  CHECK(m.closeSession(s) == CKR_OK);
  Bytes record;
  CHECK(m.exportToken(0, binding, record) == CKR_OK);
  return record;
}

// A second module's initialized token holding `from`'s masking key, ready to import into.
void receiver(Module& from, Module& to) {
  CHECK(to.initToken(0, text("throwaway"), text("blank")) == CKR_OK);
  CHECK(from.shareMaskingKey(0, to, 0) == CKR_OK);
}

size_t objectCount(Module& m, CK_ULONG session) {
  Template none;
  std::vector<CK_ULONG> found;
  CHECK(m.findInit(session, none) == CKR_OK);
  CHECK(m.find(session, 100, found) == CKR_OK);
  CHECK(m.findFinal(session) == CKR_OK);
  return found.size();
}
}  // namespace

TEST(a_sealed_token_keeps_its_pins_counters_and_token_objects) {
  Module a(config()), b(config());
  Bytes record = sealedToken(a, text("header 1"));
  TokenInfo before;
  CHECK(a.tokenInfo(0, before) == CKR_OK);
  receiver(a, b);
  CHECK(b.importToken(0, record, text("header 1")) == CKR_OK);
  TokenInfo after;
  CHECK(b.tokenInfo(0, after) == CKR_OK);
  CHECK(after.label == before.label);
  CHECK(after.serial == before.serial);
  CHECK(after.flags == before.flags);
  CHECK((after.flags & CKF_USER_PIN_COUNT_LOW) != 0);  // the two failures came along
  CK_ULONG s = 0;
  CHECK(b.openSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, s) == CKR_OK);
  // Two failures counted already: two more and the fifth locks.
  CHECK(b.login(s, CKU_USER, text("wrong-pin")) == CKR_PIN_INCORRECT);
  CHECK(b.login(s, CKU_USER, text("so-pin-1")) == CKR_PIN_INCORRECT);
  CHECK(b.login(s, CKU_USER, text("user-pin")) == CKR_OK);
  CHECK_EQ(objectCount(b, s), size_t(1));  // the token key, never the session key
  CHECK(b.logout(s) == CKR_OK);
  CHECK(b.login(s, CKU_SO, text("throwaway")) == CKR_PIN_INCORRECT);  // the record's SO PIN replaced it
  CHECK(b.login(s, CKU_SO, text("so-pin-1")) == CKR_OK);
}

TEST(a_locked_pin_stays_locked_through_a_record) {
  Module a(config()), b(config());
  Bytes record = sealedToken(a, ByteView());
  CK_ULONG s = 0;
  CHECK(a.openSession(0, CKF_SERIAL_SESSION, s) == CKR_OK);
  for (int i = 0; i < 3; ++i) CHECK(a.login(s, CKU_USER, text("wrong-pin")) == CKR_PIN_INCORRECT);
  CHECK(a.login(s, CKU_USER, text("user-pin")) == CKR_PIN_LOCKED);
  CHECK(a.closeSession(s) == CKR_OK);
  CHECK(a.exportToken(0, ByteView(), record) == CKR_OK);
  receiver(a, b);
  CHECK(b.importToken(0, record, ByteView()) == CKR_OK);
  CHECK(b.openSession(0, CKF_SERIAL_SESSION, s) == CKR_OK);
  CHECK(b.login(s, CKU_USER, text("user-pin")) == CKR_PIN_LOCKED);
}

TEST(an_altered_or_rebound_record_fails_and_changes_nothing) {
  Module a(config()), b(config()), other(config());
  Bytes record = sealedToken(a, text("header 1"));
  receiver(a, b);
  TokenInfo blank;
  CHECK(b.tokenInfo(0, blank) == CKR_OK);
  for (size_t i = 0; i < record.size(); i += 7) {
    Bytes altered = record;
    altered[i] ^= 0x01;
    CHECK(b.importToken(0, altered, text("header 1")) == CKR_DATA_INVALID);
  }
  Bytes truncated(record.begin(), record.end() - 1);
  CHECK(b.importToken(0, truncated, text("header 1")) == CKR_DATA_INVALID);
  Bytes tiny(record.begin(), record.begin() + 8);
  CHECK(b.importToken(0, tiny, text("header 1")) == CKR_DATA_INVALID);
  CHECK(b.importToken(0, ByteView(), text("header 1")) == CKR_DATA_INVALID);
  CHECK(b.importToken(0, record, text("header 2")) == CKR_DATA_INVALID);
  CHECK(b.importToken(0, record, ByteView()) == CKR_DATA_INVALID);
  TokenInfo still;
  CHECK(b.tokenInfo(0, still) == CKR_OK);
  CHECK(still.label == blank.label);
  CHECK(still.serial == blank.serial);
  // Another masking key opens nothing.
  CHECK(other.initToken(0, text("so-pin-1"), text("other")) == CKR_OK);
  CHECK(other.importToken(0, record, text("header 1")) == CKR_DATA_INVALID);
}

TEST(import_refuses_open_sessions_uninitialized_tokens_and_other_pin_costs) {
  Module a(config()), b(config()), costly(config(16));
  Bytes record = sealedToken(a, ByteView());
  CHECK(b.importToken(0, record, ByteView()) == CKR_TOKEN_NOT_RECOGNIZED);
  CHECK(b.importToken(7, record, ByteView()) == CKR_SLOT_ID_INVALID);
  Bytes out;
  CHECK(b.exportToken(0, ByteView(), out) == CKR_TOKEN_NOT_RECOGNIZED);
  receiver(a, b);
  CK_ULONG s = 0;
  CHECK(b.openSession(0, CKF_SERIAL_SESSION, s) == CKR_OK);
  CHECK(b.importToken(0, record, ByteView()) == CKR_SESSION_EXISTS);
  CHECK(b.closeSession(s) == CKR_OK);
  CHECK(b.importToken(0, record, ByteView()) == CKR_OK);
  receiver(a, costly);
  CHECK(costly.importToken(0, record, ByteView()) == CKR_DATA_INVALID);  // verifiers made with 8 iterations
  Bytes big(4097, 0);
  CHECK(a.exportToken(0, big, out) == CKR_ARGUMENTS_BAD);
}
