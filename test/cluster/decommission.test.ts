// Workers lost for good and new workers, end to end in one process over real TCP and disks. Lost:
// a master, four workers with two targets each (replication 3: two chains, two free targets), files
// written, one worker killed and decommissioned; every chain it was in gets a free target in its
// place (same chain id, higher version), the new members are resynced at a bounded rate, every
// chain serves whole again, the replicas agree, and every file reads back byte for byte. New: a
// worker joins three busy ones and takes a chain member, resynced before its source leaves.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { DataClient } from '../../src/client/data-client.ts';
import { putFile } from '../../src/client/files.ts';
import { MasterClient } from '../../src/client/master-client.ts';
import { freePort } from '../../src/cli/local.ts';
import { systemClock } from '../../src/io/system-clock.ts';
import { createLogger } from '../../src/log.ts';
import type { DecommissionReply, ReplacementsReply } from '../../src/master/cluster-manager.ts';
import { startMaster, type Master } from '../../src/master/index.ts';
import { rootCaller, type RoutingInfo, type WorkerInfo } from '../../src/meta/index.ts';
import { RpcClient } from '../../src/rpc/index.ts';
import { WorkerErrorCode } from '../../src/worker/errors.ts';
import { startWorkerProcess, workerFrameBytesMax, type WorkerProcess } from '../../src/worker/process.ts';
import { MasterWorkerMethod } from '../../src/worker/protocol.ts';
import { pieces, readAll, replicasDiffer, sha } from './data-cluster.ts';
import { waitFor } from './harness.ts';

const secret = randomBytes(16).toString('hex');
const timing = { heartbeatMs: 200, offlineTimeoutMs: 1_000 };
/** Low enough that the pacer holds the resyncs back now and then, high enough for a quick test. */
const resyncBytesPerSec = 8 * 2 ** 20;
const chunkBytes = 64 * 1024;

interface Cluster {
  master: Master;
  workers: Map<number, WorkerProcess>;
  meta: MasterClient;
  data: DataClient;
  dir: string;
}

async function startCluster(t: TestContext, workers: number, targetsPerWorker: number, replaceAfterMs?: number): Promise<Cluster> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-decom-'));
  const log = createLogger({ test: 'decommission' }, 'warn');
  const listen = `127.0.0.1:${await freePort()}`;
  const master = await startMaster({ id: 1, dir: path.join(dir, 'master'), listen, peers: new Map([[1, listen]]), secret, log, replication: 3, timing, tickMs: 10, reclaimEveryMs: 1_000, ...(replaceAfterMs === undefined ? {} : { replaceAfterMs }) });
  const started = new Map<number, WorkerProcess>();
  t.after(async () => {
    for (const w of started.values()) await w.stop().catch(() => undefined);
    await master.stop();
    await rm(dir, { recursive: true, force: true });
  });
  for (let w = 1; w <= workers; w++) started.set(w, await startWorker(dir, master, w, targetsPerWorker));
  const meta = new MasterClient({ masters: [master.address], secret, caller: rootCaller });
  const data = new DataClient({ master: meta, connect: (a) => new RpcClient(a, { secret, frameBytesMax: workerFrameBytesMax }), clock: systemClock });
  t.after(() => {
    data.close();
    meta.close();
  });
  await waitFor(async () => (await routing({ meta })).chains.length === Math.floor((workers * targetsPerWorker) / 3), 'chains', 20_000);
  return { master, workers: started, meta, data, dir };
}

function startWorker(dir: string, master: Master, id: number, targetsPerWorker: number): Promise<WorkerProcess> {
  const targets = Array.from({ length: targetsPerWorker }, (_, i) => path.join(dir, `worker-${id}`, `t${i}`));
  const log = createLogger({ test: 'decommission', worker: id }, 'warn');
  return startWorkerProcess({ id, listen: '127.0.0.1:0', masters: [master.address], targets, secret, log, syncPageChunks: 3, resyncBytesPerSec, scrub: { rateBytesPerSec: 0 } });
}

const routing = (c: Pick<Cluster, 'meta'>): Promise<RoutingInfo> => c.meta.query<RoutingInfo>('cluster.routing', {});
/** The code a call fails with ('ok' when it succeeds). */
async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return String((err as { code?: unknown }).code);
  }
}

const workerOf = (r: RoutingInfo, targetId: number): number => r.targets.find((x) => x.targetId === targetId)!.workerId;

/** Files written in whole and part chunks, remembered to be read back. */
class Files {
  readonly written = new Map<string, Buffer>();
  private readonly c: Cluster;

  constructor(c: Cluster) {
    this.c = c;
  }

