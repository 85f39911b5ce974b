// cairn's RPC wire format: encoding, incremental decoding and validation of frames.
//
// A frame (all integers unsigned 32-bit big endian):
//
//   u32 frameLength    bytes after this field; 4 + frameLength <= frameBytesMax
//   u32 headerLength   1..headerBytesMax
//   header             msgpack map: { id, kind, method?, timeoutMs?, error?: { code, message, details? } }
//   u32 bodyLength     0 encodes an undefined body
//   body               one msgpack value
//   payload            raw bytes: the rest of the frame, possibly none (then `undefined`)
//
// kind is one of:
//   req     client -> server; id > 0, method, timeoutMs (the time left of the caller's deadline)
//   res     server -> client; same id; error set when the call failed (body and payload empty)
//   cancel  client -> server; same id; the server aborts the handler's signal, sends nothing back
//   msg     client -> server; id 0, method: a one-way message; the server runs the handler and
//           sends nothing back (for traffic whose loss the protocol above already tolerates)
//   hello   server -> client; id 0; sent on connect; body { v, nonce? }: a nonce when auth is on;
//           error set (CAIRN_OVERLOADED) when the server refuses the connection, which it then closes
//   auth    client -> server: body { nonce, proof }; server -> client: body { proof } or error
//
// Bulk data travels as the payload: encoded by reference (written with writev next to the
// header), decoded as a view of the received bytes, never through msgpack.

import type { BufferPool } from '../buffer-pool.ts';
import { Packr } from 'msgpackr';
import { isPlainObject } from '../plain-object.ts';
import { RpcError, RpcErrorCode } from './errors.ts';
import { bodyInlineBytesMax, errorCodeLengthMax, headerBytesMax, methodLengthMax, timeoutMsMax } from './limits.ts';

// 'bye': the server answered every request it read on this connection and reads no more (idle close).
const frameKinds = ['req', 'res', 'cancel', 'hello', 'auth', 'msg', 'bye'] as const;
export type FrameKind = (typeof frameKinds)[number];

export interface WireError {
  code: string;
  message: string;
  details?: Record<string, unknown>;
}

export interface Header {
  id: number;
  kind: FrameKind;
  method?: string;
  timeoutMs?: number;
  error?: WireError;
}

export interface Frame {
  header: Header;
  /** The msgpack body, still encoded (empty when undefined): decoding is the receiver's choice. */
  body: Buffer;
  payload: Buffer | undefined;
}

const lengthBytes = 4;
/** frameLength, headerLength and bodyLength fields. */
const frameFixedBytes = 3 * lengthBytes;
/** A request header's size beyond its method name's UTF-8 bytes, as an upper bound (msgpack of the other fields). */
export const requestHeaderOverheadBytes = 64;
const idMax = 0xffff_ffff;

// Records would need structures shared by both ends; plain maps keep every frame self-describing.
const packr = new Packr({ useRecords: false, moreTypes: false });

const emptyBuffer = Buffer.alloc(0);

export function encodeBody(body: unknown): Buffer {
  return body === undefined ? emptyBuffer : packr.pack(body);
}

/** Decodes a body; throws RpcError(BadRequest) when it is not one msgpack value. */
export function decodeBody(body: Buffer): unknown {
  if (body.length === 0) return undefined;
  try {
    return packr.unpack(body);
  } catch (err) {
    throw new RpcError(RpcErrorCode.BadRequest, `malformed msgpack body: ${(err as Error).message}`);
  }
}

export function encodeHeader(h: Header): Buffer {
  // Only the fields that are set: an undefined field would cost bytes and decode as a value.
  const m: Record<string, unknown> = { id: h.id, kind: h.kind };
  if (h.method !== undefined) m.method = h.method;
  if (h.timeoutMs !== undefined) m.timeoutMs = h.timeoutMs;
  if (h.error !== undefined) {
    const e: Record<string, unknown> = { code: h.error.code, message: h.error.message };
    if (h.error.details !== undefined && Object.keys(h.error.details).length > 0) e.details = h.error.details;
    m.error = e;
  }
  return packr.pack(m);
}

