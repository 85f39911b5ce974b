// Resync of a returning target (3FS's ResyncWorker): the member before it on the write path (the
// chain's last serving member) lists the target's chunks, sends each chunk it holds differently as
// a whole-chunk replace, removes the ones only the target holds, and then tells it it is done; the
// target reports up-to-date and the cluster manager makes it serving. New writes reach the
// target meanwhile (forwarded whole), and each chunk is sent under the chain's per-chunk lock, so a
// write and the resync of one chunk never cross. What a worker's resyncs send together is bounded
// by a byte rate (so filling a new member does not starve clients), and each run's progress is
// kept for /metrics and logged now and then.

import { crc32c } from '@node-rs/crc32';
import { TargetState } from '../meta/commands.ts';
import type { TargetInfo } from '../meta/namespace-state.ts';
import type { Routing } from '../meta/routing.ts';
import { chunkKey } from './chunk-file.ts';
import { chunkLockKey, compareChunks, type ChainReplica, type ReplicaHost } from './replication.ts';
import type { ChunkMeta, ChunkStore } from './chunk-store.ts';
import { WorkerError, WorkerErrorCode } from './errors.ts';
import { Pacer } from './pacer.ts';
import { removeChunksMax, WorkerMethod, type ChunkRef, type SyncEntry, type SyncListReply, type WriteRequest } from './protocol.ts';

export interface ResyncStats {
  sent: number;
  removed: number;
  same: number;
}

export interface ResyncOptions {
  /** Bytes per second all of this worker's resyncs send together, at most. */
  rateBytesPerSec: number;
  /** How often a run logs its progress. */
  progressLogMs: number;
  /**
   * Wait before a run that found chunks damaged on every member holding them is tried again:
   * nothing changes that until an operator removes their files (or a member returns with a good
   * copy), and each run lists every chunk again.
   */
  lostRetryMs: number;
}

export const resyncDefaults: ResyncOptions = { rateBytesPerSec: 64 * 2 ** 20, progressLogMs: 10_000, lostRetryMs: 30_000 };

/** One resync in progress: what this worker (the source) has gone through of the chunks it listed. */
export interface ResyncProgress {
  chainId: number;
  chainVersion: number;
  /** The target being filled. */
  targetId: number;
  startedMs: number;
  /** Chunks and bytes this worker holds for the chain, listed when the run started. */
  chunksListed: number;
  bytesListed: number;
  /** Chunks looked at so far (sent, or found the same on the target). */
  chunksDone: number;
  chunksSent: number;
  bytesSent: number;
}

/** What this worker's resyncs did since it started (counters). */
export interface ResyncTotals {
  runsStarted: number;
  runsDone: number;
  chunksSent: number;
  bytesSent: number;
  chunksRemoved: number;
  /** Runs that could not finish: chunks damaged on every member that holds them. */
  runsLost: number;
}

/** Wait before a resync that failed is tried again. */
const resyncRetryMs = 500;


export class Resyncer {
  private stopped = false;
  private readonly replica: ChainReplica;
  private readonly host: ReplicaHost;
  /** Runs by chain, chain version and target: one per chain version. */
  private readonly running = new Map<string, Promise<void>>();
  /** Progress of the runs in `running` that got past their listing, by the same key. */
  private readonly runs = new Map<string, ResyncProgress>();
  readonly totals: ResyncTotals = { runsStarted: 0, runsDone: 0, chunksSent: 0, bytesSent: 0, chunksRemoved: 0, runsLost: 0 };
  private readonly opts: ResyncOptions;
  private readonly pacer: Pacer;

  /** The bug switch 'resync-skip-stale' (simulator only). */
  private readonly skipStale: boolean;

  constructor(replica: ChainReplica, host: ReplicaHost, opts: Partial<ResyncOptions> = {}) {
    this.replica = replica;
    this.host = host;
    this.opts = { ...resyncDefaults, ...opts };
    this.pacer = new Pacer(host.clock, this.opts.rateBytesPerSec);
    this.skipStale = host.bugs?.has('resync-skip-stale') === true;
  }

  /** The runs in progress (copies), for /metrics. */
  progress(): ResyncProgress[] {
    return [...this.runs.values()].map((p) => ({ ...p }));
  }

