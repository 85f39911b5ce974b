// One znode of the ZooKeeper journal's log: a batch of consecutive entries, checksummed, naming
// the index of its first entry and the epoch of the leader that wrote it, so that a reader can
// check the log is contiguous and was written by one leader at a time. Pure: no I/O.
//
//   magic "CZB1" | u32 epoch | u64 firstIndex | u32 count | count x (u32 length | bytes) | u32 crc32c
//
// All integers big endian; the CRC32C covers everything before it.

import { crc32c } from '@node-rs/crc32';

const magic = 0x435a_4231; // "CZB1"
const fixedBytes = 4 + 4 + 8 + 4;
const crcBytes = 4;
export const batchOverheadBytes = fixedBytes + crcBytes;
export const entryOverheadBytes = 4;

export interface Batch {
  epoch: number;
  firstIndex: number;
  entries: Uint8Array[];
}

export function batchBytes(entries: readonly Uint8Array[]): number {
  let n = batchOverheadBytes;
  for (const e of entries) n += entryOverheadBytes + e.byteLength;
  return n;
}

export function encodeBatch(b: Batch): Buffer {
  const out = Buffer.allocUnsafe(batchBytes(b.entries));
  out.writeUInt32BE(magic, 0);
  out.writeUInt32BE(b.epoch, 4);
  out.writeBigUInt64BE(BigInt(b.firstIndex), 8);
  out.writeUInt32BE(b.entries.length, 16);
  let at = fixedBytes;
  for (const e of b.entries) {
    out.writeUInt32BE(e.byteLength, at);
    out.set(e, at + 4);
    at += 4 + e.byteLength;
  }
  out.writeUInt32BE(crc32c(out.subarray(0, at)), at);
  return out;
}

/** The batch in `data`, or what is wrong with it. Entries are views of `data`. */
export function decodeBatch(data: Buffer): Batch | string {
  if (data.length < batchOverheadBytes) return `${data.length} bytes is shorter than a batch`;
  if (data.readUInt32BE(0) !== magic) return 'not a journal batch (bad magic)';
  const crcAt = data.length - crcBytes;
  if (crc32c(data.subarray(0, crcAt)) !== data.readUInt32BE(crcAt)) return 'checksum mismatch';
  const epoch = data.readUInt32BE(4);
  const firstIndex = Number(data.readBigUInt64BE(8));
  const count = data.readUInt32BE(16);
  if (!Number.isSafeInteger(firstIndex) || firstIndex < 1) return `bad first index ${firstIndex}`;
  const entries: Uint8Array[] = [];
  let at = fixedBytes;
  for (let i = 0; i < count; i++) {
    if (at + 4 > crcAt) return `entry ${i} of ${count} overruns the batch`;
    const n = data.readUInt32BE(at);
    if (at + 4 + n > crcAt) return `entry ${i} of ${count} overruns the batch`;
    entries.push(data.subarray(at + 4, at + 4 + n));
    at += 4 + n;
  }
  if (at !== crcAt) return `${crcAt - at} bytes after the last entry`;
  return { epoch, firstIndex, entries };
}
