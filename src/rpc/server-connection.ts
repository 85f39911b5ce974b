// One accepted connection of an RpcServer: the handshake, then dispatching requests to handlers
// with their deadlines, cancellation, the per-connection in-flight limit and the server's budget of
// request bytes: a request that does not fit waits, its connection unread, up to admissionWaitMs,
// then is answered CAIRN_OVERLOADED without being stored.

import type { Socket } from 'node:net';
import { clientProof, isNonce, newNonce, proofMatches, serverProof } from './auth.ts';
import { isPlainObject } from '../plain-object.ts';
import { RpcError, RpcErrorCode } from './errors.ts';
import { FramedSocket, peerName } from './framed-socket.ts';
import { decodeBody, decodeFrameHead, encodeBody, encodeHeader, frameBytes, type AdmissionDecision, type Frame, type FrameAdmission, type Header, type ReceivePool, type WireError } from './frame.ts';
import { isReply, type CallContext, type Handler } from './handler.ts';
import { errorCodeLengthMax, errorMessageLengthMax, handshakeFrameBytesMax, headerBytesMax, protocolVersion, timeoutMsDefault } from './limits.ts';
import type { BudgetWaiter, RequestBudget } from './request-budget.ts';
import { unknownMethodLabel, type RpcMetrics } from './metrics.ts';

export type RpcLog = (level: 'info' | 'warn' | 'error', msg: string, ctx?: object) => void;

/** What a connection needs from its server. */
export interface ServerSettings {
  secret: string | undefined;
  frameBytesMax: number;
  inflightPerConnectionMax: number;
  authTimeoutMs: number;
  frameStallMs: number;
  sendBacklogBytesMax: number;
  idleTimeoutMs: number;
  handlers: ReadonlyMap<string, Handler>;
  /** Bytes of clients' requests the whole server holds; shared by its connections. */
  budget: RequestBudget;
  /** How long a request waits for room in the budget before it is refused. */
  admissionWaitMs: number;
  /** Methods of traffic between cairn's own processes: stored at once, never counted against the budget. */
  internalMethods: ReadonlySet<string>;
  /** Bytes of internal requests held now (for stats); the connection adds and subtracts. */
  internalBytes: { held: number };
  /** Counts (and now and then logs) a request refused, or a one-way message dropped, for want of budget. */
  onRefused(kind: 'request' | 'message', peer: string): void;
  log: RpcLog;
  metrics: RpcMetrics | undefined;
  /** Where large requests are received; undefined: into fresh buffers. */
  receive: ReceivePool | undefined;
}

interface RunningCall {
  method: string;
  /** performance.now() when its handler started (for metrics). */
  startedAt: number;
  controller: AbortController;
  timer: NodeJS.Timeout;
  /** Gives the request's bytes back to the budget once its handler is done. */
  release: () => void;
}

const noRelease = (): void => undefined;

/** `fn`, run the first time the result is called and never again. */
function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}

const emptyBody = Buffer.alloc(0);

export class ServerConnection {
  readonly peer: string;
  private readonly settings: ServerSettings;
  private readonly framed: FramedSocket;
  private readonly onClosed: (conn: ServerConnection) => void;
  private readonly calls = new Map<number, RunningCall>();
  private readonly serverNonce: Buffer | undefined;
  private authenticated: boolean;
  private authTimer: NodeJS.Timeout | undefined;
  private watchTimer: NodeJS.Timeout | undefined;
  /** performance.now() of the last frame received. */
  private lastFrameAt = performance.now();
  /** Aborted when the connection closes: the signal one-way message handlers see. */
  private readonly closedSignal = new AbortController();

