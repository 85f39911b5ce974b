// The simulated file system of one node: the Disk the real WAL and snapshot files run on. Writes
// land in a page cache and reach the platter only on fsync; names (created, renamed, deleted
// files) only when their directory is synced. A crash keeps what was durable, and may tear: a
// prefix of the writes since the last sync survives, the last of them cut at a random byte. The
// simulation can also fail an fsync (EIO; the unsynced writes are then lost for good, as Linux
// drops failed dirty pages) and flip bits at rest.
//
// Directories are durable as soon as they are made (a simplification: cairn syncs the parent of
// each directory it creates, and the simulator does not check that it does).

import path from 'node:path';
import { firstBadCrc, type Disk, type DiskFile, type DiskSpace, type OpenMode } from '../io/index.ts';
import type { Prng } from './prng.ts';

type PendingOp = { kind: 'write'; offset: number; bytes: Uint8Array } | { kind: 'truncate'; length: number };

class Inode {
  data = new Uint8Array(256);
  size = 0;
  /** The bytes that survive a crash. */
  durable: Uint8Array = new Uint8Array(0);
  /** The buffer `durable` is a view of, with room to grow at the end. */
  private durableSpace: Uint8Array = this.durable;
  /** Bumped whenever the durable bytes change other than by growing at the end. */
  durableEpoch = 0;
  /** What was done since the last sync, in order: a torn crash keeps a prefix of it. */
  pending: PendingOp[] = [];
  /** Writes whose fsync failed: their pages were dropped, so no later sync makes them durable. */
  lost: { offset: number; length: number }[] = [];

  write(buf: Uint8Array, offset: number): void {
    const end = offset + buf.byteLength;
    this.reserve(end);
    if (offset > this.size) this.data.fill(0, this.size, offset);
    this.data.set(buf, offset);
    this.size = Math.max(this.size, end);
    this.pending.push({ kind: 'write', offset, bytes: buf.slice() });
  }

  truncate(length: number): void {
    this.reserve(length);
    if (length > this.size) this.data.fill(0, this.size, length);
    this.size = length;
    this.pending.push({ kind: 'truncate', length });
  }

  read(length: number, offset: number): Uint8Array {
    if (offset + length > this.size) throw errno('EOF', `unexpected end of file at offset ${this.size}`);
    return this.data.slice(offset, offset + length);
  }

  /** The cache reaches the disk. */
  sync(): void {
    if (this.pending.length === 0 && this.lost.length === 0) return;
    if (this.lost.length === 0 && this.pending.every((op) => op.kind === 'write' && op.offset >= this.durable.length)) {
      this.appendDurable();
      return;
    }
    const next = this.data.slice(0, this.size);
    for (const l of this.lost) {
      // Dropped pages: the disk keeps what it had there before (zeros past its old end).
      for (let i = l.offset; i < Math.min(l.offset + l.length, next.length); i++) next[i] = i < this.durable.length ? this.durable[i] : 0;
    }
    this.durableEpoch++;
    this.durable = next;
    this.durableSpace = next;
    this.pending = [];
    this.lost = [];
  }

  /**
   * The common case of a log: only bytes past the durable end were written. They are copied after
   * the durable bytes, into spare room when there is some, instead of copying the whole file; the
   * durable view handed out before keeps its length, so it still shows what it showed.
   */
  private appendDurable(): void {
    const from = this.durable.length;
    if (this.size > this.durableSpace.length) {
      const grown = new Uint8Array(Math.max(this.size, this.durableSpace.length * 2));
      grown.set(this.durable);
      this.durableSpace = grown;
    }
    this.durableSpace.set(this.data.subarray(from, this.size), from);
    this.durable = this.durableSpace.subarray(0, this.size);
    this.pending = [];
  }

  /** The fsync failed: the unsynced writes never reach the disk, though reads still see them. */
  dropPending(): void {
    for (const op of this.pending) if (op.kind === 'write') this.lost.push({ offset: op.offset, length: op.bytes.byteLength });
    this.pending = [];
  }

