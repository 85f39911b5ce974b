// A worker's gauges and counters read at scrape time: its targets (public state, capacity, use,
// chunks), the chains they are members of by state, and the bytes read and written since start.
// Labels are per local target (a few disks) and per state, never per chain or chunk; chunk
// operations' counts and latencies are the RPC server's (`cairn_rpc_server_*{method="chunk.read"}`).

import { Counter, Gauge, type Registry } from 'prom-client';
import { counterOf } from '../metrics.ts';
import { fileReadCounts } from '../io/node-disk.ts';
import { TargetState } from '../meta/commands.ts';
import type { Routing } from '../meta/routing.ts';
import type { StorageWorker } from './worker.ts';

export function workerMetrics(registry: Registry, worker: StorageWorker): void {
  const registers = [registry];
  const perTarget = (name: string, help: string, read: (t: { chunks: number; bytesUsed: number; capacityBytes: number }) => number): void => {
    new Gauge({
      name,
      help,
      labelNames: ['target'],
      registers,
      collect() {
        for (const t of worker.targetSpace()) this.set({ target: String(t.targetId) }, read(t));
      },
    });
  };
  perTarget('cairn_worker_target_capacity_bytes', 'size of the file system each target lives on (as last read)', (t) => t.capacityBytes);
  perTarget('cairn_worker_target_used_bytes', 'bytes of chunks stored on each target', (t) => t.bytesUsed);
  perTarget('cairn_worker_target_chunks', 'chunks stored on each target', (t) => t.chunks);
  new Gauge({
    name: 'cairn_worker_target_state',
    help: "1 for each local target's public state in the routing this worker follows (serving, syncing, waiting, lastsrv, offline; 'none' before it has routing or a place in it), 0 for the others",
    labelNames: ['target', 'state'],
    registers,
    collect() {
      const routing = worker.routing;
      for (const t of worker.localTargets()) {
        const now = routing?.target(t.targetId)?.state ?? 'none';
        for (const state of [...Object.values(TargetState), 'none']) this.set({ target: String(t.targetId), state }, state === now ? 1 : 0);
      }
    },
  });
  new Gauge({
    name: 'cairn_worker_chains',
    help: 'chains a local target is a member of, by state: healthy (every member serving), degraded (one serving, another not), unavailable (none serving)',
    labelNames: ['state'],
    registers,
    collect() {
      const counts = { healthy: 0, degraded: 0, unavailable: 0 };
      const routing = worker.routing;
      if (routing !== undefined) for (const chainId of localChains(routing, worker)) counts[chainState(routing, chainId)]++;
      for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
    },
  });
  counterOf(registry, 'cairn_worker_read_bytes_total', 'chunk bytes this worker answered to reads, since it started', () => worker.replica.traffic.readBytes);
  new Counter({
    name: 'cairn_worker_disk_reads_total',
    help: "reads of open chunk files by this worker process since it started, by where they were answered: page_cache (copied on the event loop, src/io/page-cache.ts) or io_threads (libuv's I/O threads: not cached, larger than 256 KiB, or no addon)",
    labelNames: ['from'],
    registers,
    collect() {
      this.reset();
      this.inc({ from: 'page_cache' }, fileReadCounts.pageCache);
      this.inc({ from: 'io_threads' }, fileReadCounts.ioThreads);
    },
  });
  new Counter({
    name: 'cairn_worker_written_bytes_total',
    help: "chunk bytes this worker's targets stored, since it started, by how they came: client (a write at the chain's head), forward (along the chain), whole (whole chunks: resyncs filling a target here, or writes forwarded to it while it syncs)",
    labelNames: ['role'],
    registers,
    collect() {
      this.reset();
      for (const [role, n] of Object.entries(worker.replica.traffic.writtenBytes)) this.inc({ role }, n);
    },
  });
}

/** The chains this worker's targets are members of. */
function localChains(routing: Routing, worker: StorageWorker): Set<number> {
  const chains = new Set<number>();
  for (const t of worker.localTargets()) {
    const chainId = routing.target(t.targetId)?.chainId ?? 0;
    if (chainId !== 0) chains.add(chainId);
  }
  return chains;
}

function chainState(routing: Routing, chainId: number): 'healthy' | 'degraded' | 'unavailable' {
  const members = routing.chain(chainId)?.targetIds ?? [];
  const serving = members.filter((id) => routing.target(id)?.state === TargetState.Serving).length;
  if (serving === 0) return 'unavailable';
  return serving === members.length ? 'healthy' : 'degraded';
}