  async put(name: string): Promise<void> {
    const body = randomBytes(chunkBytes * 5 + 1234);
    await putFile(this.c.meta, this.c.data, name, pieces(body, 100_000), { layout: { chunkSizeBytes: chunkBytes, stripeWidth: 2 } });
    this.written.set(name, body);
  }

  async checkAll(): Promise<void> {
    for (const [name, body] of this.written) assert.equal(sha(await readAll(this.c, name)), sha(body), name);
  }
}

/** The worker in the most chains (4 workers x 2 targets make two chains and leave two targets free). */
function busiestWorker(r: RoutingInfo): { victim: number; hit: RoutingInfo['chains'] } {
  assert.equal(r.chains.length, 2);
  assert.equal(r.targets.filter((x) => x.chainId === 0).length, 2, 'two targets are left over: the replacements to come');
  const chainsOf = (w: number): RoutingInfo['chains'] => r.chains.filter((ch) => ch.targetIds.some((id) => workerOf(r, id) === w));
  const victim = [1, 2, 3, 4].sort((a, b) => chainsOf(b).length - chainsOf(a).length || a - b)[0];
  return { victim, hit: chainsOf(victim) };
}

/** Undefined once no chain holds a target of `victim` and every chain serves from all members, which agree. */
async function replaced(c: Cluster, victim: number): Promise<string | undefined> {
  const r = await routing(c);
  for (const ch of r.chains) {
    if (ch.targetIds.some((id) => workerOf(r, id) === victim)) return `chain ${ch.chainId} still holds a target of worker ${victim}`;
  }
  return replicasDiffer(r, secret);
}

/** Every chain kept its id and is whole on distinct workers; those that lost a member have a higher version; no chunk moved. */
function checkReplaced(before: RoutingInfo, after: RoutingInfo, hit: RoutingInfo['chains'], victim: number): void {
  assert.deepEqual(after.chains.map((ch) => ch.chainId), before.chains.map((ch) => ch.chainId), 'chains keep their ids');
  assert.deepEqual(after.tables, before.tables, 'the chain table does not change: no chunk moves to another chain');
  for (const ch of after.chains) {
    const old = before.chains.find((x) => x.chainId === ch.chainId)!;
    assert.equal(ch.targetIds.length, 3, `chain ${ch.chainId} is whole`);
    assert.equal(new Set(ch.targetIds.map((id) => workerOf(after, id))).size, 3, `chain ${ch.chainId} spans three workers`);
    if (hit.includes(old)) assert.ok(ch.version > old.version, `chain ${ch.chainId}'s version went up`);
  }
  assert.ok(after.targets.filter((x) => x.workerId === victim).every((x) => x.chainId === 0 && x.state === 'offline'), 'the victim\'s targets are in no chain');
}

test('a decommissioned worker\'s chains get replacement members, resync, serve whole again, and every file reads back', async (t) => {
  const c = await startCluster(t, 4, 2);
  const files = new Files(c);
  for (let i = 0; i < 8; i++) await files.put(`/before-${i}`);
  const before = await routing(c);
  const { victim, hit } = busiestWorker(before);

  // The admin call checks what it is given.
  assert.equal(await codeOf(c.meta.call(MasterWorkerMethod.decommission, { workerId: 99 })), 'ENOENT');
  assert.equal(await codeOf(c.meta.call(MasterWorkerMethod.decommission, { workerId: 'two' })), WorkerErrorCode.InvalidArgument);
  assert.equal(await codeOf(c.meta.call(MasterWorkerMethod.decommission, [victim])), WorkerErrorCode.InvalidArgument);
  assert.equal(await codeOf(c.meta.mutate('meta.mutate', { op: 'decommissionWorker', workerId: victim })), 'CAIRN_INVALID_ARGUMENT', 'the cluster manager\'s command, not a client\'s');

  // The worker is lost for good: its chains go on with two members, degraded.
  await c.workers.get(victim)!.stop();
  c.workers.delete(victim);
  await waitFor(async () => (await routing(c)).targets.filter((x) => x.workerId === victim).every((x) => x.state === 'offline'), 'the victim\'s targets offline', 10_000);
  assert.deepEqual((await c.meta.call<ReplacementsReply>(MasterWorkerMethod.replacements, {})).stuck, [], 'nothing is replaced before the operator says so');

  const started = Date.now();
  const reply = await c.meta.call<DecommissionReply>(MasterWorkerMethod.decommission, { workerId: victim });
  assert.ok(reply.worker.decommissionedMs !== undefined);
  assert.deepEqual(reply.impact.chains.map((ch) => ch.chainId), hit.map((ch) => ch.chainId));
  // Writes go on while the new members fill.
  for (let i = 0; i < 3; i++) await files.put(`/during-${i}`);
  await waitFor(async () => (await replaced(c, victim)) === undefined, 'replacements resynced and serving', 20_000, async () => (await replaced(c, victim)) ?? '');
  const resyncMs = Date.now() - started;
  checkReplaced(before, await routing(c), hit, victim);
  await files.checkAll();

  // The sources sent every chunk of the chains they filled, within the rate bound.
  const totals = [...c.workers.values()].map((w) => w.worker.resync.totals);
  const bytesSent = totals.reduce((n, x) => n + x.bytesSent, 0);
  assert.ok(totals.reduce((n, x) => n + x.runsDone, 0) >= hit.length, 'a resync finished for each new member');
  assert.ok(bytesSent > 0);
  assert.ok(resyncMs >= ((bytesSent / resyncBytesPerSec) * 1000) / 2 - 40, `${bytesSent} bytes resynced in ${resyncMs} ms at most ${resyncBytesPerSec} bytes/s per worker`);
  assert.deepEqual([...c.workers.values()].flatMap((w) => w.worker.resync.progress()), [], 'no resync left running');

  // The id is never registered again, and the decommissioned worker is listed as such.
  await assert.rejects(startWorker(c.dir, c.master, victim, 2), (err: unknown) => (err as { code?: string }).code === WorkerErrorCode.WorkerDecommissioned);
  const listed = await c.meta.query<WorkerInfo[]>('meta.query', { op: 'workers' });
  assert.ok(listed.find((w) => w.workerId === victim)?.decommissionedMs !== undefined);
  assert.deepEqual((await c.meta.call<ReplacementsReply>(MasterWorkerMethod.replacements, {})).stuck, []);
});

