// hsmsim against node:crypto for RSA-2048 sign and verify, interleaved in short rounds and
// summarised by the median round, so that load from other work on a shared machine falls on both
// alike (tinybench runs one task after the other). Both use the same OpenSSL (the addon links
// Node's), so the difference is the per-call work around it. Run: npx tsx bench/rsa-interleaved.ts
import * as crypto from "node:crypto";

import { hsmsimPeer } from "./peers.js";
import { type RsaPadding, importRsaKeyPair, nodeRsaKey, nodeRsaKeyPair, rsaMechanism, tokenSign } from "./rsa.js";

const ROUNDS = 15;
const peer = hsmsimPeer();
const pair = nodeRsaKeyPair();
const key = importRsaKeyPair(peer.pkcs11, peer.session, pair);
const message = Buffer.from("an interleaved RSA-2048 measurement");
const out = Buffer.alloc(256);

function microsPerCall(fn: () => void, calls: number): number {
  const start = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) fn();
  return Number(process.hrtime.bigint() - start) / 1e3 / calls;
}
const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1];

for (const padding of ["pkcs1", "pss"] as RsaPadding[]) {
  const mechanism = rsaMechanism(padding);
  const signature = tokenSign(peer.pkcs11, peer.session, mechanism, key.privateKey, message);
  const privateKey = nodeRsaKey(pair.privateKey, padding), publicKey = nodeRsaKey(pair.publicKey, padding);
  const tasks: Record<string, [() => void, number]> = {
    "hsmsim sign": [() => {
      peer.pkcs11.C_SignInit(peer.session, mechanism, key.privateKey);
      peer.pkcs11.C_Sign(peer.session, message, out);
    }, 40],
    "node:crypto sign": [() => void crypto.sign("sha256", message, privateKey), 40],
    "hsmsim verify": [() => {
      peer.pkcs11.C_VerifyInit(peer.session, mechanism, key.publicKey);
      peer.pkcs11.C_Verify(peer.session, message, signature);
    }, 400],
    "node:crypto verify": [() => void crypto.verify("sha256", message, publicKey, signature), 400],
  };
  const rounds: Record<string, number[]> = {};
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, [fn, calls]] of Object.entries(tasks)) (rounds[name] ??= []).push(microsPerCall(fn, calls));
  }
  const us = (name: string) => median(rounds[name]);
  console.log(`${padding}: ${Object.keys(tasks).map((name) => `${name} ${us(name).toFixed(1)} µs`).join(", ")}; ` +
    `hsmsim ÷ node:crypto (ops/s): sign ${(us("node:crypto sign") / us("hsmsim sign")).toFixed(2)}x, ` +
    `verify ${(us("node:crypto verify") / us("hsmsim verify")).toFixed(2)}x`);
}
peer.close();
