// The on-disk form of one chunk version: its file name, and a file that is a checksummed header
// followed by the data at a 4 KiB-aligned offset, with one CRC32C per data block so that a small
// read verifies only the blocks it touches. Pure: no I/O.

import { crc32c } from '@node-rs/crc32';
import { crc32cCombine, type PieceCrcs } from './crc32c-pieces.ts';
import { assert } from '../errors.ts';
import { firstBadCrc } from '../io/disk.ts';

/** A chunk: the `index`-th chunk of the file `inodeId`. */
export interface ChunkId {
  inodeId: number;
  index: number;
}

export const inodeIdMax = Number.MAX_SAFE_INTEGER;
export const chunkIndexMax = 0xffff_ffff;

/** 'CRNC' read as a little-endian u32. */
const magic = 0x434e_5243;
/** 2: the header also lists the ids of the writes that made the last versions. */
export const chunkFileFormat = 2;
/** Writes a version remembers (its own and those before it): a client's retry of one of them is recognised. */
export const writeIdsMax = 8;
const writeIdPattern = /^[0-9a-f]{16}$/;
/** Data starts at a multiple of this, so that data reads stay page-aligned. */
export const headerAlignBytes = 4096;
/** magic u32, format u16, write-id count u16, inode u64, index u32, block size u32, version u64, chain version u64, length u32, crc u32, headerBytes u32, block count u32; then block CRCs, write ids (u64 each), header CRC. */
const fixedBytes = 56;

export type ChunkFileState = 'chunk' | 'pending';

/** What a header says about the version in its file. */
export interface ChunkHeader {
  inodeId: number;
  index: number;
  version: number;
  chainVersion: number;
  lengthBytes: number;
  blockSizeBytes: number;
  /** CRC32C of the whole data. */
  crc32c: number;
  /** CRC32C of each data block; the last block may be short. */
  blockCrcs: Uint32Array;
  /** Where the data starts: the header's size rounded up to headerAlignBytes. */
  headerBytes: number;
  /** The ids (16 hex digits) of the writes that made this version and the ones before it, oldest first. */
  writeIds: string[];
}

/** Whether `id` is a write id: 16 lowercase hex digits (64 random bits). */
export function isWriteId(id: unknown): id is string {
  return typeof id === 'string' && writeIdPattern.test(id);
}

export function isValidChunkId(id: ChunkId): boolean {
  return Number.isSafeInteger(id.inodeId) && id.inodeId >= 1 && Number.isSafeInteger(id.index) && id.index >= 0 && id.index <= chunkIndexMax;
}

/** `<inode, 16 hex>-<index, 8 hex>`: the key of a chunk in memory and the start of its file names. */
export function chunkKey(id: ChunkId): string {
  return `${id.inodeId.toString(16).padStart(16, '0')}-${id.index.toString(16).padStart(8, '0')}`;
}

/** The fan-out directory of an inode's chunks: its low byte in hex, so that sequential inodes spread. */
export function fanoutDirName(inodeId: number): string {
  return (inodeId % 256).toString(16).padStart(2, '0');
}

export function chunkFileName(id: ChunkId, version: number, state: ChunkFileState): string {
  return `${chunkKey(id)}.${version}.${state}`;
}

const namePattern = /^([0-9a-f]{16})-([0-9a-f]{8})\.([1-9][0-9]{0,15})\.(chunk|pending)$/;

/** The chunk, version and state a file name stands for; undefined for any other name. */
export function parseChunkFileName(name: string): { id: ChunkId; version: number; state: ChunkFileState } | undefined {
  const m = namePattern.exec(name);
  if (m === null) return undefined;
  const id = { inodeId: Number.parseInt(m[1], 16), index: Number.parseInt(m[2], 16) };
  const version = Number(m[3]);
  if (!isValidChunkId(id) || !Number.isSafeInteger(version)) return undefined;
  return { id, version, state: m[4] as ChunkFileState };
}

export function blockCount(lengthBytes: number, blockSizeBytes: number): number {
  return Math.ceil(lengthBytes / blockSizeBytes);
}

export function headerBytesFor(lengthBytes: number, blockSizeBytes: number, writeIds = 0): number {
  const bytes = fixedBytes + 4 * blockCount(lengthBytes, blockSizeBytes) + 8 * writeIds + 4;
  return Math.ceil(bytes / headerAlignBytes) * headerAlignBytes;
}

export interface ChunkFileFields {
  id: ChunkId;
  version: number;
  chainVersion: number;
  lengthBytes: number;
  blockSizeBytes: number;
  /** At most writeIdsMax, oldest first; none for versions not made by a client's write. */
  writeIds?: readonly string[];
}

/**
 * A chunk file's header for data given as consecutive parts (the old content around a new piece,
 * or the payload alone): the checksums are computed over the parts as one, so the file is written
 * with one vectored write of the header and the parts, without copying them into one buffer. Each
 * byte is read once: the whole content's CRC is combined from the blocks'.
 * `known`: the CRCs of one part's pieces (cut where the blocks are), already computed from its bytes.
 */
