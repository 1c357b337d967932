// OpenSSL algorithm objects fetched once per process. Implicit fetching on every init
// (EVP_aes_256_gcm() and friends) takes a lock and a lookup each call in OpenSSL 3.
#pragma once
#include <openssl/evp.h>

namespace hsm {

enum class HashAlg { Sha1, Sha224, Sha256, Sha384, Sha512 };
enum class AesMode { Gcm, Cbc, Ecb, Wrap, WrapPad };

const EVP_MD* fetchedDigest(HashAlg alg);
// keyBytes is 16, 24 or 32; anything else gives nullptr.
const EVP_CIPHER* fetchedAes(AesMode mode, size_t keyBytes);
EVP_MAC* fetchedHmac();
const char* digestName(HashAlg alg);
size_t digestLength(HashAlg alg);

}  // namespace hsm
