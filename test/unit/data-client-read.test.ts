// How the client's chunk read (src/client/data-client.ts) turns its replicas' answers into one:
// found, absent (a hole, or a chunk whose first write is still in flight), or a failure to retry.
// A replica that lacks a chunk while another cannot answer now must not make the chunk look lost.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DataClient } from '../../src/client/data-client.ts';
import type { MasterCalls } from '../../src/client/master-calls.ts';
import type { Connection } from '../../src/io/index.ts';
import type { CallResult } from '../../src/rpc/index.ts';
import { systemClock } from '../../src/io/system-clock.ts';
import { TargetState, type Layout } from '../../src/meta/commands.ts';
import type { RoutingInfo } from '../../src/meta/namespace-state.ts';
import { WorkerError, WorkerErrorCode } from '../../src/worker/errors.ts';

/** One chain of three serving members, on workers 1 (head), 2 and 3 (tail). */
const routing: RoutingInfo = {
  clusterId: 'c',
  routingVersion: 1,
  workers: [1, 2, 3].map((w) => ({ workerId: w, address: `w${w}:1` })),
  targets: [1, 2, 3].map((w) => ({ targetId: w * 1000 + 1, workerId: w, path: '/t', capacityBytes: 1, state: TargetState.Serving, chainId: 1 })),
  chains: [{ chainId: 1, version: 1, targetIds: [1001, 2001, 3001] }],
  tables: [{ tableId: 1, version: 1, chainIds: [1], chainCounts: [1], publishedMs: 0 }],
};
const layout: Layout = { chainTableId: 1, chainTableVersion: 1, stripeWidth: 1, shuffleSeed: 0, chunkSizeBytes: 1024 };

type Answer = 'data' | keyof typeof WorkerErrorCode;

/** A client whose replicas answer as `answers` says, per worker, one answer per call (the last repeats). */
function client(answers: Record<number, Answer[]>, retryDeadlineMs = 300): { data: DataClient; calls: number[] } {
  const calls: number[] = [];
  const master = { query: async () => routing } as unknown as MasterCalls;
  const connect = (address: string): Connection => {
    const w = Number(address.slice(1, 2));
    return {
      call: async <T>(): Promise<CallResult<T>> => {
        calls.push(w);
        const list = answers[w];
        const a = list.length > 1 ? list.shift()! : list[0];
        if (a === 'data') return { body: { lengthBytes: 3 } as T, payload: Buffer.from([1, 2, 3]) };
        throw new WorkerError(WorkerErrorCode[a], `worker ${w}: ${a}`);
      },
      notify: () => undefined,
      close: () => undefined,
    };
  };
  return { data: new DataClient({ master, connect, clock: systemClock, retryDeadlineMs }), calls };
}

// Chunk 0 of inode 1 is read from member (1 + 0) % 3 = 1 first: worker 2, then 3, then 1.
test('absent on every replica: not found (a hole)', async () => {
  const { data } = client({ 1: ['ChunkNotFound'], 2: ['ChunkNotFound'], 3: ['ChunkNotFound'] });
  assert.deepEqual(await data.readChunk(layout, 1, 0, 0, 3), { found: false });
});

test('absent at the tail and only an uncommitted version elsewhere: not found (its first write is in flight)', async () => {
  const { data } = client({ 1: ['ChunkDirty'], 2: ['ChunkDirty'], 3: ['ChunkNotFound'] });
  assert.deepEqual(await data.readChunk(layout, 1, 0, 0, 3), { found: false });
});

test('absent on one replica while another cannot answer now: asked again, then found', async () => {
  // Worker 1 is asked last the first time round: its "not found" must not decide.
  const { data, calls } = client({ 1: ['ChunkNotFound'], 2: ['TargetUnavailable', 'data'], 3: ['ChunkNotFound'] });
  const r = await data.readChunk(layout, 1, 0, 0, 3);
  assert.equal(r.found, true);
  assert.ok(calls.length > 3, `asked again: ${calls.join(',')}`);
});

test('absent on one replica while another cannot answer until the deadline: EIO, never "not found"', async () => {
  const { data } = client({ 1: ['ChunkNotFound'], 2: ['TargetUnavailable'], 3: ['ChunkNotFound'] }, 200);
  await assert.rejects(data.readChunk(layout, 1, 0, 0, 3), (err: Error & { details?: { errno?: string } }) => /failed for 200 ms/.test(err.message));
});
