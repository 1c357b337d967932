// How the cluster commands read and print a real-time cluster: the supervisor's status over
// the control socket, or cluster.json when no supervisor runs.
import { join } from "node:path";

import { type ClusterFolder, type ProfileView, profileView } from "../net/cluster-folder.js";
import { controlRequest } from "../net/control-socket.js";
import type { ClusterView } from "../net/supervisor.js";
import type { TextStream } from "./command.js";
import { textOutput } from "./format.js";

export function statusOf(folder: ClusterFolder): Promise<ClusterView> {
  return controlRequest(folder.socket, { op: "status" }, 30_000) as Promise<ClusterView>;
}

/** The last recorded state, for a cluster whose supervisor is not running. */
export function recordedView(folder: ClusterFolder): ClusterView {
  const file = folder.read();
  return {
    clusterId: file.clusterId, lineageId: file.lineageId, state: file.state, running: false, supervisorPid: null, mtls: file.mtls,
    profile: profileView(file.profile),
    hsms: file.hsms.map((h) => ({ hsmId: h.hsmId, origin: h.origin, address: h.address, availabilityZone: h.availabilityZone, state: h.state, pid: null, restarts: 0 })),
    backups: [], events: [],
  };
}

/** A path as a query value: as is when it needs no escaping (the common case), else percent-encoded. */
function queryValue(path: string): string {
  return /^[A-Za-z0-9/._~-]+$/.test(path) ? path : encodeURIComponent(path);
}

/** How an application connects: the typed API (connect) and the PKCS#11 load string (both from "hsmsim"). */
export function connectInfo(v: ClusterView, folder: ClusterFolder) {
  const first = v.hsms.find((h) => h.state !== "DELETED");
  if (!first) return null;
  const cert = join(folder.pkiDir, "client.crt"), key = join(folder.pkiDir, "client.key");
  const mtls = v.mtls ? { clientCertificate: cert, clientKey: key } : {};
  const mtlsQuery = v.mtls ? `&cert=${queryValue(cert)}&key=${queryValue(key)}` : "";
  return {
    trustAnchor: folder.trustAnchor,
    address: first.address,
    api: `connect({ address: "${first.address}", trustAnchor: "${folder.trustAnchor}"${v.mtls ? `, clientCertificate: { certificate: "${cert}", key: "${key}" }` : ""} })`,
    pkcs11: `load("cloudhsm://${first.address}?ca=${queryValue(folder.trustAnchor)}${mtlsQuery}")`,
    ...mtls,
  };
}

export function printCluster(v: ClusterView, folder: ClusterFolder, json: boolean, out: TextStream, howTo = true): void {
  const connect = connectInfo(v, folder);
  if (json) {
    out.write(`${JSON.stringify({ ...v, dataDir: folder.dir, connect }, null, 2)}\n`);
    return;
  }
  out.write(`cluster ${v.clusterId} ${v.state}${v.running ? ` (supervisor pid ${v.supervisorPid})` : " (down: no supervisor runs; states as last recorded; hsmsim up starts it)"}\n`);
  out.write(`profile ${describeProfile(v.profile)}\n`);
  textOutput((t) => void out.write(t)).table(["HSM", "state", "address", "zone", "pid", "keys", "users", "served", "busy"], v.hsms.map((h) => [
    h.hsmId, h.state, h.address, h.availabilityZone, h.pid === null ? "-" : String(h.pid), h.keyCount ?? "-", h.userCount ?? "-", h.served ?? "-", h.busy ?? "-",
  ]));
  if (howTo && connect) {
    out.write(`\ntrust anchor: ${connect.trustAnchor}\nconnect:      ${connect.api}\npkcs11:       ${connect.pkcs11}\n(connect and load come from "hsmsim"; any HSM's address works: the client learns the others)\n`);
    if (v.mtls) out.write(`client cert:  ${join(folder.pkiDir, "client.crt")} (key ${join(folder.pkiDir, "client.key")})\n`);
  }
}

/** "hsm2m.medium, time dilation ×10 (every service time ×10: measured rates ×10 are the profile's), 1 engine, queue 32". */
export function describeProfile(p: ProfileView | undefined): string {
  if (p === undefined) return "none (as fast as the chip)";
  const dilation = p.timeDilation === 1 ? "no time dilation" : `time dilation ×${p.timeDilation} (every service time ×${p.timeDilation}: multiply measured rates by ${p.timeDilation})`;
  return `${p.type}, ${dilation}, ${p.engines} engine${p.engines === 1 ? "" : "s"} and a queue of ${p.queueCapacity} per HSM`;
}