  /** After a crash: the durable bytes, plus (torn) a prefix of the pending operations. */
  restart(prng: Prng, tear: boolean): void {
    const ops = tear ? this.pending.slice(0, prng.int(this.pending.length) + 1) : [];
    this.pending = [];
    this.lost = [];
    this.data = new Uint8Array(Math.max(256, this.durable.length));
    this.data.set(this.durable);
    this.size = this.durable.length;
    if (ops.length === 0) return;
    ops.forEach((op, i) => {
      if (op.kind === 'truncate') this.truncate(op.length);
      else this.write(i === ops.length - 1 ? op.bytes.subarray(0, prng.int(op.bytes.byteLength + 1)) : op.bytes, op.offset);
    });
    this.pending = [];
    this.durable = this.data.slice(0, this.size);
    this.durableSpace = this.durable;
    this.durableEpoch++;
  }

  private reserve(bytes: number): void {
    if (bytes <= this.data.length) return;
    const grown = new Uint8Array(Math.max(bytes, this.data.length * 2));
    grown.set(this.data.subarray(0, this.size));
    this.data = grown;
  }
}

/** What the file system asks of the simulation: time, faults, and whether the process still runs. */
export interface SimFsHost {
  /** Runs `fn` after `ms` of virtual time, unless the node crashed or restarted meanwhile. */
  later(ms: number, fn: () => void): void;
  syncLatencyMs(): number;
  /** Whether this fsync fails with EIO (an injected fault). */
  syncFails(path: string): boolean;
  /** Whether this fsync returns success without reaching the disk (a lying disk: the bug 'no-fsync'). */
  syncLies(): boolean;
  /** Sees each changing operation as it starts: the simulation may crash the node right there. */
  onOp(op: SimFsOp, path: string): void;
}

export type SimFsOp = 'create' | 'write' | 'truncate' | 'rename' | 'unlink' | 'sync';

export class SimFs {
  private names = new Map<string, Inode>();
  private durableNames = new Map<string, Inode>();
  private readonly dirs = new Set<string>(['/']);
  /** Bumped on every change to what survives a crash, so checkers can cache their reading of it. */
  generation = 0;
  /** The process using the disk; calls from an earlier (crashed) one never complete. */
  private incarnation = 0;
  readonly bytesTotal: number;
  /** Bytes the files may take in all: below bytesTotal while the disk is (made) full. */
  private capacity = Infinity;

  constructor(bytesTotal = 1 << 30) {
    this.bytesTotal = bytesTotal;
  }

  /** The disk fills up, leaving `freeBytes`: writes that grow files past it fail with ENOSPC. */
  fill(freeBytes: number): void {
    this.capacity = this.usedBytes() + freeBytes;
  }

  /** Space comes back. */
  unfill(): void {
    this.capacity = Infinity;
  }

  bytesFree(): number {
    return Math.max(0, Math.min(this.bytesTotal, this.capacity) - this.usedBytes());
  }

  /** Writes what fits of `buf`; throws ENOSPC if not all of it did (a short write, then the error). */
  writeWithin(f: Inode, buf: Uint8Array, offset: number): void {
    if (this.capacity !== Infinity) {
      const growth = Math.max(0, offset + buf.byteLength - f.size);
      const free = this.bytesFree();
      if (growth > free) {
        const fits = buf.byteLength - (growth - free);
        if (fits > 0) f.write(buf.subarray(0, fits), offset);
        throw errno('ENOSPC', `no space left on device (${free} bytes free)`);
      }
    }
    f.write(buf, offset);
  }

  /** The disk as a newly started process sees it. */
  attach(host: SimFsHost): Disk {
    return new SimDiskView(this, ++this.incarnation, host);
  }

  /** The process died: unsynced writes and names are lost, the last writes perhaps torn. */
  crash(prng: Prng, tear: boolean): void {
    this.incarnation++;
    const candidates = [...this.durableNames.values()].filter((f) => f.pending.length > 0);
    const torn = tear && candidates.length > 0 ? prng.pick(candidates) : undefined;
    for (const f of new Set([...this.names.values(), ...this.durableNames.values()])) f.restart(prng, f === torn);
    this.names = new Map(this.durableNames);
    this.generation++;
  }

  /** Flips one bit of a file at rest (while its node is down). */
  flipBit(file: string, offset: number, bit: number): void {
    const f = this.durableNames.get(file);
    if (f === undefined || offset >= f.durable.length) throw new Error(`sim fs: no byte ${offset} in ${file}`);
    f.durable[offset] ^= 1 << bit;
    f.data[offset] ^= 1 << bit;
    f.durableEpoch++;
    this.generation++;
  }

