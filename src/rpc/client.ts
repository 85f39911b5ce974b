// The client end of cairn's RPC: one lazily opened connection per server address, many calls
// multiplexed over it, each with a deadline and optional cancellation; reconnects with backoff.

import { parseAddress } from '../address.ts';
import { ClientConnection, type ConnectionTarget } from './client-connection.ts';
import { RpcError, RpcErrorCode } from './errors.ts';
import { decodeBody, encodeBody, frameBytes, payloadByteLength, requestHeaderOverheadBytes, type Frame, type Payload } from './frame.ts';
import { connectTimeoutMsDefault, frameBytesMaxDefault, pooledFrameBytesMin, handshakeFrameBytesMax, inflightMaxDefault, methodLengthMax, reconnectBackoffMsDefault, sendBacklogBytesMaxDefault, timeoutMsDefault, timeoutMsMax } from './limits.ts';
import { checkPositiveInt, checkSecret } from './options.ts';
import type { RpcMetrics } from './metrics.ts';
import type { BufferPool } from '../buffer-pool.ts';

export interface RpcClientOptions {
  /** Cluster secret; must match the server's, and be absent on both sides in dev mode. */
  secret?: string;
  connectTimeoutMs?: number;
  frameBytesMax?: number;
  inflightMax?: number;
  reconnectBackoffMs?: { min: number; max: number };
  /** Bytes queued for a server that does not read them, beyond which one-way messages are dropped; default sendBacklogBytesMaxDefault. */
  sendBacklogBytesMax?: number;
  /** Counts and times each call by method and result (/metrics). */
  metrics?: RpcMetrics;
  /**
   * Responses of at least pooledFrameBytesMin are received into buffers of this pool, and each
   * CallResult carries the release that gives its buffer back (see CallResult.release).
   */
  receiveBuffers?: BufferPool;
}

export interface CallOptions {
  payload?: Payload;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface CallResult<T> {
  body: T;
  /** The response's raw payload, a view of the received bytes; undefined when empty. */
  payload: Buffer | undefined;
  /**
   * Gives the received bytes back to RpcClientOptions.receiveBuffers, for the next response; only
   * for a caller that knows nothing references the payload any more (not even a write queued on a
   * socket). Calling it is optional: the payload of a caller that does not is freed by the GC.
   * Undefined when the bytes are not pooled.
   */
  release?: () => void;
}

interface PendingCall {
  method: string;
  /** Dropped once written, so a large request is not held while its response is awaited. */
  body: Buffer;
  payload: Payload | undefined;
  timeoutMs: number;
  deadlineMs: number;
  timer: NodeJS.Timeout | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** 0 until sent. */
  id: number;
  resolve(result: CallResult<unknown>): void;
  reject(err: RpcError): void;
}

const idMax = 0xffff_ffff;
/** Beyond this many failed attempts in a row the backoff is at its maximum anyway. */
const backoffExponentMax = 30;
const emptyBody = Buffer.alloc(0);
/** One-way messages kept while a connection is being made. */
const noticesQueuedMax = 1024;

export class RpcClient {
  private readonly target: ConnectionTarget;
  private readonly inflightMax: number;
  private readonly backoffMs: { min: number; max: number };
  /** Calls waiting for a connection, in call order. */
  private readonly waiting = new Set<PendingCall>();
  /** Calls written to the current connection, by id. */
  private readonly sent = new Map<number, PendingCall>();
  private conn: ClientConnection | undefined;
  /** One-way messages waiting for a connection (bounded; lost if it fails, as messages may be). */
  private notices: { method: string; body: Buffer; payload: Uint8Array | undefined }[] = [];
  private backoffTimer: NodeJS.Timeout | undefined;
  /** Why the last attempt to connect failed, until one succeeds. */
  private lastConnectError: string | undefined;
  private attemptsFailed = 0;
  /** performance.now() before which no new attempt starts (set by a failed attempt). */
  private nextAttemptAt = 0;
  private lastId = 0;
  private closed = false;
  private readonly sendBacklogBytesMax: number;
  private readonly metrics: RpcMetrics | undefined;
  /** One-way messages dropped because the server was not reading what was already sent. */
  messagesDropped = 0;

