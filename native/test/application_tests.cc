// Native tests of isolation between applications: sessions answer only their own application,
// handles are random and JavaScript-safe, the session limit is per application, and the device
// profile refuses unauthenticated creation and PIN logins.
#include <cstring>
#include <set>

#include "harness.h"
#include "token/module.h"

using namespace hsm;

namespace {
ByteView text(const char* s) { return ByteView(reinterpret_cast<const uint8_t*>(s), std::strlen(s)); }
constexpr CK_ULONG kRw = CKF_SERIAL_SESSION | CKF_RW_SESSION;

ModuleConfig config(bool deviceProfile, size_t maxSessions = 1024) {
  ModuleConfig c;
  c.pinHashIterations = 1;
  c.deviceProfile = deviceProfile;
  c.maxSessionsPerApplication = maxSessions;
  return c;
}

Template dataObject(bool token) {
  static const uint8_t cls[sizeof(CK_ULONG)] = {0};  // CKO_DATA
  static const uint8_t yes = 1, no = 0;
  return {{CKA_CLASS, ByteView(cls, sizeof cls)}, {CKA_TOKEN, ByteView(token ? &yes : &no, 1)},
          {CKA_PRIVATE, ByteView(&no, 1)}};
}
}  // namespace

TEST(sessions_answer_only_their_application) {
  Module m(config(false));
  CHECK(m.initToken(0, text("so-pin-1"), text("apps")) == CKR_OK);
  CK_ULONG a = m.newApplication(), b = m.newApplication(), sa = 0, sb = 0;
  m.setCaller(a);
  CHECK(m.openSession(0, kRw, sa, a) == CKR_OK);
  m.setCaller(b);
  CHECK(m.openSession(0, kRw, sb, b) == CKR_OK);
  SessionInfo info;
  CHECK(m.sessionInfo(sa, info) == CKR_SESSION_HANDLE_INVALID);
  CHECK(m.closeSession(sa) == CKR_SESSION_HANDLE_INVALID);
  CHECK(m.sessionInfo(sb, info) == CKR_OK);
  // The previous call's session is cached: the cache must not bypass the check.
  m.setCaller(a);
  CHECK(m.sessionInfo(sb, info) == CKR_SESSION_HANDLE_INVALID);
  CHECK(m.sessionInfo(sa, info) == CKR_OK);
  // The device reaches every session.
  m.setCaller(Module::kAnyApplication);
  CHECK(m.sessionInfo(sb, info) == CKR_OK);
  // closeAllSessions of one application leaves the other's.
  m.setCaller(a);
  CHECK(m.closeAllSessions(0, a) == CKR_OK);
  m.setCaller(b);
  CHECK(m.sessionInfo(sb, info) == CKR_OK);
}

TEST(session_handles_are_random_unique_and_below_2_53) {
  Module m(config(false));
  CHECK(m.initToken(0, text("so-pin-1"), text("apps")) == CKR_OK);
  std::set<CK_ULONG> seen;
  CK_ULONG previous = 0;
  int consecutive = 0;
  for (int i = 0; i < 1000; ++i) {
    CK_ULONG h = 0;
    CHECK(m.openSession(0, kRw, h) == CKR_OK);
    CHECK(h != 0 && h < (CK_ULONG{1} << 53));
    CHECK(seen.insert(h).second);
    if (h == previous + 1) ++consecutive;
    previous = h;
  }
  CHECK_EQ(consecutive, 0);
}

TEST(deterministic_mode_repeats_session_handles) {
  ModuleConfig c = config(false);
  c.deterministic = true;
  c.seed = Bytes{1, 2, 3};
  Module one(c), two(c);
  CK_ULONG h1 = 0, h2 = 0;
  CHECK(one.initToken(0, text("so-pin-1"), text("d")) == CKR_OK && two.initToken(0, text("so-pin-1"), text("d")) == CKR_OK);
  CHECK(one.openSession(0, kRw, h1) == CKR_OK && two.openSession(0, kRw, h2) == CKR_OK);
  CHECK_EQ(h1, h2);
}

TEST(session_limit_is_per_application) {
  Module m(config(false, 4));
  CHECK(m.initToken(0, text("so-pin-1"), text("apps")) == CKR_OK);
  CK_ULONG a = m.newApplication(), b = m.newApplication(), h = 0, first = 0;
  for (int i = 0; i < 4; ++i) CHECK(m.openSession(0, kRw, i == 0 ? first : h, a) == CKR_OK);
  CHECK(m.openSession(0, kRw, h, a) == CKR_SESSION_COUNT);
  for (int i = 0; i < 4; ++i) CHECK(m.openSession(0, kRw, h, b) == CKR_OK);
  CHECK(m.closeSession(first) == CKR_OK);
  CHECK(m.openSession(0, kRw, h, a) == CKR_OK);
  m.closeApplication(a);
  for (int i = 0; i < 4; ++i) CHECK(m.openSession(0, kRw, h, a) == CKR_OK);
}

TEST(device_profile_needs_a_principal_and_refuses_pins) {
  Module m(config(true));
  CHECK(m.initToken(0, text("so-pin-1"), text("device")) == CKR_OK);
  CK_ULONG app = m.newApplication(), s = 0, object = 0;
  m.setCaller(app);
  CHECK(m.openSession(0, kRw, s, app) == CKR_OK);
  CHECK(m.login(s, CKU_SO, text("so-pin-1")) == CKR_FUNCTION_NOT_SUPPORTED);
  CHECK(m.initToken(0, text("so-pin-1"), text("mine")) == CKR_FUNCTION_NOT_SUPPORTED);
  CHECK(m.createObject(s, dataObject(true), object) == CKR_USER_NOT_LOGGED_IN);
  CHECK(m.createObject(s, dataObject(false), object) == CKR_USER_NOT_LOGGED_IN);
  m.setCaller(Module::kAnyApplication);
  CHECK(m.loginPrincipal(s, 42) == CKR_OK);
  m.setCaller(app);
  CHECK(m.createObject(s, dataObject(true), object) == CKR_OK);
  CK_ULONG owner = 0;
  std::vector<CK_ULONG> shared;
  CHECK(m.ownership(0, object, owner, shared) == CKR_OK);
  CHECK_EQ(owner, CK_ULONG(42));
}
