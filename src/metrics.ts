// What every cairn process shares for /metrics: a registry with the process and Node.js metrics
// (memory, CPU, event-loop delay) under their standard names, bounded label values, histogram
// buckets, and the RPC metrics (calls and latencies by method) that servers and clients feed.
// Which process a series comes from is the scrape's `job` label (deploy/prometheus.yml), not a
// prefix: dashboards then use one name (`process_resident_memory_bytes`) for every kind of process.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RpcMetrics } from './rpc/index.ts';

/** Latency buckets in seconds, 100 µs to 10 s: RPC calls, metadata operations, fsyncs, S3 and FUSE requests. */
export const latencyBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Buckets for durations of long work (checkpoints, snapshots), in seconds. */
export const longDurationBuckets = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300];
/** Buckets of entries per journal batch. */
export const batchBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/** A registry with the process and Node.js default metrics (process_*, nodejs_*; event-loop lag included). */
export function processRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** A gauge set at each scrape to what `read` says. */
export function gaugeOf(registry: Registry, name: string, help: string, read: () => number): void {
  new Gauge({ name, help, registers: [registry], collect() { this.set(read()); } });
}

/**
 * A counter whose count is kept elsewhere (an RPC server, a scrubber, a replica) and only grows: at
 * each scrape it is set to that count.
 */
export function counterOf(registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({ name, help, registers: [registry], collect() { this.reset(); this.inc(read()); } });
}

/** Distinct values a label takes from data a peer controls (error codes), beyond which they count as 'other'. */
export const labelValuesMax = 64;

/**
 * Label values from a set that is small in practice but not closed (error codes, which a peer can
 * relay from another): the first `max` distinct values are kept, later ones become 'other', so a
 * hostile peer cannot grow a metric without bound.
 */
export class BoundedLabel {
  private readonly seen = new Set<string>();
  private readonly max: number;

  constructor(max = labelValuesMax) {
    this.max = max;
  }

  of(value: string): string {
    if (this.seen.has(value)) return value;
    if (this.seen.size >= this.max) return 'other';
    this.seen.add(value);
    return value;
  }
}

/**
 * The RPC metrics of one process, as server (`cairn_rpc_server_*`) and as client
 * (`cairn_rpc_client_*`). Methods are the registered handlers' (the server maps an unknown one to
 * 'unknown' before it gets here) or the process's own calls; codes are 'ok' or the error code.
 */
export function rpcMetrics(registry: Registry): { server: RpcMetrics; client: RpcMetrics } {
  const make = (side: 'server' | 'client', who: string): RpcMetrics => {
    const calls = new Counter({ name: `cairn_rpc_${side}_calls_total`, help: `RPC calls ${who}, by method and result code ('ok' or the error code)`, labelNames: ['method', 'code'], registers: [registry] });
    const seconds = new Histogram({ name: `cairn_rpc_${side}_call_seconds`, help: `how long RPC calls ${who} took, by method`, labelNames: ['method'], buckets: latencyBuckets, registers: [registry] });
    const codes = new BoundedLabel();
    return {
      call(method, code, secondsTaken) {
        calls.inc({ method, code: codes.of(code) });
        if (secondsTaken !== undefined) seconds.observe({ method }, secondsTaken);
      },
    };
  };
  return { server: make('server', 'served (one-way messages counted, not timed)'), client: make('client', 'made to other processes') };
}
