// The server end of cairn's RPC: listens on TCP, registers method handlers, owns its connections.

import net from 'node:net';
import { RpcError, RpcErrorCode } from './errors.ts';
import { checkPositiveInt, checkSecret } from './options.ts';
import type { Handler } from './handler.ts';
import { authTimeoutMsDefault, frameBytesMaxDefault, frameStallMsDefault, handshakeFrameBytesMax, idleTimeoutMsDefault, inflightPerConnectionMaxDefault, methodLengthMax } from './limits.ts';
import { ServerConnection, type RpcLog, type ServerSettings } from './server-connection.ts';

export interface RpcServerOptions {
  /** Cluster secret; without it there is no handshake (dev mode). */
  secret?: string;
  frameBytesMax?: number;
  inflightPerConnectionMax?: number;
  /** How long a connecting peer has to authenticate; default authTimeoutMsDefault. */
  authTimeoutMs?: number;
  /** How long a half-received frame may wait for its next byte; default frameStallMsDefault. */
  frameStallMs?: number;
  /** How long a connection with nothing running and nothing received stays open; default idleTimeoutMsDefault. */
  idleTimeoutMs?: number;
  log?: RpcLog;
}

/** Warnings and errors as JSON lines on stderr, for servers created without a logger. */
const stderrLog: RpcLog = (level, msg, ctx) => {
  if (level !== 'info') console.error(JSON.stringify({ level, msg, ...ctx }));
};

export class RpcServer {
  private readonly settings: ServerSettings;
  private readonly handlers = new Map<string, Handler>();
  private readonly connections = new Set<ServerConnection>();
  private server: net.Server | undefined;
  private closing = false;

  constructor(opts: RpcServerOptions = {}) {
    checkSecret(opts.secret);
    this.settings = {
      secret: opts.secret,
      frameBytesMax: checkPositiveInt('frameBytesMax', opts.frameBytesMax ?? frameBytesMaxDefault, handshakeFrameBytesMax),
      inflightPerConnectionMax: checkPositiveInt('inflightPerConnectionMax', opts.inflightPerConnectionMax ?? inflightPerConnectionMaxDefault),
      authTimeoutMs: checkPositiveInt('authTimeoutMs', opts.authTimeoutMs ?? authTimeoutMsDefault),
      frameStallMs: checkPositiveInt('frameStallMs', opts.frameStallMs ?? frameStallMsDefault),
      idleTimeoutMs: checkPositiveInt('idleTimeoutMs', opts.idleTimeoutMs ?? idleTimeoutMsDefault),
      handlers: this.handlers,
      log: opts.log ?? stderrLog,
    };
  }

  handle(method: string, handler: Handler): void {
    if (method.length === 0 || method.length > methodLengthMax) throw new RpcError(RpcErrorCode.InvalidArgument, `method names are 1..${methodLengthMax} characters`);
    if (this.handlers.has(method)) throw new RpcError(RpcErrorCode.InvalidArgument, `method ${method} already has a handler`);
    this.handlers.set(method, handler);
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
    const conn = new ServerConnection(socket, this.settings, (c) => this.connections.delete(c));
    this.connections.add(conn);
  }
}
