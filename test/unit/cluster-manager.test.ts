// The cluster manager's replacement of lost chain members, driven round by round on a hand-moved
// clock over a journal that applies at once (no network, no disk): decommissioning, the choice and
// the command journaled, the wait for --replace-after-ms, and free targets that hold old chunks
// (kept out of new chains, and emptied of the chunks of files the namespace knows).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Clock, Connection } from '../../src/io/index.ts';
import type { Journal } from '../../src/journal/index.ts';
import { ClusterManager, type ReplacementsReply } from '../../src/master/cluster-manager.ts';
import { restoreFloor } from '../../src/meta/restore-floor.ts';
import { encodeCommandEntry, encodeRestoreBegin, encodeRestoreChunk, encodeRestoreCommit, MetaStateMachine } from '../../src/meta/state-machine.ts';
import type { MetaCommand } from '../../src/meta/index.ts';
import { WorkerErrorCode } from '../../src/worker/errors.ts';

const timing = { heartbeatMs: 100, offlineTimeoutMs: 500 };

/** A leader whose proposals apply at once, a clock moved by hand, and workers that heartbeat on demand. */
class Rig {
  readonly sm = new MetaStateMachine();
  nowMs = 0;
  private index = 0;
  readonly manager: ClusterManager;
  /** Workers that heartbeat, and each target's chunk count to report. */
  readonly up = new Set<number>();
  readonly chunks = new Map<number, number>();
  /** Each target's capacity as its worker reports it (100 as registered, unless set). */
  readonly capacity = new Map<number, number>();
  readonly logs: string[] = [];
  /** Whether the journal says this master leads (in term 1 throughout). */
  leader = true;

  /** The wall clock, this far from the monotonic one's origin. */
  wallOffsetMs = 1_000_000;
  /** The workers' process instance: a new one registers again. */
  instance = 'i1';
  /** Where each target last served, as its worker reports (served-record.ts). */
  readonly served = new Map<number, { servedChainId: number; servedRoutingVersion: number }>();

  constructor(replaceAfterMs?: number, connect?: (address: string) => Connection, gcDelayMs?: number, restoreWaitMs?: number) {
    const journal = {
      isLeader: () => this.leader,
      leader: () => undefined,
      status: () => ({ term: 1 }),
      propose: async (entry: Uint8Array) => this.sm.apply(++this.index, entry),
    } as unknown as Journal;
    const clock = { now: () => this.nowMs, wallNow: () => this.wallOffsetMs + this.nowMs, randomInt: () => 7 } as unknown as Clock;
    this.manager = new ClusterManager({ masterId: 1, journal, state: () => this.sm.state, clock, replication: 3, timing, log: (_l, msg) => this.logs.push(msg), ...(replaceAfterMs === undefined ? {} : { replaceAfterMs }), ...(connect === undefined ? {} : { connect, reclaimEveryMs: 0 }), ...(gcDelayMs === undefined ? {} : { gcDelayMs }), ...(restoreWaitMs === undefined ? {} : { restoreWaitMs }) });
  }

  /** Applies a command as another leader would have journaled it, stamped with its `nowMs`. */
  apply(cmd: Record<string, unknown>, nowMs: number): unknown {
    return this.sm.apply(++this.index, encodeCommandEntry({ clientId: 'other-leader', seq: this.index, nowMs, ...cmd } as unknown as MetaCommand));
  }

  /** Workers with one target each (id w * 1000 + 1), registered and heartbeating. */
  async addWorkers(...ids: number[]): Promise<void> {
    if (this.sm.state.routing().clusterId === '') await this.manager.round();
    for (const w of ids) {
      await this.manager.register({ workerId: w, instance: this.instance, address: `h${w}:1`, targets: [{ targetId: w * 1000 + 1, path: '/d', capacityBytes: 100 }] });
      this.up.add(w);
    }
  }

  /** Heartbeats from the live workers (each target up to date at its chain's version), then a round. */
  async tick(ms = timing.heartbeatMs): Promise<void> {
    this.nowMs += ms;
    this.beat();
    await this.manager.round();
  }