  /** Files that survive a crash now, under `dir`, with their durable bytes. */
  durableFiles(dir: string): { name: string; bytes: Uint8Array; epoch: number }[] {
    const out: { name: string; bytes: Uint8Array; epoch: number }[] = [];
    for (const [p, f] of this.durableNames) if (path.dirname(p) === dir) out.push({ name: path.basename(p), bytes: f.durable, epoch: f.durableEpoch });
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  // ---- operations of the current process -----------------------------------------------------

  live(incarnation: number): boolean {
    return incarnation === this.incarnation;
  }

  open(file: string, mode: OpenMode): Inode {
    const existing = this.names.get(file);
    if (mode === 'create') {
      if (existing !== undefined) throw errno('EEXIST', `${file} exists`);
      if (!this.dirs.has(path.dirname(file))) throw errno('ENOENT', `no directory ${path.dirname(file)}`);
      const f = new Inode();
      this.names.set(file, f);
      return f;
    }
    if (existing === undefined) throw errno('ENOENT', `no file ${file}`);
    return existing;
  }

  readdir(dir: string): string[] {
    if (!this.dirs.has(dir)) throw errno('ENOENT', `no directory ${dir}`);
    const out = new Set<string>();
    for (const p of this.names.keys()) if (path.dirname(p) === dir) out.add(path.basename(p));
    for (const d of this.dirs) if (d !== dir && path.dirname(d) === dir) out.add(path.basename(d));
    return [...out].sort();
  }

  mkdirs(dir: string): string | undefined {
    let top: string | undefined;
    for (let d = dir; !this.dirs.has(d); d = path.dirname(d)) top = d;
    if (top === undefined) return undefined;
    for (let d = dir; !this.dirs.has(d); d = path.dirname(d)) this.dirs.add(d);
    return top;
  }

  rename(from: string, to: string): void {
    const f = this.names.get(from);
    if (f === undefined) throw errno('ENOENT', `no file ${from}`);
    if (!this.dirs.has(path.dirname(to))) throw errno('ENOENT', `no directory ${path.dirname(to)}`);
    this.names.delete(from);
    this.names.set(to, f);
  }

  unlink(file: string): void {
    if (!this.names.delete(file)) throw errno('ENOENT', `no file ${file}`);
  }

  syncDir(dir: string): void {
    for (const p of [...this.durableNames.keys()]) if (path.dirname(p) === dir && !this.names.has(p)) this.durableNames.delete(p);
    for (const [p, f] of this.names) if (path.dirname(p) === dir) this.durableNames.set(p, f);
    this.generation++;
  }

  syncFile(f: Inode, ok: boolean): void {
    if (ok) f.sync();
    else f.dropPending();
    this.generation++;
  }

  usedBytes(): number {
    let n = 0;
    for (const f of new Set(this.names.values())) n += f.size;
    return n;
  }
}

/** One process's handle on the file system: after that process crashes, its calls never return. */
class SimDiskView implements Disk {
  readonly fs: SimFs;
  private readonly incarnation: number;
  private readonly host: SimFsHost;

  constructor(fs: SimFs, incarnation: number, host: SimFsHost) {
    this.fs = fs;
    this.incarnation = incarnation;
    this.host = host;
  }

  open(file: string, mode: OpenMode): Promise<DiskFile> {
    if (mode === 'create') this.op('create', file);
    return this.run(() => new SimFile(this, file, this.fs.open(file, mode)));
  }

  openSync(file: string, mode: OpenMode): DiskFile {
    if (mode === 'create') this.op('create', file);
    return this.runSync(() => new SimFile(this, file, this.fs.open(file, mode)));
  }

  op(kind: SimFsOp, file: string): void {
    if (this.fs.live(this.incarnation)) this.host.onOp(kind, file);
  }

  readFile(file: string): Promise<Uint8Array> {
    return this.run(() => {
      const f = this.fs.open(file, 'read');
      return f.read(f.size, 0);
    });
  }

  readdir(dir: string): Promise<string[]> {
    return this.run(() => this.fs.readdir(dir));
  }

  mkdirs(dir: string): Promise<string | undefined> {
    return this.run(() => this.fs.mkdirs(dir));
  }

  rename(from: string, to: string): Promise<void> {
    this.op('rename', to);
    return this.run(() => this.fs.rename(from, to));
  }

  unlink(file: string): Promise<void> {
    this.op('unlink', file);
    return this.run(() => this.fs.unlink(file));
  }