export function buildChunkHeader(fields: ChunkFileFields, parts: readonly Uint8Array[], known?: { part: Uint8Array; pieces: PieceCrcs }): { bytes: Uint8Array; header: ChunkHeader } {
  const { id, version, chainVersion, lengthBytes, blockSizeBytes } = fields;
  const writeIds = [...(fields.writeIds ?? [])];
  assert(lengthBytes <= 0xffff_ffff, `chunk length ${lengthBytes} fits a u32`);
  assert(writeIds.length <= writeIdsMax && writeIds.every(isWriteId), `write ids ${writeIds.join(',')} are at most ${writeIdsMax} of 16 hex digits`);
  assert(parts.reduce((n, p) => n + p.byteLength, 0) === lengthBytes, `the parts hold ${lengthBytes} bytes`);
  const headerBytes = headerBytesFor(lengthBytes, blockSizeBytes, writeIds.length);
  const blockCrcs = new Uint32Array(blockCount(lengthBytes, blockSizeBytes));
  let whole = 0;
  let block = 0;
  let inBlock = 0;
  let crc = 0;
  // A payload that is the whole content from a block's start (a chunk written whole): its pieces are the blocks.
  const only = known !== undefined && parts.length === 1 && parts[0] === known.part && known.pieces.firstBytes === blockSizeBytes && known.pieces.pieceBytes === blockSizeBytes;
  if (only) {
    blockCrcs.set(known.pieces.crcs);
    whole = known.pieces.whole;
  }
  for (const part of only ? [] : parts) {
    const pieces = known !== undefined && part === known.part ? known.pieces : undefined;
    assert(pieces === undefined || (pieces.pieceBytes === blockSizeBytes && pieces.firstBytes === blockSizeBytes - inBlock && pieces.bytes === part.byteLength), 'the known pieces are cut where the blocks are, over the whole part');
    for (let off = 0, piece = 0; off < part.byteLength; piece++) {
      const take = Math.min(blockSizeBytes - inBlock, part.byteLength - off);
      crc = pieces === undefined ? crc32c(part.subarray(off, off + take), crc) : crc32cCombine(crc, pieces.crcs[piece], take);
      inBlock += take;
      off += take;
      if (inBlock === blockSizeBytes) {
        blockCrcs[block++] = crc;
        whole = crc32cCombine(whole, crc, inBlock);
        crc = 0;
        inBlock = 0;
      }
    }
  }
  if (inBlock > 0) {
    blockCrcs[block++] = crc;
    whole = crc32cCombine(whole, crc, inBlock);
  }
  const header: ChunkHeader = { inodeId: id.inodeId, index: id.index, version, chainVersion, lengthBytes, blockSizeBytes, crc32c: whole, blockCrcs, headerBytes, writeIds };
  const bytes = new Uint8Array(headerBytes);
  encodeHeader(header, bytes);
  return { bytes, header };
}

/** A whole chunk file in one buffer (tests plant files with it): header, then `data`. */
export function buildChunkFile(fields: ChunkFileFields, fill: (data: Uint8Array) => void): { bytes: Uint8Array; header: ChunkHeader } {
  const data = new Uint8Array(fields.lengthBytes);
  fill(data);
  const { bytes: head, header } = buildChunkHeader(fields, [data]);
  const bytes = new Uint8Array(head.byteLength + data.byteLength);
  bytes.set(head);
  bytes.set(data, head.byteLength);
  return { bytes, header };
}

function encodeHeader(h: ChunkHeader, out: Uint8Array): void {
  const v = new DataView(out.buffer, out.byteOffset, h.headerBytes);
  v.setUint32(0, magic, true);
  v.setUint16(4, chunkFileFormat, true);
  v.setUint16(6, h.writeIds.length, true);
  v.setBigUint64(8, BigInt(h.inodeId), true);
  v.setUint32(16, h.index, true);
  v.setUint32(20, h.blockSizeBytes, true);
  v.setBigUint64(24, BigInt(h.version), true);
  v.setBigUint64(32, BigInt(h.chainVersion), true);
  v.setUint32(40, h.lengthBytes, true);
  v.setUint32(44, h.crc32c, true);
  v.setUint32(48, h.headerBytes, true);
  v.setUint32(52, h.blockCrcs.length, true);
  let off = fixedBytes;
  for (const c of h.blockCrcs) {
    v.setUint32(off, c, true);
    off += 4;
  }
  for (const w of h.writeIds) {
    v.setBigUint64(off, BigInt(`0x${w}`), true);
    off += 8;
  }
  v.setUint32(off, crc32c(out.subarray(0, off)), true);
}

/** How many bytes the header starting `buf` says it has (to read the rest), or a problem. */
export function peekHeaderBytes(buf: Uint8Array): number | string {
  if (buf.byteLength < fixedBytes) return `file too short for a chunk header (${buf.byteLength} bytes)`;
  const v = new DataView(buf.buffer, buf.byteOffset, fixedBytes);
  if (v.getUint32(0, true) !== magic) return 'bad magic';
  if (v.getUint16(4, true) !== chunkFileFormat) return `unknown format ${v.getUint16(4, true)}`;
  const headerBytes = v.getUint32(48, true);
  if (headerBytes < headerAlignBytes || headerBytes % headerAlignBytes !== 0) return `bad header size ${headerBytes}`;
  return headerBytes;
}