  /** Heartbeats from the live workers, without a round. */
  beat(): void {
    const routing = this.sm.state.routing();
    for (const w of this.up) {
      const targets = routing.targets.filter((t) => t.workerId === w).map((t) => {
        const chain = routing.chains.find((c) => c.chainId === t.chainId);
        // A syncing target reports up-to-date as if its resync finished at once.
        const done = t.state === 'serving' || t.state === 'syncing';
        return { targetId: t.targetId, localState: done ? 'up-to-date' : 'online', chainVersion: chain?.version ?? 0, capacityBytes: this.capacity.get(t.targetId) ?? 100, usedBytes: 0, chunks: this.chunks.get(t.targetId) ?? 0, ...this.served.get(t.targetId) };
      });
      this.manager.heartbeat({ workerId: w, instance: this.instance, routingVersion: 0, targets });
    }
  }

  /** Every master lost, then `backup` restored into this one (it holds no files). */
  restore(backup: Uint8Array[]): void {
    assert.ok(this.sm.apply(++this.index, encodeRestoreBegin('r1')).ok);
    for (const c of backup) assert.ok(this.sm.apply(++this.index, encodeRestoreChunk('r1', c)).ok);
    assert.ok(this.sm.apply(++this.index, encodeRestoreCommit('r1', restoreFloor(this.wallOffsetMs + this.nowMs))).ok);
  }

  async ticks(n: number): Promise<void> {
    for (let i = 0; i < n; i++) await this.tick();
  }

  members(chainId: number): string {
    const r = this.sm.state.routing();
    return r.chains.find((c) => c.chainId === chainId)!.targetIds.map((id) => `${id}:${r.targets.find((t) => t.targetId === id)!.state}`).join(' ');
  }
}

/** Five one-target workers: chain 1 of three, two free targets. */
async function fiveWorkers(replaceAfterMs?: number, connect?: (address: string) => Connection): Promise<Rig> {
  const rig = new Rig(replaceAfterMs, connect);
  await rig.addWorkers(1, 2, 3, 4, 5);
  await rig.ticks(10);
  assert.equal(rig.sm.state.chains().length, 1);
  return rig;
}

test('a decommissioned worker\'s member is replaced by a free target in one command; the newcomer syncs, then serves', async () => {
  const rig = await fiveWorkers();
  const chain = rig.sm.state.chains()[0];
  const lost = chain.targetIds[1];
  const victim = Math.floor(lost / 1000);
  rig.up.delete(victim);
  await rig.ticks(8);
  assert.match(rig.members(1), new RegExp(`${lost}:offline$`));
  await assert.rejects(rig.manager.decommission({ workerId: 9 }), (err: unknown) => (err as { code?: string }).code === 'ENOENT');
  await assert.rejects(rig.manager.decommission({ workerId: victim, extra: 1 }), (err: unknown) => (err as { code?: string }).code === WorkerErrorCode.InvalidArgument);
  const reply = await rig.manager.decommission({ workerId: victim });
  assert.deepEqual(reply.impact.chains, [{ chainId: 1, leaving: [lost], members: 3, servingLeft: 2 }]);
  const version = rig.sm.state.chains()[0].version;
  await rig.manager.round();
  const after = rig.sm.state.chains()[0];
  assert.equal(after.version, version + 1, 'one command: the version goes up by one');
  assert.ok(!after.targetIds.includes(lost));
  const added = after.targetIds.find((id) => !chain.targetIds.includes(id))!;
  assert.ok([4001, 5001].includes(added), 'a free target on a worker the chain does not use');
  assert.match(rig.members(1), new RegExp(`${added}:syncing$`));
  assert.ok(rig.logs.includes('chain member replaced'));
  await rig.ticks(2);
  assert.match(rig.members(1), /^\d+:serving \d+:serving \d+:serving$/);
  assert.deepEqual(rig.manager.replacements(), { stuck: [], replaceAfterMs: null } satisfies ReplacementsReply);
  // The decommissioned worker may not come back under its id.
  await assert.rejects(rig.manager.register({ workerId: victim, instance: 'i2', address: 'h:1', targets: [] }), (err: unknown) => (err as { code?: string }).code === WorkerErrorCode.WorkerDecommissioned);
});

test('a worker holding a chain\'s only serving copy is refused unless forced, and its chain then waits, said so once', async () => {
  const rig = await fiveWorkers();
  const [head, ...others] = rig.sm.state.chains()[0].targetIds.map((id) => Math.floor(id / 1000));
  for (const w of others) rig.up.delete(w);
  await rig.ticks(8);
  await assert.rejects(rig.manager.decommission({ workerId: head }), (err: unknown) => (err as { code?: string }).code === WorkerErrorCode.DecommissionUnsafe);
  await rig.manager.decommission({ workerId: head, force: true });
  await rig.ticks(3);
  const { stuck } = rig.manager.replacements();
  assert.equal(stuck.length, 1);
  assert.match(stuck[0].why, /only up-to-date replica \(serving\)/);
  assert.equal(rig.logs.filter((l) => l.startsWith('chains stay degraded')).length, 1, 'logged when it changes, not every round');
});

