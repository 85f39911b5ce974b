// The dashboard's pure parts: session tokens (forgery, expiry, a changed password), the login
// limiter, rates and latency quantiles from running totals, and events found between two looks.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventsBetween, EventLog, eventsKeptMax, type Picture } from '../../src/web/events.ts';
import { hashPassword, verifyPassword } from '../../src/web/passwords.ts';
import { quantileMs, Sampler } from '../../src/web/samples.ts';
import { LoginLimiter, SessionKeys, sessionLifetimeMs } from '../../src/web/sessions.ts';
import type { RoutingInfo, WorkerInfo } from '../../src/meta/index.ts';
import { dashboardPasswordHashOk } from '../../src/meta/commands.ts';

test('sessions: a token names its user while the password hash and the key are the same, until it expires', () => {
  const keys = new SessionKeys('cluster secret');
  const hashes = new Map([['ops', 'hash-1']]);
  const token = keys.issue('ops', 'hash-1', 1000);
  assert.equal(keys.check(token, (u) => hashes.get(u), 2000), 'ops');
  assert.equal(new SessionKeys('cluster secret').check(token, (u) => hashes.get(u), 2000), 'ops', 'another master with the same secret accepts it');
  assert.equal(new SessionKeys('another secret').check(token, (u) => hashes.get(u), 2000), undefined);
  assert.equal(keys.check(token, (u) => hashes.get(u), 1000 + sessionLifetimeMs), undefined, 'expired');
  assert.equal(keys.check(token, () => 'hash-2', 2000), undefined, 'the password changed');
  assert.equal(keys.check(token, () => undefined, 2000), undefined, 'the user was removed');
  const [payload, mac] = token.split('.');
  const other = Buffer.from(JSON.stringify({ u: 'admin', e: 1e15 })).toString('base64url');
  assert.equal(keys.check(`${other}.${mac}`, () => 'hash-1', 2000), undefined, 'a forged payload');
  for (const junk of ['', '.', 'abc', `${payload}.`, `${payload}.${mac}x`, 'x'.repeat(600), `${Buffer.from('[1]').toString('base64url')}.${mac}`]) {
    assert.equal(keys.check(junk, () => 'hash-1', 2000), undefined, `junk ${junk.slice(0, 20)}`);
  }
  // Without a cluster secret the key is random: sessions are this process's own.
  assert.equal(new SessionKeys(undefined).check(new SessionKeys(undefined).issue('ops', 'h', 0), () => 'h', 1), undefined);
  assert.equal(new SessionKeys('').check(new SessionKeys('').issue('ops', 'h', 0), () => 'h', 1), undefined, 'an empty secret is no key');
});

test('passwords: scrypt hashes verify, wrong or malformed ones do not, short passwords are refused', async () => {
  const h = await hashPassword('correct horse battery');
  assert.equal(await verifyPassword('correct horse battery', h), true);
  assert.equal(await verifyPassword('correct horse batterz', h), false);
  assert.equal(await verifyPassword('correct horse battery', h.replace('scrypt$32768', 'scrypt$1048577')), false, 'not a power of two');
  assert.equal(dashboardPasswordHashOk(h.replace('scrypt$32768$8', 'scrypt$1048576$32')), false, 'a cost of 4 GiB a check is refused');
  assert.equal(await verifyPassword('correct horse battery', h.replace('scrypt$32768$8', 'scrypt$1048576$32')), false);
  assert.equal(dashboardPasswordHashOk(h), true);
  assert.equal(await verifyPassword('x', 'not a hash'), false);
  await assert.rejects(hashPassword('short'), /at least 12/);
});

test('the login limiter: ten failures per address and user, thirty per address, in a minute; checks run two at a time', async () => {
  const limiter = new LoginLimiter();
  const fail = async (address: string, user: string, atMs: number): Promise<void> => {
    const gate = await limiter.enter(address, user, atMs);
    assert.ok(gate.ok, `${address} ${user} may try`);
    gate.release();
    limiter.failed(address, user, atMs);
  };
  for (let i = 0; i < 10; i++) await fail('10.0.0.1', 'ops', 1000);
  const refused = await limiter.enter('10.0.0.1', 'ops', 2000);
  assert.ok(!refused.ok && refused.retryAfterS === 59);
  assert.ok((await limiter.enter('10.0.0.2', 'ops', 2000)).ok, 'another address may still log in as ops: no one locks a user out');
  for (let i = 0; i < 20; i++) await fail('10.0.0.1', `user${i % 2}`, 1000);
  assert.ok(!(await limiter.enter('10.0.0.1', 'someone', 2000)).ok, 'thirty failures from one address stop it for every user');
  assert.ok((await limiter.enter('10.0.0.1', 'ops', 61_000)).ok, 'after the minute');

  // Checks under way count too: a burst of guesses in parallel gets no more than ten, not one each.
  const burst = new LoginLimiter();
  const entered = await Promise.all(
    Array.from({ length: 12 }, () =>
      burst.enter('10.0.0.9', 'ops', 0).then((g) => {
        if (g.ok) g.release();
        return g;
      }),
    ),
  );
  assert.equal(entered.filter((g) => g.ok).length, 10);

  const busy = new LoginLimiter();
  const a = await busy.enter('a', 'u1', 0);
  const b = await busy.enter('b', 'u2', 0);
  let thirdIn = false;
  const third = busy.enter('c', 'u3', 0).then((g) => {
    thirdIn = true;
    return g;
  });
  await new Promise((r) => setImmediate(r));
  assert.equal(thirdIn, false, 'a third check waits');
  assert.ok(a.ok && b.ok);
  a.release();
  const g = await third;
  assert.ok(g.ok);
});

