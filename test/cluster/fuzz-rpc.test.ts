// Hostile requests from an authenticated peer: a property-based fuzzer (fast-check) sends random
// bodies, and valid requests with one field mutated, to every RPC method of a master and of a
// storage worker. Every call must be answered in time with a coded error other than
// CAIRN_INTERNAL (or succeed, when the mutation happens to be valid); no process may crash; and a
// refused request must change nothing: the namespace and cluster tables (the state hash less the
// exactly-once table, which records every answer, errors included) and the workers' chunk
// listings stay as they were. CAIRN_FUZZ_RUNS raises the number of runs per method (default 60).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import fc from 'fast-check';
import { freePort } from '../../src/cli/local.ts';
import { createLogger } from '../../src/log.ts';
import { startMaster, type Master } from '../../src/master/index.ts';
import { rootCaller, type RoutingInfo } from '../../src/meta/index.ts';
import { RpcClient } from '../../src/rpc/index.ts';
import { startWorkerProcess, workerFrameBytesMax, type WorkerProcess } from '../../src/worker/process.ts';
import { MasterWorkerMethod, WorkerMethod } from '../../src/worker/protocol.ts';
import { waitFor } from './harness.ts';

const runs = Number(process.env.CAIRN_FUZZ_RUNS ?? 60);
const secret = randomBytes(16).toString('hex');
const callTimeoutMs = 5_000;
const root = rootCaller;

interface Cluster {
  master: Master;
  workers: WorkerProcess[];
  routing: RoutingInfo;
}

async function startCluster(t: TestContext): Promise<Cluster> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-fuzz-'));
  const log = createLogger({ test: 'fuzz' }, 'fatal');
  const listen = `127.0.0.1:${await freePort()}`;
  const master = await startMaster({ id: 1, dir: path.join(dir, 'master'), listen, peers: new Map([[1, listen]]), secret, log, replication: 3, timing: { heartbeatMs: 200, offlineTimeoutMs: 1_000 }, tickMs: 10 });
  const workers: WorkerProcess[] = [];
  t.after(async () => {
    for (const w of workers) await w.stop().catch(() => undefined);
    await master.stop();
    await rm(dir, { recursive: true, force: true });
  });
  for (let w = 1; w <= 3; w++) workers.push(await startWorkerProcess({ id: w, listen: '127.0.0.1:0', masters: [master.address], targets: [path.join(dir, `w${w}`)], secret, log }));
  const client = new RpcClient(master.address, { secret });
  t.after(() => client.close());
  let routing: RoutingInfo | undefined;
  await waitFor(async () => {
    routing = (await client.call<RoutingInfo>('cluster.routing', {})).body;
    return routing.chains.length === 1 && routing.targets.every((x) => x.state === 'serving');
  }, 'a serving chain', 20_000);
  return { master, workers, routing: routing! };
}

/** Any value msgpack carries: the shapes a hostile peer can send. */
const junk = fc.oneof(
  fc.anything({ maxDepth: 3, withBigInt: false, withDate: false, withTypedArray: false, withSparseArray: false, withNullPrototype: true }),
  fc.uint8Array({ maxLength: 64 }),
  fc.constant(undefined),
);

/** A valid request with one field replaced by junk, removed, or given an extreme value. */
function mutated(valid: Record<string, unknown>): fc.Arbitrary<Record<string, unknown>> {
  const keys = Object.keys(valid);
  const extreme = fc.constantFrom(-1, 0, 2 ** 53, -(2 ** 53), 1.5, Number.NaN, Infinity, '', 'x'.repeat(70_000), '/'.repeat(5000), '../../etc', null, [], {});
  return fc.tuple(fc.constantFrom(...keys, '__proto__', 'extra'), fc.oneof(junk, extreme), fc.boolean()).map(([k, v, drop]) => {
    const out: Record<string, unknown> = { ...valid };
    if (drop && k in out) delete out[k];
    else out[k] = v;
    return out;
  });
}

type Outcome = { ok: true } | { ok: false; code: string };

async function send(c: RpcClient, method: string, body: unknown, payload?: Uint8Array): Promise<Outcome> {
  try {
    await c.call(method, body, { timeoutMs: callTimeoutMs, ...(payload === undefined ? {} : { payload }) });
    return { ok: true };
  } catch (err) {
    return { ok: false, code: String((err as { code?: unknown }).code) };
  }
}

