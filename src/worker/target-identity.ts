// The identity of a target directory (`target.id`): which cluster, worker and target it belongs to,
// so that a worker pointed at the wrong disk refuses it instead of serving or deleting another
// target's chunks (a checked record: checked-file.ts).

import path from 'node:path';
import type { Disk } from '../io/index.ts';
import { isErrno } from '../io/index.ts';
import { decodeChecked, encodeChecked, replaceChecked, tempNameOf } from './checked-file.ts';
import { WorkerError, WorkerErrorCode } from './errors.ts';
/** The worker process's directory lock (src/master/dir-lock.ts): a target directory may hold it before it has an identity. */
const lockFileName = 'LOCK';

export interface TargetIdentity {
  clusterId: string;
  workerId: number;
  targetId: number;
}

export const identityFileName = 'target.id';
export const identityTempName = tempNameOf(identityFileName);
const identityFormat = 1;
/** Names a new target directory may already hold: a temp file from a crashed creation, a mount's lost+found. */
const allowedInNewDir = new Set([identityTempName, 'lost+found', lockFileName]);

export function describeIdentity(id: TargetIdentity): string {
  return `cluster ${JSON.stringify(id.clusterId)} worker ${id.workerId} target ${id.targetId}`;
}

export function encodeIdentity(id: TargetIdentity): Uint8Array {
  return encodeChecked({ format: identityFormat, clusterId: id.clusterId, workerId: id.workerId, targetId: id.targetId });
}

/** The identity in a file's bytes, or what is wrong with them. */
export function decodeIdentity(bytes: Uint8Array): TargetIdentity | string {
  const o = decodeChecked(bytes, 'target identity', identityFormat);
  if (typeof o === 'string') return o;
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
  await replaceChecked(disk, dir, identityFileName, encodeIdentity(expected));
  return 'created';
}