  constructor(address: string, opts: RpcClientOptions = {}) {
    checkSecret(opts.secret);
    const parsed = parseAddress(address);
    if ('problem' in parsed) throw new RpcError(RpcErrorCode.BadOption, `bad address "${address}": ${parsed.problem}`);
    const { host, port } = parsed;
    const backoff = opts.reconnectBackoffMs ?? reconnectBackoffMsDefault;
    checkPositiveInt('reconnectBackoffMs.min', backoff.min);
    checkPositiveInt('reconnectBackoffMs.max', backoff.max, backoff.min);
    this.backoffMs = { min: backoff.min, max: backoff.max };
    this.inflightMax = checkPositiveInt('inflightMax', opts.inflightMax ?? inflightMaxDefault);
    this.sendBacklogBytesMax = checkPositiveInt('sendBacklogBytesMax', opts.sendBacklogBytesMax ?? sendBacklogBytesMaxDefault);
    this.metrics = opts.metrics;
    this.target = {
      address,
      host,
      port,
      secret: opts.secret,
      frameBytesMax: checkPositiveInt('frameBytesMax', opts.frameBytesMax ?? frameBytesMaxDefault, handshakeFrameBytesMax),
      connectTimeoutMs: checkPositiveInt('connectTimeoutMs', opts.connectTimeoutMs ?? connectTimeoutMsDefault),
      receive: opts.receiveBuffers === undefined ? undefined : { pool: opts.receiveBuffers, bytesMin: pooledFrameBytesMin },
    };
  }

  /** Calls in flight, waiting for a connection included. */
  get inflight(): number {
    return this.waiting.size + this.sent.size;
  }

  call<T = unknown>(method: string, body: unknown, opts: CallOptions = {}): Promise<CallResult<T>> {
    let call: PendingCall;
    const { promise, resolve, reject } = Promise.withResolvers<CallResult<T>>();
    try {
      call = this.prepare(method, body, opts, resolve as (r: CallResult<unknown>) => void, reject);
    } catch (err) {
      return Promise.reject(err);
    }
    call.timer = setTimeout(() => this.expire(call), call.timeoutMs);
    if (opts.signal !== undefined) {
      call.signal = opts.signal;
      call.onAbort = () => this.cancel(call);
      opts.signal.addEventListener('abort', call.onAbort, { once: true });
    }
    if (this.conn?.isReady) {
      this.transmit(this.conn, call);
    } else {
      this.waiting.add(call);
      this.ensureConnection();
    }
    return this.metrics === undefined ? promise : timed(promise, method, this.metrics);
  }

  /**
   * Sends a one-way message: no answer, no deadline, no delivery guarantee (a message waiting for a
   * connection is dropped if the attempt fails, or beyond `noticesQueuedMax`). For protocols that
   * tolerate loss, like Raft's, it saves the server a response per message. Bad arguments throw.
   */
  notify(method: string, body: unknown, payload?: Uint8Array): void {
    if (this.closed) throw new RpcError(RpcErrorCode.Unavailable, `client of ${this.target.address} is closed`);
    const { encoded, payload: raw } = this.encodeRequest(method, body, payload);
    if (this.conn?.isReady) {
      // A server that does not read (paused, cut off) would otherwise have every message queued here.
      if (this.conn.backlogBytes > this.sendBacklogBytesMax) this.messagesDropped++;
      else this.conn.send({ id: 0, kind: 'msg', method }, encoded, raw);
      return;
    }
    if (this.notices.length >= noticesQueuedMax) this.notices.shift();
    this.notices.push({ method, body: encoded, payload: raw });
    this.ensureConnection();
  }