  constructor(socket: Socket, settings: ServerSettings, onClosed: (conn: ServerConnection) => void) {
    this.peer = peerName(socket);
    this.settings = settings;
    this.onClosed = onClosed;
    this.authenticated = settings.secret === undefined;
    // Until the peer proves the secret, only a frame the size of an 'auth' is accepted.
    const limit = this.authenticated ? settings.frameBytesMax : handshakeFrameBytesMax;
    this.framed = new FramedSocket(socket, limit, {
      onFrame: (f, release, recycle) => this.onFrame(f, release ?? noRelease, recycle),
      onClose: (reason, violation) => this.onClose(reason, violation),
    }, settings.receive);
    this.framed.pauseReadsOverBacklog(settings.sendBacklogBytesMax);
    // Before authentication frames are tiny and handled at once; after it, they need the budget.
    if (this.authenticated) this.framed.setAdmission(this.admission);
    // Sent in dev mode too (without a nonce), so that a client configured with a secret fails fast.
    this.serverNonce = this.authenticated ? undefined : newNonce();
    const hello: Record<string, unknown> = { v: protocolVersion };
    if (this.serverNonce !== undefined) hello.nonce = this.serverNonce;
    this.send({ id: 0, kind: 'hello' }, encodeBody(hello), undefined);
    if (!this.authenticated) {
      this.authTimer = setTimeout(() => {
        this.settings.log('warn', 'rpc: peer did not authenticate in time; closing', { peer: this.peer, authTimeoutMs: settings.authTimeoutMs });
        this.framed.destroy(new RpcError(RpcErrorCode.Unauthenticated, 'authentication timed out'));
      }, settings.authTimeoutMs);
    }
    const every = Math.max(10, Math.min(settings.frameStallMs, settings.idleTimeoutMs) / 4);
    this.watchTimer = setInterval(() => this.watch(), every);
    this.watchTimer.unref();
  }

  /** Closes a connection stalled in the middle of a frame, or idle with nothing running. */
  private watch(): void {
    const now = performance.now();
    // A connection whose reading waits for room is not stalled: this server stopped reading it.
    if (this.framed.waiting) return;
    if (this.framed.partialBytes > 0 && now - this.framed.lastReceivedAt > this.settings.frameStallMs) {
      this.settings.log('warn', 'rpc: peer stalled in the middle of a frame; closing', { peer: this.peer, bufferedBytes: this.framed.partialBytes, frameStallMs: this.settings.frameStallMs });
      this.framed.destroy(new RpcError(RpcErrorCode.Unavailable, `no byte of a half-received frame for ${this.settings.frameStallMs} ms`));
    } else if (this.idle(now)) {
      // After a stall of this process, timers run before the input that arrived meanwhile is read:
      // decide once that input had its turn (setImmediate runs after the poll phase).
      setImmediate(() => {
        if (!this.idle(performance.now())) return;
        this.settings.log('info', 'rpc: idle connection closed', { peer: this.peer, idleTimeoutMs: this.settings.idleTimeoutMs });
        // A request already on its way is never read (end() stops reading): 'bye' tells the client
        // that everything unanswered went unseen, so it sends it again on a new connection.
        this.send({ id: 0, kind: 'bye' }, emptyBody, undefined);
        this.framed.end(undefined);
      });
    }
  }

  private idle(now: number): boolean {
    return this.framed.partialBytes === 0 && this.calls.size === 0 && now - this.lastFrameAt > this.settings.idleTimeoutMs;
  }

  /** Aborts every running handler and closes the socket now. */
  destroy(reason: RpcError): void {
    this.framed.destroy(reason);
  }

  private readonly admission: FrameAdmission = {
    decide: (frameBytes, head) => this.decideAdmission(frameBytes, head),
    onRefused: (head) => this.onRefusedFrame(head),
  };
  /** This connection in the budget's line while its reading waits. */
  private readonly waiter: BudgetWaiter = { retry: () => this.framed.retryAdmission() };
  /** Set while a frame waits for room: when its wait runs out. */
  private waitTimer: NodeJS.Timeout | undefined;
  private waitExpired = false;

  /**
   * Internal traffic is stored at once; a client's request takes room in the budget, or waits in
   * line for it, or, once it has waited admissionWaitMs, is skipped and refused.
   */
  private decideAdmission(frameBytes: number, head: Buffer): AdmissionDecision {
    const h = decodeFrameHead(head);
    if (h.kind !== 'req' && h.kind !== 'msg') return { release: noRelease };
    if (this.settings.internalMethods.has(h.method as string)) {
      const internal = this.settings.internalBytes;
      internal.held += frameBytes;
      return { release: once(() => (internal.held -= frameBytes)) };
    }
    const budget = this.settings.budget;
    if (budget.tryTake(frameBytes, this.waiter)) {
      this.stopWaiting();
      return { release: once(() => budget.release(frameBytes)) };
    }
    if (this.waitExpired) {
      this.stopWaiting();
      budget.leave(this.waiter);
      return 'skip';
    }
    budget.wait(this.waiter);
    this.waitTimer ??= setTimeout(() => {
      this.waitExpired = true;
      this.framed.retryAdmission();
    }, this.settings.admissionWaitMs);
    return 'wait';
  }

  private stopWaiting(): void {
    clearTimeout(this.waitTimer);
    this.waitTimer = undefined;
    this.waitExpired = false;
  }

