// cairn's shared error codes. A component with codes of its own lists them in its own errors.ts
// (rpc/, journal/raft/, meta/, sim/), and a code is listed in one registry only: a test checks
// that, and that no code is written as a string anywhere else. Each code has one meaning and is
// never reused; callers branch on `err.code`, never on the message.

export const ErrorCode = {
  /** This node is not the Raft leader; `details.leader` names the one it knows, if any. Retry there. */
  NotLeader: 'CAIRN_NOT_LEADER',
  /** One proposed entry is larger than the core's entryBytesMax. */
  EntryTooLarge: 'CAIRN_ENTRY_TOO_LARGE',
  /** A bounded queue is full (uncommitted bytes, pending reads): retry later. */
  Busy: 'CAIRN_BUSY',
  /** A membership change is still pending; one at a time. */
  ConfChangePending: 'CAIRN_CONF_CHANGE_PENDING',
  /** Leadership is moving to another node: retry in a moment. */
  TransferInProgress: 'CAIRN_TRANSFER_IN_PROGRESS',
  /**
   * A call's argument the callee refuses although it is well formed (a node that is not a member,
   * an id that is not a positive integer): fix the call. Malformed requests are CAIRN_BAD_REQUEST,
   * bad options CAIRN_BAD_OPTION.
   */
  InvalidArgument: 'CAIRN_INVALID_ARGUMENT',
  /**
   * An option, flag or configuration value outside what a process, command or constructor accepts
   * (a port out of range, a missing --dir, a secret that is empty): fix the configuration.
   */
  BadOption: 'CAIRN_BAD_OPTION',
  /** A proposal's log position was taken by another leader's entry: retry with the same (client, seq). */
  ProposalDropped: 'CAIRN_PROPOSAL_DROPPED',
  /** No leader or quorum answered in time: the cluster may be down or partitioned. */
  Unavailable: 'CAIRN_UNAVAILABLE',
  /** An operation's deadline passed before it completed; it may still take effect. */
  Timeout: 'CAIRN_TIMEOUT',
  /** A data directory is held by another live process (its LOCK file); stop that process first. */
  DirLocked: 'CAIRN_DIR_LOCKED',
  /** A process a command started (`cairn local up`'s masters) could not start or exited; the message names its log. */
  ProcessFailed: 'CAIRN_PROCESS_FAILED',
  /** The id was removed from the cluster and can never be added again: a rebuilt master needs a new id. */
  IdRemoved: 'CAIRN_ID_REMOVED',
  /** A program a command runs (Java, the ZooKeeper server) is not installed; the message says how to install it. */
  NotInstalled: 'CAIRN_NOT_INSTALLED',
  /** No process of the local cluster a command addresses is alive: start it with `cairn local up --dir D`. */
  NotRunning: 'CAIRN_NOT_RUNNING',
  /** A destructive command (a large `fs rm -r`) was not confirmed: no terminal to ask, or the answer was no. Pass --yes. */
  NotConfirmed: 'CAIRN_NOT_CONFIRMED',
  /** A command stopped by SIGINT or SIGTERM, having undone what it had half done (details.signal). */
  Interrupted: 'CAIRN_INTERRUPTED',
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
