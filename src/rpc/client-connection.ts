// One TCP connection of an RpcClient: connect, the handshake (mutual HMAC when a secret is set),
// then responses handed to the client. It reports exactly one failure, and never retries itself.

import { clientProof, isNonce, newNonce, proofMatches, serverProof } from './auth.ts';
import { isPlainObject } from '../plain-object.ts';
import { RpcError, RpcErrorCode } from './errors.ts';
import { FramedSocket } from './framed-socket.ts';
import { decodeBody, encodeBody, encodeHeader, type Frame, type Header, type Payload, type ReceivePool } from './frame.ts';
import { protocolVersion } from './limits.ts';

export interface ConnectionEvents {
  onReady(conn: ClientConnection): void;
  /** `release` gives the frame's bytes back to the receive pool; undefined when they are not pooled. */
  onResponse(conn: ClientConnection, frame: Frame, release: (() => void) | undefined): void;
  /**
   * Called once when the connection ends for any reason. `attemptFailed` is true when it never
   * became usable (refused, timed out, not authenticated): the client backs off before the next try.
   */
  onFail(conn: ClientConnection, err: RpcError, attemptFailed: boolean): void;
  /** The server closes this connection having read nothing beyond the responses it sent. */
  onBye(conn: ClientConnection): void;
}

export interface ConnectionTarget {
  address: string;
  host: string;
  port: number;
  secret: string | undefined;
  frameBytesMax: number;
  connectTimeoutMs: number;
  /** Where large responses are received (see ReceivePool). */
  receive: ReceivePool | undefined;
}

type State = 'connecting' | 'handshaking' | 'authenticating' | 'ready' | 'failed';

export class ClientConnection {
  private state: State = 'connecting';
  private readonly target: ConnectionTarget;
  private readonly events: ConnectionEvents;
  private readonly framed: FramedSocket;
  private readonly clientNonce = newNonce();
  private serverNonce: Uint8Array | undefined;
  private connectTimer: NodeJS.Timeout | undefined;

  constructor(target: ConnectionTarget, events: ConnectionEvents) {
    this.target = target;
    this.events = events;
    this.framed = new FramedSocket({ host: target.host, port: target.port }, target.frameBytesMax, {
      // A client has no admission: giving a frame back is giving its buffer back.
      onFrame: (f, _release, recycle) => this.onFrame(f, recycle),
      onClose: (reason) => this.fail(this.closeError(reason), false),
    }, target.receive);
    this.framed.socket.once('connect', () => this.onConnect());
    this.connectTimer = setTimeout(
      () => this.fail(new RpcError(RpcErrorCode.Unavailable, `connecting to ${target.address} timed out after ${target.connectTimeoutMs} ms`), true),
      target.connectTimeoutMs,
    );
  }

  get isReady(): boolean {
    return this.state === 'ready';
  }

  /** Bytes written but not yet taken by the kernel: the server is not reading when this grows. */
  get backlogBytes(): number {
    return this.framed.backlogBytes;
  }

  send(h: Header, body: Buffer, payload: Payload | undefined): void {
    this.framed.send(encodeHeader(h), body, payload);
  }

  destroy(reason: RpcError): void {
    this.fail(reason, false);
  }

  private onConnect(): void {
    if (this.state !== 'connecting') return;
    this.framed.socket.setNoDelay(true);
    // Without a secret there is no handshake: requests may go out at once.
    if (this.target.secret === undefined) this.becomeReady();
    else this.state = 'handshaking';
  }

  private becomeReady(): void {
    clearTimeout(this.connectTimer);
    this.state = 'ready';
    this.events.onReady(this);
  }

  private onFrame(frame: Frame, release: (() => void) | undefined): void {
    const h = frame.header;
    if (h.kind === 'res' && this.state === 'ready') return this.events.onResponse(this, frame, release);
    release?.();
    if (h.kind === 'res' && h.error?.code === RpcErrorCode.Unauthenticated) return this.unauthenticated(h.error.message);
    if (h.kind === 'bye' && this.state === 'ready') return this.events.onBye(this);
    if (h.kind === 'hello') return this.onHello(frame);
    if (h.kind === 'auth' && this.state === 'authenticating') return this.onAuth(frame);
    this.violation(`unexpected '${h.kind}' frame while ${this.state}`);
  }

  private onHello(frame: Frame): void {
    // A server over its connection limits says so in its hello, then closes.
    const refused = frame.header.error;
    if (refused !== undefined) return this.fail(new RpcError(refused.code, `${this.target.address}: ${refused.message}`, { address: this.target.address, ...refused.details }), true);
    const hello = this.decode(frame);
    if (!isPlainObject(hello)) return this.violation('hello without a body');
    if (hello.v !== protocolVersion) {
      return this.fail(new RpcError(RpcErrorCode.Unavailable, `${this.target.address} speaks RPC protocol version ${String(hello.v)}, this client ${protocolVersion}`), true);
    }
    const secret = this.target.secret;
    const nonce = hello.nonce;
    if (nonce === undefined) {
      if (secret === undefined) return; // dev mode on both sides
      return this.unauthenticated(`${this.target.address} runs without a cluster secret (dev mode) but this client has one; configure the same secret on both`);
    }
    if (secret === undefined) return this.unauthenticated(`${this.target.address} requires the cluster secret; configure it on this client`);
    if (!isNonce(nonce) || this.state !== 'handshaking') return this.violation('bad or repeated hello');
    this.serverNonce = nonce;
    this.state = 'authenticating';
    this.framed.send(encodeHeader({ id: 0, kind: 'auth' }), encodeBody({ nonce: this.clientNonce, proof: clientProof(secret, nonce, this.clientNonce) }), undefined);
  }

  private onAuth(frame: Frame): void {
    const error = frame.header.error;
    if (error !== undefined) return this.unauthenticated(`${this.target.address} refused the cluster secret: ${error.message}`);
    const body = this.decode(frame);
    const expected = serverProof(this.target.secret as string, this.clientNonce, this.serverNonce as Uint8Array);
    if (!isPlainObject(body) || !proofMatches(expected, body.proof)) {
      return this.unauthenticated(`${this.target.address} could not prove it knows the cluster secret`);
    }
    this.becomeReady();
  }

  private decode(frame: Frame): unknown {
    try {
      return decodeBody(frame.body);
    } catch {
      return undefined;
    }
  }

  private unauthenticated(message: string): void {
    this.fail(new RpcError(RpcErrorCode.Unauthenticated, message, { address: this.target.address }), true);
  }

  private violation(message: string): void {
    this.fail(new RpcError(RpcErrorCode.Unavailable, `protocol violation by ${this.target.address}: ${message}`), true);
  }

  private closeError(reason: RpcError | undefined): RpcError {
    const what = this.state === 'ready' ? `connection to ${this.target.address} lost` : `cannot connect to ${this.target.address}`;
    const why = reason === undefined ? 'closed by the peer' : reason.message;
    return new RpcError(RpcErrorCode.Unavailable, `${what}: ${why}`, { address: this.target.address, ...(reason === undefined ? {} : { cause: reason.code }) });
  }

  private fail(err: RpcError, attemptFailed: boolean): void {
    if (this.state === 'failed') return;
    const wasReady = this.state === 'ready';
    this.state = 'failed';
    clearTimeout(this.connectTimer);
    this.framed.destroy(err);
    this.events.onFail(this, err, attemptFailed || !wasReady);
  }
}
