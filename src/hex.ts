// Lower-case hexadecimal of a byte string: keys as UAPI `get` prints them and as the engine
// indexes peers by public key. The one copy; nothing else in src/ hand-rolls it.

/** Lower-case hex of `bytes` (two digits per byte, no separators); reads a view in place, no copy of the bytes. */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}
