// The order of a client's writes to one chunk (src/client/data-client.ts): a write that is retried
// after a chain change must not land after a later write to the same bytes (the FUSE mount hands
// the kernel's writes on without waiting for them, so two overlapping writes are often in flight).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import { DataClient } from '../../src/client/data-client.ts';
import type { MasterCalls } from '../../src/client/master-calls.ts';
import type { Connection } from '../../src/io/index.ts';
import type { CallResult } from '../../src/rpc/index.ts';
import { payloadByteLength, type Payload } from '../../src/rpc/frame.ts';
import { FileWriter } from '../../src/client/file-io.ts';
import { systemClock } from '../../src/io/system-clock.ts';
import { TargetState, type Layout } from '../../src/meta/commands.ts';
import type { RoutingInfo } from '../../src/meta/namespace-state.ts';
import type { WriteRequest } from '../../src/worker/protocol.ts';
import { WorkerError, WorkerErrorCode } from '../../src/worker/errors.ts';

const routing: RoutingInfo = {
  clusterId: 'c',
  routingVersion: 1,
  workers: [{ workerId: 1, address: 'w1:1' }],
  targets: [{ targetId: 1001, workerId: 1, path: '/t', capacityBytes: 1, state: TargetState.Serving, chainId: 1 }],
  chains: [{ chainId: 1, version: 1, targetIds: [1001] }],
  tables: [{ tableId: 1, version: 1, chainIds: [1], chainCounts: [1], publishedMs: 0 }],
};
const layout: Layout = { chainTableId: 1, chainTableVersion: 1, stripeWidth: 1, shuffleSeed: 0, chunkSizeBytes: 1024 };

/**
 * A head that applies writes to one chunk as they arrive, refusing the first attempt of those
 * whose first byte is in `refuseOnce` (stale chain version, as during a chain change).
 */
function headWithChunk(refuseOnce: Set<number>): { data: DataClient; chunk: Buffer; applied: string[] } {
  const chunk = Buffer.alloc(32);
  const applied: string[] = [];
  const master = { query: async () => routing } as unknown as MasterCalls;
  const connect = (): Connection => ({
    call: async <T>(_method: string, body: unknown, opts?: { payload?: Uint8Array }): Promise<CallResult<T>> => {
      const req = body as WriteRequest;
      await new Promise((r) => setImmediate(r));
      if (refuseOnce.delete(req.offset)) throw new WorkerError(WorkerErrorCode.StaleChainVersion, 'chain 1 is at version 2');
      if (req.truncate === true) chunk.fill(0, req.offset);
      else chunk.set(opts!.payload!, req.offset);
      applied.push(req.truncate === true ? `truncate ${req.offset}` : `write ${req.offset}`);
      return { body: { commitVersion: applied.length, lengthBytes: chunk.length, crc32c: 0 } as T, payload: undefined };
    },
    notify: () => undefined,
    close: () => undefined,
  });
  return { data: new DataClient({ master, connect, clock: systemClock, retryDeadlineMs: 5_000 }), chunk, applied };
}

test('a retried write lands before a later write to the same bytes; one to other bytes does not wait for it', async () => {
  const { data, chunk, applied } = headWithChunk(new Set([0]));
  const first = data.writeChunk(layout, 7, 0, 0, Buffer.alloc(10, 'a'));
  const overlapping = data.writeChunk(layout, 7, 0, 5, Buffer.alloc(10, 'b'));
  const apart = data.writeChunk(layout, 7, 0, 20, Buffer.alloc(4, 'c'));
  await Promise.all([first, overlapping, apart]);
  assert.deepEqual(applied, ['write 20', 'write 0', 'write 5']);
  assert.equal(chunk.toString('latin1', 0, 24).replaceAll('\0', '.'), 'aaaaabbbbbbbbbb.....cccc');
});

test('a truncate waits for the writes before it past its cut, and a write after it waits for the truncate', async () => {
  const { data, chunk, applied } = headWithChunk(new Set([16]));
  const write = data.writeChunk(layout, 7, 0, 16, Buffer.alloc(8, 'a'));
  const truncate = data.truncateChunk(layout, 7, 0, 12);
  const after = data.writeChunk(layout, 7, 0, 14, Buffer.alloc(2, 'b'));
  await Promise.all([write, truncate, after]);
  assert.deepEqual(applied, ['write 16', 'truncate 12', 'write 14']);
  assert.equal(chunk.toString('latin1', 12, 24).replaceAll('\0', '.'), '..bb........');
});