test('--replace-after-ms: a member offline that long is replaced; a shorter absence is not', async () => {
  const rig = await fiveWorkers(1_000);
  const lost = rig.sm.state.chains()[0].targetIds[0];
  const worker = Math.floor(lost / 1000);
  rig.up.delete(worker);
  await rig.ticks(10); // offline after 500 ms; 1 s gone in all
  assert.ok(rig.sm.state.chains()[0].targetIds.includes(lost), 'not yet');
  rig.up.add(worker);
  await rig.ticks(3);
  rig.up.delete(worker);
  await rig.ticks(10);
  assert.ok(rig.sm.state.chains()[0].targetIds.includes(lost), 'the clock starts again after a return');
  await rig.ticks(8);
  assert.ok(!rig.sm.state.chains()[0].targetIds.includes(lost), 'replaced');
  assert.deepEqual(rig.manager.replacements().replaceAfterMs, 1_000);
});

test('a free target that holds chunks (it left a chain) joins no new chain; empty ones do', async () => {
  const rig = await fiveWorkers(1_000);
  const lost = rig.sm.state.chains()[0].targetIds[0];
  const worker = Math.floor(lost / 1000);
  rig.up.delete(worker);
  await rig.ticks(25);
  assert.ok(!rig.sm.state.chains()[0].targetIds.includes(lost));
  // Back with its old chunks, beside one free target and a new worker's: three free targets on three workers.
  rig.chunks.set(lost, 12);
  rig.up.add(worker);
  await rig.addWorkers(6);
  await rig.ticks(10);
  assert.equal(rig.sm.state.chains().length, 1, 'no chain with the old target');
  rig.chunks.set(lost, 0);
  await rig.ticks(10);
  assert.equal(rig.sm.state.chains().length, 2, 'emptied, it is like any free target');
});

test('a free target that holds chunks is emptied of the known files\' chunks, only while free; unknown inodes stay for the quarantine', async () => {
  // A worker's target holding chunks of the root directory's inode (known) and of inode 10^9 (unknown).
  const held = new Map<number, Map<number, number>>();
  const calls: string[] = [];
  let rig: Rig | undefined;
  const connect = (address: string): Connection => ({
    call: async <T>(method: string, body: unknown) => {
      const b = body as { targetId: number; inodeIds?: number[]; freeOnly?: boolean };
      calls.push(`${address} ${method} ${JSON.stringify(body)}`);
      const inodes = held.get(b.targetId) ?? new Map<number, number>();
      if (method === 'chunk.inventory') return { body: { inodes: [...inodes].map(([inodeId, chunks]) => ({ inodeId, chunks, bytes: chunks * 10 })), more: false } as T, payload: undefined };
      assert.equal(method, 'chunk.purge');
      assert.equal(b.freeOnly, true, 'a reclaim purges only while the target is free');
      let removed = 0;
      for (const id of b.inodeIds!) removed += inodes.get(id) ?? 0;
      for (const id of b.inodeIds!) inodes.delete(id);
      rig!.chunks.set(b.targetId, [...inodes.values()].reduce((n, c) => n + c, 0));
      return { body: { removed } as T, payload: undefined };
    },
    notify: () => undefined,
    close: () => undefined,
  });
  rig = await fiveWorkers(1_000, connect);
  assert.deepEqual(calls.filter((c) => c.includes('chunk.purge')), [], 'nothing to reclaim while every free target is empty');
  const lost = rig.sm.state.chains()[0].targetIds[0];
  const worker = Math.floor(lost / 1000);
  rig.up.delete(worker);
  await rig.ticks(25);
  assert.ok(!rig.sm.state.chains()[0].targetIds.includes(lost));
  // Back with its old chunks.
  held.set(lost, new Map([[1, 12], [1e9, 2]]));
  rig.chunks.set(lost, 14);
  rig.up.add(worker);
  await rig.addWorkers(6);
  for (let i = 0; i < 10; i++) {
    await rig.tick();
    await new Promise((r) => setImmediate(r)); // the reclaim runs beside the rounds
  }
  assert.ok(calls.some((c) => c === `h${worker}:1 chunk.purge {"targetId":${lost},"inodeIds":[1],"freeOnly":true}`), calls.join('\n'));
  assert.ok(!calls.some((c) => /chunk\.purge .*1000000000/.test(c)), 'an unknown inode is not purged');
  assert.equal(rig.chunks.get(lost), 2, 'the unknown inode\'s chunks stay');
  assert.ok(rig.logs.includes('free target reclaimed'));
  assert.equal(rig.sm.state.chains().length, 1, 'still holding chunks (the quarantine\'s), it joins no new chain');
  // Reclaimed: the leader journals it, and what is left is the quarantine's, whatever the count.
  assert.equal(rig.sm.state.targets().find((t) => t.targetId === lost)!.leftChainAt, undefined);
  const listings = (): number => calls.filter((c) => c.startsWith(`h${worker}:1 chunk.inventory {"targetId":${lost},`)).length;
  const before = listings();
  held.get(lost)!.set(1, 3);
  rig.chunks.set(lost, 5);
  for (let i = 0; i < 10; i++) {
    await rig.tick();
    await new Promise((r) => setImmediate(r));
  }
  assert.equal(listings(), before, 'a reclaimed target is not listed again');
});

