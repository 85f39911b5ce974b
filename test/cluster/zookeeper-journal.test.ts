// Real masters on the ZooKeeper journal, on one ZooKeeper ensemble per file (a cluster id, and so a
// root znode, per test): the journal suite shared with Raft (journal-suite.ts), then ZooKeeper's
// own faults: servers of the ensemble killed, the leading master stopped past its session timeout
// (fencing: no append of it lands after another master took over, checked in the log itself), a
// master restarted at once under the same id.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { ErrorCode } from '../../src/errors.ts';
import { nodeDisk } from '../../src/io/node-disk.ts';
import { ZkJournal } from '../../src/journal/zookeeper/zk-journal.ts';
import { decodeBatch } from '../../src/journal/zookeeper/batch.ts';
import { digestAuth } from '../../src/journal/zookeeper/zk-session.ts';
import { zkClient, zkClusterFor, zooKeeperSkipReason } from '../zookeeper-fixture.ts';
import { TestCluster, listAll, waitFor, type ClusterOptions } from './harness.ts';
import { create, journalSuite, mkdir } from './journal-suite.ts';

/** Small log buckets, so that a few thousand entries span many and compaction can delete some. */
const testBucketEntries = '20';

async function start(t: TestContext, opts: ClusterOptions): Promise<TestCluster> {
  const zk = await zkClusterFor(t);
  return TestCluster.start(t, { ...opts, env: { CAIRN_ZK_BUCKET_ENTRIES: testBucketEntries, ...opts.env }, zookeeper: { connect: zk.connectString, clusterId: zk.clusterId } });
}

const skip = zooKeeperSkipReason();

journalSuite('zookeeper', start, skip);

test('zookeeper: one server of the ensemble killed, writes go on; two killed, they fail with UNAVAILABLE; one back, they resume and nothing acknowledged is lost', { skip }, async (t) => {
  const zk = await zkClusterFor(t);
  const cluster = await start(t, { masters: 3 });
  const c = cluster.client({ deadlineMs: 30_000 });
  await mkdir(c, '/z');
  const acked: string[] = [];
  const write = async (k: typeof c, name: string): Promise<void> => {
    await create(k, `/z/${name}`);
    acked.push(name);
  };
  for (let i = 0; i < 50; i++) await write(c, `a${i}`);
  // The ensemble's own leader goes first: the harder case (a new ZooKeeper election).
  const ids = zk.ensemble.servers.map((s) => s.id);
  const modes = await Promise.all(ids.map((id) => zk.ensemble.status(id)));
  const first = ids[modes.indexOf('leader')] ?? ids[0];
  await zk.ensemble.kill(first);
  t.after(() => zk.ensemble.start([first]).catch(() => undefined));
  for (let i = 0; i < 50; i++) await write(c, `b${i}`);
  const second = ids.find((id) => id !== first)!;
  await zk.ensemble.kill(second);
  t.after(() => zk.ensemble.start([second]).catch(() => undefined));
  // No quorum: a write fails, with UNAVAILABLE, once the client's deadline passes.
  const short = cluster.client({ deadlineMs: 8_000 });
  const began = Date.now();
  await assert.rejects(create(short, '/z/no-quorum'), (err: unknown) => {
    assert.equal((err as { code?: unknown }).code, ErrorCode.Unavailable, String(err));
    return true;
  });
  t.diagnostic(`with one of three ZooKeeper servers left, a write failed with UNAVAILABLE after ${Date.now() - began} ms (client deadline 8000 ms)`);
  await zk.ensemble.start([second]);
  for (let i = 0; i < 50; i++) await write(c, `c${i}`);
  await zk.ensemble.start([first]);
  const names = new Set((await listAll(c, '/z')).map((e) => e.name));
  for (const a of acked) assert.ok(names.has(a), `acknowledged ${a} is there`);
  await cluster.waitConverged();
});