test('a chunk gathered from pieces goes out as those pieces, unjoined, with the CRC32C of their bytes together', async () => {
  const sent: { crc: number; payload: Payload }[] = [];
  const master = { query: async () => routing } as unknown as MasterCalls;
  const connect = (): Connection => ({
    call: async <T>(_method: string, body: unknown, opts?: { payload?: Payload }): Promise<CallResult<T>> => {
      sent.push({ crc: (body as WriteRequest).crc32c, payload: opts!.payload! });
      return { body: { commitVersion: 1, lengthBytes: 1024, crc32c: 0 } as T, payload: undefined };
    },
    notify: () => undefined,
    close: () => undefined,
  });
  const data = new DataClient({ master, connect, clock: systemClock, retryDeadlineMs: 5_000 });
  const writer = new FileWriter(data, { inodeId: 7, layout, chunks: null });
  const pieces = [randomBytes(100), randomBytes(400), randomBytes(524), randomBytes(30)];
  let at = 0;
  for (const p of pieces) {
    await writer.write(p, at);
    at += p.length;
  }
  await writer.flush();
  assert.equal(sent.length, 2, 'a whole chunk of 1024 bytes, then the 30 after it');
  sent.sort((a, b) => payloadByteLength(b.payload) - payloadByteLength(a.payload));
  assert.ok(Array.isArray(sent[0].payload), 'the first chunk as its three pieces');
  assert.deepEqual(sent[0].payload, pieces.slice(0, 3), 'the caller\'s own buffers');
  assert.equal(sent[0].crc, crc32c(Buffer.concat(pieces.slice(0, 3))));
  assert.equal(sent[1].crc, crc32c(pieces[3]));
});

test('writeChunk says whether its bytes went out once (reusable) or more (a failed send may still be queued)', async () => {
  const { data } = headWithChunk(new Set([8]));
  assert.equal(await data.writeChunk(layout, 7, 0, 0, Buffer.alloc(4, 'a')), true);
  assert.equal(await data.writeChunk(layout, 7, 0, 8, Buffer.alloc(4, 'b')), false, 'retried after a refusal');
});

test("FileWriter's done: once every chunk write holding the bytes succeeded, each sent once; never after a retry", async () => {
  // A head that takes any write, refusing once the first attempt at each chunk in `refuse`.
  const writerTo = (refuse: Set<number>, inodeId: number): FileWriter => {
    const master = { query: async () => routing } as unknown as MasterCalls;
    const connect = (): Connection => ({
      call: async <T>(_method: string, body: unknown): Promise<CallResult<T>> => {
        await new Promise((r) => setImmediate(r));
        if (refuse.delete((body as WriteRequest).index)) throw new WorkerError(WorkerErrorCode.StaleChainVersion, 'chain 1 is at version 2');
        return { body: { commitVersion: 1, lengthBytes: 0, crc32c: 0 } as T, payload: undefined };
      },
      notify: () => undefined,
      close: () => undefined,
    });
    const data = new DataClient({ master, connect, clock: systemClock, retryDeadlineMs: 5_000 });
    return new FileWriter(data, { inodeId, layout, chunks: null });
  };
  // Chunks of 1,024 bytes: a write of 1,500 bytes at 0 lies in chunks 0 and 1.
  const calls: string[] = [];
  const retried = writerTo(new Set([0]), 7);
  await retried.write(Buffer.alloc(1500, 'x'), 0, () => calls.push('spanning, chunk 0 resent'));
  await retried.write(Buffer.alloc(100, 'y'), 1500, () => calls.push('in chunk 1 only'));
  await retried.flush();
  assert.deepEqual(calls, ['in chunk 1 only'], 'bytes of a resent chunk are not handed back');
  const clean = writerTo(new Set(), 8);
  await clean.write(Buffer.alloc(1500, 'x'), 0, () => calls.push('spanning'));
  await new Promise((r) => setTimeout(r, 20)); // chunk 0 is written meanwhile
  assert.deepEqual(calls, ['in chunk 1 only'], 'chunk 1 is still gathering: not yet');
  await clean.flush();
  assert.deepEqual(calls, ['in chunk 1 only', 'spanning']);
});
