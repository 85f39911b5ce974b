// The RPC layer's error class and its own codes. Remote application codes (NOT_LEADER, ENOENT...)
// travel through RpcError unchanged, so `code` is any string; the codes below are the transport's.

import { CodedError, ErrorCode } from '../errors.ts';

export const RpcErrorCode = {
  /** No connection to the peer, or it broke while the call was in flight: retry elsewhere or later. */
  Unavailable: ErrorCode.Unavailable,
  /** The call's deadline passed before a response arrived. */
  Timeout: ErrorCode.Timeout,
  /** The caller aborted the call through its signal. */
  Cancelled: 'CAIRN_CANCELLED',
  /** The cluster secrets differ, or only one side has one. */
  Unauthenticated: 'CAIRN_UNAUTHENTICATED',
  /** A frame is larger than frameBytesMax. */
  FrameTooLarge: 'CAIRN_FRAME_TOO_LARGE',
  /** The server has no handler for the method. */
  UnknownMethod: 'CAIRN_UNKNOWN_METHOD',
  /**
   * A limit was reached and the call or connection refused, taking no effect: calls in flight (the
   * client's inflightMax, the server's per connection), connections (in all, per address), bytes of
   * requests held, or a service's own queue. Retry later, with backoff.
   */
  Overloaded: 'CAIRN_OVERLOADED',
  /** The server failed without a code of its own (its handler threw one, logged there, or its answer is malformed). */
  Internal: 'CAIRN_INTERNAL',
  /** A request or message that cannot be encoded or decoded, or is malformed (a frame, a body, a peer's Raft message). */
  BadRequest: 'CAIRN_BAD_REQUEST',
  /** An RpcServer or RpcClient option, a call's timeoutMs, or a client's address that is out of range. */
  BadOption: ErrorCode.BadOption,
  /** A handler registered twice or under a bad name, listen() called twice. */
  InvalidArgument: ErrorCode.InvalidArgument,
} as const;
export type RpcErrorCode = (typeof RpcErrorCode)[keyof typeof RpcErrorCode];

/** Remote application codes pass through, so any string is a valid code here. */
export class RpcError extends CodedError<string> {}
