// A session and the state of the operations active in it (one of each kind).
#pragma once
#include <memory>
#include <vector>

#include "../crypto/aes_block.h"
#include "../crypto/aes_gcm.h"
#include "../crypto/hash_mac.h"
#include "../crypto/pkey.h"
#include "object.h"

namespace hsm {

// Mechanism with its decoded parameter; the binding fills it from JavaScript values.
struct Mechanism {
  CK_ULONG type = 0;
  bool hasParameter = false;
  ByteView bytesA;  // GCM IV, CBC IV, ECDH public data, OAEP source data
  ByteView bytesB;  // GCM AAD, ECDH shared data
  CK_ULONG numberA = 0;  // GCM tag bits, HMAC general length, ECDH kdf, OAEP/PSS hash
  CK_ULONG numberB = 0;  // OAEP/PSS mgf
  CK_ULONG numberC = 0;  // PSS salt length, OAEP source
};

enum class CipherImpl { None, Gcm, VendorGcm, Block, Rsa };

struct CipherOperation {
  bool active = false;
  bool multiPart = false;  // an Update call has been made
  CK_ULONG mechanism = 0;
  ObjectPtr key;
  CipherImpl impl = CipherImpl::None;
  RsaParams rsa;
  Bytes pending;  // GCM decrypt holds everything until the tag is checked
  Bytes rsaLabel;
  // CKM_CLOUDHSM_AES_GCM: the IV the token chose (encrypt), or the AAD and tag length kept
  // until C_Decrypt brings the IV (decrypt).
  Bytes vendorIv, vendorAad;
  size_t vendorTagBytes = 16;
  // Ends the operation, keeping buffers' capacity for the next one.
  void reset() {
    active = multiPart = false;
    key.reset();
    impl = CipherImpl::None;
    pending.clear();
    rsaLabel.clear();
    vendorIv.clear();
    vendorAad.clear();
  }
};

enum class SignImpl { None, Hmac, Ecdsa, Rsa };

struct SignOperation {
  bool active = false;
  bool multiPart = false;
  CK_ULONG mechanism = 0;
  ObjectPtr key;
  SignImpl impl = SignImpl::None;
  bool hashFirst = false;   // ECDSA_SHA*, SHA*_RSA_*: the token digests the data
  size_t macLength = 0;     // HMAC output (general forms truncate)
  RsaParams rsa;
  HashAlg hash = HashAlg::Sha256;  // of hashFirst mechanisms
};

struct DigestOperation {
  bool active = false;
  bool multiPart = false;
};

struct FindOperation {
  bool active = false;
  std::vector<CK_ULONG> results;
  size_t position = 0;
};

struct Session {
  CK_ULONG handle = 0;
  CK_ULONG slotId = 0;
  CK_ULONG application = 0;
  bool readWrite = false;
  bool busy = false;  // an asynchronous call is in flight on it

  CipherOperation encrypt, decrypt;
  SignOperation sign, verify;
  DigestOperation digest;
  FindOperation find;

  // Reusable primitive contexts: they stay keyed between operations on the same key.
  GcmCipher gcmEncrypt, gcmDecrypt;
  AesBlockCipher blockEncrypt, blockDecrypt;
  Hmac hmacSign, hmacVerify;
  Digest digester, signDigester, verifyDigester;
};

}  // namespace hsm
