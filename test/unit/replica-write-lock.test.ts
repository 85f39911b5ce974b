// Rules of a replica's write path (src/worker/replication.ts, writeLocked). First: a write that
// waited for its chunk's lock is checked against the routing again before it goes on
// (src/worker/replication.ts, writeLocked). The simulator's planted bug for this rule,
// no-recheck-after-lock, is reached by no seed at present: the demoted-member rule (a member that
// served when it took a write and no longer serves gives up) catches the schedules it reaches,
// and a member can serve again only after a resync, which waits for the same chunk lock. So the
// rule is pinned here, on a chain change the masters would not publish so fast: the head moved
// to the tail while a write waited behind another one.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import type { Connection, Disk } from '../../src/io/index.ts';
import { systemClock } from '../../src/io/system-clock.ts';
import { TargetState } from '../../src/meta/commands.ts';
import { Routing } from '../../src/meta/routing.ts';
import type { CallResult } from '../../src/rpc/index.ts';
import { SimFs } from '../../src/sim/sim-fs.ts';
import { ChunkStore } from '../../src/worker/chunk-store.ts';
import { WorkerErrorCode } from '../../src/worker/errors.ts';
import { WorkerMethod } from '../../src/worker/protocol.ts';
import { ChainReplica, type ReplicaBug } from '../../src/worker/replication.ts';

const head = 1001;
const chunk = { inodeId: 7, index: 0 };

function instantDisk(fs: SimFs): Disk {
  return fs.attach({ later: (_ms, fn) => setImmediate(fn), syncLatencyMs: () => 0, syncFails: () => false, syncLies: () => false, onOp: () => undefined });
}

/** Chain 1 of targets 1001-1003 (workers 1-3), all serving, in this order. */
function routingOf(chainVersion: number, order: number[]): Routing {
  return new Routing({
    clusterId: 'c',
    routingVersion: chainVersion,
    workers: [1, 2, 3].map((w) => ({ workerId: w, address: `w${w}:1` })),
    targets: [1001, 1002, 1003].map((t) => ({ targetId: t, workerId: t - 1000, path: `/t${t}`, capacityBytes: 1, state: TargetState.Serving, chainId: 1 })),
    chains: [{ chainId: 1, version: chainVersion, targetIds: order }],
    tables: [],
  });
}

/** Target 1001's store, on a simulated disk that answers at once. */
function headStore(): Promise<ChunkStore> {
  return ChunkStore.open(instantDisk(new SimFs()), '/t1001', { identity: { clusterId: 'c', workerId: 1, targetId: head } });
}

/** The replica of worker 1, holding `store` for target 1001, reaching its successors through `conn`. */
function headReplica(store: ChunkStore, routing: () => Routing, conn: Connection, opts: { forwardDeadlineMs?: number; bugs?: ReplicaBug[] } = {}): ChainReplica {
  return new ChainReplica({
    clock: systemClock,
    routing,
    serving: () => true,
    store: (id) => (id === head ? store : undefined),
    connect: () => conn,
    forwardDeadlineMs: opts.forwardDeadlineMs ?? 1_000,
    syncPageChunks: 4096,
    callTimeoutMs: 1_000,
    bugs: new Set(opts.bugs ?? []),
  });
}

async function run(bugs: ReplicaBug[]): Promise<{ second: PromiseSettledResult<unknown>; forwards: number; committed: number }> {
  const store = await headStore();
  let routing = routingOf(1, [1001, 1002, 1003]);
  let forwards = 0;
  let firstForwarded!: () => void;
  const forwarding = new Promise<void>((r) => (firstForwarded = r));
  let releaseFirst!: () => void;
  const conn: Connection = {
    call: async <T>(method: string): Promise<CallResult<T>> => {
      assert.equal(method, WorkerMethod.forward);
      forwards++;
      if (forwards === 1) {
        // The first write's forward to the next member is slow: it holds the chunk's lock meanwhile.
        firstForwarded();
        await new Promise<void>((r) => (releaseFirst = r));
      }
      return { body: {} as T, payload: undefined };
    },
    notify: () => undefined,
    close: () => undefined,
  };
  const replica = headReplica(store, () => routing, conn, { bugs });
  const write = (fill: number): Promise<unknown> => {
    const data = new Uint8Array(4096).fill(fill);
    return replica.write({ chainId: 1, chainVersion: 1, ...chunk, offset: 0, crc32c: crc32c(data) }, data);
  };
  const first = write(1);
  await forwarding;
  const second = write(2); // waits for the chunk's lock, routed by chain version 1
  await new Promise((r) => setImmediate(r));
  // Meanwhile the head went to the back of the chain: the members now before it never get the
  // second write from it.
  routing = routingOf(2, [1002, 1003, 1001]);
  releaseFirst();
  await first;
  const [settled] = await Promise.allSettled([second]);
  return { second: settled, forwards, committed: store.get(chunk)?.commitVersion ?? 0 };
}

