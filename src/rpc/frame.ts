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
//   hello   server -> client; id 0; sent on connect; body { v, nonce? }: a nonce when auth is on
//   auth    client -> server: body { nonce, proof }; server -> client: body { proof } or error
//
// Bulk data travels as the payload: encoded by reference (written with writev next to the
// header), decoded as a view of the received bytes, never through msgpack.

import { Packr } from 'msgpackr';
import { isPlainObject } from '../plain-object.ts';
import { RpcError, RpcErrorCode } from './errors.ts';
import { bodyInlineBytesMax, errorCodeLengthMax, headerBytesMax, methodLengthMax, timeoutMsMax } from './limits.ts';

const frameKinds = ['req', 'res', 'cancel', 'hello', 'auth', 'msg'] as const;
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

export function frameBytes(headerBytes: number, bodyBytes: number, payloadBytes: number): number {
  return frameFixedBytes + headerBytes + bodyBytes + payloadBytes;
}

/**
 * The buffers to write for one frame, in order. The header (and a small body) are copied into one
 * prefix buffer; a large body and the payload are passed by reference so they are never copied.
 */
export function frameParts(header: Buffer, body: Buffer, payload: Uint8Array | undefined): Uint8Array[] {
  const payloadBytes = payload?.byteLength ?? 0;
  const inlineBody = body.length <= bodyInlineBytesMax;
  const prefix = Buffer.allocUnsafe(frameFixedBytes + header.length + (inlineBody ? body.length : 0));
  prefix.writeUInt32BE(frameBytes(header.length, body.length, payloadBytes) - lengthBytes, 0);
  prefix.writeUInt32BE(header.length, lengthBytes);
  header.copy(prefix, 2 * lengthBytes);
  let offset = prefix.writeUInt32BE(body.length, 2 * lengthBytes + header.length);
  const parts: Uint8Array[] = [prefix];
  if (inlineBody) offset += body.copy(prefix, offset);
  else parts.push(body);
  if (payloadBytes > 0) parts.push(payload as Uint8Array);
  return parts;
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
  let raw: unknown;
  try {
    raw = packr.unpack(frame.subarray(lengthBytes, bodyLengthAt));
  } catch (err) {
    throw malformed(`header is not msgpack: ${(err as Error).message}`);
  }
  const header = parseHeader(raw);
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

/**
 * Cuts a byte stream into frames, fed in one of two ways:
 * - `push(chunk)`: a frame inside one chunk is a view of that chunk (no copy); a frame spread over
 *   chunks is copied once into a buffer of its exact size, allocated when its length is known.
 * - `readTarget()` then `received(n)`, for a socket that reads into buffers it is given: once a
 *   frame's length is known the socket reads the rest straight into the frame's own buffer, so a
 *   large payload is never copied in user space; frames that fit in the scratch buffer the reads
 *   otherwise land in are copied out of it (the scratch is reused).
 */
export class FrameDecoder {
  /** Checked against each incoming length prefix; raised by the server once the peer authenticated. */
  frameBytesMax: number;
  private readonly onFrame: (frame: Buffer) => void;
  private readonly prefix = Buffer.alloc(lengthBytes);
  private prefixFilled = 0;
  private partial: Buffer | undefined;
  private partialFilled = 0;
  private stopped = false;
  private scratch: Buffer | undefined;

  constructor(frameBytesMax: number, onFrame: (frame: Buffer) => void) {
    this.frameBytesMax = frameBytesMax;
    this.onFrame = onFrame;
  }

  /** Stops delivering frames, also for the rest of the chunk being pushed. */
  stop(): void {
    this.stopped = true;
    this.partial = undefined;
  }

  /** Bytes received but not yet delivered as a frame. */
  get bufferedBytes(): number {
    return this.prefixFilled + this.partialFilled;
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
   * Feeds one chunk; throws RpcError(FrameTooLarge or BadRequest) on a bad length prefix.
   * `transient`: the chunk's memory is reused after this call, so frames are copied out of it.
   */
  push(chunk: Buffer, transient = false): void {
    let offset = 0;
    while (offset < chunk.length && !this.stopped) {
      if (this.partial !== undefined) {
        offset = this.fillPartial(chunk, offset);
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
      if (chunk.length - offset >= frameLength) {
        const frame = chunk.subarray(offset, offset + frameLength);
        this.onFrame(transient ? Buffer.from(frame) : frame);
        offset += frameLength;
      } else {
        this.partial = Buffer.allocUnsafe(frameLength);
        this.partialFilled = 0;
      }
    }
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

  private fillPartial(chunk: Buffer, offset: number): number {
    const partial = this.partial as Buffer;
    const n = Math.min(partial.length - this.partialFilled, chunk.length - offset);
    chunk.copy(partial, this.partialFilled, offset, offset + n);
    this.partialFilled += n;
    if (this.partialFilled === partial.length) this.deliverPartial();
    return offset + n;
  }

  private deliverPartial(): void {
    const frame = this.partial as Buffer;
    this.partial = undefined;
    this.partialFilled = 0;
    this.onFrame(frame);
  }
}