  /** A frame that did not fit in the budget: a request is answered OVERLOADED, a one-way message dropped. */
  private onRefusedFrame(head: Buffer): void {
    this.lastFrameAt = performance.now();
    let h: Header;
    try {
      h = decodeFrameHead(head);
    } catch (err) {
      return this.violation((err as Error).message);
    }
    const budget = this.settings.budget;
    if (h.kind === 'req') {
      this.settings.onRefused('request', this.peer);
      return this.sendError(h.id, {
        code: RpcErrorCode.Overloaded,
        message: `no room for this request within ${this.settings.admissionWaitMs} ms: the server holds ${budget.bytesHeld} bytes of requests, its limit (requestBytesMax) is ${budget.bytesMax}; retry later`,
        details: { requestBytesMax: budget.bytesMax },
      });
    }
    if (h.kind === 'msg') return this.settings.onRefused('message', this.peer);
    // Other frames carry nothing worth memory: handled as if whole (a cancel still cancels).
    this.onFrame({ header: h, body: emptyBody, payload: undefined }, noRelease);
  }

  /**
   * Dispatches one frame; `release` gives its bytes back to the budget, called here or once its
   * handler is done; `recycle` gives its buffer back to the receive pool, called here when no
   * handler saw it, else left to the handler (CallContext.recyclePayload).
   */
  private onFrame(frame: Frame, release: () => void, recycle?: () => void): void {
    this.lastFrameAt = performance.now();
    const h = frame.header;
    if (h.kind === 'req' && this.authenticated) return this.onRequest(h, frame, release, recycle);
    if (h.kind === 'msg' && this.authenticated) return this.onMessage(h, frame, release, recycle);
    release();
    switch (h.kind) {
      case 'req':
        return this.refuseUnauthenticated(h.id);
      case 'msg':
        return this.refuseUnauthenticated(0);
      case 'cancel':
        if (!this.authenticated) return this.refuseUnauthenticated(h.id);
        this.calls.get(h.id)?.controller.abort(new RpcError(RpcErrorCode.Cancelled, 'cancelled by the caller'));
        return;
      case 'auth':
        if (this.authenticated) return this.violation(`unexpected 'auth' frame`);
        return this.onAuth(frame);
      default:
        return this.violation(`a client does not send '${h.kind}' frames`);
    }
  }

  private violation(message: string): void {
    this.framed.destroy(new RpcError(RpcErrorCode.BadRequest, message), true);
  }

  private refuseUnauthenticated(id: number): void {
    this.settings.log('warn', 'rpc: request before authentication; closing', { peer: this.peer });
    this.refuse(id, 'this server requires the cluster secret; configure the same secret on the client');
  }

  /** Answers UNAUTHENTICATED, then closes once the answer has gone out. */
  private refuse(id: number, message: string): void {
    const error = { code: RpcErrorCode.Unauthenticated, message };
    this.send({ id, kind: id === 0 ? 'auth' : 'res', error }, emptyBody, undefined);
    this.framed.end(new RpcError(error.code, error.message));
  }

  private onAuth(frame: Frame): void {
    const secret = this.settings.secret as string;
    const serverNonce = this.serverNonce as Buffer;
    let body: unknown;
    try {
      body = decodeBody(frame.body);
    } catch {
      body = undefined;
    }
    const clientNonce = isPlainObject(body) ? body.nonce : undefined;
    if (!isPlainObject(body) || !isNonce(clientNonce) || !proofMatches(clientProof(secret, serverNonce, clientNonce), body.proof)) {
      this.settings.log('warn', 'rpc: peer failed authentication (wrong cluster secret?); closing', { peer: this.peer });
      return this.refuse(0, 'wrong cluster secret; configure the same secret on the client and the server');
    }
    clearTimeout(this.authTimer);
    this.authenticated = true;
    this.framed.frameBytesMax = this.settings.frameBytesMax;
    this.framed.setAdmission(this.admission);
    this.send({ id: 0, kind: 'auth' }, encodeBody({ proof: serverProof(secret, clientNonce, serverNonce) }), undefined);
  }

  private onRequest(h: Header, frame: Frame, release: () => void, recycle: (() => void) | undefined): void {
    let started = false;
    try {
      started = this.startRequest(h, frame, release, recycle);
    } finally {
      // Refused before its handler started: nothing holds it. (A handler that throws at once
      // still settles through its call, which releases it.)
      if (!started) {
        release();
        recycle?.();
      }
    }
  }