function checkAnswer(method: string, body: unknown, o: Outcome): void {
  if (o.ok) return;
  assert.notEqual(o.code, 'CAIRN_INTERNAL', `${method} ${JSON.stringify(body)?.slice(0, 300)}: a handler failed without a code`);
  assert.notEqual(o.code, 'CAIRN_TIMEOUT', `${method} ${JSON.stringify(body)?.slice(0, 300)}: no answer within ${callTimeoutMs} ms`);
  assert.notEqual(o.code, 'CAIRN_UNAVAILABLE', `${method}: the connection broke (did the server crash?)`);
}

test('fuzzed requests to a master: answered with a coded error, nothing changed by a refused one, the master still serving', async (t) => {
  const c = await startCluster(t);
  const client = new RpcClient(c.master.address, { secret });
  t.after(() => client.close());
  // The namespace (every entry with its attributes) and the cluster tables, as clients see them.
  const hash = async (): Promise<string> => {
    const lines: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      const page = (await client.call<{ entries: { name: string }[] }>('meta.query', { op: 'readdir', path: dir, limit: 1000, caller: root })).body;
      for (const e of page.entries) {
        const p = dir === '/' ? `/${e.name}` : `${dir}/${e.name}`;
        const a = (await client.call<Record<string, unknown>>('meta.query', { op: 'stat', path: p, caller: root })).body;
        lines.push(JSON.stringify([p, a]));
        if (a.type === 'dir') await walk(p);
      }
    };
    await walk('/');
    // The cluster tables less what moves by itself (target states and versions follow heartbeats).
    const r = (await client.call<RoutingInfo>('cluster.routing', {})).body;
    lines.push(JSON.stringify([r.workers, r.targets.map((x) => [x.targetId, x.workerId, x.path, x.chainId]), r.chains.map((ch) => [ch.chainId, ch.targetIds])]));
    return lines.join('\n');
  };
  await client.call('meta.mutate', { op: 'mkdir', path: '/d', mode: 0o755, uid: 0, gid: 0, clientId: 'fuzz-setup', seq: 1, caller: root });
  // The cluster manager's own commands, valid as they are, are refused from clients: a client that
  // journaled gcDone would leave a deleted file's chunks on the disks for good.
  const made = (await client.call<{ inode: { inodeId: number } }>('meta.mutate', { op: 'create', path: '/gone', mode: 0o644, uid: 0, gid: 0, exclusive: true, clientId: 'fuzz-setup', seq: 2, caller: root })).body;
  await client.call('meta.mutate', { op: 'unlink', path: '/gone', clientId: 'fuzz-setup', seq: 3, caller: root });
  const pendingGc = async (): Promise<string> => JSON.stringify((await client.call('meta.query', { op: 'pendingGc', limit: 10 })).body);
  assert.match(await pendingGc(), new RegExp(`"inodeId":${made.inode.inodeId}\\b`));
  const gcBefore = await pendingGc();
  const routingBefore = await hash();
  for (const [i, cmd] of [
    { op: 'gcDone', inodeIds: [made.inode.inodeId] },
    { op: 'targetReclaimed', targetId: 1, leftChainAt: 1 },
    { op: 'decommissionWorker', workerId: 1 },
    { op: 'initCluster', clusterId: 'c0ffee' },
  ].entries()) {
    const o = await send(client, 'meta.mutate', { ...cmd, clientId: 'fuzz-manager-ops', seq: i + 1 });
    assert.deepEqual(o, { ok: false, code: 'CAIRN_INVALID_ARGUMENT' }, `${cmd.op} from a client`);
  }
  assert.equal(await pendingGc(), gcBefore);
  assert.equal(await hash(), routingBefore);
  const user = { uid: 1, gid: 1, groups: [2] };
  const validMutations: Record<string, unknown>[] = [
    { op: 'create', path: '/d/f', mode: 0o644, uid: 1, gid: 1, exclusive: true, clientId: 'fuzz', seq: 1, caller: root },
    { op: 'rename', from: '/d', to: '/e', clientId: 'fuzz', seq: 1, caller: root },
    { op: 'unlink', path: '/d', recursive: true, clientId: 'fuzz', seq: 1, caller: root },
    { op: 'setattr', path: '/d', mode: 0o700, clientId: 'fuzz', seq: 1, caller: user },
  ];
  const validQueries: Record<string, unknown>[] = [{ op: 'stat', path: '/d', caller: user }, { op: 'readdir', path: '/', limit: 10, caller: root }, { op: 'lookup', path: '/d', caller: root }];
  let refused = 0;
  // Random bodies to every method the master serves to clients, workers and admins.
  const methods = ['meta.mutate', 'meta.query', 'admin.journal.transfer', 'admin.journal.add', 'admin.journal.remove', 'admin.restore', MasterWorkerMethod.register, MasterWorkerMethod.heartbeat, MasterWorkerMethod.routing, MasterWorkerMethod.health, MasterWorkerMethod.decommission, MasterWorkerMethod.replacements, MasterWorkerMethod.quarantine, MasterWorkerMethod.quarantinePurge];
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...methods), junk, async (method, body) => {
      // Only bodies that cannot be a valid request reach the destructive admin methods.
      if (method.startsWith('admin.') && typeof body === 'object' && body !== null && ('id' in body || 'workerId' in body)) return;
      const before = await hash();
      const o = await send(client, method, body);
      checkAnswer(method, body, o);
      if (!o.ok) {
        refused++;
        assert.equal(await hash(), before, `${method} refused ${JSON.stringify(body)?.slice(0, 200)} yet the state changed`);
      }
    }),
    { numRuns: runs * methods.length },
  );
  // Valid requests with one field broken.
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...validMutations).chain(mutated), fc.integer({ min: 2, max: 2 ** 31 }), async (body, lane) => {
      const before = await hash();
      // A fresh client id per run (unless the mutation broke it), so no run is a retry of another.
      const o = await send(client, 'meta.mutate', body.clientId === 'fuzz' ? { ...body, clientId: `fuzz-${lane}` } : body);
      checkAnswer('meta.mutate', body, o);
      if (!o.ok) {
        refused++;
        assert.equal(await hash(), before, `meta.mutate refused ${JSON.stringify(body)?.slice(0, 200)} yet the state changed`);
      }
    }),
    { numRuns: runs * 4 },
  );
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...validQueries).chain(mutated), async (body) => checkAnswer('meta.query', body, await send(client, 'meta.query', body))),
    { numRuns: runs * 2 },
  );
  t.diagnostic(`${refused} requests refused, each without a state change`);
  assert.equal((await client.call<{ isLeader: boolean }>('master.ping', {})).body.isLeader, true, 'the master still leads');
});

