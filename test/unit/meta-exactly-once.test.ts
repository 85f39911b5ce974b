// Tests of exactly-once application in MetaState: retries answered from the client table, stale
// seqs, and the table's bounds (idle time on the commands' clock, count with LRU eviction).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeCommand, MetaState, rootCaller } from '../../src/meta/index.ts';
import type { MetaCommand, MetaStateOptions } from '../../src/meta/index.ts';

class Log {
  readonly state: MetaState;
  index = 0;

  constructor(options: Partial<MetaStateOptions> = {}) {
    this.state = new MetaState(options);
  }

  apply(cmd: MetaCommand): ReturnType<MetaState['apply']> {
    return this.state.apply(++this.index, cmd);
  }
}

const create = (clientId: string, seq: number, nowMs: number, path: string): MetaCommand => ({
  op: 'create', clientId, seq, nowMs, path, mode: 0o644, uid: 0, gid: 0, exclusive: true, caller: rootCaller,
});
const noop = (clientId: string, seq: number, nowMs: number): MetaCommand => ({ op: 'noop', clientId, seq, nowMs });

test('a retried (clientId, seq) has one effect and gets the first result back', () => {
  const log = new Log();
  const first = log.apply(create('c1', 1, 100, '/f'));
  assert.ok(first.ok);
  const second = log.apply(create('c1', 1, 200, '/f'));
  assert.equal(second, first, 'the very result stored for the first application');
  assert.equal(log.state.statfs().files, 1);
  assert.equal(log.state.indexApplied, 2, 'a retry still moves the applied index');
  // Without the table, the retry of an exclusive create would have failed with EEXIST.
  const other = log.apply(create('c2', 1, 300, '/f'));
  assert.equal(other.ok ? 'ok' : other.code, 'EEXIST');
});

test('a failed result is remembered too, and a retry does not re-run it after the world changed', () => {
  const log = new Log();
  const miss = log.apply({ op: 'unlink', clientId: 'c1', seq: 1, nowMs: 1, path: '/f', caller: rootCaller });
  assert.equal(miss.ok ? 'ok' : miss.code, 'ENOENT');
  log.apply(create('c2', 1, 2, '/f'));
  assert.deepEqual(log.apply({ op: 'unlink', clientId: 'c1', seq: 1, nowMs: 3, path: '/f', caller: rootCaller }), miss);
  assert.equal(log.state.stat('/f', rootCaller).ok, true, 'the retry did not unlink the new file');
});

test('a seq older than the last applied one is answered CAIRN_STALE_SEQ and not applied', () => {
  const log = new Log();
  log.apply(create('c1', 5, 1, '/a'));
  const stale = log.apply(create('c1', 4, 2, '/b'));
  assert.ok(!stale.ok);
  assert.equal(stale.code, 'CAIRN_STALE_SEQ');
  assert.match(stale.message, /stale request: client 'c1' seq 4 is older than its last applied seq 5/);
  assert.equal(log.state.stat('/b', rootCaller).ok, false);
  // The record still answers its own seq, and gaps in seqs are allowed.
  assert.equal(log.apply(create('c1', 5, 3, '/a')).ok, true);
  assert.equal(log.apply(create('c1', 9, 4, '/c')).ok, true);
  assert.equal(log.state.statfs().files, 2);
});

test('clients are independent: the same seq from two clients is two commands', () => {
  const log = new Log();
  log.apply(create('a', 1, 1, '/a'));
  log.apply(create('b', 1, 1, '/b'));
  assert.equal(log.state.statfs().files, 2);
  assert.equal(log.state.statfs().clients, 2);
});

test('client records idle longer than clientIdleMsMax are evicted, by the commands clock', () => {
  const log = new Log({ clientIdleMsMax: 1000 });
  log.apply(create('old', 1, 0, '/f'));
  log.apply(noop('busy', 1, 600));
  log.apply(noop('busy', 2, 1000));
  assert.equal(log.state.statfs().clients, 2, 'idle for exactly the limit is kept');
  log.apply(noop('busy', 3, 1001));
  assert.equal(log.state.statfs().clients, 1, 'idle past the limit is dropped');
  // The documented limit of eviction: a retry arriving after it is applied again.
  const late = log.apply(create('old', 1, 1002, '/f'));
  assert.equal(late.ok ? 'ok' : late.code, 'EEXIST');
});

