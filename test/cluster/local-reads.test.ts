// Local reads on real processes: a client on the workers' machine reads committed chunk files
// itself (src/client/local-reads.ts, chunk.locate). The bytes must be the chain's: its own writes
// at once, another client's once it opens the file again, and damaged bytes never.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { putFile } from '../../src/client/files.ts';
import { WorkerErrorCode } from '../../src/worker/errors.ts';
import { DataCluster, flipChunkByte, pieces, readAll, sha } from './data-cluster.ts';

const KiB = 1024;
const chunkBytes = 64 * KiB;
const shape = { masters: 1, workers: 3, targetsPerWorker: 1, heartbeatMs: 250, offlineTimeoutMs: 2_000 };

test('local reads: the chain\'s bytes, this client\'s writes at once, another client\'s after the file is opened again; a chunk damaged everywhere is EIO, never its bytes', async (t) => {
  const c = await DataCluster.start(t, shape);
  const writer = c.client();
  const reader = c.client({ localReads: true });
  const body = randomBytes(6 * chunkBytes + 123);
  const attr = await putFile(writer.meta, writer.data, '/f', pieces(body, 100 * KiB), { layout: { chunkSizeBytes: chunkBytes, stripeWidth: 1 } });
  const layout = attr.layout!;

  assert.equal(sha(await readAll(reader, '/f')), sha(body));
  const first = reader.data.localReadStats()!;
  assert.equal(first.reads, 7, 'each chunk read from its file');
  assert.equal(first.opened, 7);
  assert.equal(first.bytes, body.length);

  // Its own write: read back at once (the kept file is forgotten).
  const mine = randomBytes(1000);
  await reader.data.writeChunk(layout, attr.inodeId, 0, 10, mine);
  mine.copy(body, 10);
  const r0 = await reader.data.readChunk(layout, attr.inodeId, 0, 0, chunkBytes);
  assert.ok(r0.found);
  assert.equal(sha(Buffer.from(r0.data)), sha(body.subarray(0, chunkBytes)));

  // Another client's write: seen once the reader opens the file again (close-to-open).
  const theirs = randomBytes(2000);
  await writer.data.writeChunk(layout, attr.inodeId, 1, 0, theirs);
  theirs.copy(body, chunkBytes);
  reader.data.forgetLocal(attr.inodeId);
  assert.equal(sha(await readAll(reader, '/f')), sha(body));
  assert.ok(reader.data.localReadStats()!.reads > first.reads, 'read from the files again');

  // Chunk 2 damaged on every replica: the local read's check fails, and so does each worker's.
  const info = await c.routing();
  for (const target of info.targets) await flipChunkByte(target.path, attr.inodeId, 2, 300);
  reader.data.forgetLocal(attr.inodeId);
  await assert.rejects(reader.data.readChunk(layout, attr.inodeId, 2, 0, chunkBytes), (err: { code?: string }) => err.code === WorkerErrorCode.ChunkLost);
  assert.equal(reader.data.localReadStats()!.damaged, 1);
  // The other chunks still read from their files.
  const r3 = await reader.data.readChunk(layout, attr.inodeId, 3, 0, chunkBytes);
  assert.ok(r3.found);
  assert.equal(sha(Buffer.from(r3.data)), sha(body.subarray(3 * chunkBytes, 4 * chunkBytes)));
});