test('fuzzed chunk requests to a worker: answered with a coded error, its chunks unchanged by a refused one, the worker still serving', async (t) => {
  const c = await startCluster(t);
  const chain = c.routing.chains[0];
  const head = c.routing.targets.find((x) => x.targetId === chain.targetIds[0])!;
  const headWorker = c.workers.find((w) => w.worker.opts.id === head.workerId)!;
  const client = new RpcClient(headWorker.address, { secret, frameBytesMax: workerFrameBytesMax });
  t.after(() => client.close());
  const listing = (): string => JSON.stringify(c.workers.map((w) => w.worker.localTargets().map((x) => w.worker.store(x.targetId)!.list())));
  const ref = { chainId: chain.chainId, chainVersion: chain.version, inodeId: 7, index: 0 };
  const valid: Record<string, Record<string, unknown>> = {
    [WorkerMethod.write]: { ...ref, offset: 0, crc32c: 0 },
    [WorkerMethod.forward]: { ...ref, offset: 0, crc32c: 0, updateVersion: 1 },
    [WorkerMethod.read]: { ...ref, offset: 0, length: 4096 },
    [WorkerMethod.syncList]: { chainId: chain.chainId, chainVersion: chain.version, targetId: head.targetId, limit: 10 },
    [WorkerMethod.syncRead]: { ...ref, targetId: head.targetId, commitVersion: 1 },
    [WorkerMethod.syncDone]: { chainId: chain.chainId, chainVersion: chain.version, targetId: head.targetId },
    [WorkerMethod.remove]: { ...ref, chunks: [{ inodeId: 7, index: 0 }] },
    [WorkerMethod.removeInodes]: { inodeIds: [7] },
    [WorkerMethod.inventory]: { targetId: head.targetId, afterInodeId: 0, limit: 10 },
    [WorkerMethod.purge]: { targetId: head.targetId, inodeIds: [7] },
  };
  let refused = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...Object.keys(valid)),
      fc.oneof(junk, fc.constant(null).map(() => undefined as unknown)),
      fc.option(fc.uint8Array({ maxLength: 4096 }), { nil: undefined }),
      fc.boolean(),
      async (method, junkBody, payload, useMutation) => {
        const body = useMutation ? fc.sample(mutated(valid[method]), 1)[0] : junkBody;
        const before = listing();
        const o = await send(client, method, body, payload);
        checkAnswer(method, body, o);
        if (!o.ok) {
          refused++;
          assert.equal(listing(), before, `${method} refused ${JSON.stringify(body)?.slice(0, 200)} yet a chunk changed`);
        }
      },
    ),
    { numRuns: runs * Object.keys(valid).length },
  );
  t.diagnostic(`${refused} chunk requests refused, each without a change`);
  assert.ok(headWorker.worker.serving(), 'the worker still serves');
});