  /** Starts a resync for every syncing target whose predecessor is one of ours. */
  onRouting(routing: Routing): void {
    for (const chain of routing.info.chains) {
      for (const id of chain.targetIds) {
        const me = routing.target(id);
        if (me === undefined || me.state !== TargetState.Serving || this.host.store(id) === undefined) continue;
        const next = routing.successor(chain.chainId, id);
        if (next?.state !== TargetState.Syncing) continue;
        const key = `${chain.chainId}:${chain.version}:${next.targetId}`;
        if (this.running.has(key)) continue;
        const run = this.run(me, next, chain.chainId, chain.version, key).then(
          (stats) => this.host.log?.('info', 'resync done', { chain: chain.chainId, target: next.targetId, ...stats }),
          async (err: unknown) => {
            // Often the target's worker has not seen this chain version yet: try again shortly,
            // with whatever routing this worker has by then.
            const lost = err instanceof WorkerError && err.code === WorkerErrorCode.ChunkLost;
            this.host.log?.(lost ? 'error' : 'info', 'resync stopped; retrying', { chain: chain.chainId, target: next.targetId, err: String((err as Error).message ?? err) });
            await this.host.clock.sleep(lost ? this.opts.lostRetryMs : resyncRetryMs);
            retry = true;
          },
        );
        let retry = false;
        this.running.set(key, run);
        this.totals.runsStarted++;
        void run.finally(() => {
          this.running.delete(key);
          this.runs.delete(key);
          const now = this.host.routing();
          if (retry && now !== undefined && !this.stopped) this.onRouting(now);
        });
      }
    }
  }

  stop(): void {
    this.stopped = true;
  }

  /** Waits for the runs in progress (tests and shutdown). */
  async idle(): Promise<void> {
    await Promise.all(this.running.values());
  }

  /** A chunk to send, copied from another member first if it is corrupt here (the caller holds its lock). */
  private async readOrRepair(me: TargetInfo, chainId: number, store: ChunkStore, id: ChunkRef): Promise<{ meta: ChunkMeta; data: Uint8Array }> {
    try {
      return await store.readWhole(id);
    } catch (err) {
      const meta = store.get(id);
      if ((err as { code?: string }).code !== WorkerErrorCode.ChunkCorrupt || meta === undefined) throw err;
      // The target, or a member waiting to sync, may be the only other copy of this version (this member the only one serving).
      await this.replica.repairFromPeer(me, chainId, meta, store);
      return store.readWhole(id);
    }
  }

