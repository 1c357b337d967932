// Handles cross the API as 8-byte little-endian Buffers (CK_ULONG), as in pkcs11js.
import { Buffer } from "node:buffer";
export type Handle = Buffer;

export function handleToNumber(handle: unknown, name: string): number {
  if (!(handle instanceof Buffer) || handle.length !== 8) {
    throw new TypeError(`${name} must be an 8-byte handle Buffer`);
  }
  // Direct byte reads: this runs several times per call on the hot path, and
  // readUInt32LE validates its offset argument each time.
  const low = (handle[0] | (handle[1] << 8) | (handle[2] << 16)) + handle[3] * 0x1000000;
  const high = (handle[4] | (handle[5] << 8) | (handle[6] << 16)) + handle[7] * 0x1000000;
  if (high > 0x1fffff) throw new TypeError(`${name} is not a valid handle`);
  return low + high * 0x100000000;
}

export function numberToHandle(value: number): Handle {
  const handle = Buffer.allocUnsafe(8);
  handle.writeUInt32LE(value % 0x100000000, 0);
  handle.writeUInt32LE(Math.floor(value / 0x100000000), 4);
  return handle;
}
