// The client's data path: chunk reads and writes routed by the published chain tables, retried
// through chain changes, and file readers and writers striped by a file's layout with many chunk
// requests in flight and a bound on the memory they hold.
//
// Routing: chunk i of a file lives on chain chainOfChunk(fileChains(table's chains at the layout's
// version, stripe width, seed), i). Writes go to the chain's head; reads to one of its serving
// members, spread by chunk, falling back to the others (and to the tail when a member holds a
// pending version). A stale chain version or an unavailable member refreshes the routing from the
// masters and retries, until the operation's deadline.

import { crc32c } from '@node-rs/crc32';
import { CairnError, CodedError, ErrorCode } from '../errors.ts';
import type { Clock, Connection } from '../io/index.ts';
import type { Layout } from '../meta/commands.ts';
import type { RoutingInfo } from '../meta/namespace-state.ts';
import { Routing, spreadByChunk } from '../meta/routing.ts';
import { chainOfChunk, chunksByChain, fileChains } from '../placement/index.ts';
import { RpcErrorCode } from '../rpc/errors.ts';
import { payloadByteLength, payloadPieces, type Payload } from '../rpc/frame.ts';
import { WorkerError, WorkerErrorCode } from '../worker/errors.ts';
import { MasterWorkerMethod, removeChunksMax, WorkerMethod, type LocateReply, type LocateRequest, type ReadReply, type ReadRequest, type WriteRequest } from '../worker/protocol.ts';
// Types only: local-reads.ts does file I/O, which the simulator, running this client, must not load.
import type { LocalReads, LocalReadStats } from './local-reads.ts';
import type { MasterCalls } from './master-calls.ts';

export interface DataClientOptions {
  master: MasterCalls;
  connect: (address: string) => Connection;
  clock: Clock;
  /** How long one chunk operation keeps retrying through failures before it fails (EIO). */
  retryDeadlineMs?: number;
  callTimeoutMs?: number;
  /** Read chunks held on this machine from their files (local-reads.ts); this client's writes keep it current. */
  localReads?: LocalReads;
}

/** What a read of one chunk found. */
/** `release`, when there: gives `data`'s memory back to the connection's receive pool (see CallResult.release). */
export type ChunkRead = { found: true; data: Uint8Array; lengthBytes: number; release?: () => void } | { found: false };

const retryBackoffMs = { min: 50, max: 1_000 };
/** How long a chunk.locate may take: a worker on this machine answers in well under a millisecond; a hung one costs this, not the call timeout. */
const locateTimeoutMs = 1_000;
/**
 * Failures that retrying mends only if something else changes soon (space freed on a full disk, a
 * member back with a good copy of a damaged chunk): tried for this long, then reported as they are
 * (ENOSPC, EIO) rather than after the whole retry deadline.
 */
const settledRetryMs = 3_000;
const settled: ReadonlySet<string> = new Set([WorkerErrorCode.TargetFull, WorkerErrorCode.ChunkLost]);
/** Layouts whose stripes are kept (a cache: emptied when full). */
const stripesCachedMax = 1024;
/** Codes after which another member, or fresh routing, may succeed. */
const retryable: ReadonlySet<string> = new Set([
  WorkerErrorCode.StaleChainVersion,
  WorkerErrorCode.TargetUnavailable,
  WorkerErrorCode.ChunkDirty,
  WorkerErrorCode.ChunkCorrupt,
  WorkerErrorCode.ChecksumMismatch,
  // The target leaves the write path within a heartbeat round (it reports itself offline).
  WorkerErrorCode.TargetFailed,
  WorkerErrorCode.TargetFull,
  WorkerErrorCode.ChunkLost,
  ErrorCode.Busy,
  ErrorCode.Unavailable,
  ErrorCode.Timeout,
  RpcErrorCode.Overloaded,
]);

/** A write or truncate of bytes [start, end) of one chunk, until it settles. */
interface ChunkOperation {
  start: number;
  end: number;
  settled: PromiseWithResolvers<void>;
}

export class DataClient {
  private readonly opts: Required<Omit<DataClientOptions, 'localReads'>>;
  private readonly local: LocalReads | undefined;
  private routingNow: Routing | undefined;
  private refreshing: Promise<Routing> | undefined;
  private readonly conns = new Map<string, Connection>();
  private readonly stripes = new Map<string, readonly number[]>();
  /** Bad replicas readers met: reported so an operator (and the scrubber) can repair them. */
  readonly corruptSeen: { chainId: number; targetId: number; inodeId: number; index: number; message: string }[] = [];
  /** Writes and truncates in flight, by chunk ("inode:index"), in the order they were made. */
  private readonly chunkOperations = new Map<string, ChunkOperation[]>();

