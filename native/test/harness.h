// A minimal test harness for the native core (no third-party framework to install).
#pragma once
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace hsmtest {

struct TestCase {
  const char* name;
  std::function<void()> body;
};
std::vector<TestCase>& registry();
extern int failures;

struct Register {
  Register(const char* name, std::function<void()> body) { registry().push_back({name, std::move(body)}); }
};

std::string hex(const unsigned char* data, size_t length);

}  // namespace hsmtest

#define TEST(name)                                                      \
  static void name();                                                   \
  static hsmtest::Register register_##name(#name, name);                \
  static void name()

#define CHECK(cond)                                                                    \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      ++hsmtest::failures;                                                             \
    }                                                                                  \
  } while (0)

#define CHECK_EQ(a, b)                                                                              \
  do {                                                                                              \
    auto va = (a);                                                                                  \
    auto vb = (b);                                                                                  \
    if (!(va == vb)) {                                                                              \
      std::fprintf(stderr, "  %s:%d: CHECK_EQ(%s, %s) failed\n", __FILE__, __LINE__, #a, #b);     \
      ++hsmtest::failures;                                                                          \
    }                                                                                               \
  } while (0)
