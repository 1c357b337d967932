// Loads the addon built by cmake-js (npm run build:cmake) and runs a GCM round trip through
// it, so CI proves CMakeLists.txt builds the same working addon as binding.gyp.
const path = require("node:path");

const addon = require(path.join(__dirname, "..", "build-cmake", "Release", "hsmsim.node"));
const chip = new addon.Chip({ pinHashIterations: 1 });
chip.initToken(0, Buffer.from("so-pin-1"), Buffer.from("cmake"));
const session = chip.openSession(0, 6);
chip.loginPrincipal(session, 1);
const template = Buffer.alloc(4 + 8 + 8 + 8 + 8 + 8 + 32);
let o = template.writeUInt32LE(3, 0);
for (const [type, value] of [[0x0, Buffer.from([4, 0, 0, 0, 0, 0, 0, 0])], [0x100, Buffer.from([0x1f, 0, 0, 0, 0, 0, 0, 0])], [0x11, Buffer.alloc(32, 7)]]) {
  o = template.writeUInt32LE(type, o);
  o = template.writeUInt32LE(value.length, o);
  o += value.copy(template, o);
}
const key = chip.createObject(session, template.subarray(0, o));
const numbers = new Float64Array([0x1087, 1, 128, 0, 0]);
const iv = Buffer.alloc(12, 1);
chip.encryptInit(session, key, numbers, iv, null);
const sealed = Buffer.alloc(64);
const n = chip.encrypt(session, Buffer.from("cmake build"), sealed);
chip.decryptInit(session, key, numbers, iv, null);
const plain = Buffer.alloc(64);
const m = chip.decrypt(session, sealed.subarray(0, n), plain);
if (plain.subarray(0, m).toString() !== "cmake build") {
  console.error("cmake-js addon: GCM round trip failed");
  process.exit(1);
}
console.log("cmake-js addon: built, loaded, GCM round trip ok");
