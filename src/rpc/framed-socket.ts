// A TCP socket that sends and receives whole frames, shared by both ends of a connection. It owns
// the socket: whoever closes it (the owner, the peer, a malformed frame) the owner hears once.

import type { Socket } from 'node:net';
import { formatAddress } from '../address.ts';
import { RpcError, RpcErrorCode } from './errors.ts';
import { FrameDecoder, decodeFrame, frameParts, type Frame } from './frame.ts';
import { closeLingerMs } from './limits.ts';

export interface FramedSocketEvents {
  onFrame(frame: Frame): void;
  /**
   * Called exactly once, synchronously when the owner closes. `reason` is undefined on a clean
   * close by the peer; `violation` is true when the peer broke the protocol (bad or oversized frame).
   */
  onClose(reason: RpcError | undefined, violation: boolean): void;
}

export function peerName(socket: Socket): string {
  return formatAddress(socket.remoteAddress ?? 'unknown', socket.remotePort ?? 0);
}

export class FramedSocket {
  readonly socket: Socket;
  private readonly decoder: FrameDecoder;
  private readonly events: FramedSocketEvents;
  private closed = false;
  private socketError: Error | undefined;
  private lingerTimer: NodeJS.Timeout | undefined;
  private corked = false;

  constructor(socket: Socket, frameBytesMax: number, events: FramedSocketEvents) {
    this.socket = socket;
    this.events = events;
    this.decoder = new FrameDecoder(frameBytesMax, (raw) => this.events.onFrame(decodeFrame(raw)));
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => {
      this.socketError ??= err;
    });
    socket.on('close', () => {
      clearTimeout(this.lingerTimer);
      const err = this.socketError;
      this.finish(err === undefined ? undefined : new RpcError(RpcErrorCode.Unavailable, err.message, { cause: (err as NodeJS.ErrnoException).code ?? 'unknown' }), false);
    });
  }

  set frameBytesMax(n: number) {
    this.decoder.frameBytesMax = n;
  }

  /**
   * Queues one frame; a no-op once closed (the owner has already been told). Frames sent in the
   * same tick leave together in one writev when the tick ends, so many concurrent calls cost one
   * system call, not one each; a payload goes out from the caller's buffer, uncopied.
   */
  send(header: Buffer, body: Buffer, payload: Uint8Array | undefined): void {
    if (this.closed) return;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this.uncork);
    }
    for (const p of frameParts(header, body, payload)) this.socket.write(p);
  }

  private readonly uncork = (): void => {
    this.corked = false;
    this.socket.uncork();
  };

  /** Closes now, dropping anything not yet written. */
  destroy(reason: RpcError | undefined, violation = false): void {
    this.finish(reason, violation);
    this.socket.destroy(); // also cuts a socket still lingering after end()
  }

  /**
   * Closes after what was written has gone out (a last error frame), ignoring further input. A peer
   * that does not close its side within closeLingerMs is cut off.
   */
  end(reason: RpcError | undefined, violation = false): void {
    if (this.closed) return;
    this.finish(reason, violation);
    this.socket.end();
    this.lingerTimer = setTimeout(() => this.socket.destroy(), closeLingerMs);
  }

  private finish(reason: RpcError | undefined, violation: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.decoder.stop();
    this.events.onClose(reason, violation);
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    try {
      this.decoder.push(chunk);
    } catch (err) {
      const reason = err instanceof RpcError ? err : new RpcError(RpcErrorCode.Internal, String(err));
      this.destroy(reason, true);
    }
  }
}
