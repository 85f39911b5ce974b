// Real masters and workers for the data-path process tests: `cairn master` and `cairn worker` child
// processes of one ProcessGroup (killed and removed when the test ends, their log tails printed when
// it fails), clients for the masters and workers, and what the tests ask of the cluster: the routing,
// each worker's /metrics, whether every chain's replicas agree.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DataClient } from '../../src/client/data-client.ts';
import { getFile } from '../../src/client/files.ts';
import { LocalReads } from '../../src/client/local-reads.ts';
import { hostIdentity } from '../../src/io/host-id.ts';
import type { MasterClient } from '../../src/client/master-client.ts';
import { systemClock } from '../../src/io/system-clock.ts';
import type { RoutingInfo } from '../../src/meta/index.ts';
import { RpcClient } from '../../src/rpc/index.ts';
import { chunkFileName } from '../../src/worker/chunk-file.ts';
import { workerFrameBytesMax } from '../../src/worker/process.ts';
import { logTail, MasterCluster, ProcessGroup, waitFor, type Placement } from './process-cluster.ts';

const mainScript = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
/** How long a worker process gets to log that it started (it registers first; a restart waits out its old instance). */
const workerStartMs = 30_000;

export interface WorkerProc {
  id: number;
  targets: string[];
  log: string;
  child: ChildProcess | undefined;
  /** Its RPC and HTTP addresses, from its 'worker started' log line. */
  address: string;
  http: string;
}

export interface DataClusterOptions {
  masters: number;
  workers: number;
  targetsPerWorker: number;
  /** Worker heartbeat interval and offline timeout the masters use. */
  heartbeatMs: number;
  offlineTimeoutMs: number;
  /** Where each process runs (test/chaos/netlab.ts); 127.0.0.1 here when absent. */
  placement?: Placement;
  /** Runs before the workers first start, e.g. to mount a small file system on a target. */
  prepareTargets?: (workers: ReadonlyMap<number, WorkerProc>) => Promise<void>;
  /** More environment for masters and workers. */
  env?: Record<string, string>;
  /** Run the masters on the ZooKeeper journal at this ensemble, under this cluster id. */
  zookeeper?: { connect: string; clusterId: string };
}

/** One client of the cluster: its own master client (one outstanding mutation each) and data client. */
export interface Client {
  meta: MasterClient;
  data: DataClient;
}

export class DataCluster {
  readonly masters: MasterCluster;
  readonly workers = new Map<number, WorkerProc>();
  private readonly procs: ProcessGroup;
  private readonly dataClients: DataClient[] = [];
  private routingClient: MasterClient | undefined;

  private readonly env: Record<string, string>;

  private constructor(procs: ProcessGroup, masters: MasterCluster, env: Record<string, string>) {
    this.procs = procs;
    this.masters = masters;
    this.env = env;
  }

  /** Starts the masters, then the workers, and waits until every chain is full and serving. */
  static async start(t: TestContext, opts: DataClusterOptions): Promise<DataCluster> {
    const procs = await ProcessGroup.create('cairn-data');
    let cluster: DataCluster | undefined;
    t.after(async () => {
      cluster?.closeClients();
      const failed = (t as unknown as { passed?: boolean }).passed === false;
      if (failed && cluster !== undefined) console.error(await cluster.logTails());
      await procs.close('SIGKILL');
    });
    const env = { CAIRN_HEARTBEAT_MS: String(opts.heartbeatMs), CAIRN_OFFLINE_TIMEOUT_MS: String(opts.offlineTimeoutMs), CAIRN_LOG_LEVEL: 'info', ...opts.env };
    const masters = await MasterCluster.start(procs, { count: opts.masters, env, deadlineMs: 30_000, placement: opts.placement, zookeeper: opts.zookeeper });
    cluster = new DataCluster(procs, masters, opts.env ?? {});
    for (let id = 1; id <= opts.workers; id++) {
      const targets = Array.from({ length: opts.targetsPerWorker }, (_, i) => path.join(procs.root, `worker-${id}`, `target-${i + 1}`));
      cluster.workers.set(id, { id, targets, log: path.join(procs.root, `worker-${id}.log`), child: undefined, address: '', http: '' });
    }
    await opts.prepareTargets?.(cluster.workers);
    await Promise.all([...cluster.workers.keys()].map((id) => cluster!.startWorker(id)));
    const chains = Math.floor((opts.workers * opts.targetsPerWorker) / 3);
    await waitFor(async () => {
      const r = await cluster!.routing();
      return r.chains.length === chains && (await cluster!.allServing());
    }, `${chains} chains, every target serving`, 30_000, () => cluster!.logTails());
    return cluster;
  }