/**
 * A frame's raw bytes: one buffer, or pieces that go out one after another as one payload, never
 * joined (a client gathers a chunk from the pieces it was given; a receiver sees one buffer).
 */
export type Payload = Uint8Array | readonly Uint8Array[];

/** A payload's pieces, in order (one for a single buffer, none for no payload). */
export function payloadPieces(payload: Payload | undefined): readonly Uint8Array[] {
  if (payload === undefined) return [];
  return Array.isArray(payload) ? (payload as readonly Uint8Array[]) : [payload as Uint8Array];
}

/** The bytes of a payload, of all its pieces. */
export function payloadByteLength(payload: Payload | undefined): number {
  let n = 0;
  for (const piece of payloadPieces(payload)) n += piece.byteLength;
  return n;
}

export function frameBytes(headerBytes: number, bodyBytes: number, payloadBytes: number): number {
  return frameFixedBytes + headerBytes + bodyBytes + payloadBytes;
}

/**
 * The buffers to write for one frame, in order. The header (and a small body) are copied into one
 * prefix buffer; a large body and the payload are passed by reference so they are never copied.
 */
export function frameParts(header: Buffer, body: Buffer, payload: Payload | undefined): Uint8Array[] {
  const payloadBytes = payloadByteLength(payload);
  const inlineBody = body.length <= bodyInlineBytesMax;
  const prefix = Buffer.allocUnsafe(frameFixedBytes + header.length + (inlineBody ? body.length : 0));
  prefix.writeUInt32BE(frameBytes(header.length, body.length, payloadBytes) - lengthBytes, 0);
  prefix.writeUInt32BE(header.length, lengthBytes);
  header.copy(prefix, 2 * lengthBytes);
  let offset = prefix.writeUInt32BE(body.length, 2 * lengthBytes + header.length);
  const parts: Uint8Array[] = [prefix];
  if (inlineBody) offset += body.copy(prefix, offset);
  // msgpack bodies are views into the encoder's shared slab (megabytes once a large value was
  // encoded): a view queued behind a peer that does not read would pin the whole slab, so a body
  // that shares its memory goes out as a copy of its own.
  else parts.push(body.byteLength === body.buffer.byteLength ? body : ownCopy(body));
  if (payloadBytes > 0) parts.push(...payloadPieces(payload));
  return parts;
}

function ownCopy(view: Buffer): Buffer {
  const copy = Buffer.allocUnsafeSlow(view.byteLength); // unpooled: exactly these bytes
  view.copy(copy);
  return copy;
}

function malformed(message: string): RpcError {
  return new RpcError(RpcErrorCode.BadRequest, `malformed frame: ${message}`);
}

/** Decodes the bytes after a frame's length prefix; body and payload are views into `frame`. */
export function decodeFrame(frame: Buffer): Frame {
  if (frame.length < 2 * lengthBytes) throw malformed(`${frame.length} bytes is shorter than the fixed fields`);
  const headerLength = frame.readUInt32BE(0);
  if (headerLength === 0 || headerLength > headerBytesMax) throw malformed(`header length ${headerLength} is outside 1..${headerBytesMax}`);
  const bodyLengthAt = lengthBytes + headerLength;
  if (bodyLengthAt + lengthBytes > frame.length) throw malformed(`header length ${headerLength} overruns the frame`);
  const header = unpackHeader(frame.subarray(lengthBytes, bodyLengthAt));
  const bodyLength = frame.readUInt32BE(bodyLengthAt);
  const bodyStart = bodyLengthAt + lengthBytes;
  if (bodyLength > frame.length - bodyStart) throw malformed(`body length ${bodyLength} overruns the frame`);
  const payloadStart = bodyStart + bodyLength;
  return {
    header,
    body: frame.subarray(bodyStart, payloadStart),
    payload: payloadStart < frame.length ? frame.subarray(payloadStart) : undefined,
  };
}

