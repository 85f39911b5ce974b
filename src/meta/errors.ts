// The metadata error codes: POSIX-named codes for namespace results (clients map them straight to
// errno), one for a stale (clientId, seq), and one for a damaged snapshot. Each code has one meaning; callers branch on `code`.

import { CodedError } from '../errors.ts';

/** Codes a namespace operation can answer with; an operation's failure is a result carrying one. */
export const FsErrorCode = {
  ENOENT: 'ENOENT',
  EEXIST: 'EEXIST',
  ENOTDIR: 'ENOTDIR',
  EISDIR: 'EISDIR',
  ENOTEMPTY: 'ENOTEMPTY',
  /** Bad input, or an operation the namespace refuses (rename into itself). */
  EINVAL: 'EINVAL',
  ENAMETOOLONG: 'ENAMETOOLONG',
  /** The mode bits deny the caller a permission it needs: read, write, or search on a directory of the path. */
  EACCES: 'EACCES',
  /**
   * Not permitted whatever the mode bits say: to anyone (removing the root, a hard link to a
   * directory), or to anyone but the owner or root (chmod, chown, setting times, the sticky bit).
   */
  EPERM: 'EPERM',
  /** A table with a named limit is full (open sessions). */
  EMFILE: 'EMFILE',
  /** The command was computed from a state that changed since (a chain's version moved on): recompute and retry. */
  EAGAIN: 'EAGAIN',
  /** No extended attribute of that name. */
  ENODATA: 'ENODATA',
  /** An extended attribute, or all of an inode's together, past their size bound. */
  E2BIG: 'E2BIG',
} as const;
export type FsErrorCode = (typeof FsErrorCode)[keyof typeof FsErrorCode];

/** What a command can answer with: a namespace code, or that its (clientId, seq) is stale. */
export const ResultErrorCode = {
  ...FsErrorCode,
  /**
   * The command's seq is older than the newest one applied for its clientId: a late duplicate of a
   * command whose answer its client already had. Not applied; a client that wants several commands
   * in flight uses several clientIds.
   */
  StaleSeq: 'CAIRN_STALE_SEQ',
  /**
   * Another client's mount holds the directory (dir-leases.ts): the leader has asked it to give the
   * directory back; retry shortly (clients do).
   */
  DirLeased: 'CAIRN_DIR_LEASED',
  /** A holder's batch for a directory it no longer holds (its lease ended): nothing of it was applied. */
  DirLeaseLost: 'CAIRN_DIR_LEASE_LOST',
} as const;
export type ResultErrorCode = (typeof ResultErrorCode)[keyof typeof ResultErrorCode];

export const MetaErrorCode = {
  ...ResultErrorCode,
  /** A snapshot stream failed its checksums or structural checks. */
  SnapshotCorrupt: 'CAIRN_META_SNAPSHOT_CORRUPT',
} as const;
export type MetaErrorCode = (typeof MetaErrorCode)[keyof typeof MetaErrorCode];

/** Thrown for input refused at the boundary and for corrupt snapshots; clients throw it for failed results. */
export class MetaError extends CodedError<MetaErrorCode> {}
