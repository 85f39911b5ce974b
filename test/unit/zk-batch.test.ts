// The ZooKeeper journal's batch format (src/journal/zookeeper/batch.ts): round trips, and every
// kind of damage reported, never decoded into entries.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { batchBytes, decodeBatch, encodeBatch } from '../../src/journal/zookeeper/batch.ts';

test('a batch round-trips its epoch, first index and entries, empty entries included', () => {
  const entries = [Buffer.from('a'), Buffer.alloc(0), randomBytes(70_000)];
  const data = encodeBatch({ epoch: 7, firstIndex: 2 ** 40, entries });
  assert.equal(data.length, batchBytes(entries));
  const b = decodeBatch(data);
  assert.ok(typeof b !== 'string', String(b));
  assert.equal(b.epoch, 7);
  assert.equal(b.firstIndex, 2 ** 40);
  assert.deepEqual(b.entries.map((e) => Buffer.from(e)), entries);
});

test('damage anywhere is reported: a flipped bit, a cut, a foreign znode, a bad first index', () => {
  const data = encodeBatch({ epoch: 1, firstIndex: 5, entries: [Buffer.from('hello'), Buffer.from('world')] });
  for (let i = 0; i < data.length; i++) {
    const bad = Buffer.from(data);
    bad[i] ^= 0x10;
    assert.equal(typeof decodeBatch(bad), 'string', `bit flipped in byte ${i}`);
  }
  for (let n = 0; n < data.length; n++) assert.equal(typeof decodeBatch(data.subarray(0, n)), 'string', `cut to ${n} bytes`);
  assert.match(String(decodeBatch(Buffer.from('{"id":1,"address":"127.0.0.1:7000"}'))), /not a journal batch/);
  assert.match(String(decodeBatch(encodeBatch({ epoch: 1, firstIndex: 0, entries: [] }))), /bad first index/);
});
