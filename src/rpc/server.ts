// The server end of cairn's RPC: listens on TCP, registers method handlers, owns its connections,
// and bounds what peers can make it hold: connections (in all and per address) and request bytes.

import net from 'node:net';
import { RpcError, RpcErrorCode } from './errors.ts';
import { checkPositiveInt, checkSecret } from './options.ts';
import type { Handler } from './handler.ts';
import { encodeBody, encodeHeader, frameParts } from './frame.ts';
import {
  admissionWaitMsDefault,
  authTimeoutMsDefault,
  closeLingerMs,
  connectionsMaxDefault,
  connectionsPerAddressMaxDefault,
  frameBytesMaxDefault,
  frameStallMsDefault,
  sendBacklogBytesMaxDefault,
  handshakeFrameBytesMax,
  idleTimeoutMsDefault,
  inflightPerConnectionMaxDefault,
  methodLengthMax,
  protocolVersion,
  requestBytesMaxDefault,
} from './limits.ts';
import { RequestBudget } from './request-budget.ts';
import { ServerConnection, type RpcLog, type ServerSettings } from './server-connection.ts';
import { peerName } from './framed-socket.ts';
import type { RpcMetrics } from './metrics.ts';
import type { ReceivePool } from './frame.ts';

export interface RpcServerOptions {
  /** Cluster secret; without it there is no handshake (dev mode). */
  secret?: string;
  frameBytesMax?: number;
  inflightPerConnectionMax?: number;
  /** How long a connecting peer has to authenticate; default authTimeoutMsDefault. */
  authTimeoutMs?: number;
  /** How long a half-received frame may wait for its next byte; default frameStallMsDefault. */
  frameStallMs?: number;
  /** Answers queued for a peer that does not read them, beyond which its requests are not read; default sendBacklogBytesMaxDefault. */
  sendBacklogBytesMax?: number;
  /** How long a connection with nothing running and nothing received stays open; default idleTimeoutMsDefault. */
  idleTimeoutMs?: number;
  /** Connections open at once, in all and from one peer address; defaults connectionsMaxDefault, connectionsPerAddressMaxDefault. */
  connectionsMax?: number;
  connectionsPerAddressMax?: number;
  /** Bytes of clients' requests held at once (being received, or handlers running); a larger one is taken alone. */
  requestBytesMax?: number;
  /** How long a request waits for room in requestBytesMax before it is refused; default admissionWaitMsDefault. */
  admissionWaitMs?: number;
  log?: RpcLog;
  /** Counts and times each call by method and result (/metrics). */
  metrics?: RpcMetrics;
  /** Where large requests are received (see ReceivePool); their handlers give them back (CallContext.recyclePayload). */
  receive?: ReceivePool;
}

/** What a server holds and has refused since it started, for /metrics and tests. */
export interface RpcServerStats {
  connections: number;
  requestBytesHeld: number;
  requestBytesMax: number;
  /** Connections whose reading waits for room in requestBytesMax. */
  connectionsWaiting: number;
  /** Bytes of internal requests (not counted against requestBytesMax) held now. */
  internalBytesHeld: number;
  connectionsRefused: number;
  requestsRefused: number;
  messagesDropped: number;
}

export interface HandleOptions {
  internal?: boolean;
}

type RefusalKind = 'connections' | 'requests' | 'messages';

/** How often refusals are logged, at most: under overload they come by the thousand. */
const refusalLogEveryMs = 10_000;

/** Warnings and errors as JSON lines on stderr, for servers created without a logger. */
const stderrLog: RpcLog = (level, msg, ctx) => {
  if (level !== 'info') console.error(JSON.stringify({ level, msg, ...ctx }));
};

export class RpcServer {
  private readonly settings: ServerSettings;
  private readonly handlers = new Map<string, Handler>();
  private readonly internalMethods = new Set<string>();
  private readonly internalBytes = { held: 0 };
  private readonly connections = new Set<ServerConnection>();
  /** Open connections by peer address (IP, without the port). */
  private readonly perAddress = new Map<string, number>();
  /** Refused sockets waiting for their refusal to go out. */
  private readonly refusing = new Set<net.Socket>();
  private readonly connectionsMax: number;
  private readonly connectionsPerAddressMax: number;
  private readonly refusals: Record<RefusalKind, number> = { connections: 0, requests: 0, messages: 0 };
  private lastRefusalLogAt = -Infinity;
  private server: net.Server | undefined;
  private closing = false;

  constructor(opts: RpcServerOptions = {}) {
    checkSecret(opts.secret);
    const frameBytesMax = checkPositiveInt('frameBytesMax', opts.frameBytesMax ?? frameBytesMaxDefault, handshakeFrameBytesMax);
    const requestBytesMax = checkPositiveInt('requestBytesMax', opts.requestBytesMax ?? requestBytesMaxDefault);
    this.connectionsMax = checkPositiveInt('connectionsMax', opts.connectionsMax ?? connectionsMaxDefault);
    this.connectionsPerAddressMax = checkPositiveInt('connectionsPerAddressMax', opts.connectionsPerAddressMax ?? connectionsPerAddressMaxDefault);
    this.settings = {
      secret: opts.secret,
      frameBytesMax,
      inflightPerConnectionMax: checkPositiveInt('inflightPerConnectionMax', opts.inflightPerConnectionMax ?? inflightPerConnectionMaxDefault),
      authTimeoutMs: checkPositiveInt('authTimeoutMs', opts.authTimeoutMs ?? authTimeoutMsDefault),
      frameStallMs: checkPositiveInt('frameStallMs', opts.frameStallMs ?? frameStallMsDefault),
      sendBacklogBytesMax: checkPositiveInt('sendBacklogBytesMax', opts.sendBacklogBytesMax ?? sendBacklogBytesMaxDefault),
      idleTimeoutMs: checkPositiveInt('idleTimeoutMs', opts.idleTimeoutMs ?? idleTimeoutMsDefault),
      handlers: this.handlers,
      budget: new RequestBudget(requestBytesMax),
      admissionWaitMs: checkPositiveInt('admissionWaitMs', opts.admissionWaitMs ?? admissionWaitMsDefault),
      internalMethods: this.internalMethods,
      internalBytes: this.internalBytes,
      onRefused: (kind, peer) => this.noteRefusal(kind === 'request' ? 'requests' : 'messages', peer),
      log: opts.log ?? stderrLog,
      metrics: opts.metrics,
      receive: opts.receive,
    };
  }

