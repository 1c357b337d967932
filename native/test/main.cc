// Runs every registered native test; prints a closing line CI can read.
#include "harness.h"

namespace hsmtest {
std::vector<TestCase>& registry() {
  static std::vector<TestCase> tests;
  return tests;
}
int failures = 0;
std::string hex(const unsigned char* data, size_t length) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < length; ++i) {
    out.push_back(digits[data[i] >> 4]);
    out.push_back(digits[data[i] & 15]);
  }
  return out;
}
}  // namespace hsmtest

int main() {
  int passed = 0, failed = 0;
  for (const auto& test : hsmtest::registry()) {
    int before = hsmtest::failures;
    test.body();
    bool ok = hsmtest::failures == before;
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", test.name);
    (ok ? passed : failed)++;
  }
  std::printf("native: %d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
