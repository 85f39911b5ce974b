// What a server-side method handler sees and returns.

export interface CallContext {
  /** Aborted when the call's deadline passes, the caller cancels, the connection drops or the server closes; the reason is an RpcError. */
  signal: AbortSignal;
  /** host:port of the caller. */
  peer: string;
  /** The request's raw payload, a view of the received bytes; undefined when empty. */
  payload: Buffer | undefined;
  /**
   * Gives the payload's buffer back to the server's receive pool (undefined: it is not from one),
   * for the next large request to be received into instead of fresh memory. Only for a handler
   * that knows nothing reads those bytes any more, nor will: no view of them kept, no file or
   * socket write of them unfinished (a call that timed out may still have them queued). A handler
   * that does not know leaves it, and the GC frees the buffer.
   */
  recyclePayload?: () => void;
}

/**
 * Returns the response body, or `reply(body, payload)` to send raw bytes too. Throwing an error
 * with a string `code` (and optional `details`) sends that code to the caller; anything else is
 * logged and sent as CAIRN_INTERNAL.
 */
export type Handler = (body: unknown, ctx: CallContext) => Promise<{ body?: unknown; payload?: Uint8Array } | unknown>;

const replyBrand: unique symbol = Symbol('cairn.rpc.reply');

/** A response with a raw payload; only objects made by `reply()` are read this way. */
export interface Reply {
  readonly [replyBrand]: true;
  readonly body: unknown;
  readonly payload: Uint8Array | undefined;
  /**
   * Called once the RPC layer no longer needs the payload's memory: its bytes were handed to the
   * socket, or the reply was dropped (caller gone, connection closed). Lets a server reuse buffers.
   */
  readonly onSent: (() => void) | undefined;
}

/**
 * Marks a handler's result as body plus raw payload. A plain `{ body, payload }` object returned
 * by a handler is a body like any other, so no response shape is ambiguous.
 */
export function reply(body: unknown, payload?: Uint8Array, onSent?: () => void): Reply {
  return { [replyBrand]: true, body, payload, onSent };
}

export function isReply(v: unknown): v is Reply {
  return typeof v === 'object' && v !== null && (v as Partial<Reply>)[replyBrand] === true;
}