/**
 * The header of a frame whose first bytes (after the length prefix) are all that was kept: a frame
 * refused for memory. Throws RpcError(BadRequest) when the header is malformed or not all there.
 */
export function decodeFrameHead(head: Buffer): Header {
  if (head.length < lengthBytes) throw malformed(`${head.length} bytes is shorter than the header length field`);
  const headerLength = head.readUInt32BE(0);
  if (headerLength === 0 || headerLength > headerBytesMax) throw malformed(`header length ${headerLength} is outside 1..${headerBytesMax}`);
  if (lengthBytes + headerLength > head.length) throw malformed(`a header of ${headerLength} bytes in a refused frame, of which ${head.length - lengthBytes} are kept`);
  return unpackHeader(head.subarray(lengthBytes, lengthBytes + headerLength));
}

function unpackHeader(bytes: Buffer): Header {
  let raw: unknown;
  try {
    raw = packr.unpack(bytes);
  } catch (err) {
    throw malformed(`header is not msgpack: ${(err as Error).message}`);
  }
  return parseHeader(raw);
}

/** Validates a decoded header at the boundary: everything past this trusts its types. */
function parseHeader(raw: unknown): Header {
  if (!isPlainObject(raw)) throw malformed('header is not a map');
  const { id, kind, method, timeoutMs, error } = raw;
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > idMax) throw malformed(`bad id ${String(id)}`);
  if (typeof kind !== 'string' || !(frameKinds as readonly string[]).includes(kind)) throw malformed(`unknown kind ${String(kind)}`);
  const h: Header = { id, kind: kind as FrameKind };
  if (method !== undefined) {
    if (typeof method !== 'string' || method.length === 0 || method.length > methodLengthMax) throw malformed('bad method');
    h.method = method;
  }
  if (timeoutMs !== undefined) {
    if (typeof timeoutMs !== 'number' || !(timeoutMs > 0) || timeoutMs > timeoutMsMax) throw malformed(`bad timeoutMs ${String(timeoutMs)}`);
    h.timeoutMs = timeoutMs;
  }
  if (error !== undefined) h.error = parseWireError(error);
  if (h.kind === 'req' && (h.method === undefined || h.id === 0)) throw malformed('a request needs a method and an id > 0');
  if (h.kind === 'msg' && (h.method === undefined || h.id !== 0)) throw malformed('a one-way message needs a method and id 0');
  return h;
}

function parseWireError(raw: unknown): WireError {
  if (!isPlainObject(raw)) throw malformed('error is not a map');
  const { code, message, details } = raw;
  if (typeof code !== 'string' || code.length === 0 || code.length > errorCodeLengthMax) throw malformed('bad error code');
  if (typeof message !== 'string') throw malformed('bad error message');
  if (details !== undefined && !isPlainObject(details)) throw malformed('error details is not a map');
  return details === undefined ? { code, message } : { code, message, details };
}

/** Where reads land while no frame is partly received (the frame prefix and small frames). */
const scratchBytes = 64 * 1024;

/** What a server's admission decides for a frame, once its header is known. */
export type AdmissionDecision =
  /** Store the frame; `release` gives its bytes back once its receiver is done with it. */
  | { release: () => void }
  /** Drop the frame's bytes as they arrive and report it with onRefused. */
  | 'skip'
  /** Read nothing more until the owner calls retry(); the decision is asked for again then. */
  | 'wait';

/** How a server's decoder asks for memory before it stores a frame. */
export interface FrameAdmission {
  /**
   * Decides for a frame of `frameBytes` (length prefix included) whose first bytes after the prefix
   * are `head`: the header length field and the header. May throw (a malformed header).
   */
  decide(frameBytes: number, head: Buffer): AdmissionDecision;
  /** A skipped frame was wholly dropped; `head` holds its header. */
  onRefused(head: Buffer, frameBytes: number): void;
}

/** A frame's header being collected before its admission is decided. */
interface Head {
  frameLength: number;
  lengthField: Buffer;
  lengthFilled: number;
  /** The header length field and the header, once its length is known. */
  bytes: Buffer | undefined;
  filled: number;
}

