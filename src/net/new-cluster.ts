// Creates a new cluster in an empty cluster folder: the lineage (vault secret), the cluster CA
// (the trust anchor; creating it is the cluster's initialization, as signing the cluster
// certificate is on CloudHSM), the first HSM and its clones (the masking key goes chip to chip
// in this process, never through JavaScript), each HSM's certificate for its address, and
// cluster.json, written last: a folder without it holds no cluster.
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, rmSync } from "node:fs";

import { checkHsmCount, checkZones } from "../cluster/control-plane.js";
import { type ServiceProfile, checkServiceProfile } from "../cluster/service-profile.js";
import { Hsm, restoreHsm } from "../hsm/hsm.js";
import { internalsOf } from "../hsm/internals.js";
import { HSM_TYPES, type HsmType } from "../hsm/types.js";
import { CLUSTER_FILE_VERSION, type ClusterFile, type ClusterFolder, type HsmEntry, isAddress, isIpv4, nthAddress, writeAtomically } from "./cluster-folder.js";
import { createClientCa, createClusterCa, issueClientCertificate, issueHsmCertificate } from "./pki.js";
import { ProcessError } from "./process-errors.js";
import { createLineage } from "./vault-files.js";

export interface NewClusterOptions {
  hsmCount: number;
  zones?: string[];
  hsmType?: string;
  baseAddress: string;
  port: number;
  /** Explicit "ip:port" of each HSM (several machines, or addresses of your choice); else base address + n. */
  addresses?: string[];
  mtls: boolean;
  passwordCost?: number;
  /** How fast the HSMs serve (plain data, dilation included); absent: as fast as the chip. */
  profile?: ServiceProfile;
}

function hostOf(address: string): string {
  return address.slice(0, address.lastIndexOf(":"));
}

export async function createCluster(folder: ClusterFolder, options: NewClusterOptions): Promise<ClusterFile> {
  checkHsmCount(options.hsmCount);
  const zones = checkZones(options.zones);
  const hsmType = options.hsmType ?? "hsm2m.medium";
  if (!Object.hasOwn(HSM_TYPES, hsmType)) throw new ProcessError("INVALID_ARGUMENT", `--type must be one of ${Object.keys(HSM_TYPES).join(", ")}`);
  const profile = options.profile === undefined ? undefined : checkServiceProfile(options.profile);
  if (!isIpv4(options.baseAddress)) throw new ProcessError("INVALID_ARGUMENT", "the base address must be an IPv4 address like 127.0.0.2");
  if (options.addresses && (options.addresses.length !== options.hsmCount || !options.addresses.every(isAddress) || new Set(options.addresses).size !== options.addresses.length)) {
    throw new ProcessError("INVALID_ARGUMENT", "give one distinct ip:port per HSM");
  }
  // (Checked again here, under the folder's lock: another `up` may have created it since the caller looked.)
  if (folder.exists()) throw new ProcessError("FOLDER_INVALID", `${folder.dir} holds a cluster already: run up without creation options to start it`);
  if (existsSync(folder.hsmsDir) && readdirSync(folder.hsmsDir).length > 0) {
    throw new ProcessError("FOLDER_INVALID", `${folder.dir} holds HSM folders but no cluster.json (an interrupted creation?): remove it and run up again`);
  }
  folder.makeTree();
  const clusterId = `cluster-${randomBytes(6).toString("hex")}`;
  const lineageId = createLineage(folder);

  const ca = await createClusterCa({ commonName: `hsmsim ${clusterId}` });
  writeAtomically(folder.trustAnchor, ca.certPem, 0o644);
  writeAtomically(folder.caKey, ca.keyPem, 0o600);
  if (options.mtls) {
    const clientCa = await createClientCa({ commonName: `hsmsim ${clusterId} clients` });
    writeAtomically(folder.clientCaCert, clientCa.certPem, 0o644);
    writeAtomically(folder.clientCaKey, clientCa.keyPem, 0o600);
    const client = await issueClientCertificate(clientCa, { commonName: "hsmsim application" });
    writeAtomically(`${folder.pkiDir}/client.crt`, client.certPem, 0o644);
    writeAtomically(`${folder.pkiDir}/client.key`, client.keyPem, 0o600);
  }

  const hsms: HsmEntry[] = [];
  const opened: Hsm[] = [];
  try {
    for (let i = 0; i < options.hsmCount; i++) {
      const origin = i + 1;
      const dir = folder.abs(folder.hsmFolder(origin));
      let hsm: Hsm;
      if (i === 0) hsm = Hsm.create(dir, { type: hsmType as HsmType, origin, passwordCost: options.passwordCost });
      else {
        const source = internalsOf(opened[0]);
        hsm = restoreHsm(dir, source.snapshot(), (target) => source.chip.shareMaskingKey(0, target, 0), { origin });
      }
      opened.push(hsm);
      const address = options.addresses?.[i] ?? nthAddress(options.baseAddress, options.port, i);
      hsms.push({ hsmId: hsm.id, origin, address, availabilityZone: zones[i % zones.length], state: "ACTIVE", folder: folder.hsmFolder(origin) });
    }
  } catch (e) {
    for (const h of opened) h.close();
    rmSync(folder.hsmsDir, { recursive: true, force: true });
    throw e;
  }
  for (const h of opened) h.close();
  for (const h of hsms) await issueHsmFiles(folder, ca, h);
  const file: ClusterFile = {
    version: CLUSTER_FILE_VERSION, clusterId, lineageId, state: "INITIALIZED", hsmType, zones, nextOrigin: options.hsmCount + 1,
    baseAddress: options.baseAddress, port: options.port, mtls: options.mtls, passwordCost: options.passwordCost, profile, hsms,
  };
  folder.write(file);
  return file;
}

/** An HSM's certificate for its address, issued by the cluster CA, and its key (0600). */
export async function issueHsmFiles(folder: ClusterFolder, ca: { certPem: string; keyPem: string }, hsm: HsmEntry): Promise<void> {
  const issued = await issueHsmCertificate(ca, { host: hostOf(hsm.address), port: Number(hsm.address.slice(hsm.address.lastIndexOf(":") + 1)), hsmId: hsm.hsmId });
  writeAtomically(folder.hsmCert(hsm.origin), issued.certPem, 0o644);
  writeAtomically(folder.hsmKey(hsm.origin), issued.keyPem, 0o600);
}
