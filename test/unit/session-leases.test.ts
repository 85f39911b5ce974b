// Write sessions whose client stopped renewing them end by themselves: the leader's lease rule
// (src/master/session-leases.ts) driven through the cluster manager on a hand-moved clock, over a
// journal that applies at once. A new leader waits a whole lease; renewed and freshly opened
// sessions stay; an unlinked file held only by an expired session becomes garbage.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Clock } from '../../src/io/index.ts';
import type { Journal } from '../../src/journal/index.ts';
import { ClusterManager } from '../../src/master/cluster-manager.ts';
import { SessionLeases } from '../../src/master/session-leases.ts';
import { encodeCommandEntry, MetaStateMachine } from '../../src/meta/state-machine.ts';
import type { CreateValue, MetaCommand, MetaResult } from '../../src/meta/index.ts';
import { ErrorCode } from '../../src/errors.ts';

const leaseMs = 10_000;
const root = { uid: 0, gid: 0, groups: [] };

class Rig {
  readonly sm = new MetaStateMachine();
  nowMs = 0;
  leader = true;
  private index = 0;
  readonly logs: string[] = [];
  readonly manager: ClusterManager;

  constructor() {
    const journal = {
      isLeader: () => this.leader,
      leader: () => undefined,
      status: () => ({ term: 1 }),
      propose: async (entry: Uint8Array) => this.sm.apply(++this.index, entry),
    } as unknown as Journal;
    const clock = { now: () => this.nowMs, wallNow: () => 1_000_000 + this.nowMs, randomInt: () => 7 } as unknown as Clock;
    this.manager = new ClusterManager({ masterId: 1, journal, state: () => this.sm.state, clock, replication: 3, timing: { heartbeatMs: 100, offlineTimeoutMs: 500 }, sessionLeaseMs: leaseMs, log: (_l, msg, ctx) => this.logs.push(`${msg} ${JSON.stringify(ctx)}`) });
  }

  apply<T>(cmd: Record<string, unknown>, clientId = 'host:1:aaaa/0'): T {
    const r = this.sm.apply(++this.index, encodeCommandEntry({ clientId, seq: this.index, nowMs: 1_000_000 + this.nowMs, caller: root, ...cmd } as unknown as MetaCommand)) as MetaResult<T>;
    assert.ok(r.ok, JSON.stringify(r));
    return r.value;
  }

  /** A new file with its write session, opened by `clientId`. */
  open(path: string, clientId: string): string {
    return this.apply<CreateValue>({ op: 'create', path, mode: 0o644, uid: 0, gid: 0, exclusive: true, openSession: true }, clientId).sessionId!;
  }

  /** Moves the clock to `atMs` a round at a time (every 500 ms). */
  async until(atMs: number): Promise<void> {
    while (this.nowMs < atMs) {
      this.nowMs = Math.min(atMs, this.nowMs + 500);
      await this.manager.round();
    }
  }

  open_(): string[] {
    return [...this.sm.state.openSessions()].map((s) => s.sessionId).sort();
  }
}

