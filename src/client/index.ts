// The client SDK: one logical HSM over a cluster, through PKCS11 or the typed API.
export { ClusterConnection, CryptoUserSession, ManagementConsole, type ManagementChannel, type KeyPairRef, type KeyRef, type UserListReport, keyHandle } from "./api.js";
export { ClusterClient, type ClientOptions, type MemberHealth, type RetryRule } from "./client.js";
export { type Driver } from "./driver.js";
export { ClientError, type ClientErrorCode } from "./errors.js";
export { connect, type ConnectOptions, RemoteConnection, type CloudHsmTarget, parseCloudHsmTarget } from "./remote/index.js";
