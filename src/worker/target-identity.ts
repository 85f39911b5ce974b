// The identity of a target directory (`target.id`): which cluster, worker and target it belongs to,
// so that a worker pointed at the wrong disk refuses it instead of serving or deleting another
// target's chunks. A line of JSON and a line with its CRC32C, so an operator can read it.

import { Buffer } from 'node:buffer';
import path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import type { Disk } from '../io/index.ts';
import { isErrno } from '../io/index.ts';
import { WorkerError, WorkerErrorCode } from './errors.ts';
/** The worker process's directory lock (src/master/dir-lock.ts): a target directory may hold it before it has an identity. */
const lockFileName = 'LOCK';

export interface TargetIdentity {
  clusterId: string;
  workerId: number;
  targetId: number;
}

export const identityFileName = 'target.id';
export const identityTempName = 'target.id.tmp';
const identityFormat = 1;
/** Names a new target directory may already hold: a temp file from a crashed creation, a mount's lost+found. */
const allowedInNewDir = new Set([identityTempName, 'lost+found', lockFileName]);

export function describeIdentity(id: TargetIdentity): string {
  return `cluster ${JSON.stringify(id.clusterId)} worker ${id.workerId} target ${id.targetId}`;
}

export function encodeIdentity(id: TargetIdentity): Uint8Array {
  const json = JSON.stringify({ format: identityFormat, clusterId: id.clusterId, workerId: id.workerId, targetId: id.targetId });
  const line = Buffer.from(json, 'utf8');
  return Buffer.from(`${json}\ncrc32c ${crc32c(line).toString(16).padStart(8, '0')}\n`, 'utf8');
}

/** The identity in a file's bytes, or what is wrong with them. */
export function decodeIdentity(bytes: Uint8Array): TargetIdentity | string {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  const m = /^([^\n]*)\ncrc32c ([0-9a-f]{8})\n$/.exec(text);
  if (m === null) return 'not a target identity file (expected a JSON line and a crc32c line)';
  if (crc32c(Buffer.from(m[1], 'utf8')) !== Number.parseInt(m[2], 16)) return 'checksum mismatch';
  let v: unknown;
  try {
    v = JSON.parse(m[1]);
  } catch {
    return 'bad JSON';
  }
  const o = v as Record<string, unknown>;
  if (typeof o !== 'object' || o === null || o.format !== identityFormat) return `unknown format ${String(o?.format)}`;
  if (typeof o.clusterId !== 'string' || !Number.isSafeInteger(o.workerId) || !Number.isSafeInteger(o.targetId)) return 'missing or mistyped fields';
  return { clusterId: o.clusterId, workerId: o.workerId as number, targetId: o.targetId as number };
}

/**
 * Checks that `dir` belongs to `expected`, or claims it if it is new (empty): the identity is
 * written to a temp file, synced, renamed into place and the directory synced, so a crash leaves
 * either no identity or a whole one.
 */
export async function claimTargetDir(disk: Disk, dir: string, expected: TargetIdentity): Promise<'created' | 'matched'> {
  const file = path.join(dir, identityFileName);
  let bytes: Uint8Array | undefined;
  try {
    bytes = await disk.readFile(file);
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
  if (bytes !== undefined) {
    const found = decodeIdentity(bytes);
    if (typeof found === 'string') {
      throw new WorkerError(WorkerErrorCode.TargetForeign, `${file} is damaged (${found}); expected ${describeIdentity(expected)}: restore it or wipe the directory`, { file });
    }
    if (found.clusterId !== expected.clusterId || found.workerId !== expected.workerId || found.targetId !== expected.targetId) {
      throw new WorkerError(WorkerErrorCode.TargetForeign, `${dir} holds ${describeIdentity(found)}, expected ${describeIdentity(expected)}: point the worker at its own directory`, { dir, found, expected });
    }
    return 'matched';
  }
  const others = (await disk.readdir(dir)).filter((n) => !allowedInNewDir.has(n));
  if (others.length > 0) {
    const shown = others.slice(0, 5).join(', ') + (others.length > 5 ? ', ...' : '');
    throw new WorkerError(WorkerErrorCode.TargetForeign, `${dir} holds ${shown} but no ${identityFileName}; expected an empty directory for ${describeIdentity(expected)}`, { dir, found: others });
  }
  await writeIdentity(disk, dir, expected);
  return 'created';
}

async function writeIdentity(disk: Disk, dir: string, id: TargetIdentity): Promise<void> {
  const temp = path.join(dir, identityTempName);
  try {
    await disk.unlink(temp);
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
  const f = await disk.open(temp, 'create');
  try {
    await f.write(encodeIdentity(id), 0);
    await f.sync();
  } finally {
    await f.close();
  }
  await disk.rename(temp, path.join(dir, identityFileName));
  await disk.syncDir(dir);
}
