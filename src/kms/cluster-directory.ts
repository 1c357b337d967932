// Where KMS finds the CloudHSM clusters custom key stores are over: by cluster id, what the
// cluster is (state, HSMs and their zones, trust anchor) and a new client connection to it.
// Two kinds: the simulator's world (virtual time, in process) and real-time clusters started
// with `hsmsim up` (their folders).
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

import { connect } from "../client/remote/connect.js";
import { ClusterFolder } from "../net/cluster-folder.js";
import type { World } from "../sim/world.js";
import { CksLink } from "./cks-link.js";

export interface ClusterView {
  clusterId: string;
  /**
   * The AWS account that owns the cluster (set by the directory). AWS associates a cluster only
   * with a key store of that account: to any other, the cluster is not found.
   */
  accountId: string;
  /** ACTIVE once activated; UNINITIALIZED / INITIALIZED before (CloudHSM's cluster states). */
  state: string;
  trustAnchorPem: string;
  hsms: { hsmId: string; availabilityZone: string; state: string }[];
  /**
   * The cluster's backup lineage: a cluster restored from another's backup shares it (what AWS
   * calls a related cluster, UpdateCustomKeyStore's condition). Absent: related only to itself.
   */
  lineageId?: string;
}

/** One client connection to a cluster, as KMS uses it (opaque outside custom-key-stores.ts). */
export interface ClusterLink {
  close(): void;
}

export interface ClusterDirectory {
  describe(clusterId: string): ClusterView | null;
  /** A new client connection (not logged in); fails with the network's reason when no HSM answers. */
  open(clusterId: string): Promise<ClusterLink>;
}

/**
 * A trust anchor for a simulated world, which has no TLS and so no certificate: a PEM block
 * derived from the cluster's id and lineage, the same for the world's whole life. Not a real
 * certificate: CreateCustomKeyStore compares it byte for byte, as it does a real one.
 */
export function simTrustAnchorPem(world: World): string {
  const body = createHash("sha512").update(`hsmsim simulated customer CA\0${world.cluster.clusterId}\0${world.cluster.lineageId}`).digest("base64");
  return `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`;
}

/**
 * The account a directory's clusters belong to unless told otherwise: 111122223333, the customer
 * account of hsmsim's embedded defaults (the demo's and the test fixtures' key owner).
 */
export const DEFAULT_CLUSTER_ACCOUNT_ID = "111122223333";

function ownerAccount(accountId: string | undefined): string {
  const owner = accountId ?? DEFAULT_CLUSTER_ACCOUNT_ID;
  if (typeof owner !== "string" || !/^[0-9]{12}$/.test(owner)) throw new RangeError("accountId must be an AWS account id (12 digits)");
  return owner;
}

/** Client names in a world must differ (each is an address on its network), across directories too. */
let simLinksOpened = 0;

/** The world's cluster (its id as the world's cluster gives it), owned by `accountId`. */
export function simClusterDirectory(world: World, options: {
  trustAnchorPem?: string;
  /** The account that owns the cluster (default DEFAULT_CLUSTER_ACCOUNT_ID, 111122223333: the embedded defaults' customer account). */
  accountId?: string;
} = {}): ClusterDirectory {
  const trustAnchorPem = options.trustAnchorPem ?? simTrustAnchorPem(world);
  const accountId = ownerAccount(options.accountId);
  return Object.freeze({
    describe(clusterId: string): ClusterView | null {
      const cluster = world.cluster;
      if (clusterId !== cluster.clusterId || cluster.state === "DELETED") return null;
      // What the control plane says of its HSMs (an HSM that died shows DEGRADED after its health check).
      const hsms = cluster.describe().filter((h) => h.state !== "DELETED").map((h) => ({ hsmId: h.hsmId, availabilityZone: h.availabilityZone, state: h.state }));
      return { clusterId, accountId, state: cluster.state, trustAnchorPem, hsms, lineageId: cluster.lineageId };
    },
    async open(clusterId: string): Promise<ClusterLink> {
      if (clusterId !== world.cluster.clusterId) throw new Error(`no cluster ${clusterId} in this world`);
      const connection = world.connect(`kms-${++simLinksOpened}`);
      return new CksLink(connection, { blocking: true });
    },
  });
}

/** Real-time clusters in these cluster folders (`hsmsim up --data DIR`), all owned by `accountId`; read afresh on each describe. */
export function folderClusterDirectory(folders: readonly string[], options: {
  /** The account that owns these clusters (default DEFAULT_CLUSTER_ACCOUNT_ID, 111122223333: the embedded defaults' customer account). */
  accountId?: string;
  /** The longest one blocking call to the cluster waits (default 15 000 ms). */
  callTimeoutMs?: number;
  /** For clusters that enforce mutual TLS (cluster.json mtls): KMS's client certificate from their client trust anchor, and its key (PEM text or paths). */
  clientCertificate?: { certificate: string; key: string };
} = {}): ClusterDirectory {
  const list = [...folders];
  const accountId = ownerAccount(options.accountId);
  const find = (clusterId: string): { view: ClusterView; addresses: string[] } | null => {
    for (const dir of list) {
      const folder = new ClusterFolder(dir);
      let file;
      try {
        file = folder.read();
      } catch {
        continue; // not a cluster folder (yet), or damaged: not this cluster
      }
      if (file.clusterId !== clusterId) continue;
      let trustAnchorPem = "";
      try {
        trustAnchorPem = readFileSync(folder.trustAnchor, "utf8");
      } catch {
        // no trust anchor: no store can match it (IncorrectTrustAnchorException) and no TLS connection can be made
      }
      const live = file.hsms.filter((h) => h.state !== "DELETED");
      return {
        view: { clusterId, accountId, state: file.state, trustAnchorPem, lineageId: file.lineageId,
          hsms: live.map((h) => ({ hsmId: h.hsmId, availabilityZone: h.availabilityZone, state: h.state })) },
        // Active HSMs first: the client bootstraps from the first that answers and learns the others.
        addresses: [...live.filter((h) => h.state === "ACTIVE"), ...live.filter((h) => h.state !== "ACTIVE")].map((h) => h.address),
      };
    }
    return null;
  };
  return Object.freeze({
    describe(clusterId: string): ClusterView | null {
      return find(clusterId)?.view ?? null;
    },
    async open(clusterId: string): Promise<ClusterLink> {
      const found = find(clusterId);
      if (found === null) throw new Error(`no cluster ${clusterId} in the configured folders`);
      let last: unknown = new Error(`cluster ${clusterId} has no HSM`);
      for (const address of found.addresses) {
        try {
          const connection = connect({ address, trustAnchor: found.view.trustAnchorPem, callTimeoutMs: options.callTimeoutMs ?? 15_000, clientCertificate: options.clientCertificate });
          return new CksLink(connection, { blocking: false });
        } catch (e) {
          last = e; // this HSM does not answer: the next one may
        }
      }
      throw last;
    },
  });
}

