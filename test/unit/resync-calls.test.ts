// The calls a resync makes of its target (src/worker/replication.ts). chunk.syncList verifies every
// chunk it lists, so a page ends early on bytes read or on time: a target of thousands of chunks
// once timed out on its first page at every retry, and its resync never finished. chunk.syncRead
// hands a named committed version to a source whose own copy is damaged: with the source the only
// serving member, the returning target may be the one other copy (simulator data seeds 3910, 7442).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Clock, Connection, Disk } from '../../src/io/index.ts';
import { systemClock } from '../../src/io/system-clock.ts';
import { TargetState } from '../../src/meta/commands.ts';
import type { TargetInfo } from '../../src/meta/namespace-state.ts';
import { Routing } from '../../src/meta/routing.ts';
import type { CallResult } from '../../src/rpc/index.ts';
import { SimFs } from '../../src/sim/sim-fs.ts';
import { chunkFileName, fanoutDirName } from '../../src/worker/chunk-file.ts';
import { ChunkStore } from '../../src/worker/chunk-store.ts';
import { WorkerErrorCode } from '../../src/worker/errors.ts';
import type { ChunkRef, SyncListReply } from '../../src/worker/protocol.ts';
import { ChainReplica, syncListScrubBytesMax } from '../../src/worker/replication.ts';

const MiB = 2 ** 20;
const callTimeoutMs = 4_000;

/** A simulated disk whose operations complete at once and never fail. */
function instantDisk(fs: SimFs): Disk {
  return fs.attach({ later: (_ms, fn) => setImmediate(fn), syncLatencyMs: () => 0, syncFails: () => false, syncLies: () => false, onOp: () => undefined });
}

async function targetWith(chunks: number, chunkBytes: number, clock: Clock): Promise<ChainReplica> {
  const disk = instantDisk(new SimFs());
  const store = await ChunkStore.open(disk, '/t', { identity: { clusterId: 'c', workerId: 1, targetId: 1001 } });
  for (let i = 0; i < chunks; i++) {
    const id = { inodeId: 7, index: i };
    await store.stage(id, { version: 1, chainVersion: 1, offset: 0, data: new Uint8Array(chunkBytes).fill(i) });
    await store.commit(id, 1);
  }
  const routing = new Routing({
    clusterId: 'c',
    routingVersion: 1,
    workers: [{ workerId: 1, address: 'w1:1' }],
    targets: [{ targetId: 1001, workerId: 1, path: '/t', capacityBytes: 1, state: TargetState.Serving, chainId: 1 }],
    chains: [{ chainId: 1, version: 1, targetIds: [1001] }],
    tables: [],
  });
  return new ChainReplica({
    clock,
    routing: () => routing,
    serving: () => true,
    store: (id) => (id === 1001 ? store : undefined),
    connect: () => assert.fail('no peer is called'),
    forwardDeadlineMs: 1_000,
    syncPageChunks: 4096,
    callTimeoutMs,
  });
}

/** Every page, following each reply's last chunk as the cursor. */
async function listAll(replica: ChainReplica): Promise<SyncListReply[]> {
  const pages: SyncListReply[] = [];
  let after: ChunkRef | undefined;
  for (;;) {
    const page = await replica.syncList({ chainId: 1, chainVersion: 1, targetId: 1001, limit: 4096, ...(after === undefined ? {} : { after }) });
    pages.push(page);
    if (!page.more) return pages;
    assert.ok(page.chunks.length > 0, 'a page that says more holds at least one chunk');
    const last = page.chunks.at(-1)!;
    after = { inodeId: last.inodeId, index: last.index };
  }
}

test('a syncList page ends once it has verified its bytes budget; the pages list every chunk once', async () => {
  const chunkBytes = 4 * MiB;
  const replica = await targetWith(20, chunkBytes, systemClock);
  const pages = await listAll(replica);
  assert.ok(pages.length >= 3, `20 chunks of 4 MiB take at least 3 pages: ${pages.map((p) => p.chunks.length).join(', ')}`);
  for (const p of pages) assert.ok(p.chunks.length * chunkBytes <= syncListScrubBytesMax, `a page verified ${p.chunks.length} chunks`);
  assert.deepEqual(
    pages.flatMap((p) => p.chunks.map((c) => c.index)),
    Array.from({ length: 20 }, (_, i) => i),
  );
  assert.ok(pages.every((p) => p.chunks.every((c) => !c.corrupt && c.commitVersion === 1)));
});

test('a syncList page ends once its verifying has taken a quarter of the caller\'s timeout', async () => {
  // A disk so slow that each chunk's check costs 300 ms of the clock.
  let nowMs = 0;
  const clock: Clock = { ...systemClock, now: () => (nowMs += 300) };
  const replica = await targetWith(12, 1024, clock);
  const pages = await listAll(replica);
  assert.ok(pages.length > 1, 'the twelve small chunks did not all fit the time of one page');
  for (const p of pages) assert.ok(p.chunks.length <= Math.ceil(callTimeoutMs / 4 / 300), `a page held ${p.chunks.length} chunks`);
  assert.deepEqual(
    pages.flatMap((p) => p.chunks.map((c) => c.index)),
    Array.from({ length: 12 }, (_, i) => i),
  );
});

// ---- chunk.syncRead ------------------------------------------------------------------------------

const A = { inodeId: 7, index: 0 };
const chunkPath = (dir: string, version: number): string => `${dir}/chunks/${fanoutDirName(A.inodeId)}/${chunkFileName(A, version, 'chunk')}`;