  /** A worker the cluster did not start with, on new, empty target directories. */
  async addWorker(id: number, targetsPerWorker: number): Promise<WorkerProc> {
    assert.ok(!this.workers.has(id), `worker ${id} exists`);
    const targets = Array.from({ length: targetsPerWorker }, (_, i) => path.join(this.procs.root, `worker-${id}`, `target-${i + 1}`));
    this.workers.set(id, { id, targets, log: path.join(this.procs.root, `worker-${id}.log`), child: undefined, address: '', http: '' });
    return this.startWorker(id);
  }

  /** Whether every chain member serves (free targets, in no chain, do not count). */
  async membersServing(): Promise<boolean> {
    const r = await this.routing();
    return r.chains.length > 0 && r.targets.every((t) => t.chainId === 0 || t.state === 'serving');
  }

  /** Starts (or restarts, on the same target directories) worker `id` and waits for its start line. */
  async startWorker(id: number): Promise<WorkerProc> {
    const w = this.worker(id);
    const from = await stat(w.log).then((s) => s.size, () => 0);
    const host = this.masters.placement?.host('worker', id) ?? '127.0.0.1';
    const args = [mainScript, 'worker', '--id', String(id), '--listen', `${host}:0`, '--http', `${host}:0`, '--masters', this.masters.addresses().join(',')];
    for (const dir of w.targets) args.push('--target', dir);
    const env = { CAIRN_SECRET: this.masters.secret, CAIRN_LOG_LEVEL: 'info', ...this.env };
    const prefix = this.masters.placement?.prefix('worker', id) ?? [];
    const child = prefix.length === 0 ? this.procs.spawn(process.execPath, args, w.log, env) : this.procs.spawn(prefix[0], [...prefix.slice(1), process.execPath, ...args], w.log, env);
    w.child = child;
    let started: { address: string; http: string } | undefined;
    await waitFor(async () => {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`worker ${id} exited while starting:\n${await logTail(`worker ${id}`, w.log, 20)}`);
      started = startLine(await readFile(w.log, 'utf8').then((s) => s.slice(from), () => ''));
      return started !== undefined;
    }, `worker ${id} to start`, workerStartMs, () => logTail(`worker ${id}`, w.log, 20));
    w.address = started!.address;
    w.http = started!.http;
    return w;
  }

  /** kill -9 by PID: nothing is flushed, no goodbye to the masters. */
  async killWorker(id: number): Promise<void> {
    const w = this.worker(id);
    if (w.child !== undefined) await this.procs.stop(w.child, 'SIGKILL');
    w.child = undefined;
  }

  worker(id: number): WorkerProc {
    const w = this.workers.get(id);
    if (w === undefined) throw new Error(`no worker ${id}`);
    return w;
  }

  /** A new client, closed when the test ends; with `localReads`, it reads chunk files on this machine itself (client/local-reads.ts). */
  client(opts: { localReads?: boolean } = {}): Client {
    const meta = this.masters.client({ deadlineMs: 60_000 });
    const local = opts.localReads === true ? { localReads: new LocalReads({ hostId: hostIdentity() }) } : {};
    const data = new DataClient({ master: meta, connect: (a) => new RpcClient(a, { secret: this.masters.secret, frameBytesMax: workerFrameBytesMax }), clock: systemClock, ...local });
    this.dataClients.push(data);
    return { meta, data };
  }

  async routing(): Promise<RoutingInfo> {
    this.routingClient ??= this.masters.client({ deadlineMs: 30_000 });
    return this.routingClient.query<RoutingInfo>('cluster.routing', {});
  }

  async allServing(): Promise<boolean> {
    const r = await this.routing();
    return r.targets.length > 0 && r.targets.every((t) => t.state === 'serving');
  }

  /** A worker's Prometheus metrics as text. */
  async metrics(id: number): Promise<string> {
    return (await fetch(`http://${this.worker(id).http}/metrics`)).text();
  }

  /** This cluster's chains as replicasDiffer (below) sees them. */
  async replicasDiffer(): Promise<string | undefined> {
    return replicasDiffer(await this.routing(), this.masters.secret);
  }

  async logTails(lines = 30): Promise<string> {
    const workers = await Promise.all([...this.workers.values()].map((w) => logTail(`worker ${w.id}`, w.log, lines)));
    return `${await this.masters.logTails(lines)}\n${workers.join('\n')}`;
  }

  closeClients(): void {
    for (const d of this.dataClients) d.close();
    this.dataClients.length = 0;
    this.routingClient = undefined;
    this.masters.closeClients();
  }
}

