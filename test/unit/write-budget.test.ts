// Writers sharing a WriteBudget (a mount's open files): together they keep no more than it in
// flight; a chunk write past it waits, in order, for one to finish, and a failure gives its share back.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FileWriter, WriteBudget, type DataClient } from '../../src/client/index.ts';

const chunk = 1024;
const layout = { chunkSizeBytes: chunk, stripeWidth: 1, chainTableId: 1, chainTableVersion: 1, shuffleSeed: 0 };

/** A data client whose chunk writes finish when the test says. */
function heldWrites(): { client: DataClient; sent: { inodeId: number; index: number; finish: (err?: Error) => void }[] } {
  const sent: { inodeId: number; index: number; finish: (err?: Error) => void }[] = [];
  const client = {
    writeChunk: (_layout: unknown, inodeId: number, index: number) =>
      new Promise<boolean>((resolve, reject) => sent.push({ inodeId, index, finish: (err) => (err === undefined ? resolve(true) : reject(err)) })),
  } as unknown as DataClient;
  return { client, sent };
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

test('writers sharing a budget keep at most it in flight together; the next chunk goes when one finishes', async () => {
  const { client, sent } = heldWrites();
  const budget = new WriteBudget(3 * chunk);
  const a = new FileWriter(client, { inodeId: 1, layout }, { budget });
  const b = new FileWriter(client, { inodeId: 2, layout }, { budget });
  // Each file alone may have 64 MiB in flight; together they have three chunks' worth.
  const writes = [a.write(Buffer.alloc(2 * chunk), 0), b.write(Buffer.alloc(2 * chunk), 0)];
  await settle();
  const names = (): string[] => sent.map((s) => `${s.inodeId}:${s.index}`).sort();
  assert.equal(sent.length, 3, `three chunks in flight: ${names().join(', ')}`);
  assert.equal(budget.used, 3 * chunk);
  sent[0].finish();
  await settle();
  assert.deepEqual(names(), ['1:0', '1:1', '2:0', '2:1'], 'the waiting chunk went once one finished');
  for (const s of sent.slice(1)) s.finish();
  await Promise.all(writes);
  await Promise.all([a.flush(), b.flush()]);
  assert.equal(budget.used, 0);
});

test("a failed chunk write gives its share back, and one larger than the budget goes when nothing else is in flight", async () => {
  const { client, sent } = heldWrites();
  const budget = new WriteBudget(chunk);
  const a = new FileWriter(client, { inodeId: 1, layout }, { budget });
  const first = a.write(Buffer.alloc(chunk), 0);
  await settle();
  sent[0].finish(new Error('chain gone'));
  await first;
  await assert.rejects(a.flush(), /chain gone/);
  assert.equal(budget.used, 0, 'the failed write gave its bytes back');
  // A budget smaller than one chunk would never let it go: it goes alone.
  const small = new WriteBudget(chunk / 2);
  const b = new FileWriter(client, { inodeId: 2, layout }, { budget: small });
  const w = b.write(Buffer.alloc(chunk), 0);
  await settle();
  assert.equal(sent.length, 2);
  sent[1].finish();
  await w;
  await b.flush();
  assert.equal(small.used, 0);
});
