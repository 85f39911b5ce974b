// Durable Raft snapshot files under `dir/snap`: written atomically, verified by checksums on load
// so that a damaged newest snapshot falls back to an older one instead of poisoning the state.

import { Buffer } from 'node:buffer';
import { open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { pack, unpack } from 'msgpackr';
import type { Snapshot, SnapshotMeta } from '../../raft/index.ts';
import { JournalError, JournalErrorCode } from './errors.ts';
import { ensureDir, syncDir, writeFully } from './fs-util.ts';
import { confNodesMax } from './wal-record.ts';

/** Snapshots are read whole into memory, so their size is bounded well below one read's limit. */
export const snapshotDataBytesMax = 1024 * 1024 * 1024;
/** Packed metadata is a few numbers and the membership lists. */
export const snapshotMetaBytesMax = 256 * 1024;

const magic = 0x504e5343; // 'CSNP' little-endian
const formatVersion = 1;
/** magic, version, meta length, data length (u64), data crc, header crc. */
const fixedHeaderBytes = 28;
const headerCrcOffset = 24;
const namePattern = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;
const tmpSuffix = '.tmp';

/** The file name of a snapshot: term then index, 16 hex digits each. */
export function snapshotFileName(meta: SnapshotMeta): string {
  return `${hex16(meta.term)}-${hex16(meta.index)}.snap`;
}

/**
 * Writes `snap` to `dir/snap/<term>-<index>.snap` atomically: a temporary file, fsync, rename,
 * then fsync of the directory. Resolves to the file's path.
 */
export async function saveSnapshot(dir: string, snap: Snapshot): Promise<string> {
  const snapDir = path.join(dir, 'snap');
  await ensureDir(snapDir);
  const file = path.join(snapDir, snapshotFileName(snap.meta));
  const tmp = file + tmpSuffix;
  const header = encodeSnapshotHeader(snap);
  try {
    const fh = await open(tmp, 'w');
    try {
      await writeFully(fh, header, 0);
      await writeFully(fh, snap.data, header.length);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(noop);
    throw err;
  }
  await syncDir(snapDir);
  return file;
}

/**
 * The newest snapshot that verifies. Files that fail verification are passed over and listed in
 * `skipped` (one line each: file and reason) for the caller to log.
 */
export async function loadNewestSnapshot(dir: string): Promise<{ snapshot?: Snapshot; skipped: string[] }> {
  const snapDir = path.join(dir, 'snap');
  const skipped: string[] = [];
  for (const name of await listSnapshotsNewestFirst(snapDir)) {
    const file = path.join(snapDir, name);
    const result = await readSnapshotFile(file, name);
    if (typeof result !== 'string') return { snapshot: result, skipped };
    skipped.push(`${file}: ${result}`);
  }
  return { skipped };
}

/**
 * Deletes all but the `keep` newest snapshot files, and leftover temporary files from crashed
 * saves; so it must not run during a saveSnapshot(). Resolves to the deleted paths.
 */
export async function pruneSnapshots(dir: string, keep = 2): Promise<string[]> {
  if (!Number.isSafeInteger(keep) || keep < 1) throw new RangeError(`pruneSnapshots: keep must be >= 1, got ${keep}`);
  const snapDir = path.join(dir, 'snap');
  const names = await listSnapshotsNewestFirst(snapDir);
  const leftovers = (await readdirOrEmpty(snapDir)).filter((name) => name.endsWith(tmpSuffix));
  const doomed = [...names.slice(keep), ...leftovers].map((name) => path.join(snapDir, name));
  for (const file of doomed) await unlink(file);
  if (doomed.length > 0) await syncDir(snapDir);
  return doomed;
}

/** Header: fixed fields, then the packed metadata; the header crc covers both. */
export function encodeSnapshotHeader(snap: Snapshot): Buffer {
  if (snap.data.byteLength > snapshotDataBytesMax) {
    throw new JournalError(
      JournalErrorCode.SnapshotTooLarge,
      `snapshot data of ${snap.data.byteLength} bytes exceeds snapshotDataBytesMax (${snapshotDataBytesMax})`,
    );
  }
  const { index, term, conf } = snap.meta;
  const meta = pack({ index, term, conf: { voters: conf.voters, learners: conf.learners } });
  if (meta.length > snapshotMetaBytesMax) throw new RangeError(`snapshot metadata of ${meta.length} bytes is too large`);
  const header = Buffer.alloc(fixedHeaderBytes + meta.length);
  header.writeUInt32LE(magic, 0);
  header.writeUInt32LE(formatVersion, 4);
  header.writeUInt32LE(meta.length, 8);
  header.writeUInt32LE(snap.data.byteLength >>> 0, 12);
  header.writeUInt32LE(Math.floor(snap.data.byteLength / 2 ** 32), 16);
  header.writeUInt32LE(crc32c(snap.data), 20);
  meta.copy(header, fixedHeaderBytes);
  header.writeUInt32LE(headerCrc(header), headerCrcOffset);
  return header;
}

/** Verifies a whole snapshot file; returns the snapshot (data is a view into `input`) or why not. */
export function decodeSnapshotFile(input: Uint8Array): Snapshot | string {
  const buf = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (buf.length < fixedHeaderBytes) return `file of ${buf.length} bytes is shorter than a header`;
  if (buf.readUInt32LE(0) !== magic) return 'not a snapshot file (bad magic)';
  if (buf.readUInt32LE(4) !== formatVersion) return `unknown format version ${buf.readUInt32LE(4)}`;
  const metaBytes = buf.readUInt32LE(8);
  const dataBytes = buf.readUInt32LE(16) * 2 ** 32 + buf.readUInt32LE(12);
  if (metaBytes > snapshotMetaBytesMax || dataBytes > snapshotDataBytesMax) return 'declared sizes exceed the limits';
  const dataStart = fixedHeaderBytes + metaBytes;
  if (buf.length !== dataStart + dataBytes) return `file has ${buf.length} bytes, header declares ${dataStart + dataBytes}`;
  if (headerCrc(buf.subarray(0, dataStart)) !== buf.readUInt32LE(headerCrcOffset)) return 'header crc mismatch';
  const data = new Uint8Array(buf.buffer, buf.byteOffset + dataStart, dataBytes);
  if (crc32c(data) !== buf.readUInt32LE(20)) return 'data crc mismatch';
  const meta = parseMeta(buf.subarray(fixedHeaderBytes, dataStart));
  return typeof meta === 'string' ? meta : { meta, data };
}

async function readSnapshotFile(file: string, name: string): Promise<Snapshot | string> {
  const { size } = await stat(file);
  if (size > fixedHeaderBytes + snapshotMetaBytesMax + snapshotDataBytesMax) return `file of ${size} bytes exceeds the limits`;
  const result = decodeSnapshotFile(await readFile(file));
  if (typeof result === 'string' || snapshotFileName(result.meta) === name) return result;
  return `metadata (term ${result.meta.term}, index ${result.meta.index}) does not match the file name`;
}

/** The crc of the header's bytes other than the crc field itself. */
function headerCrc(header: Buffer): number {
  return crc32c(header.subarray(headerCrcOffset + 4), crc32c(header.subarray(0, headerCrcOffset)));
}

/** Checked field by field: a checksum guards against rot, not against a foreign writer. */
function parseMeta(bytes: Buffer): SnapshotMeta | string {
  let value: unknown;
  try {
    value = unpack(bytes);
  } catch (err) {
    return `metadata does not unpack: ${(err as Error).message}`;
  }
  const v = value as { index?: unknown; term?: unknown; conf?: { voters?: unknown; learners?: unknown } } | null;
  if (typeof v !== 'object' || v === null || !isU53(v.index) || !isU53(v.term)) return 'metadata lacks index or term';
  const voters = v.conf?.voters;
  const learners = v.conf?.learners;
  if (!isNodeList(voters) || !isNodeList(learners)) return 'metadata has a bad membership';
  return { index: v.index, term: v.term, conf: { voters, learners } };
}

function isU53(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

function isNodeList(list: unknown): list is number[] {
  return Array.isArray(list) && list.length <= confNodesMax && list.every(isU53);
}

/** Newest first: by index, then term. */
async function listSnapshotsNewestFirst(snapDir: string): Promise<string[]> {
  const parsed = (await readdirOrEmpty(snapDir)).flatMap((name) => {
    const match = namePattern.exec(name);
    return match ? [{ name, term: parseInt(match[1], 16), index: parseInt(match[2], 16) }] : [];
  });
  parsed.sort((a, b) => b.index - a.index || b.term - a.term);
  return parsed.map((p) => p.name);
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

function hex16(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`snapshot term and index must be safe integers, got ${n}`);
  return n.toString(16).padStart(16, '0');
}

function noop(): void {}