test('samples: rates from running totals (a restarted worker counts from zero), and latency quantiles as histogram_quantile', () => {
  const s = new Sampler();
  const buckets = (counts: number[]): Map<number, number> => new Map([0.001, 0.01, 0.1, Infinity].map((le, i) => [le, counts[i]]));
  assert.equal(s.observe(0, { workers: new Map([[1, { bytesRead: 100, bytesWritten: 0 }]]), appliedIndex: 10, metaLatency: buckets([0, 0, 0, 0]) }), undefined, 'the first look is the baseline');
  const one = s.observe(2000, { workers: new Map([[1, { bytesRead: 2100, bytesWritten: 400 }], [2, { bytesRead: 5, bytesWritten: 5 }]]), appliedIndex: 30, metaLatency: buckets([50, 100, 100, 100]) })!;
  assert.deepEqual([one.readBytesPerS, one.writtenBytesPerS, one.entriesPerS, one.metaOpsPerS], [1000, 200, 10, 50]);
  assert.equal(one.metaP50Ms, 1, 'half the operations took at most 1 ms');
  assert.ok(Math.abs(one.metaP99Ms! - 9.82) < 0.01, `p99 interpolated within (1 ms, 10 ms]: ${one.metaP99Ms}`);
  const two = s.observe(3000, { workers: new Map([[1, { bytesRead: 300, bytesWritten: 400 }]]), appliedIndex: 30, metaLatency: buckets([50, 100, 100, 100]) })!;
  assert.equal(two.readBytesPerS, 2300 / 3, 'bytes over the 3 s window: 2000, then 300 from worker 1, which restarted');
  const three = s.observe(4000, { workers: new Map([[1, { bytesRead: 600, bytesWritten: 400 }]]), appliedIndex: 30, metaLatency: buckets([50, 100, 100, 100]) })!;
  assert.equal(three.readBytesPerS, 2600 / 4, 'the window reaches back to the newest look at least 3 s old');
  const four = s.observe(6000, { workers: new Map([[1, { bytesRead: 900, bytesWritten: 400 }]]), appliedIndex: 30, metaLatency: buckets([50, 100, 100, 100]) })!;
  assert.equal(four.readBytesPerS, 600 / 3, 'older looks are dropped: from 3 s to 6 s, 600 bytes');
  assert.equal(two.metaP50Ms, null, 'no operations in the interval');
  assert.equal(quantileMs(new Map([[0.1, 0], [Infinity, 4]]), 0.5), 100, 'past the last bound: that bound');
  assert.equal(s.recent().length, 4);
});

function picture(over: Partial<{ leaderId: number | undefined; term: number; snapshotIndex: number; states: Record<number, string>; chain: number[]; instance: string; decommissioned: boolean }>): Picture {
  const states = over.states ?? { 11: 'serving', 21: 'serving' };
  const routing = {
    clusterId: 'c',
    routingVersion: 1,
    workers: [],
    targets: Object.entries(states).map(([id, state]) => ({ targetId: Number(id), workerId: Math.floor(Number(id) / 10), state, chainId: 1, path: '/d', capacityBytes: 1 })),
    chains: [{ chainId: 1, version: 1, targetIds: over.chain ?? [11, 21] }],
    tables: [],
  } as unknown as RoutingInfo;
  const workers = [{ workerId: 1, instance: over.instance ?? 'a', address: 'x:1', domain: '', targets: [], registeredMs: 0, updatedMs: 0, ...(over.decommissioned ? { decommissionedMs: 5 } : {}) }] as WorkerInfo[];
  return { leaderId: 'leaderId' in over ? over.leaderId : 1, term: over.term ?? 1, snapshotIndex: over.snapshotIndex ?? 0, routing, workers };
}

test('events: leader changes, checkpoints, restarts, decommissions, target states with resyncs, chain changes', () => {
  const before = picture({});
  assert.deepEqual(eventsBetween(before, picture({}), 5), []);
  const texts = (p: Picture): string[] => eventsBetween(before, p, 5).map((e) => `${e.kind}: ${e.text}`);
  assert.deepEqual(texts(picture({ leaderId: undefined, term: 2 })), ['leader: no leader (term 2): an election is under way']);
  assert.deepEqual(texts(picture({ leaderId: 3, term: 2 })), ['leader: master 3 leads (term 2)']);
  assert.deepEqual(texts(picture({ snapshotIndex: 100 })), ['checkpoint: checkpoint at index 100']);
  assert.deepEqual(texts(picture({ instance: 'b', decommissioned: true })), ['worker: worker 1 restarted', 'worker: worker 1 decommissioned']);
  assert.deepEqual(texts(picture({ states: { 11: 'offline', 21: 'serving' }, chain: [21, 11] })), ['target: target 11 (worker 1): serving → offline (failed or unreachable)', 'chain: chain 1 v1: 11, 21 → 21, 11']);
  assert.deepEqual(eventsBetween(picture({ states: { 11: 'offline', 21: 'serving' } }), picture({ states: { 11: 'syncing', 21: 'serving' } }), 5).map((e) => e.text), ['target 11 (worker 1): offline → syncing (resync started)']);
  assert.deepEqual(eventsBetween(picture({ states: { 11: 'syncing', 21: 'serving' } }), picture({}), 5).map((e) => e.text), ['target 11 (worker 1): syncing → serving (resync done)']);
  const log = new EventLog();
  for (let i = 0; i < eventsKeptMax + 10; i++) log.add([{ atMs: i, kind: 'leader', text: String(i) }]);
  assert.equal(log.recent().length, eventsKeptMax);
  assert.equal(log.recent()[0].atMs, 10, 'the oldest go first');
});