  /** Rejects every pending call with CAIRN_UNAVAILABLE and closes the connection; later calls fail at once. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.backoffTimer);
    this.backoffTimer = undefined;
    const reason = new RpcError(RpcErrorCode.Unavailable, `client of ${this.target.address} closed`);
    this.conn?.destroy(reason);
    this.conn = undefined;
    this.notices = [];
    this.rejectAll(this.sent.values(), reason);
    this.rejectAll(this.waiting.values(), reason);
  }

  private prepare(method: string, body: unknown, opts: CallOptions, resolve: PendingCall['resolve'], reject: PendingCall['reject']): PendingCall {
    if (this.closed) throw new RpcError(RpcErrorCode.Unavailable, `client of ${this.target.address} is closed`);
    const timeoutMs = opts.timeoutMs ?? timeoutMsDefault;
    if (!(timeoutMs > 0 && timeoutMs <= timeoutMsMax)) throw new RpcError(RpcErrorCode.BadOption, `timeoutMs must be in (0, ${timeoutMsMax}], got ${timeoutMs}`);
    if (opts.signal?.aborted) throw new RpcError(RpcErrorCode.Cancelled, `${method} cancelled before it was sent`);
    if (this.inflight >= this.inflightMax) {
      throw new RpcError(RpcErrorCode.Overloaded, `${this.inflight} calls in flight to ${this.target.address}, the limit (inflightMax)`, { inflightMax: this.inflightMax });
    }
    const { encoded, payload } = this.encodeRequest(method, body, opts.payload);
    return {
      method,
      body: encoded,
      payload,
      timeoutMs,
      deadlineMs: performance.now() + timeoutMs,
      timer: undefined,
      signal: undefined,
      onAbort: undefined,
      id: 0,
      resolve,
      reject,
    };
  }

  /** Checks the method name and the frame size, and encodes the body. */
  private encodeRequest<P extends Payload>(method: string, body: unknown, payload: P | undefined): { encoded: Buffer; payload: P | undefined } {
    if (typeof method !== 'string' || method.length === 0 || method.length > methodLengthMax) {
      throw new RpcError(RpcErrorCode.BadRequest, `method names are 1..${methodLengthMax} characters`);
    }
    let encoded: Buffer;
    try {
      encoded = encodeBody(body);
    } catch (err) {
      throw new RpcError(RpcErrorCode.BadRequest, `${method}: body cannot be encoded: ${(err as Error).message}`);
    }
    const payloadBytes = payloadByteLength(payload);
    const size = frameBytes(requestHeaderOverheadBytes + Buffer.byteLength(method), encoded.length, payloadBytes);
    if (size > this.target.frameBytesMax) {
      throw new RpcError(RpcErrorCode.FrameTooLarge, `${method}: request of about ${size} bytes exceeds frameBytesMax ${this.target.frameBytesMax}`, {
        frameBytes: size,
        frameBytesMax: this.target.frameBytesMax,
      });
    }
    return { encoded, payload: payloadBytes > 0 ? payload : undefined };
  }

  private transmit(conn: ClientConnection, call: PendingCall): void {
    const id = this.allocateId();
    call.id = id;
    this.sent.set(id, call);
    // The deadline travels as the time left, so queueing for a connection does not extend it.
    const timeoutMs = Math.max(1, Math.ceil(call.deadlineMs - performance.now()));
    // The body stays with the call until it settles: a 'bye' may have it sent again.
    conn.send({ id, kind: 'req', method: call.method, timeoutMs }, call.body, call.payload);
  }

  private allocateId(): number {
    do this.lastId = this.lastId >= idMax ? 1 : this.lastId + 1;
    while (this.sent.has(this.lastId));
    return this.lastId;
  }

  /** Forgets a call, wherever it is; true if it was still pending. */
  private finish(call: PendingCall): boolean {
    const pending = call.id === 0 ? this.waiting.delete(call) : this.sent.get(call.id) === call && this.sent.delete(call.id);
    clearTimeout(call.timer);
    if (call.onAbort !== undefined) call.signal?.removeEventListener('abort', call.onAbort);
    if (this.waiting.size === 0 && this.notices.length === 0 && this.backoffTimer !== undefined) {
      clearTimeout(this.backoffTimer);
      this.backoffTimer = undefined;
    }
    return pending;
  }

  private expire(call: PendingCall): void {
    if (!this.finish(call)) return;
    const where = call.id === 0 ? 'waiting for a connection to' : 'waiting for';
    // Waiting out the backoff after failed attempts: what they failed with is the reason (a refused connection, say).
    const why = call.id === 0 && this.lastConnectError !== undefined ? ` (the last attempt failed: ${this.lastConnectError})` : '';
    call.reject(new RpcError(RpcErrorCode.Timeout, `${call.method} timed out after ${call.timeoutMs} ms ${where} ${this.target.address}${why}`, { method: call.method, timeoutMs: call.timeoutMs }));
  }

  private cancel(call: PendingCall): void {
    const wasSent = call.id !== 0;
    if (!this.finish(call)) return;
    if (wasSent && this.conn?.isReady) this.conn.send({ id: call.id, kind: 'cancel' }, emptyBody, undefined);
    call.reject(new RpcError(RpcErrorCode.Cancelled, `${call.method} cancelled by the caller`, { method: call.method }));
  }

