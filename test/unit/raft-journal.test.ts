// RaftJournal on one real process: restart paths that the multi-process tests hit only by timing.

import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { ErrorCode } from '../../src/errors.ts';
import { RaftJournal, type RaftJournalOptions } from '../../src/journal/index.ts';
import { ConfChangeType } from '../../src/raft/index.ts';
import type { StateMachine } from '../../src/journal/journal.ts';
import { RpcServer } from '../../src/rpc/index.ts';
import { nodeDisk } from '../../src/io/node-disk.ts';
import { rpcTransport } from '../../src/io/rpc-transport.ts';
import { systemClock } from '../../src/io/system-clock.ts';

/** Counts applied entries; a snapshot is the count. */
class Counter implements StateMachine {
  count = 0;
  apply(_index: number, _data: Uint8Array): unknown {
    return ++this.count;
  }
  *snapshot(): Iterable<Uint8Array> {
    yield Buffer.from(String(this.count));
  }
  restore(chunks: Iterable<Uint8Array>): void {
    this.count = Number(Buffer.concat([...chunks]).toString());
  }
}

interface Opened {
  journal: RaftJournal;
  sm: Counter;
  address: string;
  close(): Promise<void>;
}

/** A journal on its own RPC server; a founder of a one-node cluster unless `join` (then it waits to be added). */
async function openJournal(dir: string, checkpointEveryEntries: number, opts: { id?: number; join?: boolean; log?: (level: string, msg: string) => void; diskReserveBytes?: number } = {}): Promise<Opened> {
  const id = opts.id ?? 1;
  const server = new RpcServer({});
  const { port } = await server.listen('127.0.0.1', 0);
  const address = `127.0.0.1:${port}`;
  const journal = new RaftJournal({
    id,
    dir,
    address,
    founders: opts.join === true ? new Map() : new Map([[id, address]]),
    transport: rpcTransport(server), disk: nodeDisk, clock: systemClock,
    tickMs: 5,
    checkpointEveryEntries,
    ...(opts.log === undefined ? {} : { log: opts.log }),
    ...(opts.diskReserveBytes === undefined ? {} : { diskReserveBytes: opts.diskReserveBytes, diskCheckMs: 20 }),
  });
  const sm = new Counter();
  await journal.start(sm);
  return {
    journal,
    sm,
    address,
    close: async () => {
      await journal.stop();
      await server.close();
    },
  };
}

