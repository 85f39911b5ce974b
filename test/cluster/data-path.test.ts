// The data path end to end in one process over real TCP and disks: a master (its cluster manager
// builds chains from the workers' targets), three workers with two targets each, and a client that
// puts files and reads them back from the replicas.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { crc32c } from '@node-rs/crc32';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { DataClient } from '../../src/client/data-client.ts';
import { FileReader, FileWriter } from '../../src/client/file-io.ts';
import { fileRef, putFile, truncateFile } from '../../src/client/files.ts';
import { MasterClient } from '../../src/client/master-client.ts';
import type { Disk } from '../../src/io/disk.ts';
import { nodeDisk } from '../../src/io/node-disk.ts';
import { systemClock } from '../../src/io/system-clock.ts';
import { createLogger } from '../../src/log.ts';
import { startMaster, type Master } from '../../src/master/index.ts';
import { rootCaller, type ChainInfo, type InodeAttr, type RoutingInfo, type SessionValue } from '../../src/meta/index.ts';
import { Routing } from '../../src/meta/routing.ts';
import { chainOfChunk, fileChains } from '../../src/placement/index.ts';
import { RpcClient } from '../../src/rpc/index.ts';
import { WorkerErrorCode } from '../../src/worker/errors.ts';
import { startWorkerProcess, workerFrameBytesMax, type WorkerProcess } from '../../src/worker/process.ts';
import { freePort } from '../../src/cli/local.ts';
import type { WorkerHealth } from '../../src/worker/protocol.ts';
import type { ScrubOptions } from '../../src/worker/scrubber.ts';
import { decodeServed, servedFileName, type ServedRecord } from '../../src/worker/served-record.ts';
import { flipChunkByte, pieces, readAll, replicasDiffer, sha } from './data-cluster.ts';
import { waitFor } from './harness.ts';

const secret = randomBytes(16).toString('hex');
const timing = { heartbeatMs: 200, offlineTimeoutMs: 1_000 };

interface Cluster {
  master: Master;
  workers: WorkerProcess[];
  meta: MasterClient;
  data: DataClient;
  dir: string;
}

async function startCluster(t: TestContext, workers = 3, targetsPerWorker = 2, scrub?: Partial<ScrubOptions>, gcDelayMs = 0, disks: ReadonlyMap<number, Disk> = new Map(), masterDisk?: Disk): Promise<Cluster> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-data-'));
  const log = createLogger({ test: 'data-path' }, 'warn');
  const listen = `127.0.0.1:${await freePort()}`;
  const master = await startMaster({ id: 1, dir: path.join(dir, 'master'), listen, peers: new Map([[1, listen]]), secret, log, replication: 3, timing, tickMs: 10, gcDelayMs, ...(masterDisk === undefined ? {} : { journalDisk: masterDisk }) });
  const started: WorkerProcess[] = [];
  t.after(async () => {
    for (const w of started) await w.stop().catch(() => undefined);
    await master.stop();
    await rm(dir, { recursive: true, force: true });
  });
  for (let w = 1; w <= workers; w++) {
    const targets = Array.from({ length: targetsPerWorker }, (_, i) => path.join(dir, `worker-${w}`, `t${i}`));
    started.push(await startWorkerProcess({ id: w, listen: '127.0.0.1:0', masters: [master.address], targets, secret, log, syncPageChunks: 3, resyncLostRetryMs: 300, ...(scrub === undefined ? {} : { scrub }), ...(disks.has(w) ? { disk: disks.get(w)! } : {}) }));
  }
  const meta = new MasterClient({ masters: [master.address], secret, caller: rootCaller });
  const data = new DataClient({ master: meta, connect: (a) => new RpcClient(a, { secret, frameBytesMax: workerFrameBytesMax }), clock: systemClock });
  t.after(() => {
    data.close();
    meta.close();
  });
  await waitFor(async () => (await meta.query<RoutingInfo>('cluster.routing', {})).chains.length === (workers * targetsPerWorker) / 3, 'chains', 20_000);
  return { master, workers: started, meta, data, dir };
}

test('files of many sizes go in and come back the same, from every replica', async (t) => {
  const c = await startCluster(t);
  const routing = await c.meta.query<RoutingInfo>('cluster.routing', {});
  assert.equal(routing.chains.length, 2);
  assert.ok(routing.chains.every((ch: ChainInfo) => ch.targetIds.length === 3));
  const chunk = 64 * 1024;
  const sizes = [0, 1, chunk - 1, chunk, chunk + 1, 5 * chunk + 17, 3_000_000];
  for (const size of sizes) {
    const body = randomBytes(size);
    const attr = await putFile(c.meta, c.data, `/f${size}`, pieces(body, 100_000), { layout: { chunkSizeBytes: chunk, stripeWidth: 2 } });
    assert.equal(attr.sizeBytes, size);
    assert.equal(sha(await readAll(c, `/f${size}`)), sha(body), `file of ${size} bytes`);
  }
});

/** Every chain's members hold the same chunks, versions and checksums (what resync must reach). */
async function replicasAgree(c: Cluster): Promise<string | undefined> {
  return replicasDiffer(await c.meta.query<RoutingInfo>('cluster.routing', {}), secret);
}

