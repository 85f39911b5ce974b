// Read-ahead for sequential reads through the mount. The kernel asks for at most 128 KiB at a
// time; a chunk read per request would cost a round trip to a worker for every 128 KiB. A handle
// that reads sequentially fetches whole chunks instead, the one it is in and the next few, all in
// flight at once, and serves the kernel's requests from them. Random reads go straight to the
// workers (a 4 KiB read must not fetch a whole chunk). Memory is bounded per handle (chunks
// ahead) and for the whole mount (a budget shared by every handle). A chunk's buffer is lent (the
// data client's receive pool): it goes back once the chunk is dropped and no read still copies
// out of it, so that the next chunk is received into it instead of into fresh memory.

import type { LentBytes } from '../client/index.ts';

/** Bytes every handle's read-ahead may hold together: a grant is refused past it. */
export class ReadAheadBudget {
  readonly bytesMax: number;
  private usedBytes = 0;

  constructor(bytesMax: number) {
    this.bytesMax = bytesMax;
  }

  get used(): number {
    return this.usedBytes;
  }

  take(bytes: number): boolean {
    if (this.usedBytes + bytes > this.bytesMax) return false;
    this.usedBytes += bytes;
    return true;
  }

  give(bytes: number): void {
    this.usedBytes -= bytes;
  }
}

export interface ChunkReadAheadOptions {
  chunkSizeBytes: number;
  /** The file's length as the handle knows it now: chunks past it are not fetched. */
  sizeBytes: () => number;
  /** Chunks fetched at most, counting the one being read. */
  chunksAhead: number;
  budget: ReadAheadBudget;
  /** The whole of chunk `index` (clamped to the file's length; zeros for a hole), with its release. */
  fetch: (index: number) => Promise<LentBytes>;
}

interface Fetched {
  bytes: number;
  data: Promise<LentBytes>;
  /** Reads copying out of it now: its buffer goes back only once they are done. */
  readers: number;
  dropped: boolean;
}

/** One open file's read-ahead: whole chunks fetched ahead of a sequential reader. */
export class ChunkReadAhead {
  private readonly opts: ChunkReadAheadOptions;
  private readonly chunks = new Map<number, Fetched>();
  /** Where the last read ended: the next read starting there is sequential. */
  private lastEnd = 0;

  constructor(opts: ChunkReadAheadOptions) {
    this.opts = opts;
  }

  /**
   * Serves [position, position + length) from fetched chunks into `into`, starting or moving the
   * window on; undefined when the read is not sequential (or the budget is spent): the caller
   * reads it directly.
   */
  read(position: number, length: number, into: Buffer): Promise<number> | undefined {
    const { chunkSizeBytes } = this.opts;
    const sizeBytes = this.opts.sizeBytes();
    const end = Math.min(position + length, sizeBytes);
    if (end <= position) return undefined;
    const first = Math.floor(position / chunkSizeBytes);
    const last = Math.floor((end - 1) / chunkSizeBytes);
    const sequential = this.chunks.has(first) || position === this.lastEnd;
    if (!sequential) return undefined;
    // Chunks behind the reader are done with; one is kept, for requests the kernel sent in parallel.
    for (const [index, f] of this.chunks) if (index < first - 1) this.drop(index, f);
    const lastChunk = Math.floor((sizeBytes - 1) / chunkSizeBytes);
    const through = Math.min(lastChunk, Math.max(last, first + this.opts.chunksAhead - 1));
    for (let i = first; i <= through; i++) if (!this.start(i, sizeBytes) && i <= last) return undefined;
    this.lastEnd = end;
    return this.copy(position, end, into, first, last).catch((err: unknown) => {
      // The reader may ask again for the same bytes: that is still reading on.
      if (this.lastEnd === end) this.lastEnd = position;
      throw err;
    });
  }

  /** Forgets every fetched chunk (the file changed, or the handle closed). */
  clear(): void {
    for (const [index, f] of this.chunks) this.drop(index, f);
    this.lastEnd = 0;
  }

  /** Whether chunk `index` is fetched or being fetched (false: the budget is spent). */
  private start(index: number, sizeBytes: number): boolean {
    if (this.chunks.has(index)) return true;
    const bytes = Math.min(this.opts.chunkSizeBytes, sizeBytes - index * this.opts.chunkSizeBytes);
    if (!this.opts.budget.take(bytes)) return false;
    const data = this.opts.fetch(index);
    const f: Fetched = { bytes, data, readers: 0, dropped: false };
    // A failed fetch is forgotten, so that the next read asks again (and a reader sees the error).
    data.catch(() => {
      if (this.chunks.get(index) === f) this.drop(index, f);
    });
    this.chunks.set(index, f);
    return true;
  }

  private drop(index: number, f: Fetched): void {
    if (this.chunks.get(index) === f) this.chunks.delete(index);
    if (f.dropped) return;
    f.dropped = true;
    this.opts.budget.give(f.bytes);
    if (f.readers === 0) giveBack(f);
  }

  private async copy(position: number, end: number, into: Buffer, first: number, last: number): Promise<number> {
    const { chunkSizeBytes } = this.opts;
    const fetched: Fetched[] = [];
    for (let i = first; i <= last; i++) fetched.push(this.chunks.get(i)!);
    // Counted before the first await: a later read may drop these chunks while this one waits.
    for (const f of fetched) f.readers++;
    try {
      let n = 0;
      for (let i = first; i <= last; i++) {
        const chunk = (await fetched[i - first].data).data;
        const base = i * chunkSizeBytes;
        const from = Math.max(position, base) - base;
        const to = Math.min(end, base + chunkSizeBytes) - base;
        // A chunk shorter than asked (fetched before the file shrank) ends the read there.
        if (from >= chunk.length) break;
        n += chunk.copy(into, n, from, Math.min(to, chunk.length));
        if (chunk.length < to) break;
      }
      return n;
    } finally {
      for (const f of fetched) if (--f.readers === 0 && f.dropped) giveBack(f);
    }
  }
}

/** Gives a dropped chunk's buffer back once it has arrived (a failed fetch has none). */
function giveBack(f: Fetched): void {
  f.data.then((lent) => lent.release(), () => undefined);
}