test('without a free target on another worker, a decommissioned worker\'s chain stays degraded and says why', async (t) => {
  // Three workers with one target each: one chain, no free target anywhere.
  const c = await startCluster(t, 3, 1);
  await c.workers.get(3)!.stop();
  c.workers.delete(3);
  await waitFor(async () => (await routing(c)).targets.find((x) => x.workerId === 3)?.state === 'offline', 'worker 3 offline', 10_000);
  await c.meta.call(MasterWorkerMethod.decommission, { workerId: 3 });
  let stuck: ReplacementsReply['stuck'] = [];
  await waitFor(async () => {
    stuck = (await c.meta.call<ReplacementsReply>(MasterWorkerMethod.replacements, {})).stuck;
    return stuck.length > 0;
  }, 'the chain reported as waiting for a replacement', 10_000);
  assert.deepEqual(stuck.map((s) => [s.chainId, s.lostWorkerId, s.reason]), [[1, 3, 'decommissioned']]);
  assert.match(stuck[0].why, /no replacement: no free target on a live worker in service; add a worker or a disk/);
  // The chain still serves from the other two.
  const r = await routing(c);
  assert.deepEqual(r.chains[0].targetIds.map((id) => r.targets.find((x) => x.targetId === id)!.state), ['serving', 'serving', 'offline']);
  // Decommissioning a worker that holds the last up-to-date copy is refused unless forced: stop
  // worker 2 as well, so worker 1's target is the only serving one.
  await c.workers.get(2)!.stop();
  c.workers.delete(2);
  await waitFor(async () => (await routing(c)).targets.find((x) => x.workerId === 2)?.state === 'offline', 'worker 2 offline', 10_000);
  assert.equal(await codeOf(c.meta.call(MasterWorkerMethod.decommission, { workerId: 1 })), WorkerErrorCode.DecommissionUnsafe);
});

test('--replace-after-ms: a worker down that long has its members replaced without an operator; back, its old targets stay out', async (t) => {
  const replaceAfterMs = 2_000;
  const c = await startCluster(t, 4, 2, replaceAfterMs);
  const files = new Files(c);
  for (let i = 0; i < 4; i++) await files.put(`/f-${i}`);
  const before = await routing(c);
  const { victim, hit } = busiestWorker(before);
  await c.workers.get(victim)!.stop();
  c.workers.delete(victim);
  const stopped = Date.now();
  await waitFor(async () => (await replaced(c, victim)) === undefined, 'replacements resynced and serving', 20_000, async () => (await replaced(c, victim)) ?? '');
  assert.ok(Date.now() - stopped >= replaceAfterMs, 'not before the timeout');
  checkReplaced(before, await routing(c), hit, victim);
  await files.checkAll();
  // The worker may return (it was never decommissioned): its targets left their chains and stay out
  // (that they join no new chain while they hold old chunks is test/unit/cluster-manager.test.ts's).
  c.workers.set(victim, await startWorker(c.dir, c.master, victim, 2));
  const health = (): Promise<{ workerId: number; heartbeatAgeMs: number }[]> => c.meta.call(MasterWorkerMethod.health, {});
  await waitFor(async () => (await health()).some((h) => h.workerId === victim && h.heartbeatAgeMs < 2 * timing.heartbeatMs), 'the worker back', 10_000);
  assert.ok((await routing(c)).targets.filter((x) => x.workerId === victim).every((x) => x.chainId === 0));
  await files.checkAll();
});

