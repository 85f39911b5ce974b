// Reusable large buffers. A fresh 4 MiB buffer costs page faults on first touch, and V8 starts a
// full collection for every 64 MiB of new external memory: a quarter of a worker's CPU when it
// serves reads, a fifth of the S3 gateway's. A worker reads chunks into these and gives each back
// once the reply's bytes have left for the socket (the RPC layer's `onSent`); an RPC client
// receives large frames into them, given back by whoever consumes the payload (CallResult.release).
// Buffers come in size classes (powers of two, or multiples of a granularity); an idle cap bounds
// the memory the pool keeps. A buffer that is never given back is simply left to the GC.

const classBytesMin = 64 * 1024;

export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  /** Every buffer in `free`, so that giving one back twice cannot hand it to two readers. */
  private readonly idle = new Set<Buffer>();
  private idleBytes = 0;
  private readonly idleBytesMax: number;
  private readonly classBytesMax: number;
  private readonly granularityBytes: number | undefined;
  /** With `allocate`: the buffers it made, the only ones `give` takes back (they are views, not whole ArrayBuffers). */
  private readonly allocated: WeakSet<Buffer> | undefined;
  private readonly allocate: (bytes: number) => Buffer;

  /**
   * `granularityBytes`: classes are its multiples rather than powers of two (less memory for sizes
   * just above a power of two, such as a chunk's bytes with a frame's header). `allocate`: makes a
   * new buffer of exactly the bytes asked (default Buffer.allocUnsafeSlow), such as a view of a
   * larger one at an aligned address.
   */
  constructor(opts: { idleBytesMax: number; classBytesMax: number; granularityBytes?: number; allocate?: (bytes: number) => Buffer }) {
    this.idleBytesMax = opts.idleBytesMax;
    this.classBytesMax = opts.classBytesMax;
    this.granularityBytes = opts.granularityBytes;
    const allocate = opts.allocate;
    if (allocate === undefined) {
      this.allocate = (bytes) => Buffer.allocUnsafeSlow(bytes);
    } else {
      const allocated = (this.allocated = new WeakSet());
      this.allocate = (bytes) => {
        const b = allocate(bytes);
        allocated.add(b);
        return b;
      };
    }
  }

  /** A buffer of at least `bytes` bytes, not in use by anyone else; larger than the largest class, a new one. */
  take(bytes: number): Buffer {
    const size = this.sizeClass(bytes);
    if (size > this.classBytesMax) return this.allocate(bytes);
    const b = this.free.get(size)?.pop();
    if (b === undefined) return this.allocate(size);
    this.idle.delete(b);
    this.idleBytes -= size;
    return b;
  }

  /** Returns a buffer `take` gave; the caller must not touch it afterwards. Others are left to the GC. */
  give(b: Buffer): void {
    const size = b.byteLength;
    if (size !== this.sizeClass(size) || size > this.classBytesMax) return;
    if (this.allocated !== undefined ? !this.allocated.has(b) : b.byteOffset !== 0 || b.buffer.byteLength !== size) return;
    if (this.idle.has(b) || this.idleBytes + size > this.idleBytesMax) return;
    let list = this.free.get(size);
    if (list === undefined) this.free.set(size, (list = []));
    list.push(b);
    this.idle.add(b);
    this.idleBytes += size;
  }

  /** The size of the buffer `take(bytes)` returns. */
  bytesFor(bytes: number): number {
    const size = this.sizeClass(bytes);
    return size > this.classBytesMax ? bytes : size;
  }

  private sizeClass(bytes: number): number {
    const g = this.granularityBytes;
    if (g !== undefined) return Math.max(1, Math.ceil(bytes / g)) * g;
    return bytes <= classBytesMin ? classBytesMin : 2 ** Math.ceil(Math.log2(bytes));
  }

  get idleBytesNow(): number {
    return this.idleBytes;
  }
}