/** The addresses in a worker's 'worker started' log line (pino JSON), if the text has one. */
function startLine(text: string): { address: string; http: string } | undefined {
  for (const line of text.split('\n')) {
    if (!line.includes('"msg":"worker started"')) continue;
    const rec = JSON.parse(line) as { address?: string; http?: string };
    if (typeof rec.address === 'string' && typeof rec.http === 'string') return { address: rec.address, http: rec.http };
  }
  return undefined;
}

/**
 * Undefined when every chain's members hold the same chunks, versions, lengths and checksums with
 * nothing pending (what resync must reach, and a quiet chain must show); else what differs.
 */
export async function replicasDiffer(routing: RoutingInfo, secret: string | undefined): Promise<string | undefined> {
  const address = new Map(routing.workers.map((w) => [w.workerId, w.address]));
  for (const chain of routing.chains) {
    const lists: string[] = [];
    for (const targetId of chain.targetIds) {
      const target = routing.targets.find((x) => x.targetId === targetId)!;
      if (target.state !== 'serving') return `chain ${chain.chainId}: target ${targetId} is ${target.state}`;
      const conn = new RpcClient(address.get(target.workerId)!, { secret });
      try {
        const chunks: unknown[] = [];
        let after: { inodeId: number; index: number } | undefined;
        for (;;) {
          const r = await conn.call<{ chunks: { inodeId: number; index: number; pending: boolean }[]; more: boolean }>('chunk.syncList', { chainId: chain.chainId, chainVersion: chain.version, targetId, limit: 4096, ...(after === undefined ? {} : { after }) });
          chunks.push(...r.body.chunks);
          const pending = r.body.chunks.find((c) => c.pending);
          if (pending !== undefined) return `chain ${chain.chainId}: target ${targetId} holds chunk ${pending.inodeId}:${pending.index} pending`;
          if (!r.body.more || r.body.chunks.length === 0) break;
          const last = r.body.chunks[r.body.chunks.length - 1];
          after = { inodeId: last.inodeId, index: last.index };
        }
        lists.push(JSON.stringify(chunks));
      } catch (err) {
        return `chain ${chain.chainId}: target ${targetId}: ${(err as Error).message}`;
      } finally {
        conn.close();
      }
    }
    if (new Set(lists).size !== 1) return `chain ${chain.chainId}: members ${chain.targetIds.join(', ')} differ (${lists.map((l) => (JSON.parse(l) as unknown[]).length).join(', ')} chunks)`;
  }
  return undefined;
}

/**
 * Flips one byte of the committed file of chunk (inodeId, index) under a target's directory, at
 * `offset` into its data (data starts after the 4 KiB header); returns the file's name.
 */
export async function flipChunkByte(targetPath: string, inodeId: number, index: number, offset: number): Promise<string> {
  const fanout = path.join(targetPath, 'chunks', (inodeId % 256).toString(16).padStart(2, '0'));
  const prefix = chunkFileName({ inodeId, index }, 1, 'chunk').split('.')[0];
  const name = (await readdir(fanout)).find((f) => f.startsWith(`${prefix}.`) && f.endsWith('.chunk'));
  assert.ok(name !== undefined, `chunk ${index} of inode ${inodeId} is stored under ${targetPath}`);
  const file = path.join(fanout, name);
  const stored = await readFile(file);
  stored[4096 + offset] ^= 0x5a;
  await writeFile(file, stored);
  return name;
}

export const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** `buf` in slices of `size` bytes, as a writer's source. */
export async function* pieces(buf: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

/** A whole file, read through the client. */
export async function readAll(c: { meta: MasterClient; data: DataClient }, p: string): Promise<Buffer> {
  const { chunks } = await getFile(c.meta, c.data, p);
  const parts: Buffer[] = [];
  for await (const part of chunks) parts.push(part);
  return Buffer.concat(parts);
}