/**
 * A chain of two members: 1001 on worker 1 serving (a resync's source), 2001 on worker 2 syncing
 * (its target), each replica reaching the other through calls to its methods.
 */
async function twoMembers(second: TargetState = TargetState.Syncing): Promise<{ source: ChainReplica; target: ChainReplica; stores: Map<number, ChunkStore>; fs: Map<number, SimFs>; info: (id: number) => TargetInfo }> {
  const routing = new Routing({
    clusterId: 'c',
    routingVersion: 1,
    workers: [
      { workerId: 1, address: 'w1:1' },
      { workerId: 2, address: 'w2:1' },
    ],
    targets: [
      { targetId: 1001, workerId: 1, path: '/t1', capacityBytes: 1, state: TargetState.Serving, chainId: 1 },
      { targetId: 2001, workerId: 2, path: '/t2', capacityBytes: 1, state: second, chainId: 1 },
    ],
    chains: [{ chainId: 1, version: 1, targetIds: [1001, 2001] }],
    tables: [],
  });
  const stores = new Map<number, ChunkStore>();
  const fs = new Map<number, SimFs>();
  const replicas = new Map<string, ChainReplica>();
  for (const [workerId, targetId] of [[1, 1001], [2, 2001]]) {
    const sim = new SimFs();
    const disk = instantDisk(sim);
    stores.set(targetId, await ChunkStore.open(disk, `/t${workerId}`, { identity: { clusterId: 'c', workerId, targetId } }));
    fs.set(targetId, sim);
    replicas.set(`w${workerId}:1`, new ChainReplica({
      clock: systemClock,
      routing: () => routing,
      serving: () => true,
      store: (id) => (id === targetId ? stores.get(id) : undefined),
      connect: (address) => peerCalls(replicas.get(address)!),
      forwardDeadlineMs: 1_000,
      syncPageChunks: 4096,
      callTimeoutMs,
    }));
  }
  return { source: replicas.get('w1:1')!, target: replicas.get('w2:1')!, stores, fs, info: (id) => routing.target(id)! };
}

function peerCalls(replica: ChainReplica): Connection {
  return {
    call: async <T>(method: string, body: unknown): Promise<CallResult<T>> => {
      const r = method === 'chunk.syncRead' ? await replica.syncRead(body) : method === 'chunk.read' ? await replica.read(body) : assert.fail(`unexpected call ${method}`);
      return { body: r.body as T, payload: r.payload === undefined ? undefined : Buffer.from(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength) };
    },
    notify: () => undefined,
    close: () => undefined,
  };
}

async function put(store: ChunkStore, version: number, data: Uint8Array): Promise<void> {
  await store.stage(A, { version, chainVersion: 1, offset: 0, data, replace: true });
  await store.commit(A, version);
}

const content = new Uint8Array(200 * 1024).map((_, i) => (i * 7) & 0xff);
const code = (c: string) => (err: unknown) => (err as { code?: string }).code === c;

test('a member whose copy is damaged repairs it from another that holds that version, serving or not: its syncing target, one waiting to sync', async () => {
  for (const second of [TargetState.Syncing, TargetState.Waiting, TargetState.Offline]) {
    const { source, stores, fs, info } = await twoMembers(second);
    const [mine, theirs] = [stores.get(1001)!, stores.get(2001)!];
    await put(mine, 1, content);
    await put(theirs, 1, content);
    fs.get(1001)!.flipBit(chunkPath('/t1', 1), 4096 + 100, 2);
    await assert.rejects(mine.readWhole(A), code(WorkerErrorCode.ChunkCorrupt));
    // The only other member does not serve: it is asked for this version by number.
    const repaired = await source.repairFromPeer(info(1001), 1, mine.get(A)!, mine);
    assert.equal(repaired.commitVersion, 1, second);
    assert.deepEqual(Uint8Array.from((await mine.readWhole(A)).data), content);
  }
});

test('chunk.syncRead hands over only the committed version named; a repair refuses any other', async () => {
  const { source, target, stores, fs, info } = await twoMembers();
  const [mine, theirs] = [stores.get(1001)!, stores.get(2001)!];
  await put(mine, 2, content);
  await put(theirs, 1, content.subarray(0, 1000));
  const call = { chainId: 1, chainVersion: 1, targetId: 2001, ...A };
  await assert.rejects(target.syncRead({ ...call, commitVersion: 2 }), code(WorkerErrorCode.ChunkNotFound));
  const one = await target.syncRead({ ...call, commitVersion: 1 });
  assert.deepEqual(one.body, { lengthBytes: 1000, commitVersion: 1 });
  assert.deepEqual(Uint8Array.from(one.payload!), content.subarray(0, 1000));
  await assert.rejects(target.syncRead({ ...call, commitVersion: 1, extra: true }), code(WorkerErrorCode.InvalidArgument));
  await assert.rejects(target.syncRead({ ...call, chainVersion: 2, commitVersion: 1 }), code(WorkerErrorCode.StaleChainVersion));
  fs.get(1001)!.flipBit(chunkPath('/t1', 2), 4096 + 100, 2);
  await assert.rejects(mine.readWhole(A), code(WorkerErrorCode.ChunkCorrupt));
  await assert.rejects(source.repairFromPeer(info(1001), 1, mine.get(A)!, mine), /target 2001 .*committed version 1, not 2/);
  await assert.rejects(mine.readWhole(A), code(WorkerErrorCode.ChunkCorrupt), 'still damaged: nothing of another version was taken');
});