  /** Whether the handler was started (it then owns the payload's recycle). */
  private startRequest(h: Header, frame: Frame, release: () => void, recycle: (() => void) | undefined): boolean {
    const id = h.id;
    const method = h.method as string;
    if (this.calls.has(id)) {
      this.violation(`request id ${id} is already in flight`);
      return false;
    }
    if (this.calls.size >= this.settings.inflightPerConnectionMax) {
      this.sendError(id, {
        code: RpcErrorCode.Overloaded,
        message: `${this.calls.size} calls in flight on this connection, the limit (inflightPerConnectionMax)`,
        details: { inflightPerConnectionMax: this.settings.inflightPerConnectionMax },
      });
      return false;
    }
    const handler = this.settings.handlers.get(method);
    if (handler === undefined) {
      this.settings.metrics?.call(unknownMethodLabel, RpcErrorCode.UnknownMethod, undefined);
      this.sendError(id, { code: RpcErrorCode.UnknownMethod, message: `unknown method ${method}`, details: { method } });
      return false;
    }
    let body: unknown;
    try {
      body = decodeBody(frame.body);
    } catch (err) {
      this.settings.metrics?.call(method, RpcErrorCode.BadRequest, undefined);
      this.sendError(id, { code: RpcErrorCode.BadRequest, message: (err as Error).message });
      return false;
    }
    const controller = new AbortController();
    const timeoutMs = h.timeoutMs ?? timeoutMsDefault;
    const timer = setTimeout(() => controller.abort(new RpcError(RpcErrorCode.Timeout, `${method} passed its deadline of ${timeoutMs} ms`)), timeoutMs);
    const call: RunningCall = { method, startedAt: performance.now(), controller, timer, release };
    this.calls.set(id, call);
    const ctx: CallContext = { signal: controller.signal, peer: this.peer, payload: frame.payload, ...(recycle === undefined ? {} : { recyclePayload: recycle }) };
    let result: Promise<unknown>;
    try {
      result = Promise.resolve(handler(body, ctx));
    } catch (err) {
      result = Promise.reject(err);
    }
    result.then(
      (value) => this.settle(id, call, value, undefined, false),
      (err: unknown) => this.settle(id, call, undefined, err, true),
    );
    return true;
  }

  /** A one-way message: the handler runs like a request's, and its result or error stays here. */
  private onMessage(h: Header, frame: Frame, release: () => void, recycle: (() => void) | undefined): void {
    const method = h.method as string;
    const handler = this.settings.handlers.get(method);
    const drop = (why: string): void => this.settings.log('warn', `rpc: one-way ${method} dropped: ${why}`, { peer: this.peer });
    const metrics = this.settings.metrics;
    if (handler === undefined) {
      release();
      recycle?.();
      metrics?.call(unknownMethodLabel, RpcErrorCode.UnknownMethod, undefined);
      return drop('unknown method');
    }
    let body: unknown;
    try {
      body = decodeBody(frame.body);
    } catch (err) {
      release();
      recycle?.();
      metrics?.call(method, RpcErrorCode.BadRequest, undefined);
      return drop((err as Error).message);
    }
    const ctx: CallContext = { signal: this.closedSignal.signal, peer: this.peer, payload: frame.payload, ...(recycle === undefined ? {} : { recyclePayload: recycle }) };
    let result: Promise<unknown>;
    try {
      result = Promise.resolve(handler(body, ctx));
    } catch (err) {
      result = Promise.reject(err);
    }
    result
      .then(
        () => metrics?.call(method, 'ok', undefined),
        (err: unknown) => {
          const wire = this.toWireError(method, err);
          metrics?.call(method, wire.code, undefined);
          drop(wire.message);
        },
      )
      .finally(release);
  }

  private settle(id: number, call: RunningCall, value: unknown, err: unknown, failed: boolean): void {
    clearTimeout(call.timer);
    if (this.settings.metrics !== undefined) this.settings.metrics.call(call.method, resultCode(call, err, failed), (performance.now() - call.startedAt) / 1000);
    call.release();
    if (this.calls.get(id) === call) this.calls.delete(id);
    const onSent = isReply(value) ? value.onSent : undefined;
    // The payload's buffer goes back to its owner on every path: sent, or dropped here.
    if (!this.respond(id, call, value, err, failed, onSent)) onSent?.();
  }