test('a worker that stops during writes: writes go on, it returns, resyncs, and every replica matches', async (t) => {
  const c = await startCluster(t);
  const chunk = 64 * 1024;
  const files = new Map<string, Buffer>();
  const put = async (name: string): Promise<void> => {
    const body = randomBytes(chunk * 3 + 100);
    await putFile(c.meta, c.data, name, pieces(body, 50_000), { layout: { chunkSizeBytes: chunk, stripeWidth: 2 } });
    files.set(name, body);
  };
  for (let i = 0; i < 5; i++) await put(`/before-${i}`);
  const victim = c.workers[1];
  const targets = victim.worker.localTargets().map((x) => x.dir);
  await victim.stop();
  // Writes wait for the manager to take the dead worker's targets out, then go on with two replicas.
  for (let i = 0; i < 5; i++) await put(`/during-${i}`);
  const routing = await c.meta.query<RoutingInfo>('cluster.routing', {});
  assert.ok(routing.targets.filter((x) => x.workerId === 2).every((x) => x.state === 'offline' || x.state === 'lastsrv'), 'its targets are out');
  const whileAway = await servedRecords(c);
  const log = createLogger({ test: 'data-path' }, 'warn');
  // Small resync pages, so that the listing of the returning target takes many.
  c.workers[1] = await startWorkerProcess({ id: 2, listen: '127.0.0.1:0', masters: [c.master.address], targets, secret, log, syncPageChunks: 3 });
  await waitFor(async () => (await replicasAgree(c)) === undefined, 'resync', 20_000, async () => (await replicasAgree(c)) ?? '');
  for (const [name, body] of files) assert.equal(sha(await readAll(c, name)), sha(body), name);

  // Each target's directory says where it last served (a restore chooses sources by it): while the
  // worker was away, the members that served on recorded the changes; its own records are older.
  const unrecorded = async (): Promise<string | undefined> => {
    const now = await c.meta.query<RoutingInfo>('cluster.routing', {});
    for (const [targetId, r] of await servedRecords(c)) {
      const member = now.targets.find((x) => x.targetId === targetId)!;
      const chain = now.chains.find((ch) => ch.chainId === member.chainId)!;
      if (member.state !== 'serving' || r.chainId !== chain.chainId || r.chainVersion !== chain.version || r.routingVersion > now.routingVersion) return `target ${targetId} (${member.state}, chain ${chain.chainId} at ${chain.version}) recorded ${JSON.stringify(r)}`;
    }
    return undefined;
  };
  await waitFor(async () => (await unrecorded()) === undefined, 'every member serving, each recording its chain\'s version', 10_000, async () => (await unrecorded()) ?? '');
  for (const id of routing.targets.filter((x) => x.workerId === 2).map((x) => x.targetId)) {
    const chainId = routing.targets.find((x) => x.targetId === id)!.chainId;
    for (const other of routing.targets.filter((x) => x.chainId === chainId && x.workerId !== 2)) {
      assert.ok(whileAway.get(other.targetId)!.routingVersion > whileAway.get(id)!.routingVersion, `target ${other.targetId} served through a change target ${id} missed`);
    }
  }
});

test('a target that cannot record where it serves (its disk full or failing) leaves the chain instead of serving; it returns once it can', async (t) => {
  const c = await startCluster(t);
  const chunk = 64 * 1024;
  const body = randomBytes(3 * chunk);
  await putFile(c.meta, c.data, '/before', pieces(body, chunk), { layout: { chunkSizeBytes: chunk, stripeWidth: 2 } });
  const routing = await c.meta.query<RoutingInfo>('cluster.routing', {});
  // A target of worker 1 whose record cannot be replaced: a non-empty directory sits where its temp file goes.
  const stuck = c.workers[0].worker.localTargets()[0];
  const obstacle = path.join(stuck.dir, `${servedFileName}.tmp`);
  await mkdir(path.join(obstacle, 'x'), { recursive: true });
  // A change of its chain: worker 2 stops, so the serving members must record the new version.
  const chainId = routing.targets.find((x) => x.targetId === stuck.targetId)!.chainId;
  await c.workers[1].stop();
  const stateOf = async (id: number): Promise<string> => (await c.meta.query<RoutingInfo>('cluster.routing', {})).targets.find((x) => x.targetId === id)!.state;
  await waitFor(async () => (await stateOf(stuck.targetId)) !== 'serving', `target ${stuck.targetId} out of serving`, 10_000);
  const members = (await c.meta.query<RoutingInfo>('cluster.routing', {})).chains.find((ch) => ch.chainId === chainId)!.targetIds;
  assert.ok((await Promise.all(members.map(stateOf))).includes('serving'), 'the chain serves on from its third member');
  await putFile(c.meta, c.data, '/during', pieces(body, chunk), { layout: { chunkSizeBytes: chunk, stripeWidth: 2 } });
  const chainNow = (await c.meta.query<RoutingInfo>('cluster.routing', {})).chains.find((ch) => ch.chainId === chainId)!;
  assert.ok((await servedRecords(c, [0])).get(stuck.targetId)!.chainVersion < chainNow.version, 'its record is of a version it served at, before the change');
  // The disk can take the record again: the target resyncs and serves, with its record.
  await rm(obstacle, { recursive: true });
  await waitFor(async () => (await stateOf(stuck.targetId)) === 'serving', `target ${stuck.targetId} serving again`, 20_000);
  for (const name of ['/before', '/during']) assert.equal(sha(await readAll(c, name)), sha(body), name);
});

