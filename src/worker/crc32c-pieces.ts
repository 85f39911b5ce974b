// CRC32C of a payload and of its pieces in one pass. A worker checks a write's payload against the
// CRC the client sent and then needs the CRC of each block (4 KiB) of the new chunk file; computing
// both read every byte twice. Here the pieces' CRCs are computed once (the payload cut where the
// chunk's blocks are cut), and the payload's CRC is combined from them, as zlib's crc32_combine
// does: appending n bytes to a message multiplies its CRC by x^(8n) modulo the polynomial.

import { crc32c } from '@node-rs/crc32';

/** CRC32C's polynomial, bit-reflected. */
const poly = 0x82f63b78;

/** a * b modulo the polynomial (both reflected: bit 31 is x^0). */
function multModP(a: number, b: number): number {
  let m = 0x8000_0000;
  let p = 0;
  for (;;) {
    if ((a & m) !== 0) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ poly : b >>> 1;
  }
  return p >>> 0;
}

/** x^(2^k) modulo the polynomial, for k = 0..31. */
const x2n: number[] = [];
for (let k = 0, p = 0x4000_0000; k < 32; k++, p = multModP(p, p)) x2n.push(p);

/** x^(8 * bytes) modulo the polynomial: the operator that appends `bytes` bytes. */
function shiftFor(bytes: number): number {
  let p = 0x8000_0000;
  for (let k = 3, n = bytes; n > 0; n = Math.floor(n / 2), k++) if (n % 2 === 1) p = multModP(x2n[k & 31], p);
  return p;
}

const shifts = new Map<number, number>();
function cachedShift(bytes: number): number {
  let s = shifts.get(bytes);
  if (s === undefined) {
    s = shiftFor(bytes);
    if (shifts.size < 64) shifts.set(bytes, s);
  }
  return s;
}

/** The CRC32C of A followed by B, from crc(A), crc(B) and B's length. */
export function crc32cCombine(crcA: number, crcB: number, bytesB: number): number {
  if (bytesB === 0) return crcA >>> 0;
  if (crcA === 0) return crcB >>> 0; // 0 times any shift is 0
  return (multModP(cachedShift(bytesB), crcA) ^ crcB) >>> 0;
}

/** `data` cut into pieces: the first `firstBytes` long (at least 1), the others `pieceBytes`, the last what is left. */
export interface PieceCrcs {
  /** The length of `data`. */
  bytes: number;
  firstBytes: number;
  pieceBytes: number;
  crcs: Uint32Array;
  /** The CRC32C of all of `data`. */
  whole: number;
}

/** The CRC32C of each piece of `data` and of the whole, reading each byte once. */
export function crc32cPieces(data: Uint8Array, firstBytes: number, pieceBytes: number): PieceCrcs {
  const first = Math.max(1, Math.min(firstBytes, pieceBytes));
  const count = data.byteLength <= first ? (data.byteLength === 0 ? 0 : 1) : 1 + Math.ceil((data.byteLength - first) / pieceBytes);
  const crcs = new Uint32Array(count);
  let whole = 0;
  for (let i = 0, off = 0; i < count; i++) {
    const take = Math.min(i === 0 ? first : pieceBytes, data.byteLength - off);
    crcs[i] = crc32c(data.subarray(off, off + take));
    whole = crc32cCombine(whole, crcs[i], take);
    off += take;
  }
  return { bytes: data.byteLength, firstBytes: first, pieceBytes, crcs, whole };
}
