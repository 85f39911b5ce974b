// The metadata state machine: commands and queries, their validation and encoding, and the
// deterministic state machine the journal applies them to. Pure: no I/O, clock or randomness.

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
  AddChainsCommand,
  UpdateChainsCommand,
  ChainUpdate,
  NewChain,
  RegisterWorkerCommand,
  RenameCommand,
  RmdirCommand,
  SetattrCommand,
  SymlinkCommand,
  TargetSpec,
  UnlinkCommand,
} from './commands.ts';
export { FsErrorCode, MetaError, MetaErrorCode, ResultErrorCode } from './errors.ts';
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
export { Routing } from './routing.ts';
export { LocalState, inChainOrder, localStates, markRestarted, nextChainMembers, replaceMember, replacementProblem, sameMembers } from './chain-states.ts';
export type { ChainMember } from './chain-states.ts';
export type {
  ChainInfo,
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
  RoutingInfo,
  Session,
  SessionValue,
  StatFs,
  TargetInfo,
  UnlinkValue,
  WorkerInfo,
} from './namespace-state.ts';
export { nameBytesMax, pathBytesMax, symlinkTargetBytesMax } from './paths.ts';
export { MetaStateMachine, encodeCommandEntry } from './state-machine.ts';
