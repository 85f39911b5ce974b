// Reusable buffers for chunk reads. A fresh 4 MiB buffer per read costs page faults on first touch
// and garbage collection of the external memory: a quarter of a worker's CPU when it serves reads.
// Buffers come in power-of-two size classes and go back once the reply's bytes have left for the
// socket (the RPC layer's `onSent`); an idle cap bounds the memory the pool keeps.

const classBytesMin = 64 * 1024;

export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  /** Every buffer in `free`, so that giving one back twice cannot hand it to two readers. */
  private readonly idle = new Set<Buffer>();
  private idleBytes = 0;
  private readonly idleBytesMax: number;
  private readonly classBytesMax: number;

  constructor(opts: { idleBytesMax: number; classBytesMax: number }) {
    this.idleBytesMax = opts.idleBytesMax;
    this.classBytesMax = opts.classBytesMax;
  }

  /** A buffer of at least `bytes` bytes, not in use by anyone else; larger than the largest class, a new one. */
  take(bytes: number): Buffer {
    const size = sizeClass(bytes);
    if (size > this.classBytesMax) return Buffer.allocUnsafeSlow(bytes);
    const b = this.free.get(size)?.pop();
    if (b === undefined) return Buffer.allocUnsafeSlow(size);
    this.idle.delete(b);
    this.idleBytes -= size;
    return b;
  }

  /** Returns a buffer `take` gave; the caller must not touch it afterwards. Others are left to the GC. */
  give(b: Buffer): void {
    const size = b.byteLength;
    if (size !== sizeClass(size) || size > this.classBytesMax || b.byteOffset !== 0 || b.buffer.byteLength !== size) return;
    if (this.idle.has(b) || this.idleBytes + size > this.idleBytesMax) return;
    let list = this.free.get(size);
    if (list === undefined) this.free.set(size, (list = []));
    list.push(b);
    this.idle.add(b);
    this.idleBytes += size;
  }

  /** The size of the buffer `take(bytes)` returns. */
  bytesFor(bytes: number): number {
    const size = sizeClass(bytes);
    return size > this.classBytesMax ? bytes : size;
  }

  get idleBytesNow(): number {
    return this.idleBytes;
  }
}

function sizeClass(bytes: number): number {
  return bytes <= classBytesMin ? classBytesMin : 2 ** Math.ceil(Math.log2(bytes));
}
