// The Raft consensus core: a pure state machine (no I/O, clock or randomness of its own) driven
// through step/tick/ready/advance. See docs/raft.md.

export * from './types.ts';
export { Raft, RaftBugs, type ProgressStatus, type RaftBug, type RaftConfig, type RaftStatus, type RestoredState } from './raft.ts';
export { decodeConfChange, encodeConfChange } from './confchange.ts';
export { ProgressState } from './progress.ts';
export { chunkedSnapshotData, readAllSnapshotData, snapshotBytes } from './snapshot-data.ts';
