{
  "variables": {
    "hsm_core_sources": [
      "native/src/crypto/algorithms.cc",
      "native/src/crypto/aes_block.cc",
      "native/src/crypto/aes_gcm.cc",
      "native/src/crypto/aes_wrap.cc",
      "native/src/crypto/bytes.cc",
      "native/src/crypto/drbg.cc",
      "native/src/crypto/ec.cc",
      "native/src/crypto/hash_mac.cc",
      "native/src/crypto/pkcs8.cc",
      "native/src/crypto/raw_loop.cc",
      "native/src/crypto/rsa.cc",
      "native/src/token/cipher_ops.cc",
      "native/src/token/key_ops.cc",
      "native/src/token/masked.cc",
      "native/src/token/mechanisms.cc",
      "native/src/token/module.cc",
      "native/src/token/object.cc",
      "native/src/token/objects.cc",
      "native/src/token/policy.cc",
      "native/src/token/principals.cc",
      "native/src/token/sign_ops.cc",
      "native/src/token/token_record.cc"
    ],
    "hsm_binding_sources": [
      "native/src/binding/addon.cc",
      "native/src/binding/application.cc",
      "native/src/binding/args.cc",
      "native/src/binding/chip_crypto.cc",
      "native/src/binding/chip_device.cc",
      "native/src/binding/chip_token.cc"
    ]
  }
}