test('a free target that never left a chain in this journal is not reclaimed, whatever it holds (after a restore it may hold a chain\'s only copies)', async () => {
  const calls: string[] = [];
  const connect = (address: string): Connection => ({
    call: async <T>(method: string, body: unknown) => {
      calls.push(`${address} ${method} ${JSON.stringify(body)}`);
      return { body: (method === 'chunk.inventory' ? { inodes: [{ inodeId: 1, chunks: 9, bytes: 90 }], more: false } : { removed: 0 }) as T, payload: undefined };
    },
    notify: () => undefined,
    close: () => undefined,
  });
  const rig = await fiveWorkers(1_000, connect);
  const free = rig.sm.state.targets().filter((t) => t.chainId === 0);
  assert.ok(free.length > 0);
  for (const t of free) rig.chunks.set(t.targetId, 9);
  for (let i = 0; i < 10; i++) {
    await rig.tick();
    await new Promise((r) => setImmediate(r));
  }
  assert.deepEqual(calls.filter((c) => c.includes('chunk.purge')), [], 'nothing purged');
});

test('a deletion journaled on another master\'s clock is collected only once this leader has led for the GC delay itself', async () => {
  const removed: string[] = [];
  const connect = (address: string): Connection => ({
    call: async <T>(method: string, body: unknown) => {
      if (method.startsWith('chunk.remove')) removed.push(`${address} ${JSON.stringify(body)}`);
      return { body: { removed: 0, inodes: [], more: false } as T, payload: undefined };
    },
    notify: () => undefined,
    close: () => undefined,
  });
  const delayMs = 60_000;
  const rig = new Rig(undefined, connect, delayMs);
  rig.wallOffsetMs = Date.UTC(2026, 11, 2);
  await rig.addWorkers(1, 2, 3);
  await rig.ticks(10);
  assert.equal(rig.sm.state.chains().length, 1);
  const root = { caller: { uid: 0, gid: 0, groups: [] } };
  const wall = rig.wallOffsetMs + rig.nowMs;
  // Deleted a second ago by a leader whose clock ran an hour behind this one's.
  for (const [i, name] of ['/old', '/mine'].entries()) {
    const stamp = name === '/old' ? wall - 3_600_000 - 1_000 : wall;
    const made = rig.apply({ op: 'create', path: name, mode: 0o644, uid: 0, gid: 0, exclusive: true, ...root }, stamp) as { ok: boolean; value: { inode: { inodeId: number } } };
    assert.ok(made.ok, JSON.stringify(made));
    rig.apply({ op: 'commitLength', inodeId: made.value.inode.inodeId, lengthBytes: 10, chunks: null, ...root }, stamp);
    rig.apply({ op: 'unlink', path: name, ...root }, stamp + i);
  }
  assert.equal(rig.sm.state.pendingGc(10).length, 2);
  // The wall clock says the first is an hour overdue; this master has led for 20 s.
  await rig.ticks(20);
  assert.deepEqual(rig.sm.state.pendingGc(10).map((e) => e.deletedMs <= wall - 3_600_000), [true, false]);
  assert.deepEqual(removed, [], 'nothing collected within the delay');
  // Past the delay on this leader's own clock: both go.
  while (rig.nowMs < delayMs + 5_000) await rig.tick();
  await rig.ticks(3);
  assert.deepEqual(rig.sm.state.pendingGc(10), []);
  assert.ok(removed.length > 0);
});

