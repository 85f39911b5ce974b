// Tests of the leader's per-follower bookkeeping: the in-flight window (by count and by bytes)
// and the Probe / Replicate / Snapshot states of a Progress.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Inflights, Progress, ProgressState } from '../../src/raft/progress.ts';

test('Inflights fills by count and frees up to an acknowledged index', () => {
  const inf = new Inflights(3, 1 << 20);
  inf.add(5, 10);
  inf.add(7, 10);
  assert.equal(inf.full(), false);
  inf.add(9, 10);
  assert.equal(inf.full(), true);
  assert.throws(() => inf.add(11, 10), /add to a full in-flight window/);
  inf.freeLE(4); // acknowledges nothing in flight
  assert.equal(inf.count(), 3);
  inf.freeLE(8); // frees the messages ending at 5 and 7, not the one ending at 9
  assert.deepEqual([inf.count(), inf.sizeBytes(), inf.full()], [1, 10, false]);
  inf.freeLE(100);
  assert.deepEqual([inf.count(), inf.sizeBytes()], [0, 0]);
});

test('Inflights fills by bytes: full once the window holds bytesMax or more', () => {
  const inf = new Inflights(100, 100);
  inf.add(1, 60);
  assert.equal(inf.full(), false);
  inf.add(2, 39);
  assert.equal(inf.full(), false);
  inf.add(3, 1);
  assert.deepEqual([inf.sizeBytes(), inf.full()], [100, true]);
  inf.freeLE(1);
  assert.deepEqual([inf.sizeBytes(), inf.full()], [40, false]);
  // One message may exceed the byte limit on its own: the window never blocks a lone append.
  const big = new Inflights(4, 10);
  big.add(1, 50);
  assert.deepEqual([big.count(), big.full()], [1, true]);
});

test('Inflights.freeFirst frees exactly the oldest message and is a no-op when empty', () => {
  const inf = new Inflights(2, 1 << 20);
  inf.freeFirst();
  assert.equal(inf.count(), 0);
  inf.add(4, 3);
  inf.add(6, 5);
  assert.equal(inf.full(), true);
  inf.freeFirst();
  assert.deepEqual([inf.count(), inf.sizeBytes(), inf.full()], [1, 5, false]);
  inf.add(8, 1);
  inf.reset();
  assert.deepEqual([inf.count(), inf.sizeBytes(), inf.full()], [0, 0, false]);
});

test('Inflights rejects non-positive limits', () => {
  assert.throws(() => new Inflights(0, 10), /in-flight limits must be positive/);
  assert.throws(() => new Inflights(10, 0), /in-flight limits must be positive/);
});

test('a new Progress probes: one append at a time until it is answered', () => {
  const pr = new Progress(10, false, 4, 1 << 20);
  assert.deepEqual([pr.state, pr.match, pr.next, pr.isPaused()], [ProgressState.Probe, 0, 10, false]);
  pr.probeSent = true;
  assert.equal(pr.isPaused(), true);
  assert.equal(pr.maybeUpdate(9), true);
  assert.deepEqual([pr.match, pr.next, pr.probeSent, pr.isPaused()], [9, 10, false, false]);
  // A stale acknowledgement moves nothing back.
  assert.equal(pr.maybeUpdate(3), false);
  assert.deepEqual([pr.match, pr.next], [9, 10]);
});

test('Progress in probe handles rejections: stale ones are ignored, others move next to the hint', () => {
  const pr = new Progress(10, false, 4, 1 << 20);
  pr.match = 2;
  pr.probeSent = true;
  assert.equal(pr.maybeDecrTo(5, 1), false, 'a rejection of an append other than the last one is stale');
  assert.equal(pr.next, 10);
  assert.equal(pr.maybeDecrTo(9, 6), true);
  assert.deepEqual([pr.next, pr.probeSent], [7, false]);
  assert.equal(pr.maybeDecrTo(6, 0), true);
  assert.equal(pr.next, 3, 'never below match + 1');
  // A rejection at match: the follower lost entries it had acknowledged (a disk that lied about
  // fsync). What it matched is forgotten, and the probe moves back, to the hint at most.
  assert.equal(pr.maybeDecrTo(2, 100), true);
  assert.deepEqual([pr.match, pr.next], [0, 2]);
  assert.equal(pr.maybeDecrTo(1, 0), true);
  assert.equal(pr.next, 1);
  pr.next = 8;
  assert.equal(pr.maybeDecrTo(7, 100), true);
  assert.equal(pr.next, 7, 'never above the rejected index');
});

test('Progress in replicate pipelines within the window; a rejection falls back to match + 1', () => {
  const pr = new Progress(10, false, 2, 1 << 20);
  pr.maybeUpdate(9);
  pr.becomeReplicate();
  assert.deepEqual([pr.state, pr.next], [ProgressState.Replicate, 10]);
  pr.inflights.add(12, 1);
  pr.next = 13;
  assert.equal(pr.isPaused(), false);
  pr.inflights.add(15, 1);
  pr.next = 16;
  assert.equal(pr.isPaused(), true);
  assert.equal(pr.maybeDecrTo(9, 0), false, 'at or below match: stale');
  assert.equal(pr.maybeDecrTo(12, 0), true);
  assert.equal(pr.next, 10);
  pr.becomeProbe();
  assert.deepEqual([pr.state, pr.next, pr.inflights.count(), pr.isPaused()], [ProgressState.Probe, 10, 0, false]);
});

test('Progress in snapshot is paused; leaving it probes from after the snapshot', () => {
  const pr = new Progress(10, false, 4, 1 << 20);
  pr.maybeUpdate(3);
  pr.becomeSnapshot(20);
  assert.deepEqual([pr.state, pr.isPaused(), pr.snapshot], [ProgressState.Snapshot, true, { index: 20, offsetAcked: 0, idleTicks: 0 }]);
  pr.becomeProbe();
  assert.deepEqual([pr.state, pr.next, pr.snapshot, pr.isPaused()], [ProgressState.Probe, 21, undefined, false]);
  // Once the follower acknowledged beyond the snapshot, probing resumes after its match.
  pr.becomeSnapshot(20);
  pr.maybeUpdate(25);
  pr.becomeProbe();
  assert.equal(pr.next, 26);
});

test('every state change empties the window and clears the probe flag', () => {
  const pr = new Progress(1, false, 2, 1 << 20);
  pr.becomeReplicate();
  pr.inflights.add(3, 1);
  pr.inflights.add(4, 1);
  pr.becomeSnapshot(10);
  assert.equal(pr.inflights.count(), 0);
  pr.probeSent = true;
  pr.becomeReplicate();
  assert.deepEqual([pr.probeSent, pr.inflights.count(), pr.snapshot], [false, 0, undefined]);
});
