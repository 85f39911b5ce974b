// Frame 0 of a journal snapshot: member addresses and removed ids, and the older form that holds
// only the addresses, which snapshots written before removed ids were kept still carry.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Packr } from 'msgpackr';
import { decodeMemberFrame, encodeMemberFrame } from '../../src/journal/raft/member-frame.ts';
import { JournalErrorCode } from '../../src/journal/raft/errors.ts';

const packr = new Packr({ useRecords: false });

test('the current form carries the addresses and the removed ids', () => {
  const frame = { addresses: [[1, '10.0.0.1:7400'], [3, '10.0.0.3:7400'], [4, '10.0.0.2:7400']] as [number, string][], removedIds: [2] };
  assert.deepEqual(decodeMemberFrame(encodeMemberFrame(frame)), frame);
});

test('the old form, an array of [id, address] pairs, still restores, with no removed id', () => {
  const old = packr.pack([[1, '10.0.0.1:7400'], [2, '10.0.0.2:7400']]);
  assert.deepEqual(decodeMemberFrame(old), { addresses: [[1, '10.0.0.1:7400'], [2, '10.0.0.2:7400']], removedIds: [] });
});

test('a malformed frame 0 is a corrupt snapshot', () => {
  for (const v of [7, null, [[1]], [['1', 'a']], { addresses: [[1, 'a']] }, { addresses: [[1, 'a']], removedIds: [0] }, { addresses: [[1, 'a']], removedIds: ['2'] }]) {
    assert.throws(() => decodeMemberFrame(packr.pack(v)), (err: { code?: string }) => err.code === JournalErrorCode.SnapshotCorrupt, JSON.stringify(v));
  }
  assert.throws(() => decodeMemberFrame(new Uint8Array([0xc1])), (err: { code?: string }) => err.code === JournalErrorCode.SnapshotCorrupt);
});
