// A TCP socket that sends and receives whole frames, shared by both ends of a connection. It owns
// the socket: whoever closes it (the owner, the peer, a malformed frame) the owner hears once.

import net, { type Socket } from 'node:net';
import { formatAddress } from '../address.ts';
import { RpcError, RpcErrorCode } from './errors.ts';
import { FrameDecoder, decodeFrame, frameParts, type Frame, type FrameAdmission, type Payload, type ReceivePool } from './frame.ts';
import { closeLingerMs } from './limits.ts';

export interface FramedSocketEvents {
  /**
   * A whole frame. `release` is the admission's (see setAdmission), `recycle` the receive pool's
   * (see FrameSink); undefined when there is none.
   */
  onFrame(frame: Frame, release: (() => void) | undefined, recycle: (() => void) | undefined): void;
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
  /** Set by a server (pauseReadsOverBacklog): reading stops while this many bytes wait to be sent. */
  private backlogReadLimit: number | undefined;
  private pausedForBacklog = false;
  /** performance.now() of the last bytes received. */
  lastReceivedAt = performance.now();

  /**
   * Over an accepted socket, or a new connection to `target`. A connection made here reads each
   * frame's bytes straight into the frame's buffer (`onread`), so large payloads arrive uncopied;
   * an accepted socket cannot be given read buffers in Node, and gets its bytes as 'data' chunks.
   * `receive`: large frames are read into its pool's buffers (see ReceivePool).
   */
  constructor(target: Socket | { host: string; port: number }, frameBytesMax: number, events: FramedSocketEvents, receive?: ReceivePool) {
    this.events = events;
    const decoder = new FrameDecoder(frameBytesMax, (raw, release, recycle) => this.deliver(raw, release, recycle), receive);
    this.decoder = decoder;
    if (target instanceof net.Socket) {
      this.socket = target;
      target.on('data', (chunk: Buffer) => this.onData(chunk));
    } else {
      this.socket = net.connect({
        host: target.host,
        port: target.port,
        onread: { buffer: () => decoder.readTarget(), callback: (n: number) => {
          this.onRead(n);
          return true;
        } },
      });
    }
    const socket = this.socket;
    socket.setNoDelay(true);
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
   * From now on the admission decides on every incoming frame once its header is read (servers,
   * on accepted sockets): while it makes the decoder wait, the socket is not read.
   */
  setAdmission(admission: FrameAdmission): void {
    this.decoder.admission = admission;
  }

  /**
   * From now on reading stops while more than `bytes` wait to be sent, and resumes once they have
   * drained: a peer that sends requests but does not read the answers gets no more answered.
   */
  pauseReadsOverBacklog(bytes: number): void {
    this.backlogReadLimit = bytes;
  }

  /** Bytes written but not yet handed to the kernel. */
  get backlogBytes(): number {
    return this.socket.writableLength;
  }

  /** Whether reading waits for the admission. */
  get waiting(): boolean {
    return this.decoder.waiting;
  }

  /** Asks the admission again for the frame reading waits on, and reads on once it has decided. */
  retryAdmission(): void {
    if (this.closed) return;
    try {
      this.decoder.retry();
    } catch (err) {
      this.violated(err);
      return;
    }
    if (!this.decoder.waiting && !this.pausedForBacklog) this.socket.resume();
  }

  private deliver(raw: Buffer, release: (() => void) | undefined, recycle: (() => void) | undefined): void {
    let frame: Frame;
    try {
      frame = decodeFrame(raw);
    } catch (err) {
      release?.();
      recycle?.();
      throw err;
    }
    this.events.onFrame(frame, release, recycle);
  }

  /**
   * Queues one frame; a no-op once closed (the owner has already been told). Frames sent in the
   * same tick leave together in one writev when the tick ends, so many concurrent calls cost one
   * system call, not one each; a payload goes out from the caller's buffer, uncopied. `onSent` is
   * called once the frame's buffers are no longer referenced: written to the kernel, or dropped.
   */
  send(header: Buffer, body: Buffer, payload: Payload | undefined, onSent?: () => void): void {
    if (this.closed) {
      onSent?.();
      return;
    }
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this.uncork);
    }
    const parts = frameParts(header, body, payload);
    const last = parts.length - 1;
    for (let i = 0; i < last; i++) this.socket.write(parts[i]);
    // Writes complete in order, so the last part's callback means all of them are done.
    if (onSent === undefined) this.socket.write(parts[last]);
    else this.socket.write(parts[last], () => onSent());
    if (this.backlogReadLimit !== undefined && !this.pausedForBacklog && this.socket.writableLength > this.backlogReadLimit) this.pauseForBacklog();
  }

  private pauseForBacklog(): void {
    this.pausedForBacklog = true;
    this.socket.pause();
    // 'drain' comes once everything queued is in the kernel (write() returned false long before).
    this.socket.once('drain', () => {
      this.pausedForBacklog = false;
      if (!this.closed && !this.decoder.waiting) this.socket.resume();
    });
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

  /** Bytes of a frame begun but not yet whole. */
  get partialBytes(): number {
    return this.decoder.bufferedBytes;
  }

  private onData(chunk: Buffer): void {
    this.lastReceivedAt = performance.now();
    if (this.closed) return;
    try {
      this.decoder.push(chunk);
    } catch (err) {
      this.violated(err);
      return;
    }
    // The peer's further bytes stay in the kernel, which pushes back on it through TCP.
    if (this.decoder.waiting) this.socket.pause();
  }

  private onRead(n: number): void {
    this.lastReceivedAt = performance.now();
    if (this.closed) return;
    try {
      this.decoder.received(n);
    } catch (err) {
      this.violated(err);
    }
  }

  private violated(err: unknown): void {
    const reason = err instanceof RpcError ? err : new RpcError(RpcErrorCode.Internal, String(err));
    this.destroy(reason, true);
  }
}
