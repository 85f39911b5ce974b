// The error codes of the Raft journal (write-ahead log and snapshot files), one meaning each.
// Callers branch on `err.code`, never on the message.

import { CodedError } from '../../errors.ts';

export const JournalErrorCode = {
  /** Bytes on disk fail verification where a torn write cannot explain them; restore the node from a peer. */
  WalCorrupt: 'CAIRN_WAL_CORRUPT',
  /** One record (or one entry) is larger than `recordBytesMax`. */
  WalRecordTooLarge: 'CAIRN_WAL_RECORD_TOO_LARGE',
  /** Entries or state that would make the log non-contiguous or move backwards: a bug in the caller. */
  WalBadAppend: 'CAIRN_WAL_BAD_APPEND',
  /** releaseTo() asked to drop entries that no snapshot record in the log covers. */
  WalBadRelease: 'CAIRN_WAL_BAD_RELEASE',
  /** An earlier write or sync failed; what reached the disk is unknown, so the log refuses more work. */
  WalFailed: 'CAIRN_WAL_FAILED',
  WalClosed: 'CAIRN_WAL_CLOSED',
  /**
   * A write found no space on the device. Nothing of it stays (the file is cut back), so the same
   * write may be tried again once space is freed; unlike a failed sync, it does not stop the log.
   */
  DiskFull: 'CAIRN_DISK_FULL',
  /** A segment size option outside the supported range. */
  WalBadOption: 'CAIRN_WAL_BAD_OPTION',
  /** A snapshot whose data is larger than `snapshotDataBytesMax`, or whose metadata is larger than `snapshotMetaBytesMax`. */
  SnapshotTooLarge: 'CAIRN_SNAPSHOT_TOO_LARGE',
  /** A snapshot file that can no longer be read as written (closed, cut short, or failing its checksum). */
  SnapshotCorrupt: 'CAIRN_SNAPSHOT_CORRUPT',
  /**
   * `cairn admin journal recover` will not make this directory's master the only member: it holds
   * no journal, the master is not a voter of its membership, or the log moved while it was read.
   * Nothing was changed.
   */
  RecoverRefused: 'CAIRN_RECOVER_REFUSED',
} as const;
export type JournalErrorCode = (typeof JournalErrorCode)[keyof typeof JournalErrorCode];

export class JournalError extends CodedError<JournalErrorCode> {
  constructor(code: JournalErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, {}, options);
  }
}

/**
 * How every CAIRN_WAL_CORRUPT and CAIRN_SNAPSHOT_CORRUPT met at start ends: the node's own copy of
 * the log is not to be trusted, so it is rebuilt from its peers. The master adds the commands for
 * its own id, directory and address.
 */
export const rebuildFromPeersHint = "this node cannot restart from its own data: rebuild it from its peers (docs/masters.md, 'Rebuilding a master')";
