// The cluster layer: HSMs on a network, membership, replication, backups.
export { Cluster, type ClusterOptions, type ClusterState, type HsmInfo, type HsmState, MAX_HSMS, DEFAULT_BACKUP_INTERVAL_US, DEFAULT_BACKUP_RETENTION_US,
  defaultServiceTimeUs } from "./cluster.js";
export { ClusterNode, type NodeConfig } from "./node.js";
export { BackupVault, type Backup, type BackupTrigger } from "./backup.js";
export { ClusterError, type ClusterErrorCode } from "./errors.js";
export type { MemberAddress } from "./protocol.js";
export type { Transport } from "../runtime/transport.js";