test('leadership that pauses and resumes in one term (a ZooKeeper master confirming its epoch again) keeps numbering its proposals', async () => {
  const rig = new Rig();
  await rig.addWorkers(1, 2, 3);
  await rig.tick();
  rig.leader = false;
  await rig.manager.round();
  rig.leader = true;
  // The same client id (cluster-manager/1/1): starting its seq over would make each proposal stale.
  await rig.addWorkers(4);
  assert.ok(rig.sm.state.workers().some((w) => w.workerId === 4), 'worker 4 registered');
  for (let i = 0; i < 10; i++) await rig.tick();
  assert.deepEqual(rig.logs.filter((l) => /stale/i.test(l)), []);
});

test('after a restore, a chain waits for every member\'s worker, then serves from the one whose record says it served last, never from a move\'s emptied source', async () => {
  const rig = new Rig(undefined, undefined, undefined, 5_000);
  await rig.addWorkers(1, 2, 3);
  await rig.ticks(10);
  const [first, second, third] = rig.sm.state.chains()[0].targetIds;
  const backup = [...rig.sm.snapshot()];
  // After the backup the lost cluster moved `second` out of the chain (and emptied it); the other
  // two served on through later changes, which their records say.
  rig.served.set(first, { servedChainId: 1, servedRoutingVersion: 57 });
  rig.served.set(second, { servedChainId: 1, servedRoutingVersion: 40 });
  rig.served.set(third, { servedChainId: 1, servedRoutingVersion: 57 });
  rig.restore(backup);
  assert.equal(rig.members(1), `${first}:offline ${second}:offline ${third}:offline`);

  // The workers register again, `first`'s last of all.
  rig.instance = 'i2';
  const workerOf = (targetId: number): number => Math.floor(targetId / 1000);
  rig.up.clear();
  await rig.tick(1_000); // the lost masters' last heartbeats are long gone
  rig.logs.length = 0;
  await rig.addWorkers(workerOf(second), workerOf(third));
  await rig.ticks(8);
  assert.equal(rig.members(1), `${second}:waiting ${third}:waiting ${first}:offline`, 'a silent member may have served last: nobody serves yet');
  assert.equal(rig.logs.filter((l) => l.startsWith('a restored chain waits')).length, 1, 'said once');
  await rig.addWorkers(workerOf(first));
  await rig.tick();
  assert.ok(rig.logs.includes('a restored chain takes as its source the member that served it last'));
  assert.match(rig.members(1), new RegExp(`^${third}:serving \\d+:syncing`), 'the first with the newest record serves, the emptied one never');
  await rig.ticks(3);
  assert.match(rig.members(1), /^\d+:serving \d+:serving \d+:serving$/, 'the others resynced from it');
});

test('after a restore, a member whose worker never comes back holds its chain up only until the wait is over', async () => {
  const rig = new Rig(undefined, undefined, undefined, 5_000);
  await rig.addWorkers(1, 2, 3);
  await rig.ticks(10);
  const [first, second, third] = rig.sm.state.chains()[0].targetIds;
  rig.served.set(second, { servedChainId: 1, servedRoutingVersion: 9 });
  rig.served.set(third, { servedChainId: 2, servedRoutingVersion: 30 }); // it left for another chain
  rig.restore([...rig.sm.snapshot()]);
  rig.instance = 'i2';
  rig.up.clear();
  await rig.tick(1_000);
  await rig.addWorkers(Math.floor(second / 1000), Math.floor(third / 1000));
  await rig.ticks(45);
  assert.doesNotMatch(rig.members(1), /serving|lastsrv/);
  await rig.ticks(10);
  assert.match(rig.members(1), new RegExp(`^${second}:serving ${third}:serving ${first}:offline$`));
});

