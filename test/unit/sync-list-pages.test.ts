// A resync's listing of its target (chunk.syncList, src/worker/replication.ts) verifies every
// chunk it lists, so a page ends early on bytes read or on time: a target of thousands of chunks
// once timed out on its first page at every retry, and its resync never finished.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Clock } from '../../src/io/index.ts';
import { systemClock } from '../../src/io/system-clock.ts';
import { TargetState } from '../../src/meta/commands.ts';
import { Routing } from '../../src/meta/routing.ts';
import { SimFs } from '../../src/sim/sim-fs.ts';
import { ChunkStore } from '../../src/worker/chunk-store.ts';
import type { ChunkRef, SyncListReply } from '../../src/worker/protocol.ts';
import { ChainReplica, syncListScrubBytesMax } from '../../src/worker/replication.ts';

const MiB = 2 ** 20;
const callTimeoutMs = 4_000;

async function targetWith(chunks: number, chunkBytes: number, clock: Clock): Promise<ChainReplica> {
  const disk = new SimFs().attach({ later: (_ms, fn) => setImmediate(fn), syncLatencyMs: () => 0, syncFails: () => false, syncLies: () => false, onOp: () => undefined });
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