test('a write that waited for its chunk lock while the chain changed is refused, not committed by the old routing', async () => {
  const { second, forwards, committed } = await run([]);
  assert.equal(second.status, 'rejected');
  assert.equal((second as PromiseRejectedResult).reason.code, WorkerErrorCode.StaleChainVersion);
  assert.equal(forwards, 1, 'only the first write was forwarded');
  assert.equal(committed, 1, 'the refused write left no version behind');
});

test('with the planted bug no-recheck-after-lock, the same write commits as the tail: the test can fail', async () => {
  const { second, forwards, committed } = await run(['no-recheck-after-lock']);
  assert.equal(second.status, 'fulfilled', 'the old rule commits the write');
  assert.equal(forwards, 1, 'without forwarding it to the members now before it');
  assert.equal(committed, 2);
});

// Second: a write's payload goes back to the receive pool only once nothing can read it: stored,
// and forwarded in one send that the successor answered. A send that failed may still sit in a
// socket's queue, so after a retry the buffer is left to the GC.

async function recycledAfter(order: number[], answers: ('ok' | 'fail')[], crcOk = true): Promise<{ recycled: number; recycledBeforeAnswer: boolean; result: PromiseSettledResult<unknown> }> {
  const store = await headStore();
  let recycled = 0;
  let answered = 0;
  let recycledBeforeAnswer = false;
  const conn: Connection = {
    call: async <T>(): Promise<CallResult<T>> => {
      await new Promise((r) => setImmediate(r));
      if (recycled > 0) recycledBeforeAnswer = true;
      const answer = answers[answered++];
      if (answer !== 'ok') throw Object.assign(new Error('successor unreachable'), { code: 'CAIRN_UNAVAILABLE' });
      return { body: {} as T, payload: undefined };
    },
    notify: () => undefined,
    close: () => undefined,
  };
  const replica = headReplica(store, () => routingOf(1, order), conn, { forwardDeadlineMs: 5_000 });
  const data = new Uint8Array(4096).fill(7);
  const [result] = await Promise.allSettled([replica.write({ chainId: 1, chainVersion: 1, ...chunk, offset: 0, crc32c: (crc32c(data) ^ (crcOk ? 0 : 1)) >>> 0 }, data, 'client', () => recycled++)]);
  return { recycled, recycledBeforeAnswer, result };
}

test('a write forwarded in one answered send gives its payload back, after the answer', async () => {
  const r = await recycledAfter([1001, 1002, 1003], ['ok']);
  assert.equal(r.result.status, 'fulfilled');
  assert.equal(r.recycled, 1);
  assert.equal(r.recycledBeforeAnswer, false);
});

test('at the tail (nothing to forward) the payload goes back once stored', async () => {
  const r = await recycledAfter([1001], []);
  assert.equal(r.result.status, 'fulfilled');
  assert.equal(r.recycled, 1);
});

test('a write whose forward was retried keeps its payload from the pool (a failed send may still be queued)', async () => {
  const r = await recycledAfter([1001, 1002, 1003], ['fail', 'ok']);
  assert.equal(r.result.status, 'fulfilled', 'the retry succeeded');
  assert.equal(r.recycled, 0);
});

test('a refused write (its CRC does not match) keeps its payload from the pool', async () => {
  const r = await recycledAfter([1001, 1002, 1003], ['ok'], false);
  assert.equal(r.result.status, 'rejected');
  assert.equal(r.recycled, 0);
});

// Third: the replica clients read a chunk from keeps its new version in the page cache; the
// others drop theirs once durable.

test('a write is kept in the page cache by the replica reads of its chunk go to, not by the others', async () => {
  const store = await headStore();
  const kept: boolean[] = [];
  const stage = store.stage.bind(store);
  store.stage = (id, req) => {
    kept.push(req.keepCached === true);
    return stage(id, req);
  };
  const conn: Connection = { call: async <T>(): Promise<CallResult<T>> => ({ body: {} as T, payload: undefined }), notify: () => undefined, close: () => undefined };
  const routing = routingOf(1, [1001, 1002, 1003]);
  const replica = headReplica(store, () => routing, conn);
  const data = new Uint8Array(4096).fill(3);
  for (const index of [0, 1, 2]) await replica.write({ chainId: 1, chainVersion: 1, inodeId: 7, index, offset: 0, crc32c: crc32c(data) }, data);
  // Chunk i of inode 7 is read first from member (7 + i) % 3 of [1001, 1002, 1003]: 1001 is that member for chunk 2.
  assert.deepEqual(routing.readOrder(1, 7, 2)[0].targetId, head);
  assert.deepEqual(kept, [false, false, true]);
});
