// How a failure of the client library becomes the errno a program sees through the mount. The
// masters answer namespace results with POSIX-named codes, which map one to one; a failure that
// names an errno in its details (a lost chunk: EIO) keeps it; everything that outlived the retry
// deadline (no master, no replica) is EIO, as a local disk that stopped answering would be.

import { constants } from 'node:os';
import { WorkerErrorCode } from '../worker/errors.ts';
import { ErrorCode } from '../errors.ts';
import { JournalErrorCode } from '../journal/raft/errors.ts';

const errnos = constants.errno as Record<string, number>;

const byCode: Record<string, string> = {
  [WorkerErrorCode.TargetFull]: 'ENOSPC',
  // The masters' disk is below its reserve: nothing new until space is freed (removals still go).
  [JournalErrorCode.DiskFull]: 'ENOSPC',
  [ErrorCode.InvalidArgument]: 'EINVAL',
  [ErrorCode.NotLeader]: 'EIO',
  [ErrorCode.Unavailable]: 'EIO',
  [ErrorCode.Timeout]: 'EIO',
};

/** The negative errno (as FUSE wants it) for an error thrown by the client library. */
export function errnoOf(err: unknown): number {
  const e = err as { code?: unknown; details?: { errno?: unknown } };
  const named = typeof e.details?.errno === 'string' ? e.details.errno : undefined;
  const code = typeof e.code === 'string' ? e.code : '';
  const name = named ?? (code in errnos ? code : byCode[code]) ?? 'EIO';
  return -(errnos[name] ?? errnos.EIO);
}

/** The negative errno of a name ('ENOENT'). */
export function errno(name: keyof typeof constants.errno): number {
  return -constants.errno[name];
}
