// Files over the data path: a writer that gathers bytes into chunk-sized writes and keeps several
// in flight within a memory bound, and a reader that fetches the chunks a range covers in parallel
// (reading ahead on a stream). Holes (chunks never written) read as zeros, as do bytes past a
// chunk's end but within the file's length.

import type { Layout } from '../meta/commands.ts';
import { chunkRange } from '../placement/index.ts';
import { assert, CairnError, ErrorCode } from '../errors.ts';
import { inRanges, RangeSet } from '../meta/chunk-ranges.ts';
import type { DataClient } from './data-client.ts';

/** Bytes a writer or reader holds in flight at most: a stated bound whatever the file size. */
export const streamBytesMaxDefault = 64 * 1024 * 1024;

export interface FileRef {
  inodeId: number;
  layout: Layout;
  /** The chunks ever written (ranges, as the masters record them); null: not tracked, absent chunks are holes. */
  chunks?: number[] | null;
}

/**
 * Bytes that several writers (a mount's open files) keep in flight together at most: a chunk write
 * waits for its turn, in order, once they hold `bytesMax`. One write larger than the whole budget
 * goes when nothing else is in flight.
 */
export class WriteBudget {
  readonly bytesMax: number;
  private usedBytes = 0;
  private readonly waiting: { bytes: number; go: () => void }[] = [];

  constructor(bytesMax: number) {
    this.bytesMax = bytesMax;
  }

  get used(): number {
    return this.usedBytes;
  }

  /** Resolves once `bytes` more fit (give them back with give). */
  take(bytes: number): Promise<void> {
    if (this.waiting.length === 0 && this.fits(bytes)) {
      this.usedBytes += bytes;
      return Promise.resolve();
    }
    return new Promise((go) => this.waiting.push({ bytes, go }));
  }

  give(bytes: number): void {
    this.usedBytes -= bytes;
    while (this.waiting.length > 0 && this.fits(this.waiting[0].bytes)) {
      const next = this.waiting.shift()!;
      this.usedBytes += next.bytes;
      next.go();
    }
  }

  private fits(bytes: number): boolean {
    return this.usedBytes === 0 || this.usedBytes + bytes <= this.bytesMax;
  }
}

/**
 * Writes a file through its chunks. Sequential writes are gathered into whole chunks; each full
 * chunk is sent at once, and at most `streamBytesMax` bytes are in flight (waiting for an answer
 * or gathering), and within `budget`, when given, shared with other writers. `flush` waits for all
 * of them; the high-water mark is what the caller commits as the file's length on close.
 */
export class FileWriter {
  readonly file: FileRef;
  private readonly client: DataClient;
  private readonly bytesMax: number;
  private readonly budget: WriteBudget | undefined;
  private inflightBytes = 0;
  private readonly inflight = new Set<Promise<void>>();
  private failure: unknown;
  /** The chunk being gathered: its index, where its bytes start in the chunk, the parts, and the writes' done callbacks. */
  private gather: { index: number; start: number; parts: Uint8Array[]; bytes: number; writes: WriteDone[] } | undefined;
  private waiters: (() => void)[] = [];
  highWater = 0;
  /**
   * The chunks this writer wrote, or tried to: reported on close so that readers know them from
   * holes, and, after a failure, so that garbage collection finds what a failed write left.
   */
  readonly written = new RangeSet();

  constructor(client: DataClient, file: FileRef, opts: { streamBytesMax?: number; budget?: WriteBudget } = {}) {
    this.client = client;
    this.file = file;
    this.bytesMax = Math.max(opts.streamBytesMax ?? streamBytesMaxDefault, file.layout.chunkSizeBytes);
    this.budget = opts.budget;
  }

  /**
   * Writes `data` at `offset`. The bytes are never copied: the pieces of a chunk go to the workers
   * as they were given, so `data` must stay unchanged until flush() resolves. `done`, when given,
   * is called once every chunk write holding `data` has succeeded, each sent once (nothing can
   * read `data` any more: its buffer may be reused); never after a failure or a retried send.
   */
  async write(data: Uint8Array, offset: number, done?: () => void): Promise<void> {
    this.check();
    const pieces = chunkRange(this.file.layout, offset, data.length);
    const w: WriteDone | undefined = done === undefined ? undefined : { sendsLeft: pieces.length, done };
    for (const piece of pieces) {
      const start = piece.chunkIndex * this.file.layout.chunkSizeBytes + piece.offsetInChunk - offset;
      const bytes = data.subarray(start, start + piece.length);
      const g = this.gather;
      if (g !== undefined && (g.index !== piece.chunkIndex || g.start + g.bytes !== piece.offsetInChunk)) await this.send();
      if (this.gather === undefined) this.gather = { index: piece.chunkIndex, start: piece.offsetInChunk, parts: [], bytes: 0, writes: [] };
      this.written.add(piece.chunkIndex);
      this.gather.parts.push(bytes);
      if (w !== undefined) this.gather.writes.push(w);
      this.gather.bytes += bytes.length;
      if (this.gather.start + this.gather.bytes === this.file.layout.chunkSizeBytes) await this.send();
    }
    this.highWater = Math.max(this.highWater, offset + data.length);
  }

  /**
   * Waits until no write is in flight, whatever their outcome: after a failure, the chunks in
   * `written` are then all the writer will ever have touched (so its caller can report them, for
   * garbage collection).
   */
  async settled(): Promise<void> {
    while (this.inflight.size > 0) await Promise.race(this.inflight);
  }

