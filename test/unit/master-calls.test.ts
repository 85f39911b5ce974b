// Tests of MasterCalls' caller: added to the namespace requests that do not name their own, and
// to nothing else (cluster queries, worker methods, admin calls).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MasterCalls } from '../../src/client/master-calls.ts';
import type { Clock, Connection, Timer } from '../../src/io/index.ts';
import { systemClock } from '../../src/io/system-clock.ts';
import type { Caller } from '../../src/meta/index.ts';

/** A MasterCalls whose one master records each call's method and body, and answers with nothing. */
function recording(caller?: Caller): { calls: MasterCalls; sent: { method: string; body: Record<string, unknown> }[] } {
  const sent: { method: string; body: Record<string, unknown> }[] = [];
  const conn: Connection = {
    call: async <T>(method: string, body: unknown) => {
      sent.push({ method, body: body as Record<string, unknown> });
      return { body: null as T, payload: undefined };
    },
    notify: () => undefined,
    close: () => undefined,
  };
  const calls = new MasterCalls({ masters: ['m:1'], connect: () => conn, clock: systemClock, clientId: 'c', ...(caller === undefined ? {} : { caller }) });
  return { calls, sent };
}

const alice: Caller = { uid: 1000, gid: 100, groups: [4] };

test('namespace commands and queries carry the client\'s caller; others do not', async () => {
  const { calls, sent } = recording(alice);
  await calls.mutate('meta.mutate', { op: 'mkdir', path: '/d', mode: 0o755, uid: 1000, gid: 100 });
  await calls.mutate('meta.mutate', { op: 'closeSession', sessionId: 's' });
  await calls.query('meta.query', { op: 'stat', path: '/d' });
  await calls.query('meta.query', { op: 'open', path: '/d/f' });
  await calls.query('meta.query', { op: 'statfs' });
  await calls.query('meta.query', { op: 'workers' });
  await calls.query('cluster.routing', {});
  await calls.mutate('meta.mutate', { op: 'noop' });
  await calls.callAt('m:1', 'admin.journal.info', {});
  assert.deepEqual(sent.map((s) => s.body.caller), [alice, alice, alice, alice, undefined, undefined, undefined, undefined, undefined]);
  assert.equal(sent[0].body.seq, 1, 'and mutations keep their stamp');
});

test('a request that names its own caller keeps it; a client without one sends none', async () => {
  const { calls, sent } = recording(alice);
  const root = { uid: 0, gid: 0, groups: [] };
  await calls.mutate('meta.mutate', { op: 'unlink', path: '/f', caller: root });
  await calls.query('meta.query', { op: 'readdir', path: '/', limit: 1, caller: root });
  assert.deepEqual(sent.map((s) => s.body.caller), [root, root]);
  const bare = recording();
  await bare.calls.query('meta.query', { op: 'stat', path: '/' });
  assert.equal('caller' in bare.sent[0].body, false, 'the masters refuse it: the client says nothing it was not told');
});