test('a new worker takes a member of a chain from a busy worker: resynced while the chain keeps all its replicas, then the source leaves; no chunk changes chain', async (t) => {
  // Three workers with two targets each: two chains, every target in one.
  const c = await startCluster(t, 3, 2);
  const files = new Files(c);
  for (let i = 0; i < 6; i++) await files.put(`/before-${i}`);
  const before = await routing(c);
  assert.ok(before.targets.every((x) => x.chainId !== 0));

  c.workers.set(4, await startWorker(c.dir, c.master, 4, 2));
  // Writes go on while a member moves; the moving chain never has fewer than three serving members.
  let fewest = 3;
  let sawMove = false;
  const watch = setInterval(() => {
    routing(c).then((r) => {
      for (const ch of r.chains) {
        sawMove ||= ch.moving !== undefined;
        fewest = Math.min(fewest, ch.targetIds.filter((id) => r.targets.find((x) => x.targetId === id)!.state === 'serving').length);
      }
    }, () => undefined);
  }, 50);
  t.after(() => clearInterval(watch));
  for (let i = 0; i < 3; i++) await files.put(`/during-${i}`);
  const settled = async (): Promise<string | undefined> => {
    const r = await routing(c);
    const moving = r.chains.find((ch) => ch.moving !== undefined || ch.targetIds.length !== 3);
    if (moving !== undefined) return `chain ${moving.chainId} is still moving: ${JSON.stringify(moving)}`;
    if (!r.targets.some((x) => x.workerId === 4 && x.chainId !== 0)) return 'worker 4 holds no chain member yet';
    return replicasDiffer(r, secret);
  };
  await waitFor(async () => (await settled()) === undefined, 'a member moved to worker 4, resynced and serving', 30_000, async () => (await settled()) ?? '');
  clearInterval(watch);
  const after = await routing(c);

  assert.ok(sawMove, 'the move was seen under way');
  assert.equal(fewest, 3, 'every chain kept three serving members throughout');
  assert.deepEqual(after.tables, before.tables, 'the chain table does not change: no chunk moves to another chain');
  assert.deepEqual(after.chains.map((ch) => ch.chainId), before.chains.map((ch) => ch.chainId));
  const membersOf = (r: RoutingInfo, w: number): number => r.targets.filter((x) => x.workerId === w && x.chainId !== 0).length;
  // Six members on four workers of two targets each: 2, 2, 1, 1 is as even as it gets, and one move reaches it.
  assert.deepEqual([1, 2, 3, 4].map((w) => membersOf(after, w)).sort(), [1, 1, 2, 2]);
  const moved = after.chains.filter((ch) => ch.targetIds.some((id) => workerOf(after, id) === 4));
  assert.equal(moved.length, 1);
  assert.ok(moved[0].version > before.chains.find((ch) => ch.chainId === moved[0].chainId)!.version);
  await files.checkAll();
  const totals = [...c.workers.values()].map((w) => w.worker.resync.totals);
  assert.ok(totals.reduce((n, x) => n + x.runsDone, 0) >= 1 && totals.reduce((n, x) => n + x.bytesSent, 0) > 0, 'the newcomer was filled by a resync');

  // The member that left keeps its chunks only until the leader reclaims its target; a target in a
  // chain refuses that purge outright.
  const left = before.targets.find((x) => after.targets.find((y) => y.targetId === x.targetId)!.chainId === 0)!;
  const chunksOn = (x: { targetId: number; workerId: number }): number => c.workers.get(x.workerId)!.worker.localTargets().find((y) => y.targetId === x.targetId)!.chunks;
  await waitFor(() => chunksOn(left) === 0, `the target that left (${left.targetId}) reclaimed`, 20_000, async () => `${chunksOn(left)} chunks left`);
  const member = after.targets.find((x) => x.chainId !== 0)!;
  const holding = chunksOn(member);
  const peer = new RpcClient(after.workers.find((w) => w.workerId === member.workerId)!.address, { secret, frameBytesMax: workerFrameBytesMax });
  t.after(() => peer.close());
  assert.equal(await codeOf(peer.call('chunk.purge', { targetId: member.targetId, inodeIds: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], freeOnly: true })), WorkerErrorCode.TargetUnavailable);
  assert.equal(chunksOn(member), holding, 'a chain member keeps its chunks');
  await files.checkAll();

  // Balanced: nothing moves any more.
  await new Promise((resolve) => setTimeout(resolve, 10 * timing.heartbeatMs));
  assert.deepEqual((await routing(c)).chains, after.chains);
});
