// One token in one slot: its label, PINs with retry counting, login state, masking key
// and random generator. Objects live in the module, tagged with the slot id.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "../crypto/bytes.h"
#include "../crypto/drbg.h"
#include "../crypto/pkey.h"
#include "ck.h"

namespace hsm {

struct PinRecord {
  bool set = false;
  Bytes salt;
  Bytes hash;
  CK_ULONG failures = 0;  // consecutive wrong PINs
};

// Who an application is logged in as, on one token. PKCS#11 keeps login state per
// application: each application (a loaded module; on the device, each client) has its own.
struct Login {
  CK_ULONG user = CKU_NONE;
  // The principal a device layer logged in (0: none, standard PKCS#11 login). With one set,
  // objects it owns or that are shared with it are visible, and only their owner may change them.
  CK_ULONG principal = 0;
};

struct Token {
  CK_ULONG slotId = 0;
  bool initialized = false;
  std::string label;  // 32 characters, space padded
  std::string serial;
  PinRecord soPin, userPin;
  std::map<CK_ULONG, Login> logins;  // by application
  Bytes maskingKey;  // 32 bytes, the seal for masked object records
  // An EC P-256 key pair for receiving a masking key from another chip (made on first use).
  Pkey transportKey;
  Bytes transportPoint;
  std::unique_ptr<Drbg> drbg;
};

}  // namespace hsm
