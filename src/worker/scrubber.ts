// The scrubber: re-reads every committed chunk of every target at a bounded rate, so that damage at
// rest (bit rot, a bad sector, a truncated file) is found before a read or a resync needs the
// chunk, and repairs a damaged replica from another member of its chain, under the chunk's lock
// like a write. Only targets serving in their chain are scrubbed: a syncing one is being filled by
// its predecessor anyway. All waiting goes through the injected clock.

import type { Clock, Timer } from '../io/index.ts';
import { TargetState } from '../meta/commands.ts';
import type { Routing } from '../meta/routing.ts';
import type { ChunkMeta, ChunkStore } from './chunk-store.ts';
import type { ScrubReport } from './protocol.ts';
import { chunkLockKey, type ChainReplica } from './replication.ts';

/** What the scrubber has re-read, found and repaired since the worker started (it travels in heartbeats as is). */
export type ScrubStats = ScrubReport;

export interface ScrubberHost {
  clock: Clock;
  targets(): { targetId: number; store: ChunkStore }[];
  routing(): Routing | undefined;
  /** False while the worker has lost touch with the masters: nothing is repaired then. */
  serving(): boolean;
  replica: ChainReplica;
  log?: (level: 'info' | 'warn' | 'error', msg: string, ctx?: object) => void;
}

export interface ScrubOptions {
  /** Bytes re-read per second, at most; 0 turns the scrubber off. */
  rateBytesPerSec: number;
  /** Pause between the end of one pass and the start of the next. */
  pauseMs: number;
}

export const scrubDefaults: ScrubOptions = { rateBytesPerSec: 16 * 2 ** 20, pauseMs: 3_600_000 };
/** While the worker does not serve, the scrubber looks again this often. */
const notServingRetryMs = 1_000;
/** How often a pass looks again at its targets that did not serve yet. */
const notServingTargetRetryMs = 10_000;

export class Scrubber {
  readonly stats: ScrubStats = { passes: 0, chunks: 0, bytes: 0, found: 0, repaired: 0, unrepaired: 0 };
  private readonly host: ScrubberHost;
  private readonly opts: ScrubOptions;
  private stopped = false;
  private timer: Timer | undefined;
  private wake: (() => void) | undefined;

  constructor(host: ScrubberHost, opts: ScrubOptions) {
    this.host = host;
    this.opts = opts;
  }

  start(): void {
    if (this.opts.rateBytesPerSec <= 0) return;
    void this.run();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.wake?.();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      // A target that does not serve (it resyncs after a restart) is verified once it does, within
      // the pass: else a pass right after a start would verify nothing and sleep for pauseMs.
      // The routing first: without it every target looks free.
      while (!this.host.serving() && !this.stopped) await this.sleep(notServingRetryMs);
      let waiting = this.host.targets();
      const givenUpAt = this.host.clock.now() + this.opts.pauseMs;
      while (waiting.length > 0) {
        const later: typeof waiting = [];
        for (const t of waiting) {
          const me = this.host.routing()?.target(t.targetId);
          // Not in a chain (a free target): nothing to verify its chunks against.
          if (me === undefined || me.chainId === 0) continue;
          if (me.state !== TargetState.Serving) {
            later.push(t);
            continue;
          }
          // The listing is taken once per target: chunks written during the pass wait for the next.
          for (const meta of t.store.list()) {
            if (this.stopped) return;
            while (!this.host.serving() && !this.stopped) await this.sleep(notServingRetryMs);
            const bytes = await this.scrubOne(t.targetId, t.store, meta);
            if (bytes > 0) await this.sleep((bytes / this.opts.rateBytesPerSec) * 1000);
          }
        }
        waiting = later;
        if (waiting.length === 0 || this.stopped) break;
        if (this.host.clock.now() >= givenUpAt) {
          this.host.log?.('warn', `scrub pass ends without targets that did not serve in ${this.opts.pauseMs} ms`, { targets: waiting.map((t) => t.targetId) });
          break;
        }
        await this.sleep(notServingTargetRetryMs);
      }
      if (this.stopped) return;
      this.stats.passes++;
      await this.sleep(this.opts.pauseMs);
    }
  }


  /** Verifies one chunk (and repairs it when damaged); returns the bytes read. */
  private async scrubOne(targetId: number, store: ChunkStore, meta: ChunkMeta): Promise<number> {
    if (meta.commitVersion === 0) return 0;
    const me = this.host.routing()?.target(targetId);
    if (me === undefined || me.state !== TargetState.Serving || me.chainId === 0) return 0;
    let result;
    try {
      result = await store.scrub(meta.id);
    } catch (err) {
      // Removed or replaced meanwhile, or the store closed: nothing to judge.
      this.host.log?.('info', `scrub of chunk ${meta.id.inodeId}:${meta.id.index} skipped: ${(err as Error).message}`, { target: targetId });
      return 0;
    }
    this.stats.chunks++;
    this.stats.bytes += meta.lengthBytes;
    if (result.ok) return meta.lengthBytes;
    this.stats.found++;
    this.host.log?.('warn', 'scrub found a damaged chunk', { target: targetId, chunk: `${meta.id.inodeId}:${meta.id.index}`, problem: result.error.message });
    try {
      await this.host.replica.lock.with(chunkLockKey(targetId, meta.id), async () => {
        const now = store.get(meta.id);
        // A write may have replaced the damaged version while we waited for the lock.
        if (now?.corrupt === undefined) return;
        await this.host.replica.repairFromPeer(me, me.chainId, now, store);
      });
      this.stats.repaired++;
    } catch (err) {
      this.stats.unrepaired++;
      this.host.log?.('error', 'scrub could not repair a damaged chunk', { target: targetId, chunk: `${meta.id.inodeId}:${meta.id.index}`, err: (err as Error).message });
    }
    return meta.lengthBytes;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = this.host.clock.after(Math.max(1, ms), resolve);
    });
  }
}
