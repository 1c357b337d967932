// The vocabulary layer: constants, errors, templates and the pkcs11js-shaped facade.
export * from "./constants.js";
export { NativeError, Pkcs11Error, ckrName } from "./errors.js";
export { PKCS11 } from "./pkcs11.js";
export { CALL_LOG_ENV, CALL_LOG_LEVEL_ENV, type CallLogLevel, type CallLogOptions, type CallLogSink } from "./call-log.js";
export { openUserSession, type UserSessionOptions } from "./setup.js";
export type { Handle } from "./handles.js";
export type { Attribute, AttributeResult, Template, TemplateResult } from "./template.js";
export type { Mechanism, MechanismParams } from "./mechanism.js";
export type { KeyPair, MechanismInfo, ModuleInfo, SessionInfo, SlotInfo, TokenInfo } from "./info.js";
export type { ChipOptions, NativeChip } from "./addon.js";
export { createChip } from "./addon.js";