/** The header at the start of `buf` (which holds at least its headerBytes), or what is wrong with it. */
export function decodeHeader(buf: Uint8Array): ChunkHeader | string {
  const headerBytes = peekHeaderBytes(buf);
  if (typeof headerBytes === 'string') return headerBytes;
  if (buf.byteLength < headerBytes) return `header of ${headerBytes} bytes cut at ${buf.byteLength}`;
  const v = new DataView(buf.buffer, buf.byteOffset, headerBytes);
  const blocks = v.getUint32(52, true);
  const writes = v.getUint16(6, true);
  if (writes > writeIdsMax) return `${writes} write ids, more than ${writeIdsMax}`;
  const crcAt = fixedBytes + 4 * blocks + 8 * writes;
  if (crcAt + 4 > headerBytes) return `block count ${blocks} does not fit the header`;
  if (crc32c(buf.subarray(0, crcAt)) !== v.getUint32(crcAt, true)) return 'header checksum mismatch';
  const h: ChunkHeader = {
    inodeId: Number(v.getBigUint64(8, true)),
    index: v.getUint32(16, true),
    blockSizeBytes: v.getUint32(20, true),
    version: Number(v.getBigUint64(24, true)),
    chainVersion: Number(v.getBigUint64(32, true)),
    lengthBytes: v.getUint32(40, true),
    crc32c: v.getUint32(44, true),
    headerBytes,
    blockCrcs: new Uint32Array(blocks),
    writeIds: [],
  };
  for (let b = 0; b < blocks; b++) h.blockCrcs[b] = v.getUint32(fixedBytes + 4 * b, true);
  for (let w = 0; w < writes; w++) h.writeIds.push(v.getBigUint64(fixedBytes + 4 * blocks + 8 * w, true).toString(16).padStart(16, '0'));
  // A checksummed header can still be wrong if the writer was: check it is self-consistent.
  const bs = h.blockSizeBytes;
  if (bs < 512 || (bs & (bs - 1)) !== 0) return `bad block size ${bs}`;
  if (blocks !== blockCount(h.lengthBytes, bs) || headerBytes !== headerBytesFor(h.lengthBytes, bs, writes)) return 'block count or header size disagrees with the length';
  if (!isValidChunkId(h) || !Number.isSafeInteger(h.version) || h.version < 1 || !Number.isSafeInteger(h.chainVersion)) return 'bad chunk id or version';
  return h;
}

/**
 * A chunk file's header, read through `read(bytes)` (the file's first `bytes`, fewer at its end),
 * or what is wrong with it: the first aligned block, and the rest if the header is longer.
 */
export async function readChunkHeader(read: (bytes: number) => Promise<Uint8Array>): Promise<ChunkHeader | string> {
  const first = await read(headerAlignBytes);
  const headerBytes = peekHeaderBytes(first);
  if (typeof headerBytes === 'string') return headerBytes;
  return decodeHeader(headerBytes > first.byteLength ? await read(headerBytes) : first);
}

/**
 * The whole blocks a read of data bytes [offset, end) must read and check: from data offset
 * `from` (block `firstBlock`), `bytes` long; the bytes asked for are [offset - from, to - from) of
 * them. Undefined when the range holds no data (at or past the chunk's length).
 */
export function blockSpan(h: ChunkHeader, offset: number, end: number): { firstBlock: number; from: number; bytes: number; to: number } | undefined {
  const to = Math.min(end, h.lengthBytes);
  if (to <= offset) return undefined;
  const bs = h.blockSizeBytes;
  const firstBlock = Math.floor(offset / bs);
  const from = firstBlock * bs;
  return { firstBlock, from, bytes: Math.min(Math.ceil(to / bs) * bs, h.lengthBytes) - from, to };
}

/**
 * Checks the blocks of `data` (the file's data from block `firstBlock` on, any length up to the
 * end of the data): undefined if they match, else the data offset of the first bad block.
 */
export function firstBadBlock(h: ChunkHeader, data: Uint8Array, firstBlock: number): number | undefined {
  return badBlockOffset(h, firstBlock, firstBadCrc(data, h.blockSizeBytes, blockCrcsFrom(h, firstBlock)));
}

/** The header's block CRCs from block `firstBlock` on, to check a read of data from there (DiskFile.readChecked). */
export function blockCrcsFrom(h: ChunkHeader, firstBlock: number): Uint32Array {
  return h.blockCrcs.subarray(firstBlock);
}

/** The data offset of block `bad` of a check from block `firstBlock` (firstBadCrc, DiskFile.readChecked); undefined for -1 (all matched). */
export function badBlockOffset(h: ChunkHeader, firstBlock: number, bad: number): number | undefined {
  return bad < 0 ? undefined : (firstBlock + bad) * h.blockSizeBytes;
}