test('a target whose disk is too full to record where it serves stays out of its chain until it has room, instead of rejoining and failing again', async (t) => {
  // Worker 1's disk: while full, its served record cannot be written (ENOSPC) and it shows no free space.
  const full = { on: false };
  const disk: Disk = {
    ...nodeDisk,
    open: (file, mode) => (full.on && mode === 'create' && path.basename(file).startsWith(servedFileName) ? Promise.reject(Object.assign(new Error(`ENOSPC: no space left on device, open '${file}'`), { code: 'ENOSPC' })) : nodeDisk.open(file, mode)),
    statfs: async (dir) => ({ ...(await nodeDisk.statfs(dir)), ...(full.on ? { bytesFree: 0 } : {}) }),
  };
  const c = await startCluster(t, 3, 2, undefined, 0, new Map([[1, disk]]));
  const target = c.workers[0].worker.localTargets()[0].targetId;
  const stateOf = async (): Promise<string> => (await c.meta.query<RoutingInfo>('cluster.routing', {})).targets.find((x) => x.targetId === target)!.state;
  full.on = true;
  // A change of its chain: the serving members must record the new version; this one cannot.
  await c.workers[1].stop();
  await waitFor(async () => (await stateOf()) !== 'serving', `target ${target} out of serving`, 10_000);
  // Before, it rejoined, resynced (nothing to send), was made serving, failed to record it, and so on every few seconds.
  const seen = new Set<string>();
  for (const until = Date.now() + 8_000; Date.now() < until; ) {
    seen.add(await stateOf());
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(!seen.has('serving') && !seen.has('syncing'), `while full it was ${[...seen].join(', ')}`);
  full.on = false;
  await waitFor(async () => (await stateOf()) === 'serving', `target ${target} serving again once it has room`, 30_000);
});

/** The real disk for worker `w`, except that while `full.worker` is `w` no chunk file can be made there (ENOSPC, as a full disk answers) and it shows no free space. */
function fillableDisk(w: number, full: { worker: number }): Disk {
  const chunks = `${path.sep}chunks${path.sep}`;
  const refused = (file: string, mode: string): boolean => full.worker === w && mode === 'create' && file.includes(chunks);
  const noSpace = (file: string): Promise<never> => Promise.reject(Object.assign(new Error(`ENOSPC: no space left on device, open '${file}'`), { code: 'ENOSPC' }));
  const direct = nodeDisk.directIo;
  return {
    ...nodeDisk,
    open: (file, mode) => (refused(file, mode) ? noSpace(file) : nodeDisk.open(file, mode)),
    // Chunk files written with direct I/O are made here (docs/chunk-store.md).
    ...(direct === undefined ? {} : { directIo: { ...direct, create: (file: string) => (refused(file, 'create') ? noSpace(file) : direct.create(file)) } }),
    statfs: async (dir) => {
      const space = await nodeDisk.statfs(dir);
      return full.worker === w ? { ...space, bytesFree: 0 } : space;
    },
  };
}

/** A data client of `c` that retries for two minutes: failures that come sooner were not waited out. */
function patientClient(t: TestContext, c: Cluster): DataClient {
  const data = new DataClient({ master: c.meta, connect: (a) => new RpcClient(a, { secret, frameBytesMax: workerFrameBytesMax }), clock: systemClock, retryDeadlineMs: 120_000 });
  t.after(() => data.close());
  return data;
}

test('a full target, head or tail of its chain: a write fails with CAIRN_TARGET_FULL (ENOSPC) within seconds, not after the retry deadline, and goes through once there is space', async (t) => {
  const full = { worker: 0 };
  const c = await startCluster(t, 3, 2, undefined, 0, new Map([1, 2, 3].map((w) => [w, fillableDisk(w, full)])));
  const data = patientClient(t, c);
  const chunk = 64 * 1024;
  const body = randomBytes(4 * chunk);
  const layout = { chunkSizeBytes: chunk, stripeWidth: 2 };
  // A file to write into, and a chunk of it on the first chain.
  const attr = await putFile(c.meta, data, '/full', pieces(body.subarray(0, 10), chunk), { layout });
  const routing = await c.meta.query<RoutingInfo>('cluster.routing', {});
  const file = attr.layout!;
  const stripe = fileChains(new Routing(routing).tableChains(file.chainTableId, file.chainTableVersion)!, file.stripeWidth, file.shuffleSeed);
  const chain = routing.chains.find((ch) => ch.chainId === stripe[0])!;
  const index = Array.from({ length: 100 }, (_, i) => i).find((i) => chainOfChunk(stripe, i) === chain.chainId)!;
  const workerOf = (targetId: number): number => routing.targets.find((x) => x.targetId === targetId)!.workerId;
  // The head refuses the write itself; a full tail refuses the head's forward.
  for (const [where, targetId] of [['head', chain.targetIds[0]], ['tail', chain.targetIds[chain.targetIds.length - 1]]] as const) {
    full.worker = workerOf(targetId);
    const started = Date.now();
    await assert.rejects(
      data.writeChunk(file, attr.inodeId, index, 0, body.subarray(0, chunk)),
      (err: Error & { code?: string }) => err.code === WorkerErrorCode.TargetFull && /full/.test(err.message),
    );
    const took = Date.now() - started;
    t.diagnostic(`a full ${where} (worker ${full.worker}): refused after ${took} ms`);
    assert.ok(took < 30_000, `refused after ${took} ms, the retry deadline is 120 s`);
  }
  // A put that fails so leaves nothing behind: its temporary file goes, and garbage collection
  // finds every chunk its writer touched (before, they stayed on the workers, quarantined).
  await assert.rejects(putFile(c.meta, data, '/failed', pieces(body, chunk), { layout }), { code: WorkerErrorCode.TargetFull });
  full.worker = 0;
  const stray = async (): Promise<string[]> => (await chunkInodes(c)).filter((id) => id !== attr.inodeId).map(String);
  await waitFor(async () => (await stray()).length === 0, 'the failed put\'s chunks to be collected', 20_000, async () => `chunks of inodes ${(await stray()).join(', ')}`);
  await putFile(c.meta, data, '/after', pieces(body, chunk), { layout });
  assert.equal(sha(await readAll({ meta: c.meta, data }, '/after')), sha(body));
});

test('a syncing target whose disk is full leaves its chain: writes go on without it (they failed with ENOSPC after the forward deadline), and it returns once there is room', async (t) => {
  const full = { worker: 0 };
  const c = await startCluster(t, 3, 2, undefined, 0, new Map([1, 2, 3].map((w) => [w, fillableDisk(w, full)])));
  const data = patientClient(t, c);
  const chunk = 64 * 1024;
  const layout = { chunkSizeBytes: chunk, stripeWidth: 2 };
  const routing = await c.meta.query<RoutingInfo>('cluster.routing', {});
  const chain = routing.chains[0];
  const returning = chain.targetIds[chain.targetIds.length - 1];
  const stateOf = async (id: number): Promise<string> => (await c.meta.query<RoutingInfo>('cluster.routing', {})).targets.find((x) => x.targetId === id)!.state;
  const workerId = routing.targets.find((x) => x.targetId === returning)!.workerId;
  const at = c.workers.findIndex((w) => w.worker.opts.id === workerId);
  const dirs = c.workers[at].worker.localTargets().map((x) => x.dir);
  await c.workers[at].stop();
  await waitFor(async () => (await stateOf(returning)) === 'offline', `target ${returning} offline`, 20_000);
  const awayBody = randomBytes(4 * chunk);
  await putFile(c.meta, data, '/away', pieces(awayBody, chunk), { layout });
  // It comes back with a full disk: its resync cannot send it a chunk, nor can a write's forward.
  full.worker = workerId;
  const log = createLogger({ test: 'data-path' }, 'silent');
  c.workers[at] = await startWorkerProcess({ id: workerId, listen: '127.0.0.1:0', masters: [c.master.address], targets: dirs, secret, log, syncPageChunks: 3, disk: fillableDisk(workerId, full) });
  await waitFor(async () => (await stateOf(returning)) !== 'offline', `target ${returning} back in its chain`, 20_000);
  // Files written now land on every chain, this one too, within seconds.
  const body = randomBytes(4 * chunk);
  const started = Date.now();
  for (let i = 0; i < 3; i++) await putFile(c.meta, data, `/during-${i}`, pieces(body, chunk), { layout });
  const took = Date.now() - started;
  t.diagnostic(`3 files written in ${took} ms while a syncing member's disk was full`);
  assert.ok(took < 8_000, `writes took ${took} ms: held up by the full member (the forward deadline is 10 s)`);
  // Its resync cannot finish either: it leaves the chain (it stayed syncing, its resync failing, for good).
  await waitFor(async () => (await stateOf(returning)) === 'offline', `the full target ${returning} out of its chain`, 10_000);
  // Room again: it resyncs and serves, and every replica agrees.
  full.worker = 0;
  await waitFor(async () => (await stateOf(returning)) === 'serving', `target ${returning} serving once its disk has room`, 30_000);
  await waitFor(async () => (await replicasAgree(c)) === undefined, 'every replica to agree', 20_000, async () => (await replicasAgree(c)) ?? '');
  assert.equal(sha(await readAll({ meta: c.meta, data }, '/away')), sha(awayBody));
  for (let i = 0; i < 3; i++) assert.equal(sha(await readAll({ meta: c.meta, data }, `/during-${i}`)), sha(body));
});

/** The inodes whose chunk files are on the cluster's targets. */
async function chunkInodes(c: Cluster): Promise<number[]> {
  const { readdir } = await import('node:fs/promises');
  const inodes = new Set<number>();
  for (const w of c.workers) {
    for (const target of w.worker.localTargets()) {
      for (const sub of await readdir(path.join(target.dir, 'chunks')).catch(() => [] as string[])) {
        for (const name of await readdir(path.join(target.dir, 'chunks', sub))) inodes.add(Number.parseInt(name.slice(0, 16), 16));
      }
    }
  }
  return [...inodes];
}

test('a chunk damaged on every replica: a read fails at once (CAIRN_CHUNK_LOST, EIO), never after the retry deadline; the file\'s other chunks read, and it can be removed', async (t) => {
  const c = await startCluster(t, 3, 2, { rateBytesPerSec: 0 });
  const data = patientClient(t, c);
  const chunk = 64 * 1024;
  const body = randomBytes(3 * chunk);
  const attr = await putFile(c.meta, c.data, '/rotten', pieces(body, chunk), { layout: { chunkSizeBytes: chunk, stripeWidth: 2 } });
  const routing = await c.meta.query<RoutingInfo>('cluster.routing', {});
  const layout = attr.layout!;
  const stripe = fileChains(new Routing(routing).tableChains(layout.chainTableId, layout.chainTableVersion)!, layout.stripeWidth, layout.shuffleSeed);
  const chain = routing.chains.find((ch) => ch.chainId === chainOfChunk(stripe, 1))!;
  for (const id of chain.targetIds) await flipChunkByte(routing.targets.find((x) => x.targetId === id)!.path, attr.inodeId, 1, 100);
  const reader = new FileReader(data, fileRef(attr, '/rotten'), body.length);
  const started = Date.now();
  await assert.rejects(reader.read(chunk, 10), (err: Error & { code?: string; details?: { errno?: string } }) => err.code === WorkerErrorCode.ChunkLost && err.details?.errno === 'EIO' && /every serving replica/.test(err.message));
  const took = Date.now() - started;
  t.diagnostic(`refused after ${took} ms`);
  assert.ok(took < 30_000, `refused after ${took} ms, the retry deadline is 120 s`);
  assert.ok((await reader.read(0, chunk)).equals(body.subarray(0, chunk)), 'chunk 0 reads');
  assert.ok((await reader.read(2 * chunk, chunk)).equals(body.subarray(2 * chunk)), 'chunk 2 reads');
  await c.meta.mutate('meta.mutate', { op: 'unlink', path: '/rotten' });
});

test('chunks damaged on every member that holds them: a returning target\'s resync sends the rest, stays syncing, and finishes once their file is removed', async (t) => {
  const c = await startCluster(t, 3, 2, { rateBytesPerSec: 0 });
  const chunk = 64 * 1024;
  const layout = { chunkSizeBytes: chunk, stripeWidth: 2 };
  const routing = await c.meta.query<RoutingInfo>('cluster.routing', {});
  const chain = routing.chains[0];
  const returning = chain.targetIds[chain.targetIds.length - 1];
  const stateOf = async (id: number): Promise<string> => (await c.meta.query<RoutingInfo>('cluster.routing', {})).targets.find((x) => x.targetId === id)!.state;
  const workerId = routing.targets.find((x) => x.targetId === returning)!.workerId;
  const at = c.workers.findIndex((w) => w.worker.opts.id === workerId);
  const dirs = c.workers[at].worker.localTargets().map((x) => x.dir);
  await c.workers[at].stop();
  await waitFor(async () => (await stateOf(returning)) === 'offline', `target ${returning} offline`, 20_000);
  // Written while it is away; then /lost's chunks on its chain damaged on both members that serve.
  const lostBody = randomBytes(4 * chunk);
  const keptBody = randomBytes(4 * chunk);
  const lost = await putFile(c.meta, c.data, '/lost', pieces(lostBody, chunk), { layout });
  const kept = await putFile(c.meta, c.data, '/kept', pieces(keptBody, chunk), { layout });
  const onChain = (attr: InodeAttr): number[] => {
    const s = fileChains(new Routing(routing).tableChains(attr.layout!.chainTableId, attr.layout!.chainTableVersion)!, 2, attr.layout!.shuffleSeed);
    return [0, 1, 2, 3].filter((i) => chainOfChunk(s, i) === chain.chainId);
  };
  const stripe = fileChains(new Routing(routing).tableChains(lost.layout!.chainTableId, lost.layout!.chainTableVersion)!, 2, lost.layout!.shuffleSeed);
  const damaged = [0, 1, 2, 3].filter((i) => chainOfChunk(stripe, i) === chain.chainId);
  for (const index of damaged) {
    for (const id of chain.targetIds.slice(0, -1)) await flipChunkByte(routing.targets.find((x) => x.targetId === id)!.path, lost.inodeId, index, 100);
  }
  const log = createLogger({ test: 'data-path' }, 'silent');
  c.workers[at] = await startWorkerProcess({ id: workerId, listen: '127.0.0.1:0', masters: [c.master.address], targets: dirs, secret, log, syncPageChunks: 3, scrub: { rateBytesPerSec: 0 }, resyncLostRetryMs: 300 });
  // Its other target (another chain) serves again; this one stays syncing, with everything else sent.
  const other = c.workers[at].worker.localTargets().find((x) => x.targetId !== returning)!.targetId;
  await waitFor(async () => (await stateOf(other)) === 'serving', `target ${other} serving`, 20_000);
  const source = c.workers.find((w) => w.worker.opts.id === routing.targets.find((x) => x.targetId === chain.targetIds[chain.targetIds.length - 2])!.workerId)!.worker;
  await waitFor(() => source.resync.totals.runsLost >= 2, 'two resync runs that met the damaged chunks', 20_000);
  assert.equal(await stateOf(returning), 'syncing', 'a target without every chunk does not serve');
  assert.ok(source.resync.totals.chunksSent >= onChain(kept).length, `the other chunks were sent: ${JSON.stringify(source.resync.totals)}`);
  // The file goes (its chunks with it): the next run finishes, and every replica agrees.
  await c.meta.mutate('meta.mutate', { op: 'unlink', path: '/lost' });
  await waitFor(async () => (await stateOf(returning)) === 'serving', `target ${returning} serving once /lost is removed`, 30_000);
  await waitFor(async () => (await replicasAgree(c)) === undefined, 'every replica to agree', 20_000, async () => (await replicasAgree(c)) ?? '');
  assert.equal(sha(await readAll(c, '/kept')), sha(keptBody));
});

/** Each target's `target.served`, read from its directory. */
async function servedRecords(c: Cluster, workers?: number[]): Promise<Map<number, ServedRecord>> {
  const out = new Map<number, ServedRecord>();
  for (const w of workers === undefined ? c.workers : workers.map((i) => c.workers[i])) {
    for (const t of w.worker.localTargets()) {
      const r = decodeServed(await readFile(path.join(t.dir, servedFileName)));
      assert.ok(typeof r !== 'string', `target ${t.targetId}: ${String(r)}`);
      out.set(t.targetId, r);
    }
  }
  return out;
}

test('holes read as zeros; a chunk written but lost on every replica is an error, never zeros', async (t) => {
  const c = await startCluster(t);
  const chunk = 64 * 1024;
  const layout = { chunkSizeBytes: chunk, stripeWidth: 2 };
  // A sparse file: bytes in chunk 0 and chunk 5, nothing between.
  const routing = await c.data.routing();
  await c.meta.mutate('meta.mutate', { op: 'create', path: '/sparse', mode: 0o644, uid: 0, gid: 0, exclusive: true, layout: { ...layout, chainTableId: 1, chainTableVersion: routing.info.tables[0].version, shuffleSeed: 7 } });
  const s = await c.meta.mutate<SessionValue>('meta.mutate', { op: 'openSession', path: '/sparse', truncate: false });
  const writer = new FileWriter(c.data, { inodeId: s.inode.inodeId, layout: s.inode.layout! });
  const head = randomBytes(1000);
  const tail = randomBytes(3000);
  await writer.write(head, 10);
  await writer.write(tail, 5 * chunk + 100);
  await writer.flush();
  await c.meta.mutate('meta.mutate', { op: 'closeSession', sessionId: s.sessionId, lengthBytes: writer.highWater, chunks: writer.written.toArray() });
  const expected = Buffer.alloc(5 * chunk + 3100);
  expected.set(head, 10);
  expected.set(tail, 5 * chunk + 100);
  assert.ok((await readAll(c, '/sparse')).equals(expected), 'holes read as zeros');
  // Chunk 5's files gone from every replica: the masters know it was written, so reading it fails.
  const { rm: remove, readdir } = await import('node:fs/promises');
  let removed = 0;
  for (const w of c.workers) {
    for (const target of w.worker.localTargets()) {
      for (const sub of await readdir(path.join(target.dir, 'chunks')).catch(() => [] as string[])) {
        for (const name of await readdir(path.join(target.dir, 'chunks', sub))) {
          if (name.startsWith(`${s.inode.inodeId.toString(16).padStart(16, '0')}-00000005.`)) {
            await remove(path.join(target.dir, 'chunks', sub, name));
            removed++;
          }
        }
      }
    }
  }
  assert.equal(removed, 3, 'one copy on each replica');
  for (const w of c.workers) await w.stop();
  for (let i = 0; i < c.workers.length; i++) {
    const log = createLogger({ test: 'data-path' }, 'warn');
    c.workers[i] = await startWorkerProcess({ id: i + 1, listen: '127.0.0.1:0', masters: [c.master.address], targets: c.workers[i].worker.localTargets().map((x) => x.dir), secret, log });
  }
  await waitFor(async () => (await replicasAgree(c)) === undefined, 'chains serve again', 20_000, async () => (await replicasAgree(c)) ?? '');
  const reader = new FileReader(c.data, { inodeId: s.inode.inodeId, layout: s.inode.layout!, chunks: writer.written.toArray() }, expected.length);
  assert.ok((await reader.read(0, chunk)).equals(expected.subarray(0, chunk)), 'the other chunks still read');
  await assert.rejects(reader.read(5 * chunk, 100), (err: Error & { details?: { errno?: string } }) => err.details?.errno === 'EIO' && /no replica holds it/.test(err.message));
});

test('chunks of deleted and replaced files are collected from every replica', async (t) => {
  const c = await startCluster(t);
  const chunk = 64 * 1024;
  const chunksOnWorkers = (): number => c.workers.reduce((n, w) => n + w.worker.localTargets().reduce((m, x) => m + x.chunks, 0), 0);
  await putFile(c.meta, c.data, '/a', pieces(randomBytes(5 * chunk), 1 << 20), { layout: { chunkSizeBytes: chunk } });
  await putFile(c.meta, c.data, '/b', pieces(randomBytes(3 * chunk), 1 << 20), { layout: { chunkSizeBytes: chunk } });
  assert.equal(chunksOnWorkers(), 8 * 3);
  await putFile(c.meta, c.data, '/b', pieces(randomBytes(2 * chunk), 1 << 20), { layout: { chunkSizeBytes: chunk } }); // replaces the old /b
  await c.meta.mutate('meta.mutate', { op: 'unlink', path: '/a' });
  await waitFor(() => chunksOnWorkers() === 2 * 3, 'collection', 10_000, async () => `${chunksOnWorkers()} chunks left`);
  await waitFor(async () => (await c.meta.query<unknown[]>('meta.query', { op: 'pendingGc', limit: 10 })).length === 0, 'gcDone', 10_000);
});

test('a deleted file\'s chunks stay for the GC delay: a reader that opened it before the delete reads it whole', async (t) => {
  const gcDelayMs = 3_000;
  const c = await startCluster(t, 3, 2, undefined, gcDelayMs);
  const chunk = 64 * 1024;
  const body = randomBytes(5 * chunk);
  const chunksOnWorkers = (): number => c.workers.reduce((n, w) => n + w.worker.localTargets().reduce((m, x) => m + x.chunks, 0), 0);
  const attr = await putFile(c.meta, c.data, '/a', pieces(body, 1 << 20), { layout: { chunkSizeBytes: chunk } });
  const open = await c.meta.query<InodeAttr>('meta.query', { op: 'open', path: '/a' });
  await c.meta.mutate('meta.mutate', { op: 'unlink', path: '/a' });
  const deletedAt = Date.now();
  // Several GC rounds (one a heartbeat) pass within the delay: none may take the chunks.
  while (Date.now() - deletedAt < gcDelayMs - 1_000) {
    assert.equal(chunksOnWorkers(), 5 * 3, `the chunks are kept ${Date.now() - deletedAt} ms after the delete`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const reader = new FileReader(c.data, fileRef(open, '/a'), attr.sizeBytes);
  assert.ok((await reader.read(0, body.length)).equals(body), 'read whole after the delete');
  await waitFor(() => chunksOnWorkers() === 0, 'collection after the delay', 15_000, async () => `${chunksOnWorkers()} chunks left`);
});

test("masters below their disk reserve refuse new files, and still take removals, collect their chunks and let a restarted worker register", async (t) => {
  // The master's disk, while full, shows no free space (the journal looks every second).
  const full = { on: false };
  const masterDisk: Disk = { ...nodeDisk, statfs: async (dir) => ({ ...(await nodeDisk.statfs(dir)), ...(full.on ? { bytesFree: 0 } : {}) }) };
  const c = await startCluster(t, 3, 2, undefined, 0, new Map(), masterDisk);
  const chunk = 64 * 1024;
  const body = randomBytes(4 * chunk);
  const chunksOnWorkers = (): number => c.workers.reduce((n, w) => n + w.worker.localTargets().reduce((m, x) => m + x.chunks, 0), 0);
  await putFile(c.meta, c.data, '/a', pieces(body, 1 << 20), { layout: { chunkSizeBytes: chunk } });
  full.on = true;
  let tries = 0;
  const refusal = async (): Promise<string> => c.meta.mutate('meta.mutate', { op: 'mkdir', path: `/d${tries++}`, mode: 0o755, uid: 0, gid: 0 }).then(() => 'made', (err: { code?: string }) => err.code ?? 'no code');
  await waitFor(async () => (await refusal()) === 'CAIRN_DISK_FULL', 'new names refused', 10_000, refusal);
  // A worker restarted now registers (its registration is the cluster's own, taken on the reserve).
  const old = c.workers[0];
  const targets = old.worker.localTargets().map((x) => x.dir);
  await old.stop();
  c.workers[0] = await startWorkerProcess({ id: 1, listen: '127.0.0.1:0', masters: [c.master.address], targets, secret, log: createLogger({ test: 'data-path' }, 'warn'), syncPageChunks: 3, resyncLostRetryMs: 300 });
  t.after(() => c.workers[0].stop().catch(() => undefined));
  await c.meta.mutate('meta.mutate', { op: 'unlink', path: '/a' });
  await waitFor(() => chunksOnWorkers() === 0, "the removed file's chunks collected", 20_000, async () => `${chunksOnWorkers()} chunks left`);
  full.on = false;
  await waitFor(async () => (await refusal()) === 'made', 'new names taken again once there is room', 10_000, refusal);
});

test('truncation removes and cuts chunks first, so old bytes never come back when the file grows', async (t) => {
  const c = await startCluster(t);
  const chunk = 64 * 1024;
  const body = randomBytes(5 * chunk);
  await putFile(c.meta, c.data, '/t', pieces(body, 1 << 20), { layout: { chunkSizeBytes: chunk } });
  const shrink = await c.meta.mutate('meta.mutate', { op: 'setattr', path: '/t', sizeBytes: 10 }).then(() => 'ok', (err: Error) => err.message);
  assert.match(shrink, /holds data past byte 10: truncate it through the client library/);
  const cut = 2 * chunk + 1000;
  assert.equal((await truncateFile(c.meta, c.data, '/t', cut)).sizeBytes, cut);
  const chunksOnWorkers = (): number => c.workers.reduce((n, w) => n + w.worker.localTargets().reduce((m, x) => m + x.chunks, 0), 0);
  assert.equal(chunksOnWorkers(), 3 * 3, 'chunks 3 and 4 gone from every replica');
  // Grow it again with a write past the old data: everything between reads as zeros.
  const s = await c.meta.mutate<SessionValue>('meta.mutate', { op: 'openSession', path: '/t', truncate: false });
  const writer = new FileWriter(c.data, { inodeId: s.inode.inodeId, layout: s.inode.layout! });
  const tail = randomBytes(100);
  await writer.write(tail, 4 * chunk + 500);
  await writer.flush();
  await c.meta.mutate('meta.mutate', { op: 'closeSession', sessionId: s.sessionId, lengthBytes: writer.highWater, chunks: writer.written.toArray() });
  const expected = Buffer.alloc(4 * chunk + 600);
  expected.set(body.subarray(0, cut));
  expected.set(tail, 4 * chunk + 500);
  assert.ok((await readAll(c, '/t')).equals(expected), 'no old bytes past the cut');
  assert.equal((await truncateFile(c.meta, c.data, '/t', 0)).sizeBytes, 0);
  assert.equal((await readAll(c, '/t')).length, 0);
});

test('a chunk write retried with its write id takes effect once, even after another write landed', async (t) => {
  const c = await startCluster(t);
  // Workers learn of the chains with their next heartbeat: wait until each one has.
  await waitFor(async () => (await replicasAgree(c)) === undefined, 'workers know the chains', 10_000, async () => (await replicasAgree(c)) ?? '');
  const routing = await c.data.routing();
  const chain = routing.info.chains[0];
  const head = routing.writeMembers(chain.chainId)[0];
  const conn = new RpcClient(routing.workerAddress(head.workerId)!, { secret, frameBytesMax: workerFrameBytesMax });
  t.after(() => conn.close());
  const write = (bytes: Buffer, writeId: string) =>
    conn.call<{ commitVersion: number }>('chunk.write', { chainId: chain.chainId, chainVersion: chain.version, inodeId: 4242, index: 0, offset: 0, crc32c: crc32c(bytes), writeId }, { payload: bytes });
  const a = Buffer.from('first write');
  const b = Buffer.from('second write');
  assert.equal((await write(a, '00000000000000a1')).body.commitVersion, 1);
  assert.equal((await write(b, '00000000000000b2')).body.commitVersion, 2);
  // The first write again (a client retrying after a lost answer): answered, not applied again.
  assert.equal((await write(a, '00000000000000a1')).body.commitVersion, 2);
  const read = await conn.call('chunk.read', { chainId: chain.chainId, chainVersion: chain.version, inodeId: 4242, index: 0, offset: 0, length: 100 });
  assert.equal(read.payload?.toString(), 'second write');
  await assert.rejects(write(a, 'not-hex'), /'writeId' must be 16 hex digits/);
  // A payload changed on the way (one bit, in its middle block; an offset off the block grid): refused, nothing stored.
  const big = randomBytes(300_000);
  const sent = crc32c(big);
  big[150_001] ^= 0x04;
  await assert.rejects(
    conn.call('chunk.write', { chainId: chain.chainId, chainVersion: chain.version, inodeId: 4242, index: 0, offset: 1000, crc32c: sent, writeId: '00000000000000c3' }, { payload: big }),
    (err: { code?: string; message: string }) => err.code === 'CHECKSUM_MISMATCH' && /the payload's CRC32C is not \d+; nothing was stored/.test(err.message),
  );
  const after = await conn.call('chunk.read', { chainId: chain.chainId, chainVersion: chain.version, inodeId: 4242, index: 0, offset: 0, length: 100 });
  assert.equal(after.payload?.toString(), 'second write');
  big[150_001] ^= 0x04;
  assert.equal((await conn.call<{ commitVersion: number }>('chunk.write', { chainId: chain.chainId, chainVersion: chain.version, inodeId: 4242, index: 0, offset: 1000, crc32c: sent, writeId: '00000000000000c4' }, { payload: big })).body.commitVersion, 3);
  // Its chunk file's block CRCs (built from the payload's pieces) check out on a read across block edges.
  const across = await conn.call('chunk.read', { chainId: chain.chainId, chainVersion: chain.version, inodeId: 4242, index: 0, offset: 60_000, length: 140_000 });
  assert.ok(across.payload !== undefined && Buffer.from(across.payload).equals(big.subarray(59_000, 199_000)));
});

test('the scrubber finds a chunk damaged at rest and repairs it from another replica before any read, and the leader hears of it', async (t) => {
  const c = await startCluster(t, 3, 2, { rateBytesPerSec: 256 * 2 ** 20, pauseMs: 50 });
  const chunk = 2 ** 20;
  const body = randomBytes(3 * chunk + 5);
  const attr = await putFile(c.meta, c.data, '/rot', pieces(body, 100_000), { layout: { chunkSizeBytes: chunk, stripeWidth: 2 } });
  const routing = await c.meta.query<RoutingInfo>('cluster.routing', {});
  // Chunk 1 on one member of its chain; nothing reads the file until the scrubber has repaired it.
  const layout = attr.layout!;
  const stripe = fileChains(new Routing(routing).tableChains(layout.chainTableId, layout.chainTableVersion)!, layout.stripeWidth, layout.shuffleSeed);
  const chain = routing.chains.find((ch) => ch.chainId === chainOfChunk(stripe, 1))!;
  const victim = routing.targets.find((x) => x.targetId === chain.targetIds[chain.targetIds.length - 1])!;
  const file = await flipChunkByte(victim.path, attr.inodeId, 1, 12_345);
  t.diagnostic(`flipped a byte of ${file} on target ${victim.targetId}`);
  const worker = c.workers.find((w) => w.worker.opts.id === victim.workerId)!.worker;
  await waitFor(() => worker.scrubStats().repaired >= 1, 'the scrubber to repair the chunk', 20_000);
  assert.ok(worker.scrubStats().found >= 1);
  assert.equal(worker.corruption().find((x) => x.targetId === victim.targetId)?.now, 0, 'nothing left corrupt');
  assert.equal(await replicasDiffer(await c.meta.query<RoutingInfo>('cluster.routing', {}), secret), undefined, 'every replica agrees again');
  assert.equal(sha(await readAll(c, '/rot')), sha(body));
  await waitFor(async () => (await c.meta.query<WorkerHealth[]>('cluster.health', {})).some((w) => w.workerId === victim.workerId && (w.scrub?.repaired ?? 0) >= 1), 'the repair in the leader\'s health report', 10_000);
});

