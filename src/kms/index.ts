// The KMS endpoint: serves the KMS API (JSON 1.1, SigV4) over the cluster.
export { startKms, type KmsEndpoint, type KmsOptions } from "./endpoint.js";
export { KmsError, type KmsExceptionName } from "./errors.js";
export { type ClusterDirectory, type ClusterView, DEFAULT_CLUSTER_ACCOUNT_ID, folderClusterDirectory, simClusterDirectory, simTrustAnchorPem } from "./cluster-directory.js";
export { defaultCredentials } from "./identity.js";
export type { KmsCredential, KeyState, ConnectionState } from "./types.js";