/** A clock moved by hand: timers run when `advance` passes them. */
class HandClock implements Clock {
  nowMs = 0;
  private timers: { at: number; fn: () => void; live: boolean }[] = [];
  now = (): number => this.nowMs;
  wallNow = (): number => this.nowMs;
  after(ms: number, fn: () => void): Timer {
    const t = { at: this.nowMs + ms, fn, live: true };
    this.timers.push(t);
    return { cancel: () => void (t.live = false) };
  }
  every(): Timer {
    throw new Error('not used');
  }
  sleep = (ms: number): Promise<void> => new Promise((resolve) => this.after(ms, resolve));
  randomInt = (): number => 0;
  pending(): number {
    return this.timers.filter((t) => t.live).length;
  }
  async advance(ms: number): Promise<void> {
    const end = this.nowMs + ms;
    for (;;) {
      const next = this.timers.filter((t) => t.live && t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (next === undefined) break;
      this.nowMs = next.at;
      next.live = false;
      next.fn();
      for (let i = 0; i < 10; i++) await Promise.resolve();
    }
    this.nowMs = end;
  }
}

test('write sessions are renewed every quarter lease while open, and no longer once closed or said ended', async () => {
  const clock = new HandClock();
  const renewals: { atMs: number; ids: string[] }[] = [];
  let opened = 0;
  const ended = new Set<string>();
  let held = false;
  let release: (() => void) | undefined;
  const conn: Connection = {
    call: async <T>(method: string, body: unknown) => {
      const b = body as { op?: string; sessionIds?: string[] };
      if (method === 'meta.renewSessions') {
        renewals.push({ atMs: clock.nowMs, ids: [...b.sessionIds!] });
        if (held) await new Promise<void>((resolve) => (release = resolve));
        return { body: { leaseMs: 20_000, ended: b.sessionIds!.filter((id) => ended.has(id)) } as T, payload: undefined };
      }
      return { body: (b.op === 'create' || b.op === 'openSession' ? { sessionId: `s${++opened}` } : null) as T, payload: undefined };
    },
    notify: () => undefined,
    close: () => undefined,
  };
  const calls = new MasterCalls({ masters: ['m:1'], connect: () => conn, clock, clientId: 'c' });
  await calls.mutate('meta.mutate', { op: 'create', path: '/a', openSession: true });
  await calls.mutate('meta.mutate', { op: 'mkdir', path: '/d' });
  await calls.mutate('meta.mutate', { op: 'openSession', path: '/b' });
  assert.equal(calls.openSessions, 2);
  await clock.advance(2_500);
  assert.deepEqual(renewals, [{ atMs: 2_500, ids: ['s1', 's2'] }], 'the first after 2.5 s');
  await clock.advance(5_000);
  assert.deepEqual(renewals.map((r) => r.atMs), [2_500, 7_500], 'then every quarter of the lease the leader said');
  await calls.mutate('meta.mutate', { op: 'closeSession', sessionId: 's1' });
  ended.add('s2'); // ended by an operator meanwhile
  await clock.advance(5_000);
  assert.deepEqual(renewals[2].ids, ['s2']);
  assert.equal(calls.openSessions, 0, 'what the leader says ended is forgotten');
  await clock.advance(60_000);
  assert.equal(renewals.length, 3, 'no sessions, no renewals');
  assert.equal(clock.pending(), 0);
  // Sessions closed and opened while a renewal is in flight start no second round of renewals.
  await calls.mutate('meta.mutate', { op: 'openSession', path: '/c' });
  held = true;
  await clock.advance(5_000);
  assert.equal(renewals.length, 4, 'in flight');
  await calls.mutate('meta.mutate', { op: 'closeSession', sessionId: 's3' });
  await calls.mutate('meta.mutate', { op: 'openSession', path: '/e' });
  held = false;
  release?.();
  await new Promise((resolve) => setImmediate(resolve)); // the renewal finishes
  await clock.advance(20_000);
  assert.deepEqual(renewals.slice(3).map((r) => r.atMs), [77_500, 82_500, 87_500, 92_500, 97_500]);
  assert.deepEqual(renewals.at(-1)!.ids, ['s4']);
  calls.close();
  assert.equal(clock.pending(), 0, 'close stops them');
});

/** A MasterCalls whose one master answers every call with `call`. */
function answering(call: Connection['call'], opts: { deadlineMs: number; callTimeoutMs?: number }): MasterCalls {
  const conn: Connection = { call, notify: () => undefined, close: () => undefined };
  return new MasterCalls({ masters: ['m:1'], connect: () => conn, clock: systemClock, clientId: 'c', ...opts });
}

const failure = (code: string, message: string): Error => Object.assign(new Error(message), { code });

test('a leader that keeps refusing is named as such at the deadline, not taken for a missing majority', async () => {
  const refusing = (code: string, message: string): MasterCalls =>
    answering(async () => {
      throw failure(code, message);
    }, { deadlineMs: 60 });
  await assert.rejects(refusing('CAIRN_DIR_LEASED', 'directory 7 is held by another mount').query('meta.query', { op: 'stat', path: '/d' }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'CAIRN_UNAVAILABLE');
    assert.match(err.message, /still refused after 60 ms of retries \(CAIRN_DIR_LEASED: directory 7 is held by another mount\)/);
    assert.doesNotMatch(err.message, /majority/);
    return true;
  });
  await assert.rejects(refusing('CAIRN_UNAVAILABLE', 'connect ECONNREFUSED').query('meta.query', { op: 'stat', path: '/d' }), /no leading master answered within 60 ms.*majority/);
  // The last try, its timeout cut short by the deadline, times out: the refusal before it is still the reason.
  const clipped = answering(async (_method, _body, opts) => {
    if ((opts?.timeoutMs ?? 0) < 50) throw failure('CAIRN_TIMEOUT', 'meta.query timed out after 3 ms');
    throw failure('CAIRN_DIR_LEASED', 'directory 7 is held by another mount');
  }, { deadlineMs: 100, callTimeoutMs: 1_000 });
  await assert.rejects(clipped.query('meta.query', { op: 'stat', path: '/d' }), /still refused after 100 ms of retries \(CAIRN_DIR_LEASED/);
});