/** A skipped frame: its header kept, the rest counted and dropped. */
interface Refused {
  head: Buffer;
  /** Bytes of the frame still to come. */
  left: number;
  frameBytes: number;
}

/**
 * Cuts a byte stream into frames, fed in one of two ways:
 * - `push(chunk)`: a frame inside one chunk is a view of that chunk (no copy); a frame spread over
 *   chunks is copied once into a buffer of its exact size, allocated when its length is known.
 * - `readTarget()` then `received(n)`, for a socket that reads into buffers it is given: once a
 *   frame's length is known the socket reads the rest straight into the frame's own buffer, so a
 *   large payload is never copied in user space; frames that fit in the scratch buffer the reads
 *   otherwise land in are copied out of it (the scratch is reused).
 * With an `admission` (a server's, in push mode), each frame's header is read first and the
 * admission decides before a byte more is stored: store it, skip it (its header kept), or wait,
 * in which case the decoder keeps what it was given beyond the header and takes nothing more
 * until retry(); its owner stops reading the socket meanwhile.
 */
/**
 * Where large frames are received: buffers of `pool`, for frames of at least `bytesMin` bytes. The
 * frame's `recycle` gives the buffer back; a consumer that keeps the payload, or does not know when
 * it is done with it, just never calls it, and the GC frees the buffer as before.
 */
export interface ReceivePool {
  pool: BufferPool;
  bytesMin: number;
}

/**
 * Receives each whole frame. `release` gives back what the admission counted for it (a server's
 * budget); `recycle` gives its buffer back to the receive pool, and only once nothing reads the
 * frame's bytes any more (undefined: not from a pool). Each may be called once; later calls do nothing.
 */
export type FrameSink = (frame: Buffer, release: (() => void) | undefined, recycle: (() => void) | undefined) => void;

export class FrameDecoder {
  /** Checked against each incoming length prefix; raised by the server once the peer authenticated. */
  frameBytesMax: number;
  /** Set by a server once the peer may send frames that need memory (it authenticated). */
  admission: FrameAdmission | undefined;
  private readonly onFrame: FrameSink;
  private readonly prefix = Buffer.alloc(lengthBytes);
  private prefixFilled = 0;
  private partial: Buffer | undefined;
  private partialFilled = 0;
  /** Gives back the partial frame's bytes, if the admission took them. */
  private partialRelease: (() => void) | undefined;
  /** Gives the partial frame's buffer back to the receive pool, if it came from there. */
  private partialRecycle: (() => void) | undefined;
  private head: Head | undefined;
  private refused: Refused | undefined;
  /** Waiting for the admission: what was pushed beyond the header, kept until retry(). */
  private waitingFor: Head | undefined;
  private stash: Buffer | undefined;
  private stopped = false;
  private scratch: Buffer | undefined;
  private readonly receive: ReceivePool | undefined;

  /** `receive`: frames of at least its `bytesMin` are received into its pool's buffers (see ReceivePool). */
  constructor(frameBytesMax: number, onFrame: FrameSink, receive?: ReceivePool) {
    this.frameBytesMax = frameBytesMax;
    this.onFrame = onFrame;
    this.receive = receive;
  }

  /** Stops delivering frames, also for the rest of the chunk being pushed; gives back a partial frame's bytes. */
  stop(): void {
    this.stopped = true;
    this.partialRelease?.();
    this.partialRecycle?.();
    this.partialRelease = undefined;
    this.partialRecycle = undefined;
    this.partial = undefined;
    this.head = undefined;
    this.refused = undefined;
    this.waitingFor = undefined;
    this.stash = undefined;
  }

  /** Whether it waits for the admission (its owner should not read meanwhile). */
  get waiting(): boolean {
    return this.waitingFor !== undefined;
  }