  private async run(me: TargetInfo, target: TargetInfo, chainId: number, chainVersion: number, key: string): Promise<ResyncStats> {
    const store = this.host.store(me.targetId)!;
    const conn = this.replica.peer(target);
    const call = { chainId, chainVersion, targetId: target.targetId };
    const remote = new Map<string, SyncEntry>();
    let after: ChunkRef | undefined;
    for (;;) {
      const page = (await conn.call<SyncListReply>(WorkerMethod.syncList, { ...call, limit: this.host.syncPageChunks, ...(after === undefined ? {} : { after }) }, { timeoutMs: this.host.callTimeoutMs })).body;
      for (const c of page.chunks) remote.set(chunkKey(c), c);
      if (!page.more || page.chunks.length === 0) break;
      // The next page starts after the last chunk: the cursor is its id only.
      const last = page.chunks[page.chunks.length - 1];
      after = { inodeId: last.inodeId, index: last.index };
    }
    const stats: ResyncStats = { sent: 0, removed: 0, same: 0 };
    const local = store.list().sort((a, b) => compareChunks(a.id, b.id));
    const now = this.host.clock.now();
    const progress: ResyncProgress = { chainId, chainVersion, targetId: target.targetId, startedMs: now, chunksListed: local.length, bytesListed: local.reduce((n, c) => n + c.lengthBytes, 0), chunksDone: 0, chunksSent: 0, bytesSent: 0 };
    this.runs.set(key, progress);
    let loggedMs = now;
    /** Chunks damaged here and on every other member asked: sent by no run until repaired or removed. */
    const lost: string[] = [];
    for (const listed of local) {
      const r = remote.get(chunkKey(listed.id));
      remote.delete(chunkKey(listed.id));
      // Decided under the chunk's lock, from what the chunk holds then: a write that was under
      // way when the list was taken may have committed a newer version since (one the target,
      // not yet on the write path then, never got).
      const sent = await this.replica.lock.with(chunkLockKey(me.targetId, listed.id), async (): Promise<number | 'same' | 'lost'> => {
        const local = store.get(listed.id);
        if (local === undefined || (local.commitVersion === 0 && local.pending === undefined)) return 'same';
        const same = r !== undefined && !r.pending && !r.corrupt && local.pending === undefined && r.commitVersion === local.commitVersion && r.crc32c === local.crc32c && r.lengthBytes === local.lengthBytes;
        if (same || (this.skipStale && r !== undefined && !r.pending && !r.corrupt && r.commitVersion < local.commitVersion)) return 'same';
        // A version left pending here by a write whose forward gave up may have been committed
        // and served further down: the target gets that one, so it never serves older content.
        const p = local.pending;
        const read = p !== undefined ? { meta: local, data: await store.readPending(local.id) } : await this.readOrRepair(me, chainId, store, local.id).catch((err: unknown) => lostOrThrow(err, (why) => this.host.log?.('warn', 'resync: no member holds a good copy of a chunk', { chain: chainId, target: target.targetId, chunk: chunkKey(local.id), why })));
        if (read === undefined) return 'lost';
        const { meta, data } = read;
        const body: WriteRequest = {
          chainId,
          chainVersion,
          inodeId: local.id.inodeId,
          index: local.id.index,
          offset: 0,
          crc32c: crc32c(data),
          updateVersion: p?.version ?? meta.commitVersion,
          replace: true,
          chunkCrc32c: p?.crc32c ?? meta.crc32c,
          writeIds: [...(p?.writeIds ?? meta.writeIds)],
        };
        await conn.call(WorkerMethod.forward, body, { payload: data, timeoutMs: this.host.callTimeoutMs });
        return data.length;
      });
      progress.chunksDone++;
      if (sent === 'lost') {
        // The target keeps what it has of it, and serves nothing before a later run finishes.
        lost.push(chunkKey(listed.id));
      } else if (sent === 'same') {
        stats.same++;
      } else {
        stats.sent++;
        progress.chunksSent++;
        progress.bytesSent += sent;
        this.totals.chunksSent++;
        this.totals.bytesSent += sent;
        // Outside the chunk's lock: a write to it need not wait for the rate.
        await this.pacer.sent(sent);
      }
      if (this.host.clock.now() - loggedMs >= this.opts.progressLogMs) {
        loggedMs = this.host.clock.now();
        this.host.log?.('info', 'resync progress', { chain: chainId, target: target.targetId, chunks: `${progress.chunksDone}/${progress.chunksListed}`, chunksSent: progress.chunksSent, bytesSent: progress.bytesSent, bytesListed: progress.bytesListed });
      }
    }
    // Chunks only the target holds: gone here (deleted, or never acknowledged). A write that makes
    // one meanwhile holds its lock here first, so check again under the lock.
    const only = [...remote.values()];
    for (let i = 0; i < only.length; i += removeChunksMax) {
      const batch = only.slice(i, i + removeChunksMax);
      const gone: ChunkRef[] = [];
      for (const c of batch) {
        await this.replica.lock.with(chunkLockKey(me.targetId, c), async () => {
          if (store.get(c) !== undefined) return;
          await conn.call(WorkerMethod.remove, { ...call, chunks: [{ inodeId: c.inodeId, index: c.index }] }, { timeoutMs: this.host.callTimeoutMs });
          gone.push(c);
        });
      }
      stats.removed += gone.length;
      this.totals.chunksRemoved += gone.length;
    }
    if (lost.length > 0) {
      this.totals.runsLost++;
      throw new WorkerError(
        WorkerErrorCode.ChunkLost,
        `target ${target.targetId} cannot finish its resync on chain ${chainId}: ${lost.length} chunk${lost.length === 1 ? ' is' : 's are'} damaged on every member that has ${lost.length === 1 ? 'it' : 'them'} (inode-index in hex: ${lost.slice(0, 10).join(', ')}${lost.length > 10 ? ', ...' : ''}). Everything else was sent. Remove the files they belong to (\`cairn fs find --inode INODE-INDEX\` prints their paths), or bring back a member that holds a good copy; the next try is in ${this.opts.lostRetryMs / 1000} s`,
        { chunks: lost.slice(0, 100) },
      );
    }
    await conn.call(WorkerMethod.syncDone, call, { timeoutMs: this.host.callTimeoutMs });
    this.totals.runsDone++;
    return stats;
  }
}

/** Undefined for a chunk that could not be read here nor repaired from any other member (damaged everywhere); any other failure is thrown. */
function lostOrThrow(err: unknown, note: (why: string) => void): undefined {
  if (!(err instanceof WorkerError) || err.code !== WorkerErrorCode.ChunkCorrupt) throw err;
  note(err.message);
  return undefined;
}