test('a retry refreshes a record, and a clock that runs back neither evicts early nor ages a record', () => {
  const log = new Log({ clientIdleMsMax: 1000 });
  const first = log.apply(create('a', 1, 0, '/a'));
  log.apply(noop('b', 1, 900));
  assert.equal(log.apply(create('a', 1, 950, '/a')), first, 'the retry refreshes a to 950');
  log.apply(noop('c', 1, 1500));
  assert.equal(log.state.statfs().clients, 3, 'a would have gone at 1500 had the retry not refreshed it');
  // A new leader whose clock is behind: nowMs 100 does not rewind the eviction clock, and d is
  // recorded as used at 1500.
  log.apply(noop('d', 1, 100));
  assert.equal(log.state.statfs().clients, 4);
  log.apply(noop('e', 1, 1960));
  assert.equal(log.state.statfs().clients, 3, 'b (900) and a (950) are gone; c, d and e remain');
  assert.equal(log.apply(noop('d', 1, 1960)).ok, true);
});

test('the table holds at most clientsMax records and evicts the least recently used', () => {
  const log = new Log({ clientsMax: 3 });
  log.apply(create('a', 1, 1, '/a'));
  log.apply(create('b', 1, 2, '/b'));
  log.apply(create('c', 1, 3, '/c'));
  log.apply(create('a', 1, 4, '/a')); // a retry makes a the most recently used
  log.apply(create('d', 1, 5, '/d'));
  assert.equal(log.state.statfs().clients, 3);
  // b was evicted: its retry runs again (EEXIST); a's is still answered from the table.
  assert.equal(log.apply(create('a', 1, 6, '/a')).ok, true);
  const b = log.apply(create('b', 1, 7, '/b'));
  assert.equal(b.ok ? 'ok' : b.code, 'EEXIST');
  assert.equal(log.state.statfs().clients, 3);
});

test('the client table survives a snapshot with its order, so eviction continues the same way', () => {
  const log = new Log({ clientsMax: 3, clientIdleMsMax: 50 });
  log.apply(noop('a', 1, 1));
  log.apply(noop('b', 1, 2));
  log.apply(noop('c', 1, 3));
  log.apply(noop('a', 1, 4));
  const copy = MetaState.restore(log.state.snapshot());
  assert.deepEqual(copy.options, log.state.options, 'the limits travel with the state');
  for (const state of [log.state, copy]) state.apply(10, noop('d', 1, 5));
  assert.equal(copy.stateHash(), log.state.stateHash());
  for (const state of [log.state, copy]) state.apply(11, noop('e', 1, 100));
  assert.equal(copy.statfs().clients, 1);
  assert.equal(copy.stateHash(), log.state.stateHash());
});

test('apply refuses an index that does not grow; applyEntry answers undecodable entries in order', () => {
  const log = new Log();
  log.apply(noop('a', 1, 1));
  assert.throws(() => log.state.apply(1, noop('a', 2, 2)), /invariant violated: apply at index 1 after 1/);
  assert.throws(() => log.state.apply(0.5, noop('a', 2, 2)), /invariant violated/);
  const bad = log.state.applyEntry(5, new Uint8Array([0xc1, 0x00]));
  assert.equal(bad.ok ? 'ok' : bad.code, 'EINVAL');
  assert.equal(log.state.indexApplied, 5, 'gaps are allowed: entries that were not ours');
  const invalid = log.state.applyEntry(6, encodeCommand({ op: 'mkdir', clientId: 'a', seq: 2, nowMs: 3, path: 'x', mode: 0, uid: 0, gid: 0, parents: false, caller: rootCaller }));
  assert.ok(!invalid.ok);
  assert.match(invalid.message, /not absolute/);
  const good = log.state.applyEntry(7, encodeCommand({ op: 'mkdir', clientId: 'a', seq: 2, nowMs: 3, path: '/x', mode: 0, uid: 0, gid: 0, parents: false, caller: rootCaller }));
  assert.equal(good.ok, true);
  assert.deepEqual(log.state.applyEntry(8, encodeCommand({ op: 'mkdir', clientId: 'a', seq: 2, nowMs: 3, path: '/x', mode: 0, uid: 0, gid: 0, parents: false, caller: rootCaller })), good);
});