test('zookeeper: the leading master stopped past its session timeout is replaced, stops serving when it wakes, and none of its appends lands after the new epoch', { skip }, async (t) => {
  const zk = await zkClusterFor(t);
  const cluster = await TestCluster.start(t, { masters: 3, env: { CAIRN_ZK_BUCKET_ENTRIES: testBucketEntries }, zookeeper: { connect: zk.connectString, clusterId: zk.clusterId } });
  const c = cluster.client({ deadlineMs: 30_000 });
  await mkdir(c, '/f');
  let writing = true;
  let written = 0;
  const writer = (async () => {
    const k = cluster.client({ deadlineMs: 30_000 });
    while (writing) await create(k, `/f/x${written++}`);
  })();
  await waitFor(() => written >= 100, 'writes before the pause', 20_000);
  const old = (await cluster.leaderId())!;
  const pid = cluster.masters.get(old)!.child!.pid!;
  process.kill(pid, 'SIGSTOP');
  t.after(() => {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // already gone
    }
  });
  const paused = Date.now();
  const next = await cluster.waitForLeader(old);
  t.diagnostic(`master ${old} stopped; master ${next} leads ${Date.now() - paused} ms later`);
  const atTakeover = written;
  await waitFor(() => written >= atTakeover + 100, 'writes under the new leader', 20_000);
  process.kill(pid, 'SIGCONT');
  await waitFor(async () => (await cluster.status(old))?.role === 'follower', `master ${old} to serve as a standby again`, 20_000, () => cluster.logTails());
  writing = false;
  await writer;
  assert.equal((await listAll(c, '/f')).length, written);
  await cluster.waitConverged();
  // The log itself: contiguous indexes, and epochs that never go back (no append of a deposed leader).
  const client = await zkClient(t, zk.connectString + zk.chroot);
  const denied = await new Promise<unknown>((res) => client.getChildren('/log', (e) => res(e)));
  assert.equal((denied as { name?: string } | null)?.name, 'NO_AUTH', 'without the cluster secret, the log cannot even be listed');
  client.addAuthInfo('digest', Buffer.from(digestAuth(cluster.secret).auth));
  const list = (p: string): Promise<string[]> => new Promise((res, rej) => client.getChildren(p, (e, ch) => (e ? rej(e) : res(ch))));
  const get = (p: string): Promise<Buffer> => new Promise((res, rej) => client.getData(p, (e, d) => (e ? rej(e) : res(d))));
  let expected: number | undefined;
  let epoch = 0;
  let batches = 0;
  const epochs = new Set<number>();
  for (const bucket of (await list('/log')).sort()) {
    for (const name of (await list(`/log/${bucket}`)).sort()) {
      const b = decodeBatch(await get(`/log/${bucket}/${name}`));
      assert.ok(typeof b !== 'string', `${bucket}/${name}: ${String(b)}`);
      if (expected !== undefined) assert.equal(b.firstIndex, expected, `${bucket}/${name} follows its predecessor`);
      assert.ok(b.epoch >= epoch, `${bucket}/${name}: epoch ${b.epoch} after ${epoch}`);
      epoch = b.epoch;
      epochs.add(b.epoch);
      expected = b.firstIndex + b.entries.length;
      batches++;
    }
  }
  assert.ok(epochs.size >= 2, `the log holds appends of two epochs at least: ${[...epochs].join(', ')}`);
  t.diagnostic(`${batches} batches checked, epochs ${[...epochs].join(', ')}`);
});

test('zookeeper: a master killed and restarted at once under the same id waits out its old session and catches up', { skip }, async (t) => {
  const cluster = await start(t, { masters: 3 });
  const c = cluster.client({ deadlineMs: 30_000 });
  await mkdir(c, '/q');
  const leader = await cluster.waitForLeader();
  const victim = [...cluster.masters.keys()].find((id) => id !== leader)!;
  for (let i = 0; i < 100; i++) await create(c, `/q/a${i}`);
  await cluster.kill(victim);
  cluster.spawn(victim);
  for (let i = 0; i < 100; i++) await create(c, `/q/b${i}`);
  await cluster.waitConverged();
  assert.equal((await listAll(c, '/q')).length, 200);
});

test('zookeeper journal in one process: results in log order, a follower answers NOT_LEADER naming the leader, an entry over one znode is refused', { skip }, async (t) => {
  const zk = await zkClusterFor(t);
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-zkj-'));
  const applied: string[][] = [[], []];
  const journals = [1, 2].map(
    (id) =>
      new ZkJournal({
        id,
        address: `127.0.0.1:${7000 + id}`,
        connect: zk.connectString,
        clusterId: zk.clusterId,
        secret: 'in-process',
        dir: path.join(dir, `m${id}`),
        disk: nodeDisk,
        transport: { handle: () => undefined, connect: () => assert.fail('no peer fetch expected') },
      }),
  );
  // Stopped before their directory goes (node:test runs after-hooks in the order they were added).
  t.after(async () => {
    await Promise.all(journals.map((j) => j.stop()));
    await rm(dir, { recursive: true, force: true });
  });
  await Promise.all(
    journals.map((j, i) =>
      j.start({
        apply: (index, entry) => {
          applied[i].push(`${index}:${Buffer.from(entry).toString()}`);
          return index;
        },
        snapshot: () => [],
        restore: () => undefined,
      }),
    ),
  );
  await waitFor(() => journals.some((j) => j.isLeader()), 'a leader', 10_000);
  const leader = journals.find((j) => j.isLeader())!;
  const follower = journals.find((j) => j !== leader)!;
  const results = await Promise.all(Array.from({ length: 500 }, (_, i) => leader.propose(Buffer.from(`e${i}`))));
  assert.deepEqual(results, Array.from({ length: 500 }, (_, i) => i + 1), 'each proposal resolves with its own entry\'s result');
  await assert.rejects(follower.propose(Buffer.from('x')), (err: unknown) => {
    assert.equal((err as { code?: unknown }).code, ErrorCode.NotLeader);
    assert.equal((err as { details?: { leader?: { id: number } } }).details?.leader?.id, leader.status().id);
    return true;
  });
  await assert.rejects(leader.propose(Buffer.alloc(1_000_000)), (err: unknown) => (err as { code?: unknown }).code === ErrorCode.EntryTooLarge);
  await leader.readBarrier();
  await waitFor(() => applied[0].length === 500 && applied[1].length === 500, 'both to apply every entry', 10_000);
  assert.deepEqual(applied[0], applied[1]);
});