  /** Sends what is gathered and waits until every write is on all replicas' disks. */
  async flush(): Promise<void> {
    await this.send();
    while (this.inflight.size > 0) await Promise.race(this.inflight);
    this.check();
  }

  private async send(): Promise<void> {
    const g = this.gather;
    if (g === undefined) return;
    this.gather = undefined;
    while (this.inflightBytes + g.bytes > this.bytesMax && this.inflight.size > 0) await new Promise<void>((r) => this.waiters.push(r));
    this.check();
    const budget = this.budget;
    if (budget !== undefined) {
      await budget.take(g.bytes);
      if (this.failure !== undefined) budget.give(g.bytes);
      this.check();
    }
    this.inflightBytes += g.bytes;
    // The pieces go out as they came (the HTTP body's or the kernel's buffers), not joined.
    const p = this.client
      .writeChunk(this.file.layout, this.file.inodeId, g.index, g.start, g.parts)
      .then(
        (sentOnce) => {
          if (sentOnce) for (const w of g.writes) if (--w.sendsLeft === 0) w.done();
        },
        (err: unknown) => {
          this.failure ??= err;
        },
      )
      .finally(() => {
        budget?.give(g.bytes);
        this.inflightBytes -= g.bytes;
        this.inflight.delete(p);
        for (const w of this.waiters.splice(0)) w();
      });
    this.inflight.add(p);
  }

  private check(): void {
    if (this.failure !== undefined) throw this.failure;
  }
}

/** A write's done callback, and how many chunk sends holding its bytes have not yet succeeded. */
interface WriteDone {
  sendsLeft: number;
  done: () => void;
}

/** Reads a file of a known length through its chunks. */
/** Bytes with the release that gives their memory back to a pool; a no-op for bytes of their own. */
export interface LentBytes {
  data: Buffer;
  release: () => void;
}

const noRelease = (): void => undefined;
const owned = (data: Buffer): LentBytes => ({ data, release: noRelease });

export class FileReader {
  readonly file: FileRef;
  readonly sizeBytes: number;
  private readonly client: DataClient;
  private readonly bytesMax: number;

  constructor(client: DataClient, file: FileRef, sizeBytes: number, opts: { streamBytesMax?: number } = {}) {
    this.client = client;
    this.file = file;
    this.sizeBytes = sizeBytes;
    this.bytesMax = Math.max(opts.streamBytesMax ?? streamBytesMaxDefault, file.layout.chunkSizeBytes);
  }

  /** [offset, offset + length) clamped to the file: the chunks fetched in parallel. */
  async read(offset: number, length: number): Promise<Buffer> {
    const end = Math.min(offset + length, this.sizeBytes);
    if (end <= offset) return Buffer.alloc(0);
    const parts: Buffer[] = [];
    for await (const part of this.stream(offset, end - offset)) parts.push(part);
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  /** The range as consecutive pieces, one per chunk, fetched ahead within the memory bound. */
  async *stream(offset = 0, length = this.sizeBytes - offset): AsyncGenerator<Buffer> {
    for await (const piece of this.lend(offset, length)) yield piece.data;
  }

  /**
   * As stream, each piece with the release that gives its memory back to the data client's receive
   * pool: for a consumer that knows when nothing references the bytes any more (a socket write's
   * callback). A piece never released is freed by the GC.
   */
  async *lend(offset = 0, length = this.sizeBytes - offset): AsyncGenerator<LentBytes> {
    const end = Math.min(offset + length, this.sizeBytes);
    if (end <= offset) return;
    const pieces = chunkRange(this.file.layout, offset, end - offset);
    const ahead = Math.max(1, Math.floor(this.bytesMax / this.file.layout.chunkSizeBytes));
    const pending: Promise<LentBytes>[] = [];
    let next = 0;
    const fetch = (): void => {
      const p = pieces[next++];
      const got = this.readPiece(p.chunkIndex, p.offsetInChunk, p.length);
      got.catch(() => undefined); // awaited in order below; do not let a later failure go unhandled
      pending.push(got);
    };
    while (next < pieces.length && pending.length < ahead) fetch();
    while (pending.length > 0) {
      const part = await pending.shift()!;
      if (next < pieces.length) fetch();
      yield part;
    }
  }

  /**
   * One piece: the chunk's bytes, zeros for a hole and past the chunk's end. A chunk the masters
   * record as written that no replica holds is lost: EIO, never zeros.
   */
  private async readPiece(index: number, offsetInChunk: number, length: number): Promise<LentBytes> {
    const chunks = this.file.chunks;
    const recorded = chunks !== undefined && chunks !== null;
    if (recorded && !inRanges(chunks, index)) return owned(Buffer.alloc(length));
    const r = await this.client.readChunk(this.file.layout, this.file.inodeId, index, offsetInChunk, length);
    if (!r.found) {
      if (!recorded) return owned(Buffer.alloc(length));
      throw new CairnError(ErrorCode.Unavailable, `chunk ${index} of inode ${this.file.inodeId} was written but no replica holds it: its data is lost`, { errno: 'EIO', inodeId: this.file.inodeId, chunk: index });
    }
    if (r.data.length === length) return { data: Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength), release: r.release ?? noRelease };
    if (r.data.length > length) r.release?.();
    assert(r.data.length < length, `chunk ${index} answered ${r.data.length} bytes for ${length}`);
    const out = Buffer.alloc(length);
    out.set(r.data);
    r.release?.();
    return owned(out);
  }
}
