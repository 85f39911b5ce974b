// Raft messages from peers are checked before they reach the core.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkMessages, messagesPerCallMax, termMax } from '../../src/journal/raft/message-check.ts';

const entry = (index: number, term: number) => ({ term, index, type: 0, data: new Uint8Array([1]) });
const app = { type: 'app', from: 1, to: 2, term: 3, index: 4, logTerm: 3, commit: 4, entries: [entry(5, 3), entry(6, 3)] };

test('well-formed messages pass unchanged', () => {
  const heartbeat = { type: 'heartbeat', from: 1, to: 2, term: 3, commit: 4, hbTick: 7, readSeq: 2 };
  const snap = { type: 'snap', from: 1, to: 2, term: 3, snapshot: { index: 9, term: 3, conf: { voters: [1, 2, 3], learners: [] } }, snapOffset: 0, snapData: new Uint8Array(4), snapDone: true, snapTotalBytes: 4 };
  assert.deepEqual(checkMessages({ msgs: [app, heartbeat, snap] }), [app, heartbeat, snap]);
});

test('malformed messages are refused with CAIRN_BAD_REQUEST', () => {
  const bad: unknown[] = [
    undefined,
    { msgs: 'nope' },
    { msgs: [null] },
    { msgs: [{ ...app, type: 'launch' }] },
    { msgs: [{ ...app, from: 0 }] },
    { msgs: [{ ...app, term: -1 }] },
    // A term whose successor is not exact (or near it) would end elections for good.
    { msgs: [{ ...app, term: Number.MAX_SAFE_INTEGER }] },
    { msgs: [{ ...app, term: termMax + 1 }] },
    { msgs: [{ ...app, logTerm: termMax + 1 }] },
    { msgs: [{ ...app, entries: [entry(5, termMax + 1)] }] },
    { msgs: [{ ...app, commit: 1.5 }] },
    { msgs: [{ ...app, reject: 'yes' }] },
    { msgs: [{ ...app, entries: [entry(5, 3), entry(7, 3)] }] },
    { msgs: [{ ...app, entries: [entry(5, 3), entry(6, 2)] }] },
    { msgs: [{ ...app, entries: [{ ...entry(5, 3), data: 'x' }] }] },
    { msgs: [{ ...app, entries: [{ ...entry(5, 3), type: 9 }] }] },
    { msgs: [{ type: 'snap', from: 1, to: 2, term: 3, snapData: new Uint8Array(1) }] },
    { msgs: [{ type: 'snap', from: 1, to: 2, term: 3, snapshot: { index: 1, term: 1, conf: { voters: [0], learners: [] } }, snapData: new Uint8Array(1) }] },
    { msgs: new Array(messagesPerCallMax + 1).fill(app) },
  ];
  for (const b of bad) assert.throws(() => checkMessages(b), { code: 'CAIRN_BAD_REQUEST' }, JSON.stringify(b)?.slice(0, 80));
});