  /** Bytes received but not yet delivered as a frame (or of a skipped frame, not yet wholly dropped). */
  get bufferedBytes(): number {
    const skipped = this.refused === undefined ? 0 : this.refused.frameBytes - lengthBytes - this.refused.left;
    const head = this.head === undefined ? 0 : this.head.lengthFilled + this.head.filled;
    return this.prefixFilled + this.partialFilled + skipped + head;
  }

  /** Where the next read should land: the unfilled rest of a partly received frame, else the scratch buffer. */
  readTarget(): Buffer {
    if (this.partial !== undefined) return this.partial.subarray(this.partialFilled);
    this.scratch ??= Buffer.allocUnsafe(scratchBytes);
    return this.scratch;
  }

  /** `n` bytes were read into the buffer `readTarget()` returned; throws as `push` does. */
  received(n: number): void {
    if (this.stopped || n <= 0) return;
    if (this.partial !== undefined) {
      this.partialFilled += n;
      if (this.partialFilled === this.partial.length) this.deliverPartial();
      return;
    }
    this.push((this.scratch as Buffer).subarray(0, n), true);
  }

  /**
   * Feeds one chunk; throws RpcError(FrameTooLarge or BadRequest) on a bad length prefix or header.
   * `transient`: the chunk's memory is reused after this call, so frames are copied out of it.
   */
  push(chunk: Buffer, transient = false): void {
    let offset = 0;
    while (offset < chunk.length && !this.stopped && this.waitingFor === undefined) {
      if (this.partial !== undefined) {
        offset = this.fillPartial(chunk, offset);
        continue;
      }
      if (this.refused !== undefined) {
        offset = this.skipRefused(chunk, offset);
        continue;
      }
      if (this.head !== undefined) {
        offset = this.fillHead(chunk, offset);
        continue;
      }
      let frameLength: number;
      if (this.prefixFilled === 0 && chunk.length - offset >= lengthBytes) {
        frameLength = chunk.readUInt32BE(offset);
        offset += lengthBytes;
      } else {
        const n = Math.min(lengthBytes - this.prefixFilled, chunk.length - offset);
        chunk.copy(this.prefix, this.prefixFilled, offset, offset + n);
        this.prefixFilled += n;
        offset += n;
        if (this.prefixFilled < lengthBytes) return;
        this.prefixFilled = 0;
        frameLength = this.prefix.readUInt32BE(0);
      }
      this.checkLength(frameLength);
      if (this.admission !== undefined) {
        this.head = { frameLength, lengthField: Buffer.alloc(lengthBytes), lengthFilled: 0, bytes: undefined, filled: 0 };
      } else if (chunk.length - offset >= frameLength) {
        const frame = chunk.subarray(offset, offset + frameLength);
        offset += frameLength;
        this.onFrame(transient ? Buffer.from(frame) : frame, undefined, undefined);
      } else {
        this.startPartial(frameLength, undefined);
      }
    }
    if (this.waitingFor !== undefined && offset < chunk.length) {
      const rest = transient ? Buffer.from(chunk.subarray(offset)) : chunk.subarray(offset);
      this.stash = this.stash === undefined ? rest : Buffer.concat([this.stash, rest]);
    }
  }

  /** Asks the admission again for the frame it waits on; on a decision, goes on with what it kept. */
  retry(): void {
    const h = this.waitingFor;
    if (h === undefined || this.stopped) return;
    this.waitingFor = undefined;
    this.decide(h);
    if (this.waitingFor !== undefined) return;
    const stash = this.stash;
    this.stash = undefined;
    if (stash !== undefined) this.push(stash);
  }

  private checkLength(frameLength: number): void {
    if (frameLength + lengthBytes > this.frameBytesMax) {
      throw new RpcError(RpcErrorCode.FrameTooLarge, `incoming frame of ${frameLength + lengthBytes} bytes exceeds frameBytesMax ${this.frameBytesMax}`, {
        frameBytes: frameLength + lengthBytes,
        frameBytesMax: this.frameBytesMax,
      });
    }
    if (frameLength < 2 * lengthBytes) throw malformed(`frame length ${frameLength} is shorter than the fixed fields`);
  }