async function waitLeader(j: RaftJournal): Promise<void> {
  for (let i = 0; i < 400 && j.status().leader?.id !== 1; i++) await new Promise((r) => setTimeout(r, 5));
}

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-journal-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('a restart that replays more than a checkpoint interval of WAL checkpoints once the journal is up', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-journal-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const first = await openJournal(dir, 1_000_000);
  await waitLeader(first.journal);
  for (let i = 0; i < 300; i++) await first.journal.propose(Buffer.from(`e${i}`));
  await first.close();

  // Reopened with a small interval, the replay alone crosses it: the checkpoint must wait for the driver.
  const second = await openJournal(dir, 100);
  t.after(() => second.close());
  for (let i = 0; i < 400 && second.sm.count < 300; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(second.sm.count, 300, 'the WAL replay applied every entry');
  for (let i = 0; i < 200 && second.journal.status().snapshotIndex === 0; i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(second.journal.status().snapshotIndex >= 300, `checkpoint taken after the replay (snapshot index ${second.journal.status().snapshotIndex})`);
});

test('membership changes are idempotent, so a client may retry them after a timeout or failover', async (t) => {
  const one = await openJournal(await tempDir(t), 1_000_000);
  t.after(() => one.close());
  await waitLeader(one.journal);
  for (let i = 0; i < 20; i++) await one.journal.propose(Buffer.from(`e${i}`));
  const two = await openJournal(await tempDir(t), 1_000_000, { id: 2, join: true });
  t.after(() => two.close());
  // A retry racing the first call, and one after it finished: all succeed, one member results.
  await Promise.all([one.journal.addMember(2, two.address), one.journal.addMember(2, two.address)]);
  await one.journal.addMember(2, two.address);
  const voters = () => one.journal.status().members.filter((m) => m.role === 'voter').map((m) => m.id).sort();
  assert.deepEqual(voters(), [1, 2]);
  await assert.rejects(one.journal.addMember(2, '127.0.0.1:1'), /already a voter, at/);
  await Promise.all([one.journal.removeMember(2), one.journal.removeMember(2)]);
  await one.journal.removeMember(2);
  assert.deepEqual(voters(), [1]);
});

test('a removed id is never added back, also after a checkpoint and a restart, and its messages are dropped', async (t) => {
  const dir = await tempDir(t);
  const warnings: string[] = [];
  const one = await openJournal(dir, 1_000_000, { log: (level, msg) => level === 'warn' && warnings.push(msg) });
  await waitLeader(one.journal);
  const two = await openJournal(await tempDir(t), 1_000_000, { id: 2, join: true });
  t.after(() => two.close());
  await one.journal.addMember(2, two.address);
  await one.journal.removeMember(2);
  const refused = (err: { code?: string; message?: string }): boolean => {
    assert.equal(err.code, ErrorCode.IdRemoved);
    assert.match(err.message ?? '', /^master 2 was removed from this cluster .*: start the rebuilt master with a new --id, such as 3, and add that id$/);
    return true;
  };
  await assert.rejects(one.journal.addMember(2, two.address), refused);
  await assert.rejects(one.journal.addMember(2, '127.0.0.1:1'), refused);
  assert.deepEqual(one.journal.status().removedIds, [2]);

  // The removed node, still running, says a newer term: without the drop the leader would step down to it.
  const term = one.journal.status().term;
  const sender = new RpcServer({});
  t.after(() => sender.close());
  const conn = rpcTransport(sender).connect(one.address);
  t.after(() => conn.close());
  conn.notify('raft.step', { from: 2, address: two.address, msgs: [{ type: 'heartbeat', from: 2, to: 1, term: term + 5, commit: 0 }] });
  const removedWarning = 'messages from node 2, removed from the cluster, are dropped; stop that process';
  for (let i = 0; i < 200 && !warnings.includes(removedWarning); i++) await new Promise((r) => setTimeout(r, 5));
  // (Node 2's own messages between its removal from the core's configuration and the journal's
  // record of it are dropped as a stranger's.)
  assert.deepEqual(
    warnings.filter((w) => w !== "messages from node 2, which is not a member of this node's configuration, are dropped" && w !== 'no address known for node 2; message dropped'),
    [removedWarning],
  );
  assert.equal(one.journal.status().term, term);
  assert.ok(one.journal.isLeader());

  // The removal is behind the checkpoint, so the restarted journal knows of it from frame 0 only.
  const removedAt = one.journal.status().appliedIndex;
  assert.ok((await one.journal.checkpoint()) >= removedAt);
  await one.close();
  const again = await openJournal(dir, 1_000_000);
  t.after(() => again.close());
  assert.deepEqual(again.journal.status().removedIds, [2]);
  await waitLeader(again.journal);
  await assert.rejects(again.journal.addMember(2, two.address), refused);
});

test('messages from a node outside the configuration are dropped: a made-up sender\'s term does not become the leader\'s', async (t) => {
  const warnings: string[] = [];
  const one = await openJournal(await tempDir(t), 1_000_000, { log: (level, msg) => level === 'warn' && warnings.push(msg) });
  t.after(() => one.close());
  await waitLeader(one.journal);
  const term = one.journal.status().term;
  const sender = new RpcServer({});
  t.after(() => sender.close());
  const conn = rpcTransport(sender).connect(one.address);
  t.after(() => conn.close());
  // Without the drop the leader steps down to node 99's term (a probe found 2^53 - 1 there
  // stopped a cluster for good: no term was left to campaign in).
  conn.notify('raft.step', { from: 99, address: '127.0.0.1:1', msgs: [{ type: 'heartbeat', from: 99, to: 1, term: term + 1000, commit: 0 }] });
  for (let i = 0; i < 200 && warnings.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(warnings, ["messages from node 99, which is not a member of this node's configuration, are dropped"]);
  assert.equal(one.journal.status().term, term);
  assert.ok(one.journal.isLeader());
});

test('an add after a removal, as logs written before ids were kept removed hold, makes the id a member again', async (t) => {
  const one = await openJournal(await tempDir(t), 1_000_000);
  t.after(() => one.close());
  await waitLeader(one.journal);
  // Proposed on the core directly, as the journal no longer does: a learner, removed, then added back.
  const applied = async (at: { index: number }): Promise<void> => {
    for (let i = 0; i < 400 && one.journal.status().appliedIndex < at.index; i++) await new Promise((r) => setTimeout(r, 5));
  };
  await one.journal.propose(Buffer.from('e')); // the new leader's own entry is applied: conf changes may follow
  await applied(one.journal.core()!.proposeConfChange({ type: ConfChangeType.AddLearner, node: 2 }, Buffer.from('127.0.0.1:1')));
  await one.journal.removeMember(2);
  assert.deepEqual(one.journal.status().removedIds, [2]);
  await applied(one.journal.core()!.proposeConfChange({ type: ConfChangeType.AddLearner, node: 2 }, Buffer.from('127.0.0.1:1')));
  assert.deepEqual(one.journal.status().removedIds, []);
  assert.deepEqual(one.journal.status().members.map((m) => [m.id, m.role]), [[1, 'voter'], [2, 'learner']]);
});

/** A state of many 64 KiB chunks, restored one chunk at a time. */
class Chunky implements StateMachine {
  chunks: Buffer[] = [];
  restoredFromArray = false;
  apply(index: number, data: Uint8Array): unknown {
    this.chunks.push(Buffer.alloc(64 * 1024, index & 0xff));
    return data.length;
  }
  *snapshot(): Iterable<Uint8Array> {
    yield* this.chunks;
  }
  restore(chunks: Iterable<Uint8Array>): void {
    this.restoredFromArray = Array.isArray(chunks);
    this.chunks = [];
    for (const c of chunks) this.chunks.push(Buffer.from(c));
  }
}

test('a checkpoint streams the state machine to a file, and a restart restores it chunk by chunk', async (t) => {
  const dir = await tempDir(t);
  const open = async (sm: Chunky) => {
    const server = new RpcServer({});
    const { port } = await server.listen('127.0.0.1', 0);
    const address = `127.0.0.1:${port}`;
    const journal = new RaftJournal({ id: 1, dir, address, founders: new Map([[1, address]]), transport: rpcTransport(server), disk: nodeDisk, clock: systemClock, tickMs: 5, checkpointEveryEntries: 1_000_000 });
    await journal.start(sm);
    return { journal, close: async () => (await journal.stop(), await server.close()) };
  };
  const first = new Chunky();
  const a = await open(first);
  await waitLeader(a.journal);
  for (let i = 0; i < 40; i++) await a.journal.propose(Buffer.from(`e${i}`));
  const index = await a.journal.checkpoint();
  assert.ok(index >= 40, `checkpoint at ${index}`);
  const files = (await readdir(join(dir, 'snap'))).filter((f) => f.endsWith('.snap'));
  assert.equal(files.length, 1);
  // 40 chunks of 64 KiB plus frame headers and the member list.
  assert.ok((await stat(join(dir, 'snap', files[0]))).size > 40 * 64 * 1024);
  await a.close();

  const second = new Chunky();
  const b = await open(second);
  t.after(() => b.close());
  assert.equal(second.restoredFromArray, false, 'restore gets a lazy iterable, not an array of the whole state');
  assert.equal(second.chunks.length, first.chunks.length);
  assert.ok(second.chunks.every((c, i) => c.equals(first.chunks[i])));
});

/** Three journals on their own RPC servers, founders of one cluster, each over a Counter; stopped after the test. */
async function startThree(t: TestContext, opts: Partial<RaftJournalOptions>): Promise<{ journal: RaftJournal; sm: Counter }[]> {
  const servers = await Promise.all(
    [1, 2, 3].map(async () => {
      const server = new RpcServer({});
      const { port } = await server.listen('127.0.0.1', 0);
      return { server, address: `127.0.0.1:${port}` };
    }),
  );
  const founders = new Map(servers.map((s, i) => [i + 1, s.address]));
  return Promise.all(
    servers.map(async (s, i) => {
      const journal = new RaftJournal({ id: i + 1, dir: await tempDir(t), address: s.address, founders, transport: rpcTransport(s.server), disk: nodeDisk, clock: systemClock, tickMs: 5, ...opts });
      const sm = new Counter();
      await journal.start(sm);
      t.after(async () => {
        await journal.stop();
        await s.server.close();
      });
      return { journal, sm };
    }),
  );
}

test('with lease reads on, a leader answers read barriers from its lease (3 members)', async (t) => {
  const journals = (await startThree(t, { leaseRead: true, proposalTimeoutMs: 2_000 })).map((m) => m.journal);
  let leader: RaftJournal | undefined;
  for (let i = 0; i < 400 && leader === undefined; i++) {
    leader = journals.find((j) => j.isLeader());
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.ok(leader !== undefined, 'a leader was elected');
  await leader.propose(Buffer.from('w'));
  await new Promise((r) => setTimeout(r, 100)); // heartbeats answered: the lease holds
  for (let i = 0; i < 50; i++) await leader.readBarrier();
  await Promise.all(Array.from({ length: 50 }, () => leader.readBarrier()));
});

test('when every member is below its disk reserve, leadership is handed over once and then kept: removals go through', async (t) => {
  // A reserve larger than any disk: every member is full from its first look, as masters that
  // share one disk (a local cluster) or fill theirs together (they hold one log) are.
  const journals = await startThree(t, { diskReserveBytes: Number.MAX_SAFE_INTEGER, diskCheckMs: 10, log: () => undefined });
  const leaders: number[] = [];
  for (let i = 0; i < 600; i++) {
    const id = journals.findIndex((j) => j.journal.isLeader()) + 1;
    if (id > 0 && leaders.at(-1) !== id) leaders.push(id);
    await new Promise((r) => setTimeout(r, 5));
  }
  // Each member hands it over once at most (then keeps what comes back): four leaders in turn,
  // and a couple more for elections a loaded machine may cause. It was every check (10 ms): 12 to
  // some 35 in these 3 s.
  assert.ok(leaders.length >= 1 && leaders.length <= 6, `leaders in turn: ${leaders.join(', ')}`);
  const leader = journals.find((j) => j.journal.isLeader());
  assert.ok(leader !== undefined, 'a leader now');
  assert.throws(() => leader.journal.propose(Buffer.from('write')), { code: 'CAIRN_DISK_FULL' });
  await leader.journal.propose(Buffer.from('removal'), { onReserve: true });
  assert.equal(leader.sm.count, 1, 'the removal was committed and applied');
});

test('below its disk reserve a journal refuses writes but takes removals, so that a full cluster can be emptied', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-rj-reserve-'));
  // A reserve larger than any disk: the journal is below it from its first look.
  const j = await openJournal(dir, 1000, { diskReserveBytes: Number.MAX_SAFE_INTEGER, log: () => undefined });
  t.after(async () => {
    await j.close();
    await rm(dir, { recursive: true, force: true });
  });
  for (let i = 0; i < 500 && !j.journal.isLeader(); i++) await new Promise((r) => setTimeout(r, 10));
  for (let i = 0; i < 200; i++) {
    const refused = await Promise.resolve()
      .then(() => j.journal.propose(Buffer.from('write')))
      .then(() => undefined, (err: unknown) => err as { code?: string });
    if (refused?.code === 'CAIRN_DISK_FULL') break;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.throws(() => j.journal.propose(Buffer.from('write')), { code: 'CAIRN_DISK_FULL' });
  const before = j.sm.count;
  await j.journal.propose(Buffer.from('removal'), { onReserve: true });
  assert.equal(j.sm.count, before + 1, 'the removal was committed and applied');
});