  stats(): RpcServerStats {
    return {
      connections: this.connections.size,
      requestBytesHeld: this.settings.budget.bytesHeld,
      requestBytesMax: this.settings.budget.bytesMax,
      connectionsWaiting: this.settings.budget.waiting,
      internalBytesHeld: this.internalBytes.held,
      connectionsRefused: this.refusals.connections,
      requestsRefused: this.refusals.requests,
      messagesDropped: this.refusals.messages,
    };
  }

  /**
   * Serves `method`. An `internal` method carries traffic between cairn's own processes (Raft
   * messages, heartbeats, writes forwarded along a chain): its requests never wait for room in
   * requestBytesMax nor count against it, as they finish work already admitted elsewhere or keep
   * the cluster alive; what bounds them is the protocol that sends them.
   */
  handle(method: string, handler: Handler, opts: HandleOptions = {}): void {
    if (method.length === 0 || method.length > methodLengthMax) throw new RpcError(RpcErrorCode.InvalidArgument, `method names are 1..${methodLengthMax} characters`);
    if (this.handlers.has(method)) throw new RpcError(RpcErrorCode.InvalidArgument, `method ${method} already has a handler`);
    this.handlers.set(method, handler);
    if (opts.internal === true) this.internalMethods.add(method);
  }

  /** Starts listening; port 0 lets the OS pick one. Resolves with the address actually bound. */
  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    if (this.server !== undefined || this.closing) return Promise.reject(new RpcError(RpcErrorCode.InvalidArgument, 'listen() may be called once, before close()'));
    const server = net.createServer({ noDelay: true }, (socket) => this.onConnection(socket));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        server.on('error', (err) => this.settings.log('error', 'rpc: listening socket failed', { err: err.message }));
        const addr = server.address() as net.AddressInfo;
        this.settings.log('info', 'rpc: listening', { host: addr.address, port: addr.port });
        resolve({ host: addr.address, port: addr.port });
      });
    });
  }

  /** Stops listening, aborts the signals of running handlers and closes every connection. */
  close(): Promise<void> {
    this.closing = true;
    const server = this.server;
    const reason = new RpcError(RpcErrorCode.Unavailable, 'server closing');
    for (const conn of this.connections) conn.destroy(reason);
    for (const socket of this.refusing) socket.destroy();
    if (server === undefined) return Promise.resolve();
    // The callback's error (the server was not listening) means there is nothing left to stop.
    return new Promise((resolve) => server.close(() => resolve()));
  }

  private onConnection(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const address = socket.remoteAddress ?? 'unknown';
    const fromAddress = this.perAddress.get(address) ?? 0;
    if (this.connections.size >= this.connectionsMax) {
      return this.refuseConnection(socket, `${this.connections.size} connections are open, the server's limit (connectionsMax)`, { connectionsMax: this.connectionsMax });
    }
    if (fromAddress >= this.connectionsPerAddressMax) {
      return this.refuseConnection(socket, `${fromAddress} connections are open from ${address}, the limit per address (connectionsPerAddressMax)`, { connectionsPerAddressMax: this.connectionsPerAddressMax });
    }
    this.perAddress.set(address, fromAddress + 1);
    const conn = new ServerConnection(socket, this.settings, (c) => {
      this.connections.delete(c);
      const left = (this.perAddress.get(address) ?? 1) - 1;
      if (left > 0) this.perAddress.set(address, left);
      else this.perAddress.delete(address);
    });
    this.connections.add(conn);
  }

  /**
   * Answers a connection over a limit with a hello that carries CAIRN_OVERLOADED (the client fails
   * its calls with it and backs off), then closes it; nothing it sends is read.
   */
  private refuseConnection(socket: net.Socket, why: string, details: Record<string, unknown>): void {
    this.noteRefusal('connections', peerName(socket));
    this.refusing.add(socket);
    const linger = setTimeout(() => socket.destroy(), closeLingerMs);
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(linger);
      this.refusing.delete(socket);
    });
    // Whatever the peer sent is read and dropped: closing with unread bytes would reset the
    // connection, and the peer could lose the refusal.
    socket.resume();
    const error = { code: RpcErrorCode.Overloaded, message: `connection refused: ${why}; retry later`, details };
    const parts = frameParts(encodeHeader({ id: 0, kind: 'hello', error }), encodeBody({ v: protocolVersion }), undefined);
    for (const p of parts) socket.write(p);
    socket.end();
  }

  private noteRefusal(kind: RefusalKind, peer: string): void {
    this.refusals[kind]++;
    const now = performance.now();
    if (now - this.lastRefusalLogAt < refusalLogEveryMs) return;
    this.lastRefusalLogAt = now;
    const s = this.stats();
    this.settings.log('warn', 'rpc: overloaded: refusing connections or requests (counts since start)', {
      last: kind,
      peer,
      connections: s.connections,
      requestBytesHeld: s.requestBytesHeld,
      connectionsRefused: s.connectionsRefused,
      requestsRefused: s.requestsRefused,
      messagesDropped: s.messagesDropped,
    });
  }
}