  /** Collects the header length field and the header; once whole, asks the admission. */
  private fillHead(chunk: Buffer, offset: number): number {
    const h = this.head as Head;
    if (h.bytes === undefined) {
      const n = Math.min(lengthBytes - h.lengthFilled, chunk.length - offset);
      chunk.copy(h.lengthField, h.lengthFilled, offset, offset + n);
      h.lengthFilled += n;
      offset += n;
      if (h.lengthFilled < lengthBytes) return offset;
      const headerLength = h.lengthField.readUInt32BE(0);
      if (headerLength === 0 || headerLength > headerBytesMax) throw malformed(`header length ${headerLength} is outside 1..${headerBytesMax}`);
      if (2 * lengthBytes + headerLength > h.frameLength) throw malformed(`header length ${headerLength} overruns the frame`);
      h.bytes = Buffer.allocUnsafe(lengthBytes + headerLength);
      h.lengthField.copy(h.bytes);
      h.filled = lengthBytes;
    }
    const n = Math.min(h.bytes.length - h.filled, chunk.length - offset);
    chunk.copy(h.bytes, h.filled, offset, offset + n);
    h.filled += n;
    if (h.filled === h.bytes.length) {
      this.head = undefined;
      this.decide(h);
    }
    return offset + n;
  }

  private decide(h: Head): void {
    const head = h.bytes as Buffer;
    const frameBytes = lengthBytes + h.frameLength;
    const decision = (this.admission as FrameAdmission).decide(frameBytes, head);
    if (decision === 'wait') {
      this.waitingFor = h;
      return;
    }
    if (decision === 'skip') {
      this.refused = { head, left: h.frameLength - head.length, frameBytes };
      if (this.refused.left === 0) this.finishRefused();
      return;
    }
    const partial = this.startPartial(h.frameLength, decision.release);
    head.copy(partial);
    this.partialFilled = head.length;
    if (this.partialFilled === partial.length) this.deliverPartial();
  }

  /** Memory for a frame of `frameLength` bytes, from the receive pool when it is large enough (its recycle given back once). */
  private startPartial(frameLength: number, release: (() => void) | undefined): Buffer {
    const r = this.receive;
    this.partialRelease = release;
    if (r !== undefined && frameLength >= r.bytesMin) {
      const lent = r.pool.take(frameLength);
      let given = false;
      this.partial = lent.subarray(0, frameLength);
      this.partialRecycle = () => {
        if (given) return; // a second give could hand the buffer to two owners
        given = true;
        r.pool.give(lent);
      };
    } else {
      this.partial = Buffer.allocUnsafe(frameLength);
      this.partialRecycle = undefined;
    }
    this.partialFilled = 0;
    return this.partial;
  }

  private fillPartial(chunk: Buffer, offset: number): number {
    const partial = this.partial as Buffer;
    const n = Math.min(partial.length - this.partialFilled, chunk.length - offset);
    chunk.copy(partial, this.partialFilled, offset, offset + n);
    this.partialFilled += n;
    if (this.partialFilled === partial.length) this.deliverPartial();
    return offset + n;
  }

  /** Drops the bytes of a skipped frame; reports it once it is all gone by. */
  private skipRefused(chunk: Buffer, offset: number): number {
    const r = this.refused as Refused;
    const n = Math.min(r.left, chunk.length - offset);
    r.left -= n;
    if (r.left === 0) this.finishRefused();
    return offset + n;
  }

  private finishRefused(): void {
    const r = this.refused as Refused;
    this.refused = undefined;
    this.admission?.onRefused(r.head, r.frameBytes);
  }

  private deliverPartial(): void {
    const frame = this.partial as Buffer;
    const release = this.partialRelease;
    const recycle = this.partialRecycle;
    this.partial = undefined;
    this.partialFilled = 0;
    this.partialRelease = undefined;
    this.partialRecycle = undefined;
    this.onFrame(frame, release, recycle);
  }
}