test('sessions not renewed for a lease end once the leader has led for one; renewed and new ones stay', async () => {
  const rig = new Rig();
  // Opened under an earlier leader: this one never heard of them.
  const kept = rig.open('/kept', 'alive:1:aaaa/0');
  const gone = rig.open('/gone', 'dead:2:bbbb/0');
  const orphan = rig.open('/orphan', 'dead:2:bbbb/1');
  rig.apply({ op: 'unlink', path: '/orphan' });
  await rig.manager.round();

  // Every live client gets a whole lease to find the new leader: nothing ends before.
  for (let t = 2_500; t < leaseMs; t += 2_500) {
    await rig.until(t);
    assert.deepEqual(rig.manager.renewSessions({ sessionIds: [kept] }), { leaseMs, ended: [] });
  }
  await rig.until(leaseMs - 1);
  assert.deepEqual(rig.open_(), [kept, gone, orphan].sort());
  // What `admin sessions` shows: when each was renewed, the lease, and how long this master has led.
  const listed = rig.manager.withRenewals({ sessions: [...rig.sm.state.openSessions()] }) as { sessions: { sessionId: string; renewedAgoMs: number | null }[]; leaseMs: number; ledMs: number };
  assert.deepEqual(listed.sessions.map((s) => [s.sessionId, s.renewedAgoMs]), [[kept, 2_499], [gone, null], [orphan, null]]);
  assert.deepEqual([listed.leaseMs, listed.ledMs], [leaseMs, leaseMs - 1]);

  await rig.until(leaseMs + 1_500);
  assert.deepEqual(rig.open_(), [kept], 'the dead client\'s sessions ended; the renewed one stays');
  assert.deepEqual(rig.sm.state.pendingGc(10).map((e) => e.sizeBytes), [0], 'the unlinked file it held is now garbage');
  assert.ok(rig.logs.some((l) => l.includes('dead:2:bbbb/0') && l.includes('"sessions":1')), rig.logs.join('\n'));

  // A renewal names what ended, so the client stops renewing it.
  assert.deepEqual(rig.manager.renewSessions({ sessionIds: [kept, gone] }), { leaseMs, ended: [gone] });

  // Opened under this leader: the opening is its first renewal.
  const fresh = rig.open('/fresh', 'alive:1:aaaa/0');
  rig.manager.sessionOpened(fresh);
  await rig.until(rig.nowMs + leaseMs - 1_500);
  assert.deepEqual(rig.open_(), [kept, fresh].sort(), 'kept was renewed within the lease, fresh opened within it');
  await rig.until(rig.nowMs + 3_000);
  assert.deepEqual(rig.open_(), [], 'neither renewed for a lease');
});

test('a master that loses the lead and gets it back waits a whole lease again', async () => {
  const rig = new Rig();
  const s = rig.open('/f', 'c:1:aaaa/0');
  await rig.manager.round();
  await rig.until(leaseMs / 2);
  rig.leader = false;
  await rig.until(leaseMs * 2);
  rig.leader = true;
  await rig.until(leaseMs * 3 - 1_000);
  assert.deepEqual(rig.open_(), [s]);
  await rig.until(leaseMs * 3 + 1_500);
  assert.deepEqual(rig.open_(), []);
});

test('renewals: only the leader takes them, and a bad body is refused', async () => {
  const rig = new Rig();
  for (const body of [undefined, {}, { sessionIds: 'x' }, { sessionIds: [1] }, { sessionIds: ['a'], more: 1 }, { sessionIds: ['x'.repeat(129)] }, { sessionIds: Array.from({ length: 10_001 }, (_, i) => `s${i}`) }]) {
    assert.throws(() => rig.manager.renewSessions(body), (err: unknown) => (err as { code?: string }).code === ErrorCode.InvalidArgument, JSON.stringify(body)?.slice(0, 80));
  }
  rig.leader = false;
  assert.throws(() => rig.manager.renewSessions({ sessionIds: [] }), (err: unknown) => (err as { code?: string }).code === ErrorCode.NotLeader);
});

test('SessionLeases forgets renewals older than the lease, in order', () => {
  const leases = new SessionLeases(1_000);
  const session = (sessionId: string) => ({ sessionId, inodeId: 2, clientId: 'c', openedMs: 0 });
  leases.renew('a', 0);
  leases.renew('b', 500);
  leases.renew('a', 900);
  assert.deepEqual(leases.expired([session('a'), session('b'), session('c')], 1_400, 0).map((s) => s.sessionId), ['c']);
  assert.deepEqual(leases.expired([session('a'), session('b')], 1_600, 0).map((s) => s.sessionId), ['b']);
  assert.deepEqual(leases.expired([session('a'), session('b')], 1_600, 1_000), [], 'leading for less than a lease');
});
