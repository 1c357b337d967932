// Byte strings for key material: every buffer is wiped before its memory is released,
// so plaintext keys never linger in freed heap (DESIGN invariant 1).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace hsm {

void secureWipe(void* data, size_t length);
// Constant-time comparison of two equal-length secrets (DESIGN invariant 6).
bool constantTimeEqual(const uint8_t* a, const uint8_t* b, size_t length);

template <typename T>
struct WipingAllocator {
  using value_type = T;
  WipingAllocator() = default;
  template <typename U>
  WipingAllocator(const WipingAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T))); }
  void deallocate(T* p, size_t n) {
    secureWipe(p, n * sizeof(T));
    ::operator delete(p);
  }
  template <typename U>
  bool operator==(const WipingAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const WipingAllocator<U>&) const { return false; }
};

using Bytes = std::vector<uint8_t, WipingAllocator<uint8_t>>;

inline Bytes toBytes(const uint8_t* data, size_t length) { return Bytes(data, data + length); }
inline Bytes toBytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

// A read-only view of caller memory (input buffers are never copied on the hot path).
struct ByteView {
  const uint8_t* data = nullptr;
  size_t size = 0;
  ByteView() = default;
  ByteView(const uint8_t* d, size_t n) : data(d), size(n) {}
  ByteView(const Bytes& b) : data(b.data()), size(b.size()) {}
};

}  // namespace hsm
