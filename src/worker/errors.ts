// The data path's error codes: what workers answer clients and each other, and what the chunk
// store reports about its disk. Each code has one meaning; clients branch on `code`.

import { CodedError } from '../errors.ts';

export const WorkerErrorCode = {
  /** The request names an older (or newer) chain version than the worker's: refresh the routing and retry. */
  StaleChainVersion: 'STALE_CHAIN_VERSION',
  /** The payload's CRC32C does not match the one sent with it: nothing was stored. */
  ChecksumMismatch: 'CHECKSUM_MISMATCH',
  /** A malformed request: a bad chunk id, offset, length or version. Nothing was done. */
  InvalidArgument: 'INVALID_ARGUMENT',
  /** The replica holds a pending version of the chunk: read from the tail, or retry. */
  ChunkDirty: 'CHUNK_DIRTY',
  /**
   * A forwarded write names a version this replica already holds with other content, or one it
   * cannot build on (it lacks the versions before): the sender resends the whole chunk.
   */
  ChunkDiverged: 'CAIRN_CHUNK_DIVERGED',
  /** The chunk does not exist on this replica. */
  ChunkNotFound: 'CHUNK_NOT_FOUND',
  /** Stored bytes failed their checksum: the replica does not serve them; another replica may. */
  ChunkCorrupt: 'CAIRN_CHUNK_CORRUPT',
  /**
   * Every serving replica of the chunk failed its checksum (said by the client library, which
   * asked them all): nothing is served. A member that returns with a good copy, or a restore, may
   * bring it back; until then reads fail (EIO) at once rather than after the retry deadline.
   */
  ChunkLost: 'CAIRN_CHUNK_LOST',
  /** This target cannot take the request in its state (not serving, not the head for a write, out of space). */
  TargetUnavailable: 'TARGET_UNAVAILABLE',
  /** A target directory belongs to another cluster, worker or target, or its identity file is damaged. */
  TargetForeign: 'CAIRN_TARGET_FOREIGN',
  /** The target's disk has no room for the write. */
  TargetFull: 'CAIRN_TARGET_FULL',
  /** Another process runs as this worker id (it heartbeats with another instance): a second `--id` is refused. */
  WorkerDuplicate: 'CAIRN_WORKER_DUPLICATE',
  /** The masters do not know this worker process (a new leader, or another instance registered since): register again. */
  WorkerNotRegistered: 'CAIRN_WORKER_NOT_REGISTERED',
  /** This worker id was decommissioned and never registers again: start the machine as a new worker (new --id, empty targets). */
  WorkerDecommissioned: 'CAIRN_WORKER_DECOMMISSIONED',
  /**
   * Decommissioning the worker would leave a chain with no serving replica on a worker in service
   * (it holds the only up-to-date copy): refused unless forced. Bring another member back first.
   */
  DecommissionUnsafe: 'CAIRN_DECOMMISSION_UNSAFE',
  /**
   * The target's disk failed an fsync: what it wrote since the last good one is in an unknown state,
   * so the target takes no more writes (an fsync is never retried) until the worker restarts and
   * re-reads it. Reads of committed chunks still answer, verified by their checksums.
   */
  TargetFailed: 'CAIRN_TARGET_FAILED',
} as const;
export type WorkerErrorCode = (typeof WorkerErrorCode)[keyof typeof WorkerErrorCode];

export class WorkerError extends CodedError<WorkerErrorCode> {}