  /** Sends the call's answer; true when the payload went out with `onSent` attached. */
  private respond(id: number, call: RunningCall, value: unknown, err: unknown, failed: boolean, onSent: (() => void) | undefined): boolean {
    // Timed out, cancelled or disconnected: the caller has given up and will not read an answer.
    if (call.controller.signal.aborted) return false;
    if (failed) {
      this.sendError(id, this.toWireError(call.method, err));
      return false;
    }
    const body = isReply(value) ? value.body : value;
    const payload = isReply(value) ? value.payload : undefined;
    let encoded: Buffer;
    try {
      encoded = encodeBody(body);
    } catch (e) {
      this.settings.log('error', 'rpc: handler returned a body msgpack cannot encode', { peer: this.peer, method: call.method, err: String(e) });
      this.sendError(id, { code: RpcErrorCode.Internal, message: `${call.method}: response body cannot be encoded` });
      return false;
    }
    const header = encodeHeader({ id, kind: 'res' });
    const size = frameBytes(header.length, encoded.length, payload?.byteLength ?? 0);
    if (size > this.settings.frameBytesMax) {
      this.settings.log('warn', 'rpc: response exceeds frameBytesMax', { peer: this.peer, method: call.method, frameBytes: size });
      this.sendError(id, {
        code: RpcErrorCode.FrameTooLarge,
        message: `${call.method}: response of ${size} bytes exceeds frameBytesMax ${this.settings.frameBytesMax}`,
        details: { frameBytes: size, frameBytesMax: this.settings.frameBytesMax },
      });
      return false;
    }
    this.framed.send(header, encoded, payload, onSent);
    return true;
  }

  private toWireError(method: string, err: unknown): WireError {
    const e = err as { code?: unknown; message?: unknown; details?: unknown } | null;
    if (typeof e === 'object' && e !== null && typeof e.code === 'string' && e.code.length > 0 && e.code.length <= errorCodeLengthMax) {
      const message = typeof e.message === 'string' ? e.message.slice(0, errorMessageLengthMax) : '';
      return isPlainObject(e.details) ? { code: e.code, message, details: e.details } : { code: e.code, message };
    }
    this.settings.log('error', 'rpc: handler failed without an error code', { peer: this.peer, method, err: err instanceof Error ? err.stack : String(err) });
    return { code: RpcErrorCode.Internal, message: `${method} failed on the server; see its log` };
  }

  private sendError(id: number, error: WireError): void {
    let header: Buffer | undefined;
    try {
      header = encodeHeader({ id, kind: 'res', error });
    } catch {
      header = undefined;
    }
    if (header === undefined || header.length > headerBytesMax) {
      this.settings.log('warn', 'rpc: error details too large or not encodable; sent without them', { peer: this.peer, code: error.code });
      header = encodeHeader({ id, kind: 'res', error: { code: error.code, message: error.message.slice(0, errorMessageLengthMax) } });
    }
    this.framed.send(header, emptyBody, undefined);
  }

  private send(h: Header, body: Buffer, payload: Uint8Array | undefined): void {
    this.framed.send(encodeHeader(h), body, payload);
  }

  private onClose(reason: RpcError | undefined, violation: boolean): void {
    clearTimeout(this.authTimer);
    clearInterval(this.watchTimer);
    this.stopWaiting();
    this.settings.budget.leave(this.waiter);
    if (violation) this.settings.log('warn', 'rpc: closing connection after a protocol violation', { peer: this.peer, code: reason?.code, reason: reason?.message });
    const abort = reason ?? new RpcError(RpcErrorCode.Unavailable, 'connection closed by the peer');
    for (const call of this.calls.values()) {
      clearTimeout(call.timer);
      call.controller.abort(abort.code === RpcErrorCode.Unavailable ? abort : new RpcError(RpcErrorCode.Unavailable, `connection closed: ${abort.message}`));
    }
    this.calls.clear();
    this.closedSignal.abort(new RpcError(RpcErrorCode.Unavailable, 'connection closed'));
    this.onClosed(this);
  }
}

/** A finished call's code for metrics: the abort's (deadline, cancel, disconnect), the error's, or 'ok'. */
function resultCode(call: RunningCall, err: unknown, failed: boolean): string {
  const signal = call.controller.signal;
  const e = (signal.aborted ? signal.reason : failed ? err : undefined) as { code?: unknown } | null | undefined;
  if (e === undefined) return 'ok';
  return typeof e === 'object' && e !== null && typeof e.code === 'string' && e.code.length > 0 && e.code.length <= errorCodeLengthMax ? e.code : RpcErrorCode.Internal;
}
