#include "bytes.h"

#include <openssl/crypto.h>

namespace hsm {

void secureWipe(void* data, size_t length) {
  if (data != nullptr && length > 0) OPENSSL_cleanse(data, length);
}

bool constantTimeEqual(const uint8_t* a, const uint8_t* b, size_t length) {
  return CRYPTO_memcmp(a, b, length) == 0;
}

}  // namespace hsm
