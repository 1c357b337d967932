// Handles cross the API as 8-byte little-endian Buffers (CK_ULONG), as in pkcs11js.
export type Handle = Buffer;

export function handleToNumber(handle: unknown, name: string): number {
  if (!Buffer.isBuffer(handle) || handle.length !== 8) {
    throw new TypeError(`${name} must be an 8-byte handle Buffer`);
  }
  const high = handle.readUInt32LE(4);
  if (high > 0x1fffff) throw new TypeError(`${name} is not a valid handle`);
  return handle.readUInt32LE(0) + high * 0x100000000;
}

export function numberToHandle(value: number): Handle {
  const handle = Buffer.allocUnsafe(8);
  handle.writeUInt32LE(value % 0x100000000, 0);
  handle.writeUInt32LE(Math.floor(value / 0x100000000), 4);
  return handle;
}
