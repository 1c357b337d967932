// The device layer: one simulated CloudHSM HSM.
export { Hsm, type Actor, type HsmOptions, type KeyDescription, type UserInfo } from "./hsm.js";
export { HsmError, type HsmErrorCode } from "./errors.js";
export { type AuditEntry, type AuditVerdict } from "./audit.js";
export { type FolderVerdict, verifyFolder } from "./verify-folder.js";
export { HSM_TYPES, type HsmType, type Role, PRECO_DEFAULT_PASSWORD, PRECO_USERNAME } from "./types.js";