test('a target whose file system was resized while its worker ran gets its new capacity journaled: not for a change under 1%, at most once a minute', async () => {
  const rig = await fiveWorkers();
  const capacity = (id: number) => rig.sm.state.targets().find((t) => t.targetId === id)!.capacityBytes;
  const version = rig.sm.state.routing().routingVersion;
  rig.capacity.set(1001, 10_000);
  await rig.tick();
  assert.equal(capacity(1001), 10_000);
  assert.equal(capacity(2001), 100, 'the others stay');
  assert.ok(rig.sm.state.routing().routingVersion > version, 'routing moves on with it');
  assert.ok(rig.logs.some((l) => l.includes('targets resized')), rig.logs.join('\n'));
  rig.capacity.set(1001, 10_050);
  await rig.tick(60_000);
  assert.equal(capacity(1001), 10_000, 'a change under 1% is not one');
  rig.capacity.set(2001, 50);
  rig.capacity.set(1001, 20_000);
  await rig.tick();
  assert.equal(capacity(2001), 50, 'a shrunk one too');
  assert.equal(capacity(1001), 20_000);
  rig.capacity.set(1001, 40_000);
  await rig.tick();
  assert.equal(capacity(1001), 20_000, 'at most once a minute');
  await rig.tick(59_000);
  await rig.tick(1_000);
  assert.equal(capacity(1001), 40_000);
  rig.capacity.set(1001, 0);
  await rig.tick(61_000);
  assert.equal(capacity(1001), 40_000, 'a worker that could not read its disk\'s size changes nothing');
});

test('admin chain recover: a chain whose last serving member is gone serves from the member that served it last; refused while that one runs or none else does', async () => {
  const rig = await fiveWorkers();
  const [a, b, c] = rig.sm.state.chains()[0].targetIds;
  const worker = (id: number) => Math.floor(id / 1000);
  const code = (err: unknown) => (err as { code?: string }).code;
  await assert.rejects(rig.manager.recoverChain({ chainId: 1 }), (err) => code(err) === 'EINVAL' && /serves: nothing to recover/.test(String(err)));
  await assert.rejects(rig.manager.recoverChain({ chainId: 9 }), (err) => code(err) === 'ENOENT');
  await assert.rejects(rig.manager.recoverChain({ chainId: 1, extra: 1 }), (err) => code(err) === WorkerErrorCode.InvalidArgument);
  // b and c stop, then a, the last serving member: b and c come back to a chain that waits for a.
  rig.up.delete(worker(b));
  rig.up.delete(worker(c));
  await rig.ticks(8);
  rig.up.delete(worker(a));
  await rig.ticks(8);
  assert.match(rig.members(1), new RegExp(`^${a}:lastsrv ${b}:offline ${c}:offline$`));
  await assert.rejects(rig.manager.recoverChain({ chainId: 1 }), (err) => code(err) === 'EAGAIN' && /no other member of chain 1 runs/.test(String(err)));
  rig.served.set(b, { servedChainId: 1, servedRoutingVersion: 20 });
  rig.served.set(c, { servedChainId: 1, servedRoutingVersion: 31 });
  rig.up.add(worker(b));
  rig.up.add(worker(c));
  await rig.ticks(8);
  assert.match(rig.members(1), new RegExp(`^${a}:lastsrv ${b}:waiting ${c}:waiting$`), 'unavailable, waiting for a');
  const plan = await rig.manager.recoverChain({ chainId: 1, dryRun: true });
  assert.deepEqual([plan.source, plan.given, plan.done], [c, a, false], 'c served the chain last of those left');
  assert.match(rig.members(1), /lastsrv/, 'a dry run changes nothing');
  const done = await rig.manager.recoverChain({ chainId: 1 });
  assert.equal(done.done, true);
  await rig.ticks(3);
  assert.match(rig.members(1), new RegExp(`^${c}:serving ${b}:serving ${a}:offline$`), 'c serves, b resynced from it, a gave up');
  assert.ok(rig.logs.some((l) => l.includes('chain recovered by an operator')));
  // Refused while the last serving member runs: it serves again by itself, losing nothing.
  rig.up.delete(worker(b));
  rig.up.delete(worker(a));
  await rig.ticks(8);
  rig.up.delete(worker(c));
  await rig.ticks(8);
  rig.up.add(worker(c));
  rig.beat(); // heard from, before the round that makes it serve
  await assert.rejects(rig.manager.recoverChain({ chainId: 1 }), (err) => code(err) === 'EAGAIN' && new RegExp(`target ${c}, runs`).test(String(err)));
  await rig.tick();
  assert.match(rig.members(1), new RegExp(`^${c}:serving`));
});
