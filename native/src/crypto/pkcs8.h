// PKCS#8 PrivateKeyInfo encoding of EC and RSA private keys, for wrapping and unwrapping.
#pragma once
#include "pkey.h"

namespace hsm {

CryptoStatus privateKeyToPkcs8(Pkey& key, Bytes& der);

struct DecodedPrivateKey {
  bool isEc = false;
  Curve curve = Curve::None;
  Bytes ecScalar;       // padded to the field size
  RsaComponents rsa;
};
CryptoStatus privateKeyFromPkcs8(ByteView der, DecodedPrivateKey& out);

}  // namespace hsm
