// Masked object records: a token object's attributes, key material included, sealed under
// the token's masking key, so layers above can persist and replicate keys without the
// plaintext ever leaving native memory.
//
// Record: "HSMR" | version (2) | algorithm (1) | body
//   algorithm 1, AES-256-GCM: body = IV (12) | ciphertext | tag (16); AAD = the 6-byte header | binding
//   algorithm 2, AES-256-KWP (RFC 5649): body = wrap(header | u32 binding length | binding | attributes)
// The binding is what the layer above says the record is (key id, version, owner): it is not
// stored in the record, only authenticated, so a record read back under another identity (an
// older version, another key) does not open.
// Attributes: u32 count, then per attribute u64 type, u32 length, bytes (little-endian).
#include <cstring>

#include "../crypto/aes_gcm.h"
#include "../crypto/aes_wrap.h"
#include "../crypto/hash_mac.h"
#include "module.h"
#include "record_codec.h"

namespace hsm {

namespace {
const uint8_t kMagic[4] = {'H', 'S', 'M', 'R'};
constexpr uint8_t kVersion = 2;  // 2: bound to an identity
constexpr size_t kHeader = 6, kIv = 12, kTag = 16;
constexpr size_t kMaxBinding = 4096;

}  // namespace

void putLe(Bytes& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}
uint64_t getLe(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

Bytes serializeAttributes(const AttributeMap& attributes) {
  Bytes out;
  putLe(out, attributes.size(), 4);
  for (const auto& entry : attributes) {
    putLe(out, entry.first, 8);
    putLe(out, entry.second.size(), 4);
    out.insert(out.end(), entry.second.begin(), entry.second.end());
  }
  return out;
}

bool deserializeAttributes(ByteView in, AttributeMap& out) {
  if (in.size < 4) return false;
  uint64_t count = getLe(in.data, 4);
  size_t offset = 4;
  for (uint64_t i = 0; i < count; ++i) {
    if (in.size - offset < 12) return false;
    CK_ULONG type = getLe(in.data + offset, 8);
    size_t length = getLe(in.data + offset + 8, 4);
    offset += 12;
    if (in.size - offset < length) return false;
    out[type] = toBytes(in.data + offset, length);
    offset += length;
  }
  return offset == in.size;
}

CK_RV sealRecord(Token& token, Bytes& record, size_t headerSize, ByteView binding, const Bytes& plain) {
  uint8_t iv[kIv];
  if (!token.drbg->generate(iv, kIv)) return CKR_FUNCTION_FAILED;
  Bytes aad(record.begin(), record.begin() + headerSize);
  if (binding.size) aad.insert(aad.end(), binding.data, binding.data + binding.size);
  record.insert(record.end(), iv, iv + kIv);
  size_t bodyAt = record.size();
  record.resize(bodyAt + plain.size() + kTag);
  GcmCipher gcm;
  CryptoStatus st = gcm.init(true, token.maskingKey, 0, ByteView(iv, kIv), aad, kTag);
  if (st == CryptoStatus::Ok) st = gcm.update(plain, record.data() + bodyAt);
  if (st == CryptoStatus::Ok) st = gcm.finishEncrypt(record.data() + bodyAt + plain.size());
  return st == CryptoStatus::Ok ? CKR_OK : CKR_FUNCTION_FAILED;
}

bool openRecord(const Token& token, ByteView record, size_t headerSize, ByteView binding, Bytes& plain) {
  if (record.size < headerSize + kIv + kTag) return false;
  size_t bodyLength = record.size - headerSize - kIv - kTag;
  plain.assign(bodyLength, 0);
  Bytes aad(record.data, record.data + headerSize);
  if (binding.size) aad.insert(aad.end(), binding.data, binding.data + binding.size);
  GcmCipher gcm;
  CryptoStatus st = gcm.init(false, token.maskingKey, 0, ByteView(record.data + headerSize, kIv), aad, kTag);
  if (st == CryptoStatus::Ok) st = gcm.update(ByteView(record.data + headerSize + kIv, bodyLength), plain.data());
  if (st == CryptoStatus::Ok) st = gcm.finishDecrypt(record.data + record.size - kTag);
  return st == CryptoStatus::Ok;
}

CK_RV Module::exportMasked(CK_ULONG slotId, CK_ULONG handle, int algorithm, Bytes& record) {
  return exportMasked(slotId, handle, algorithm, ByteView(), record);
}

CK_RV Module::importMasked(CK_ULONG slotId, ByteView record, CK_ULONG& handle) {
  return importMasked(slotId, record, ByteView(), handle);
}

CK_RV Module::exportMasked(CK_ULONG slotId, CK_ULONG handle, int algorithm, ByteView binding, Bytes& record) {
  if (algorithm != 1 && algorithm != 2) return CKR_ARGUMENTS_BAD;
  if (binding.size > kMaxBinding) return CKR_ARGUMENTS_BAD;
  Token* t = token(slotId);
  if (t == nullptr) return CKR_SLOT_ID_INVALID;
  if (!t->initialized) return CKR_TOKEN_NOT_RECOGNIZED;
  auto it = objects_.find(handle);
  if (it == objects_.end() || it->second->slotId != slotId || !it->second->isToken()) return CKR_OBJECT_HANDLE_INVALID;
  Bytes plain = serializeAttributes(it->second->attributes);
  record.assign(kMagic, kMagic + 4);
  record.push_back(kVersion);
  record.push_back(static_cast<uint8_t>(algorithm));
  if (algorithm == 2) {
    Bytes framed(record.begin(), record.end());
    putLe(framed, binding.size, 4);
    if (binding.size) framed.insert(framed.end(), binding.data, binding.data + binding.size);
    framed.insert(framed.end(), plain.begin(), plain.end());
    Bytes wrapped;
    if (aesWrap(true, t->maskingKey, framed, wrapped) != CryptoStatus::Ok) return CKR_FUNCTION_FAILED;
    record.insert(record.end(), wrapped.begin(), wrapped.end());
    return CKR_OK;
  }
  return sealRecord(*t, record, kHeader, binding, plain);
}

CK_RV Module::importMasked(CK_ULONG slotId, ByteView record, ByteView binding, CK_ULONG& handle) {
  if (binding.size > kMaxBinding) return CKR_ARGUMENTS_BAD;
  Token* t = token(slotId);
  if (t == nullptr) return CKR_SLOT_ID_INVALID;
  if (!t->initialized) return CKR_TOKEN_NOT_RECOGNIZED;
  if (record.size < kHeader || memcmp(record.data, kMagic, 4) != 0 || record.data[4] != kVersion)
    return CKR_DATA_INVALID;
  Bytes plain;
  if (record.data[5] == 1) {
    if (!openRecord(*t, record, kHeader, binding, plain)) return CKR_DATA_INVALID;  // tampered, or another masking key
  } else if (record.data[5] == 2) {
    if (aesUnwrap(true, t->maskingKey, ByteView(record.data + kHeader, record.size - kHeader), plain) !=
            CryptoStatus::Ok ||
        plain.size() < kHeader + 4 || memcmp(plain.data(), record.data, kHeader) != 0)
      return CKR_DATA_INVALID;
    size_t boundLength = getLe(plain.data() + kHeader, 4);
    if (boundLength != binding.size || plain.size() - kHeader - 4 < boundLength ||
        (boundLength && memcmp(plain.data() + kHeader + 4, binding.data, boundLength) != 0))
      return CKR_DATA_INVALID;  // read back under another identity
    plain.erase(plain.begin(), plain.begin() + kHeader + 4 + boundLength);
  } else {
    return CKR_DATA_INVALID;
  }
  auto object = std::make_shared<Object>();
  if (!deserializeAttributes(plain, object->attributes)) return CKR_DATA_INVALID;
  object->refreshHot();
  if (!object->isToken()) return CKR_DATA_INVALID;
  if (buildKeyMaterial(*object) != CKR_OK) return CKR_DATA_INVALID;
  object->slotId = slotId;
  object->handle = nextObject_++;
  object->keyId = nextKeyId_++;
  handle = object->handle;
  objects_[handle] = std::move(object);
  return CKR_OK;
}

CK_RV Module::shareMaskingKey(CK_ULONG slotId, Module& target, CK_ULONG targetSlotId) {
  Token* from = token(slotId);
  Token* to = target.token(targetSlotId);
  if (from == nullptr || to == nullptr) return CKR_SLOT_ID_INVALID;
  if (!from->initialized || !to->initialized) return CKR_TOKEN_NOT_RECOGNIZED;
  to->maskingKey = from->maskingKey;
  return CKR_OK;
}

namespace {
const uint8_t kTransportMagic[4] = {'H', 'S', 'M', 'T'};
constexpr size_t kPointBytes = 65;  // uncompressed P-256

// KEK = HKDF-SHA-256(ECDH(sender, recipient), salt = label, info = senderPoint || recipientPoint).
bool transportKek(Pkey& own, ByteView peerPoint, ByteView senderPoint, ByteView recipientPoint, uint8_t* kek) {
  Bytes z;
  if (ecdhDerive(own, Curve::P256, peerPoint, z) != CryptoStatus::Ok) return false;
  Bytes info(senderPoint.data, senderPoint.data + senderPoint.size);
  info.insert(info.end(), recipientPoint.data, recipientPoint.data + recipientPoint.size);
  static const char kLabel[] = "hsmsim masking key transfer";
  return hkdfSha256(z, ByteView(reinterpret_cast<const uint8_t*>(kLabel), sizeof kLabel - 1), info, kek, 32);
}
}  // namespace

CK_RV Module::transportPublicKey(CK_ULONG slotId, Bytes& point) {
  Token* t = token(slotId);
  if (t == nullptr) return CKR_SLOT_ID_INVALID;
  if (!t->initialized) return CKR_TOKEN_NOT_RECOGNIZED;
  if (t->transportKey.empty()) {
    Bytes scalar;
    if (ecGenerate(Curve::P256, *t->drbg, scalar, t->transportPoint) != CryptoStatus::Ok ||
        ecPrivateKey(Curve::P256, scalar, t->transportKey, nullptr) != CryptoStatus::Ok)
      return CKR_FUNCTION_FAILED;
  }
  point = t->transportPoint;
  return CKR_OK;
}

CK_RV Module::exportMaskingKeyFor(CK_ULONG slotId, ByteView recipientPoint, Bytes& sealed) {
  Token* t = token(slotId);
  if (t == nullptr) return CKR_SLOT_ID_INVALID;
  if (!t->initialized) return CKR_TOKEN_NOT_RECOGNIZED;
  if (recipientPoint.size != kPointBytes) return CKR_ARGUMENTS_BAD;
  // A fresh ephemeral key per transfer.
  Bytes scalar, ephemeralPoint;
  Pkey ephemeral;
  if (ecGenerate(Curve::P256, *t->drbg, scalar, ephemeralPoint) != CryptoStatus::Ok ||
      ecPrivateKey(Curve::P256, scalar, ephemeral, nullptr) != CryptoStatus::Ok)
    return CKR_FUNCTION_FAILED;
  uint8_t kek[32];
  if (!transportKek(ephemeral, recipientPoint, ephemeralPoint, recipientPoint, kek)) return CKR_ARGUMENTS_BAD;
  Bytes wrapped;
  CryptoStatus st = aesWrap(true, ByteView(kek, sizeof kek), t->maskingKey, wrapped);
  secureWipe(kek, sizeof kek);
  if (st != CryptoStatus::Ok) return CKR_FUNCTION_FAILED;
  sealed.assign(kTransportMagic, kTransportMagic + 4);
  sealed.push_back(1);
  sealed.insert(sealed.end(), ephemeralPoint.begin(), ephemeralPoint.end());
  sealed.insert(sealed.end(), wrapped.begin(), wrapped.end());
  return CKR_OK;
}

CK_RV Module::importMaskingKey(CK_ULONG slotId, ByteView sealed) {
  Token* t = token(slotId);
  if (t == nullptr) return CKR_SLOT_ID_INVALID;
  if (!t->initialized) return CKR_TOKEN_NOT_RECOGNIZED;
  if (t->transportKey.empty()) return CKR_KEY_HANDLE_INVALID;  // no transport key was published
  if (sealed.size != 5 + kPointBytes + 40 || memcmp(sealed.data, kTransportMagic, 4) != 0 || sealed.data[4] != 1)
    return CKR_WRAPPED_KEY_INVALID;
  ByteView senderPoint(sealed.data + 5, kPointBytes);
  uint8_t kek[32];
  if (!transportKek(t->transportKey, senderPoint, senderPoint, t->transportPoint, kek)) return CKR_WRAPPED_KEY_INVALID;
  Bytes key;
  CryptoStatus st = aesUnwrap(true, ByteView(kek, sizeof kek), ByteView(sealed.data + 5 + kPointBytes, 40), key);
  secureWipe(kek, sizeof kek);
  if (st != CryptoStatus::Ok || key.size() != 32) return CKR_WRAPPED_KEY_INVALID;
  t->maskingKey = std::move(key);
  return CKR_OK;
}

}  // namespace hsm
