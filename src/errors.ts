// cairn's shared error codes (components with their own registry, such as the WAL's in
// journal/raft/errors.ts, list theirs there). Each code has one meaning and is never reused;
// callers branch on `err.code`, never on the message.

export const ErrorCode = {
  NotLeader: 'CAIRN_NOT_LEADER',
  EntryTooLarge: 'CAIRN_ENTRY_TOO_LARGE',
  Busy: 'CAIRN_BUSY',
  ConfChangePending: 'CAIRN_CONF_CHANGE_PENDING',
  TransferInProgress: 'CAIRN_TRANSFER_IN_PROGRESS',
  InvalidArgument: 'CAIRN_INVALID_ARGUMENT',
  /** A proposal's log position was taken by another leader's entry: retry with the same (client, seq). */
  ProposalDropped: 'CAIRN_PROPOSAL_DROPPED',
  /** No leader or quorum answered in time: the cluster may be down or partitioned. */
  Unavailable: 'CAIRN_UNAVAILABLE',
  Timeout: 'CAIRN_TIMEOUT',
  /** A data directory is held by another live process (its LOCK file); stop that process first. */
  DirLocked: 'CAIRN_DIR_LOCKED',
  /** The id was removed from the cluster and can never be added again: a rebuilt master needs a new id. */
  IdRemoved: 'CAIRN_ID_REMOVED',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * The shape of every cairn error: a stable `code` to branch on, a one-line message, and details.
 * Components with their own registry (RPC, WAL, metadata) subclass it with their code type.
 */
export class CodedError<C extends string = string> extends Error {
  readonly code: C;
  readonly details: Record<string, unknown>;

  constructor(code: C, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.details = details;
  }
}

export class CairnError extends CodedError<ErrorCode> {}

/** Throws when an invariant does not hold: a broken invariant must stop the process, not corrupt data. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`invariant violated: ${message}`);
}