  syncDir(dir: string): Promise<void> {
    return this.slow(() => this.fs.syncDir(dir));
  }

  statfs(): Promise<DiskSpace> {
    return this.run(() => ({ bytesTotal: this.fs.bytesTotal, bytesFree: this.fs.bytesFree() }));
  }

  syncFile(file: string, f: Inode): Promise<void> {
    this.op('sync', file);
    const fails = this.host.syncFails(file);
    const lies = !fails && this.host.syncLies();
    return this.slow(() => {
      if (lies) return;
      this.fs.syncFile(f, !fails);
      if (fails) throw errno('EIO', `fsync of ${file} failed`);
    });
  }

  /** A page-cache operation: done at once (a microtask later), or never for a dead process. */
  run<T>(fn: () => T): Promise<T> {
    if (!this.fs.live(this.incarnation)) return never();
    try {
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(err);
    }
  }

  runSync<T>(fn: () => T): T {
    if (!this.fs.live(this.incarnation)) throw errno('ESRCH', 'sim fs: the process using this disk has crashed');
    return fn();
  }

  /** An operation that waits for the disk (fsync): it completes after the disk's latency. */
  private slow(fn: () => void): Promise<void> {
    if (!this.fs.live(this.incarnation)) return never();
    return new Promise((resolve, reject) => {
      this.host.later(this.host.syncLatencyMs(), () => {
        if (!this.fs.live(this.incarnation)) return;
        try {
          fn();
          resolve();
        } catch (err) {
          reject(err);
        }
      });
    });
  }
}

class SimFile implements DiskFile {
  readonly path: string;
  private readonly view: SimDiskView;
  private readonly inode: Inode;
  private closed = false;

  constructor(view: SimDiskView, file: string, inode: Inode) {
    this.view = view;
    this.path = file;
    this.inode = inode;
  }

  write(buf: Uint8Array, position: number): Promise<void> {
    this.view.op('write', this.path);
    return this.view.run(() => this.view.fs.writeWithin(this.open(), buf, position));
  }

  writeSync(buf: Uint8Array, position: number): void {
    this.view.op('write', this.path);
    this.view.runSync(() => this.view.fs.writeWithin(this.open(), buf, position));
  }

  /** One write of the buffers joined: a crash tears it like any other single write. */
  writev(bufs: readonly Uint8Array[], position: number): Promise<void> {
    const joined = new Uint8Array(bufs.reduce((n, b) => n + b.byteLength, 0));
    let at = 0;
    for (const b of bufs) {
      joined.set(b, at);
      at += b.byteLength;
    }
    return this.write(joined, position);
  }

  async readChecked(length: number, position: number, into: Uint8Array | undefined, blockBytes: number, crcs: Uint32Array): Promise<{ data: Uint8Array; badBlock: number }> {
    const data = await this.read(length, position, into);
    return { data, badBlock: firstBadCrc(data, blockBytes, crcs) };
  }

  read(length: number, position: number, into?: Uint8Array): Promise<Uint8Array> {
    return this.view.run(() => {
      const data = this.open().read(length, position);
      if (into === undefined) return data;
      if (into.byteLength < length) throw new RangeError(`read of ${length} bytes into a buffer of ${into.byteLength}`);
      into.set(data);
      return into.subarray(0, length);
    });
  }

  readSync(length: number, position: number): Uint8Array {
    return this.view.runSync(() => this.open().read(length, position));
  }

  size(): Promise<number> {
    return this.view.run(() => this.open().size);
  }

  sizeSync(): number {
    return this.view.runSync(() => this.open().size);
  }

  truncate(length: number): Promise<void> {
    this.view.op('truncate', this.path);
    return this.view.run(() => this.open().truncate(length));
  }

  sync(): Promise<void> {
    return this.view.run(() => this.open()).then((f) => this.view.syncFile(this.path, f));
  }

  /** The simulated disk has no page cache: its unsynced writes are what the crashes model. */
  dropCache(): void {}

  close(): Promise<void> {
    this.closed = true;
    return this.view.run(() => undefined);
  }

  closeSync(): void {
    this.closed = true;
  }

  private open(): Inode {
    if (this.closed) throw new Error(`sim fs: ${this.path} used after close`);
    return this.inode;
  }
}

function errno(code: string, message: string): Error {
  return Object.assign(new Error(`${code}: ${message}`), { code });
}

function never<T>(): Promise<T> {
  return new Promise<T>(() => undefined);
}