  constructor(opts: DataClientOptions) {
    this.opts = { retryDeadlineMs: 60_000, callTimeoutMs: 15_000, ...opts };
    this.local = opts.localReads;
  }

  /** What local reads answered, if this client makes them. */
  localReadStats(): LocalReadStats | undefined {
    return this.local?.stats();
  }

  /** Forgets the local files kept for an inode's chunks: its next reads ask the workers again (a file opened anew, close-to-open). */
  forgetLocal(inodeId: number): void {
    this.local?.forget(inodeId);
  }

  /** The routing, fetched once and refreshed when a request finds it stale. */
  async routing(): Promise<Routing> {
    return this.routingNow ?? this.refresh();
  }

  /** Fetches the routing from the leader; concurrent callers share one fetch. */
  refresh(): Promise<Routing> {
    this.refreshing ??= this.opts.master
      .query<RoutingInfo>(MasterWorkerMethod.routing, {})
      .then((info) => {
        if (this.routingNow === undefined || info.routingVersion >= this.routingNow.version) this.routingNow = new Routing(info);
        return this.routingNow;
      })
      .finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  /** The chain holding chunk `index` of a file with this layout. */
  chainOf(routing: Routing, layout: Layout, index: number): number {
    return chainOfChunk(this.stripeOf(routing, layout), index);
  }

  /**
   * The chains a layout stripes over, shuffled once per layout rather than per chunk: a table's
   * chains at a version never change (chains are only appended), so the stripe never goes stale.
   */
  private stripeOf(routing: Routing, layout: Layout): readonly number[] {
    const key = `${layout.chainTableId}:${layout.chainTableVersion}:${layout.stripeWidth}:${layout.shuffleSeed}`;
    let stripe = this.stripes.get(key);
    if (stripe === undefined) {
      const chains = routing.tableChains(layout.chainTableId, layout.chainTableVersion);
      if (chains === undefined || chains.length === 0) {
        throw new CairnError(ErrorCode.Unavailable, `chain table ${layout.chainTableId} has no chains at version ${layout.chainTableVersion}: the file was made before any worker joined; write a new file`);
      }
      stripe = fileChains(chains, layout.stripeWidth, layout.shuffleSeed);
      if (this.stripes.size >= stripesCachedMax) this.stripes.clear();
      this.stripes.set(key, stripe);
    }
    return stripe;
  }

  /**
   * Writes `data` at `offset` of chunk `index` through its chain's head; resolves once every member
   * has it on disk. Writes to overlapping bytes of a chunk reach the head in the order they were
   * made: a later one waits for an earlier one still in flight, whose retry (after a chain change)
   * would otherwise land after it and bring back the bytes it replaced. `data` may come in pieces,
   * which go out one after another as the write's payload, never joined into one buffer here.
   * Resolves to whether `data` was sent once, in the call that succeeded: then nothing (no socket
   * queue of a failed call) may still read it, and its buffers may be reused.
   */
  async writeChunk(layout: Layout, inodeId: number, index: number, offset: number, data: Payload): Promise<boolean> {
    let checksum = 0; // the CRC32C of no bytes, which each piece extends
    for (const piece of payloadPieces(data)) checksum = crc32c(piece, checksum);
    // One id for every attempt: a head that already applied this write answers without applying it twice.
    const writeId = this.newWriteId();
    return this.inOrder(inodeId, index, offset, offset + payloadByteLength(data), () =>
      this.atHead(`write of chunk ${index} of inode ${inodeId}`, layout, { inodeId, index, offset, crc32c: checksum, writeId }, data),
    );
  }

  /**
   * Sends a write (or truncate) of one chunk to its chain's head at the current chain version,
   * retried through chain changes; resolves to whether the payload went out in one call only.
   */
  private async atHead(what: string, layout: Layout, write: Omit<WriteRequest, 'chainId' | 'chainVersion'>, payload?: Payload): Promise<boolean> {
    let sends = 0;
    await this.retrying(what, async (routing) => {
      const chainId = this.chainOf(routing, layout, write.index);
      const head = routing.writeMembers(chainId)[0];
      if (head === undefined) throw new CairnError(ErrorCode.Unavailable, `chain ${chainId} has no serving member`);
      const body: WriteRequest = { chainId, chainVersion: routing.chain(chainId)!.version, ...write };
      const conn = this.conn(routing, head.workerId);
      sends++;
      await conn.call(WorkerMethod.write, body, { payload, timeoutMs: this.opts.callTimeoutMs });
    });
    return sends === 1;
  }

  /**
   * Runs `op` on bytes [start, end) of a chunk once the earlier operations of this client on
   * bytes it overlaps have settled (an empty range counts as its first byte).
   */
  private async inOrder<T>(inodeId: number, index: number, start: number, end: number, op: () => Promise<T>): Promise<T> {
    const key = `${inodeId}:${index}`;
    const mine: ChunkOperation = { start, end: Math.max(end, start + 1), settled: Promise.withResolvers<void>() };
    let list = this.chunkOperations.get(key);
    if (list === undefined) this.chunkOperations.set(key, (list = []));
    const earlier = list.filter((o) => o.start < mine.end && mine.start < o.end).map((o) => o.settled.promise);
    list.push(mine);
    // Local files kept of the chunk, or being located, hold what it was: read it afresh after.
    this.local?.forget(inodeId, index);
    try {
      if (earlier.length > 0) await Promise.all(earlier);
      return await op();
    } finally {
      this.local?.forget(inodeId, index);
      list.splice(list.indexOf(mine), 1);
      if (list.length === 0) this.chunkOperations.delete(key);
      mine.settled.resolve();
    }
  }

  /**
   * Reads [offset, offset + length) of chunk `index` from a serving member (spread by chunk),
   * trying the others on failure. `found: false` when every serving member lacks the chunk.
   */
  async readChunk(layout: Layout, inodeId: number, index: number, offset: number, length: number): Promise<ChunkRead> {
    let triedLocal = this.local === undefined;
    return this.retrying(`read of chunk ${index} of inode ${inodeId}`, async (routing) => {
      const chainId = this.chainOf(routing, layout, index);
      const chain = routing.chain(chainId)!;
      const members = routing.readMembers(chainId);
      const order = spreadByChunk(members, inodeId, index);
      if (members.length === 0) throw new CairnError(ErrorCode.Unavailable, `chain ${chainId} has no serving member`);
      if (!triedLocal) {
        triedLocal = true;
        const locate: LocateRequest = { chainId, chainVersion: chain.version, inodeId, index };
        const local = await this.local!.read(inodeId, index, offset, length, order, async (workerId) => (await this.conn(routing, workerId).call<LocateReply>(WorkerMethod.locate, locate, { timeoutMs: Math.min(this.opts.callTimeoutMs, locateTimeoutMs) })).body);
        if (local !== undefined) return { found: true, ...local };
      }
      const body: ReadRequest = { chainId, chainVersion: chain.version, inodeId, index, offset, length };
      const tail = members[members.length - 1];
      let missing = 0;
      let tailMissing = false;
      let onlyDirty = true;
      const corrupt: number[] = [];
      let lastError: unknown;
      for (let i = 0; i < order.length; i++) {
        const member = order[i];
        try {
          const r = await this.conn(routing, member.workerId).call<ReadReply>(WorkerMethod.read, body, { timeoutMs: this.opts.callTimeoutMs });
          return { found: true, data: r.payload ?? new Uint8Array(0), lengthBytes: r.body.lengthBytes, ...(r.release === undefined ? {} : { release: r.release }) };
        } catch (err) {
          const code = codeOf(err);
          if (code === WorkerErrorCode.ChunkNotFound) {
            missing++;
            if (member === tail) tailMissing = true;
            continue;
          }
          if (code !== WorkerErrorCode.ChunkDirty) onlyDirty = false;
          if (code === WorkerErrorCode.ChunkCorrupt) {
            this.corruptSeen.push({ chainId, targetId: member.targetId, inodeId, index, message: (err as Error).message });
            corrupt.push(member.targetId);
          } else if (code === WorkerErrorCode.ChunkDirty && member !== tail && !order.slice(i + 1).includes(tail)) {
            order.push(tail); // the tail answers with the newest acknowledged version
          } else if (code === WorkerErrorCode.StaleChainVersion) throw err;
          lastError = err;
        }
      }
      // Absent: on every member, or at the tail (which commits first) with only uncommitted
      // versions elsewhere (a chunk's first write still in flight).
      if (missing === order.length || (tailMissing && onlyDirty)) return { found: false };
      // Damaged wherever it is held, and the other members answered that they lack it.
      if (corrupt.length > 0 && corrupt.length + missing === order.length) {
        throw new WorkerError(WorkerErrorCode.ChunkLost, `chunk ${index} of inode ${inodeId} failed its checksum on every serving replica of chain ${chainId} (targets ${corrupt.join(', ')}): not served; \`cairn admin report\` counts damaged chunks by target`, { chainId, targets: corrupt, errno: 'EIO' });
      }
      // Some member lacks it and another could not answer now: not an answer, ask again.
      throw lastError;
    });
  }

  /** Cuts chunk `index` to `lengthBytes` through its chain (a versioned write like any other). */
  async truncateChunk(layout: Layout, inodeId: number, index: number, lengthBytes: number): Promise<void> {
    await this.inOrder(inodeId, index, lengthBytes, Infinity, () =>
      this.atHead(`truncate of chunk ${index} of inode ${inodeId}`, layout, { inodeId, index, offset: lengthBytes, crc32c: crc32c(new Uint8Array(0)), truncate: true }),
    );
  }

  /**
   * Removes chunks from every member on their chains' write paths (a member offline now loses
   * them in its resync, which removes what its predecessor lacks).
   */
  async removeChunks(layout: Layout, inodeId: number, indexes: Iterable<number>): Promise<void> {
    const byChain = chunksByChain(this.stripeOf(await this.routing(), layout), indexes);
    for (const [chainId, list] of byChain) {
      const chunks = list.map((index) => ({ inodeId, index }));
      for (let i = 0; i < chunks.length; i += removeChunksMax) {
        const batch = chunks.slice(i, i + removeChunksMax);
        for (const c of batch) this.local?.forget(inodeId, c.index);
        await this.retrying(`removal of ${batch.length} chunks of inode ${inodeId}`, async (routing) => {
          const chain = routing.chain(chainId);
          const members = routing.writeMembers(chainId);
          if (chain === undefined || members.length === 0) throw new CairnError(ErrorCode.Unavailable, `chain ${chainId} has no serving member`);
          for (const m of members) {
            await this.conn(routing, m.workerId).call(WorkerMethod.remove, { chainId, chainVersion: chain.version, targetId: m.targetId, chunks: batch }, { timeoutMs: this.opts.callTimeoutMs });
          }
        });
      }
    }
  }

  /** Runs `op` with fresh routing after each retryable failure, until the deadline; then fails with EIO. */
  private closed = false;

  private async retrying<T>(what: string, op: (routing: Routing) => Promise<T>): Promise<T> {
    const deadline = this.opts.clock.now() + this.opts.retryDeadlineMs;
    let backoff = retryBackoffMs.min;
    let routing = await this.routing();
    let settledSince: number | undefined;
    for (;;) {
      try {
        return await op(routing);
      } catch (err) {
        const code = codeOf(err);
        // Closed meanwhile (a reader whose consumer went away): its reads in flight stop here
        // rather than reconnect, and keep the process alive, for the whole deadline.
        if (!retryable.has(code) || this.closed) throw err;
        if (settled.has(code)) {
          // Counted from the first such failure, through any others between.
          settledSince ??= this.opts.clock.now();
          if (this.opts.clock.now() - settledSince >= Math.min(settledRetryMs, this.opts.retryDeadlineMs)) throw err;
        }
        if (this.opts.clock.now() >= deadline) {
          throw new CairnError(ErrorCode.Unavailable, `${what} failed for ${this.opts.retryDeadlineMs} ms: ${(err as Error).message}`, { errno: 'EIO' });
        }
        await this.opts.clock.sleep(backoff);
        backoff = Math.min(backoff * 2, retryBackoffMs.max);
        const fresh = await this.refresh().catch(() => routing);
        // A new picture (a chain moved on) is worth a quick try: back off from the start again.
        if (fresh.version !== routing.version) backoff = retryBackoffMs.min;
        routing = fresh;
      }
    }
  }

  /** 64 random bits as 16 hex digits, from the injected clock's randomness (seeded in the simulator). */
  private newWriteId(): string {
    const r = this.opts.clock;
    return (r.randomInt(0x1_0000_0000).toString(16).padStart(8, '0') + r.randomInt(0x1_0000_0000).toString(16).padStart(8, '0'));
  }

  private conn(routing: Routing, workerId: number): Connection {
    if (this.closed) throw new CairnError(ErrorCode.Interrupted, 'the data client is closed');
    const address = routing.workerAddress(workerId);
    if (address === undefined) throw new CairnError(ErrorCode.Unavailable, `no address known for worker ${workerId}`);
    let c = this.conns.get(address);
    if (c === undefined) {
      c = this.opts.connect(address);
      this.conns.set(address, c);
    }
    return c;
  }

  close(): void {
    this.closed = true;
    this.local?.close();
    for (const c of this.conns.values()) c.close();
    this.conns.clear();
  }
}

function codeOf(err: unknown): string {
  return err instanceof CodedError ? err.code : String((err as { code?: unknown }).code ?? '');
}
