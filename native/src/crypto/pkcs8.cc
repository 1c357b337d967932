#include "pkcs8.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

namespace hsm {

namespace {
Bytes bnParam(EVP_PKEY* pkey, const char* name, size_t padTo = 0) {
  BIGNUM* value = nullptr;
  Bytes out;
  if (EVP_PKEY_get_bn_param(pkey, name, &value) == 1 && value != nullptr) {
    size_t n = static_cast<size_t>(BN_num_bytes(value));
    out.assign(padTo > n ? padTo : n, 0);
    BN_bn2binpad(value, out.data(), static_cast<int>(out.size()));
  }
  BN_clear_free(value);
  return out;
}
}  // namespace

CryptoStatus privateKeyToPkcs8(Pkey& key, Bytes& der) {
  PKCS8_PRIV_KEY_INFO* info = EVP_PKEY2PKCS8(static_cast<EVP_PKEY*>(key.raw()));
  if (info == nullptr) return CryptoStatus::Internal;
  uint8_t* buffer = nullptr;
  int length = i2d_PKCS8_PRIV_KEY_INFO(info, &buffer);
  PKCS8_PRIV_KEY_INFO_free(info);
  if (length <= 0) return CryptoStatus::Internal;
  der = toBytes(buffer, static_cast<size_t>(length));
  OPENSSL_clear_free(buffer, static_cast<size_t>(length));
  return CryptoStatus::Ok;
}

CryptoStatus privateKeyFromPkcs8(ByteView der, DecodedPrivateKey& out) {
  const uint8_t* p = der.data;
  PKCS8_PRIV_KEY_INFO* info = d2i_PKCS8_PRIV_KEY_INFO(nullptr, &p, static_cast<long>(der.size));
  if (info == nullptr) return CryptoStatus::BadInput;
  EVP_PKEY* pkey = p == der.data + der.size ? EVP_PKCS82PKEY(info) : nullptr;
  PKCS8_PRIV_KEY_INFO_free(info);
  if (pkey == nullptr) return CryptoStatus::BadInput;
  CryptoStatus status = CryptoStatus::Ok;
  if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC) {
    char name[64];
    size_t length = 0;
    out.isEc = true;
    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name, &length)) {
      int nid = OBJ_sn2nid(name);
      out.curve = nid == NID_X9_62_prime256v1 ? Curve::P256 : nid == NID_secp384r1 ? Curve::P384 : Curve::None;
    }
    if (out.curve == Curve::None) status = CryptoStatus::BadParam;
    else out.ecScalar = bnParam(pkey, OSSL_PKEY_PARAM_PRIV_KEY, curveFieldBytes(out.curve));
  } else if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA) {
    out.rsa.modulus = bnParam(pkey, OSSL_PKEY_PARAM_RSA_N);
    out.rsa.publicExponent = bnParam(pkey, OSSL_PKEY_PARAM_RSA_E);
    out.rsa.privateExponent = bnParam(pkey, OSSL_PKEY_PARAM_RSA_D);
    out.rsa.prime1 = bnParam(pkey, OSSL_PKEY_PARAM_RSA_FACTOR1);
    out.rsa.prime2 = bnParam(pkey, OSSL_PKEY_PARAM_RSA_FACTOR2);
    out.rsa.exponent1 = bnParam(pkey, OSSL_PKEY_PARAM_RSA_EXPONENT1);
    out.rsa.exponent2 = bnParam(pkey, OSSL_PKEY_PARAM_RSA_EXPONENT2);
    out.rsa.coefficient = bnParam(pkey, OSSL_PKEY_PARAM_RSA_COEFFICIENT1);
  } else {
    status = CryptoStatus::BadParam;
  }
  EVP_PKEY_free(pkey);
  return status;
}

}  // namespace hsm