test('zookeeper journal: compaction deletes the oldest buckets for good; a new master that could only read an empty log refuses to start, and an old one resumes from its checkpoint', { skip }, async (t) => {
  const zk = await zkClusterFor(t);
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-zkc-'));
  const opened: ZkJournal[] = [];
  // One hook, in order: every journal stopped (a checkpoint may be being written) before the directory goes.
  t.after(async () => {
    for (const j of opened) await j.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const noPeers = { handle: () => undefined, connect: () => assert.fail('no peer serves checkpoints here') };
  const open = (id: number): { journal: ZkJournal; applied: number[] } => {
    const applied: number[] = [];
    const journal = new ZkJournal({ id, address: `127.0.0.1:${7100 + id}`, connect: zk.connectString, clusterId: zk.clusterId, secret: 'compact', dir: path.join(dir, `m${id}`), disk: nodeDisk, transport: noPeers, bucketEntriesMax: 5, checkpointEveryEntries: 50, retainEntries: 10 });
    opened.push(journal);
    return { journal, applied };
  };
  const sm = (applied: number[]) => ({
    apply: (index: number) => {
      applied.push(index);
      return index;
    },
    snapshot: () => [Buffer.from(JSON.stringify(applied.length))],
    restore: (frames: Iterable<Uint8Array>) => {
      for (const f of frames) applied.splice(0, applied.length, ...Array.from({ length: Number(Buffer.from(f).toString()) }, (_, i) => i + 1));
    },
  });
  const masters = [1, 2, 3].map(open);
  await Promise.all(masters.map((m) => m.journal.start(sm(m.applied))));
  await waitFor(() => masters.some((m) => m.journal.isLeader()), 'a leader', 10_000);
  const leader = masters.find((m) => m.journal.isLeader())!.journal;
  for (let i = 0; i < 300; i++) await leader.propose(Buffer.from(`e${i}`));
  await waitFor(() => leader.status().firstIndex > 100, 'compaction to delete the oldest buckets', 20_000);
  // The standbys took the checkpoints (the leader leaves them to them while they make a majority).
  const checkpointed = masters.find((m) => m.journal !== leader && m.journal.status().snapshotIndex > 0)!;
  assert.ok(checkpointed !== undefined, 'a standby holds a checkpoint');
  assert.equal(leader.status().snapshotIndex, 0, 'the leader took none');
  const checkpointedId = checkpointed.journal.status().id;
  for (const m of masters) await m.journal.stop();
  // The first bucket is gone, and no session start brings it back.
  const client = await zkClient(t, zk.connectString + zk.chroot);
  client.addAuthInfo('digest', Buffer.from(digestAuth('compact').auth));
  const buckets = await new Promise<string[]>((res, rej) => client.getChildren('/log', (e, ch) => (e ? rej(e) : res(ch))));
  assert.ok(!buckets.includes('b0000000000'), `bucket 0 was deleted: ${buckets.sort().slice(0, 3).join(', ')}...`);
  const fresh = open(4);
  await assert.rejects(fresh.journal.start(sm(fresh.applied)), /was deleted from ZooKeeper and no master could send a newer checkpoint/);
  const after = await new Promise<string[]>((res, rej) => client.getChildren('/log', (e, ch) => (e ? rej(e) : res(ch))));
  assert.ok(!after.includes('b0000000000'), 'the refused master did not make bucket 0 again');
  assert.deepEqual(fresh.applied, [], 'it applied nothing');
  // An old master comes back from its own checkpoint and the log after it.
  const back = open(checkpointedId);
  await back.journal.start(sm(back.applied));
  await waitFor(() => back.journal.isLeader(), 'the returning master to lead', 15_000);
  assert.equal(await back.journal.propose(Buffer.from('next')), 301, 'it goes on at the next index');
});
