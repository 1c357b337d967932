// The shape the management layers' errors share: a stable `code` a program can test, a
// message for people, and a `name` that says which layer failed (HsmError, ClusterError,
// ClientError). PKCS#11 calls fail with Pkcs11Error instead, as pkcs11js's do.
import { freezeClass } from "./primordials.js";
export class CodedError<Code extends string> extends Error {
  readonly code: Code;
  constructor(name: string, code: Code, message: string) {
    super(message);
    this.name = name;
    this.code = code;
  }
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(CodedError);
