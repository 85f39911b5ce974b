// The quarantine's pure rules (src/master/quarantine.ts): which inodes of a target's listing are
// unknown, which of those a purge may remove, and the report's totals.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addUnknown, purgeable, quarantineListedMax, summarize, type InodeStatus, type QuarantinedTarget } from '../../src/master/quarantine.ts';

const entry = (): QuarantinedTarget => ({ targetId: 1001, workerId: 1, chunks: 0, bytes: 0, inodes: 0, inodeIds: [], aheadOfCounter: 0 });

test('only unknown inodes count; those at or past the counter are counted apart and never purgeable', () => {
  const status = new Map<number, InodeStatus>([[5, 'live'], [6, 'pendingGc']]);
  const of = (id: number): InodeStatus => status.get(id) ?? 'unknown';
  const e = entry();
  addUnknown(e, [{ inodeId: 5, chunks: 9, bytes: 900 }, { inodeId: 6, chunks: 2, bytes: 200 }, { inodeId: 7, chunks: 3, bytes: 300 }, { inodeId: 100, chunks: 1, bytes: 10 }], of, 100);
  assert.deepEqual({ ...e }, { ...entry(), chunks: 4, bytes: 310, inodes: 2, inodeIds: [7, 100], aheadOfCounter: 1 });
  assert.deepEqual(purgeable(e, of, 100), [7], 'the inode at the counter stays');
  status.set(7, 'live'); // a create took it since the listing: impossible below the counter, but never purged if so
  assert.deepEqual(purgeable(e, of, 101), [100]);
});

test('a report lists a bounded number of inodes per target; the counts cover them all', () => {
  const e = entry();
  const page = Array.from({ length: quarantineListedMax + 5 }, (_, i) => ({ inodeId: i + 1, chunks: 1, bytes: 1 }));
  addUnknown(e, page, () => 'unknown', 1e9);
  assert.equal(e.inodeIds.length, quarantineListedMax);
  assert.equal(e.inodes, quarantineListedMax + 5);
  const r = summarize([e, { ...entry(), targetId: 2001, error: 'no answer' }], 1e9, 42);
  assert.deepEqual([r.chunks, r.bytes, r.targetsUnreached, r.auditedMs], [quarantineListedMax + 5, quarantineListedMax + 5, 1, 42]);
});
