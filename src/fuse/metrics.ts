// The FUSE daemon's metrics: operations by type with their latency and result, bytes read and
// written through the mount, and how often the read-ahead answered a read. Operation names are
// fuse-native's (a fixed set), never paths.

import { Counter, Histogram, type Registry } from 'prom-client';
import { counterOf, latencyBuckets } from '../metrics.ts';
import type { CairnFs } from './cairn-fs.ts';
import type { LocalReadStats } from '../client/local-reads.ts';

export interface FuseMetrics {
  /** One operation answered: its name, its answer (a negative errno, else 0 or the bytes of a read or write) and how long it took. */
  op(name: string, answer: number, seconds: number): void;
}

export function fuseMetrics(registry: Registry, fs: CairnFs): FuseMetrics {
  const registers = [registry];
  const ops = new Counter({ name: 'cairn_fuse_operations_total', help: 'FUSE operations answered, by operation (getattr, read, write, create...) and result (ok or error)', labelNames: ['op', 'result'], registers });
  const seconds = new Histogram({ name: 'cairn_fuse_operation_seconds', help: 'how long FUSE operations took in the daemon, by operation', labelNames: ['op'], buckets: latencyBuckets, registers });
  const readBytes = new Counter({ name: 'cairn_fuse_read_bytes_total', help: 'bytes read through the mount', registers });
  const writtenBytes = new Counter({ name: 'cairn_fuse_written_bytes_total', help: 'bytes written through the mount', registers });
  const stat = (name: string, help: string, read: () => number): void => counterOf(registry, name, help, read);
  stat('cairn_fuse_read_ahead_hits_total', 'reads answered from chunks fetched ahead', () => fs.readStats.readAheadHits);
  stat('cairn_fuse_read_ahead_misses_total', 'reads of files with read-ahead that went to the workers', () => fs.readStats.readAheadMisses);
  const local = (): LocalReadStats => fs.localReadStats() ?? { reads: 0, bytes: 0, opened: 0, declined: 0, damaged: 0 };
  stat('cairn_fuse_local_reads_total', 'chunk reads answered from chunk files on this machine (local reads), not by a worker', () => local().reads);
  stat('cairn_fuse_local_read_bytes_total', 'bytes of local reads', () => local().bytes);
  stat('cairn_fuse_local_reads_declined_total', 'chunk reads that went to a worker instead of a local file (not on this machine, a write in flight, absent or damaged)', () => local().declined);
  stat('cairn_fuse_local_reads_damaged_total', 'local reads whose blocks failed their CRC32C (read through the chain instead, where the worker reports the damage)', () => local().damaged);
  stat('cairn_fuse_listings_total', 'directories read with their entries\' attributes after a scan of lookups in them', () => fs.lookupStats.listings);
  stat('cairn_fuse_lookups_listed_total', 'lookups answered from a directory\'s listing rather than by the masters', () => fs.lookupStats.listed);
  stat('cairn_fuse_dirs_held_total', 'directories the mount took to answer creates and unlinks in them itself', () => fs.holds.stats.held);
  stat('cairn_fuse_dirs_given_back_total', 'held directories given back (idle, asked for by another client, or a failure)', () => fs.holds.stats.given);
  stat('cairn_fuse_held_creates_total', 'creates answered in held directories', () => fs.holds.stats.created);
  stat('cairn_fuse_held_creates_by_addon_total', 'of those, creates the addon answered itself, without a trip to JavaScript', () => fs.holds.stats.createdElsewhere);
  stat('cairn_fuse_held_unlinks_total', 'unlinks answered in held directories', () => fs.holds.stats.unlinked);
  stat('cairn_fuse_held_unlinks_by_addon_total', 'of those, unlinks the addon answered itself, without a trip to JavaScript', () => fs.holds.stats.unlinkedElsewhere);
  stat('cairn_fuse_held_batches_total', 'batches of held directories\' changes sent to the masters', () => fs.holds.stats.batches);
  stat('cairn_fuse_held_changes_failed_total', 'answered changes the masters refused or never applied (logged)', () => fs.holds.stats.failed);
  return {
    op(name, answer, secondsTaken) {
      ops.inc({ op: name, result: answer < 0 ? 'error' : 'ok' });
      seconds.observe({ op: name }, secondsTaken);
      if (answer > 0 && name === 'read') readBytes.inc(answer);
      else if (answer > 0 && name === 'write') writtenBytes.inc(answer);
    },
  };
}

type FuseCallback = (code: number, ...rest: unknown[]) => void;

/** The operations, each timed from its call to its callback (always the last argument). */
export function measured(ops: Record<string, unknown>, metrics: FuseMetrics): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(ops)) {
    if (typeof fn !== 'function') {
      out[name] = fn;
      continue;
    }
    out[name] = (...args: unknown[]): void => {
      const startedAt = performance.now();
      const cb = args[args.length - 1] as FuseCallback;
      args[args.length - 1] = (code: number, ...rest: unknown[]): void => {
        metrics.op(name, code, (performance.now() - startedAt) / 1000);
        cb(code, ...rest);
      };
      (fn as (...a: unknown[]) => void)(...args);
    };
  }
  return out;
}
