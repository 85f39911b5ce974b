// The Raft journal: the segmented write-ahead log, its pure record codec, and durable snapshot files.

export { JournalError, JournalErrorCode } from './errors.ts';
export {
  confNodesMax,
  decodeRecords,
  encodeRecords,
  entriesRecords,
  frameHeaderBytes,
  recordBytesMax,
  replayRecords,
} from './wal-record.ts';
export type { DecodeResult, ReplayedState, WalRecord } from './wal-record.ts';
export { segmentBytesMaxDefault, segmentBytesMaxLimit, segmentBytesMaxMin, Wal } from './wal.ts';
export type { WalOpenResult, WalOptions, WalRepair, WalStats } from './wal.ts';
export {
  loadNewestSnapshot,
  pruneSnapshots,
  saveSnapshot,
  SnapshotFile,
  SnapshotWriter,
  snapshotDataBytesMax,
  snapshotFileName,
} from './snapshot-file.ts';