  private onResponse(frame: Frame, release: (() => void) | undefined): void {
    const h = frame.header;
    const call = this.sent.get(h.id);
    // Unknown ids are answers to calls that timed out or were cancelled.
    if (call === undefined || !this.finish(call)) return release?.();
    if (h.error !== undefined) {
      release?.();
      call.reject(new RpcError(h.error.code, h.error.message, h.error.details ?? {}));
      return;
    }
    let body: unknown;
    try {
      body = decodeBody(frame.body);
    } catch (err) {
      release?.();
      call.reject(new RpcError(RpcErrorCode.Internal, `${call.method}: malformed response body from ${this.target.address}: ${(err as Error).message}`));
      return;
    }
    call.resolve({ body, payload: frame.payload, ...(release === undefined ? {} : { release }) });
  }

  private ensureConnection(): void {
    if (this.closed || this.conn !== undefined || this.backoffTimer !== undefined) return;
    // The backoff runs from the failed attempt, not from this call: calls with deadlines shorter
    // than the backoff must not keep pushing the next attempt out.
    const waitMs = this.nextAttemptAt - performance.now();
    if (waitMs <= 0) {
      this.connect();
      return;
    }
    this.backoffTimer = setTimeout(() => {
      this.backoffTimer = undefined;
      if (this.waiting.size > 0 || this.notices.length > 0) this.connect();
    }, waitMs);
  }

  /** min * 2^(n-1) capped at max, for n failed attempts in a row, with jitter over its upper half. */
  private backoffDelayMs(): number {
    const exponent = Math.min(this.attemptsFailed - 1, backoffExponentMax);
    const ceiling = Math.min(this.backoffMs.max, this.backoffMs.min * 2 ** exponent);
    return ceiling / 2 + (Math.random() * ceiling) / 2;
  }

  private connect(): void {
    this.conn = new ClientConnection(this.target, {
      onReady: (conn) => this.onReady(conn),
      onResponse: (_conn, frame, release) => this.onResponse(frame, release),
      onFail: (conn, err, attemptFailed) => this.onFail(conn, err, attemptFailed),
      onBye: (conn) => this.onBye(conn),
    });
  }

  private onReady(conn: ClientConnection): void {
    this.attemptsFailed = 0;
    this.lastConnectError = undefined;
    this.nextAttemptAt = 0;
    for (const n of this.notices) conn.send({ id: 0, kind: 'msg', method: n.method }, n.body, n.payload);
    this.notices = [];
    for (const call of this.waiting) {
      this.waiting.delete(call);
      this.transmit(conn, call);
    }
  }

  /** Calls the closing server never read go out again, first, on a new connection. */
  private onBye(conn: ClientConnection): void {
    if (this.conn !== conn) return;
    this.conn = undefined;
    const unread = [...this.sent.values(), ...this.waiting];
    this.sent.clear();
    this.waiting.clear();
    for (const call of unread) {
      call.id = 0;
      this.waiting.add(call);
    }
    if (this.waiting.size > 0 || this.notices.length > 0) this.ensureConnection();
  }

  private onFail(conn: ClientConnection, err: RpcError, attemptFailed: boolean): void {
    if (this.conn !== conn) return;
    this.conn = undefined;
    this.rejectAll(this.sent.values(), err);
    if (!attemptFailed) return;
    // Calls waiting on this attempt fail now (fast, with the reason); the next call backs off.
    this.attemptsFailed++;
    this.lastConnectError = err.message;
    this.nextAttemptAt = performance.now() + this.backoffDelayMs();
    this.notices = [];
    this.rejectAll(this.waiting.values(), err);
  }

  private rejectAll(calls: Iterable<PendingCall>, err: RpcError): void {
    for (const call of [...calls]) {
      if (this.finish(call)) call.reject(err);
    }
  }
}

/** The call's promise, counted and timed when it settles. */
function timed<T>(promise: Promise<T>, method: string, metrics: RpcMetrics): Promise<T> {
  const startedAt = performance.now();
  return promise.then(
    (v) => {
      metrics.call(method, 'ok', (performance.now() - startedAt) / 1000);
      return v;
    },
    (err: unknown) => {
      const code = (err as { code?: unknown } | null)?.code;
      metrics.call(method, typeof code === 'string' ? code : RpcErrorCode.Internal, (performance.now() - startedAt) / 1000);
      throw err;
    },
  );
}
