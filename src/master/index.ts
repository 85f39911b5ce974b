// The master's metadata core: commands and queries, their validation and encoding, and the
// deterministic state machine the journal applies them to.

export {
  addressBytesMax,
  chainLengthMax,
  chainsPerTableMax,
  chunkSizeBytesDefault,
  chunkSizeBytesMax,
  chunkSizeBytesMin,
  clientIdBytesMax,
  commandBytesMax,
  decodeCommand,
  encodeCommand,
  fileSizeBytesMax,
  gcDoneInodesMax,
  generatedSessionPrefix,
  idMax,
  modeMax,
  pendingGcLimitMax,
  readdirLimitMax,
  sessionIdBytesMax,
  stripeWidthDefault,
  stripeWidthMax,
  targetPathBytesMax,
  targetsPerWorkerMax,
  TargetState,
  validateCommand,
  validateLayout,
  validateQuery,
} from './commands.ts';
export type {
  ClientStamp,
  CloseSessionCommand,
  CommitLengthCommand,
  CreateCommand,
  GcDoneCommand,
  Layout,
  LinkCommand,
  MetaCommand,
  MetaCommandOp,
  MetaQuery,
  MetaQueryOp,
  MkdirCommand,
  NoopCommand,
  OpenSessionCommand,
  PublishChainTableCommand,
  RegisterWorkerCommand,
  RenameCommand,
  RmdirCommand,
  SetattrCommand,
  SetTargetStateCommand,
  SymlinkCommand,
  TargetSpec,
  UnlinkCommand,
} from './commands.ts';
export { FsErrorCode, MetaError, MetaErrorCode } from './errors.ts';
export { MetaState } from './namespace.ts';
export type { ReaddirOptions } from './namespace.ts';
export { snapshotChunkBytesMax, snapshotFormatVersion } from './namespace-snapshot.ts';
export {
  clientIdleMsMaxDefault,
  clientsMaxDefault,
  defaultChainTableId,
  rootInodeId,
  sessionsMaxDefault,
} from './namespace-state.ts';
export type {
  ChainTableInfo,
  CloseSessionValue,
  CreateValue,
  DirEntry,
  GcEntry,
  InodeAttr,
  InodeType,
  MetaFail,
  MetaOk,
  MetaResult,
  MetaStateOptions,
  MetaValue,
  MetaValues,
  ReaddirPage,
  RenameValue,
  Session,
  SessionValue,
  StatFs,
  TargetInfo,
  UnlinkValue,
  WorkerInfo,
} from './namespace-state.ts';
export { nameBytesMax, pathBytesMax, symlinkTargetBytesMax } from './paths.ts';
export { MetaStateMachine, encodeCommandEntry, encodeRestoreBegin, encodeRestoreChunk, encodeRestoreCommit } from './state-machine.ts';
export { startMaster, type Master, type MasterOptions } from './server.ts';
