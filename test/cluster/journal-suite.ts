// The journal suite: the same real-process tests for both journal backends (Raft and ZooKeeper),
// registered by masters.test.ts and zookeeper-journal.test.ts. kill -9 of the leader under load
// with exactly-once answers, a failover under many concurrent mutations, catch-up from a
// checkpoint after the log was compacted, every master killed at once, backup and restore.

import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { MasterClient } from '../../src/client/master-client.ts';
import type { CreateValue, GcEntry, InodeAttr, Session } from '../../src/meta/namespace-state.ts';
import { endWriteSession } from '../../src/client/index.ts';
import { listAll, waitFor, type ClusterOptions, type TestCluster } from './harness.ts';

const creates = Number(process.env.CAIRN_TEST_CREATES ?? 10_000);
const writers = 8;

export async function mkdir(c: MasterClient, p: string): Promise<void> {
  await c.mutate('meta.mutate', { op: 'mkdir', path: p, mode: 0o755, uid: 0, gid: 0, parents: true });
}

export async function create(c: MasterClient, p: string): Promise<void> {
  await c.mutate('meta.mutate', { op: 'create', path: p, mode: 0o644, uid: 0, gid: 0, exclusive: true });
}

/** Starts a test's cluster on the backend under test; `env` holds settings both backends read (checkpoints). */
export type StartCluster = (t: TestContext, opts: ClusterOptions) => Promise<TestCluster>;

/** Registers the suite; `skip` (a reason) skips every test, e.g. where ZooKeeper is not installed outside CI. */
export function journalSuite(backend: 'raft' | 'zookeeper', start: StartCluster, skip?: string): void {
  test(`${backend}: 3 masters: ${creates} creates from ${writers} clients survive kill -9 of the leader, exactly once`, { skip }, async (t) => {
    const cluster = await start(t, { masters: 3 });
    await mkdir(cluster.client(), '/d');
    const acked: string[] = [];
    let killed = false;
    const killer = (async () => {
      await waitFor(() => acked.length >= creates / 2, 'half the creates', 120_000);
      const leader = (await cluster.leaderId())!;
      await cluster.kill(leader);
      killed = true;
      await cluster.waitForLeader(leader);
      cluster.spawn(leader);
    })();
    await Promise.all(
      Array.from({ length: writers }, async (_, w) => {
        const c = cluster.client({ deadlineMs: 30_000 });
        for (let i = w; i < creates; i += writers) {
          const p = `/d/f${i}`;
          // A create retried across the failover is answered with its first result: never EEXIST.
          await create(c, p);
          acked.push(p);
        }
      }),
    );
    await killer;
    assert.ok(killed, 'the leader was killed during the run');
    const c = cluster.client();
    const names = (await listAll(c, '/d')).map((e) => e.name);
    assert.equal(new Set(names).size, names.length, 'no name appears twice');
    assert.equal(names.length, creates, 'every acknowledged create exists and nothing else');
    await cluster.waitConverged();
  });

  test(`${backend}: one client with many concurrent mutations across a failover gets every answer right`, { skip }, async (t) => {
    const cluster = await start(t, { masters: 3 });
    const c = cluster.client({ deadlineMs: 30_000 });
    await mkdir(c, '/p');
    let done = 0;
    const killer = (async () => {
      await waitFor(() => done >= 300, 'a third of the creates', 60_000);
      await cluster.kill((await cluster.leaderId())!);
    })();
    // Retries after the failover arrive out of order; each in-flight mutation has its own client id,
    // so none is mistaken for a stale one (EINVAL) or answered with another's result.
    await Promise.all(
      Array.from({ length: 32 }, async (_, w) => {
        for (let i = w; i < 900; i += 32) {
          await create(c, `/p/f${i}`);
          done++;
        }
      }),
    );
    await killer;
    assert.equal((await listAll(c, '/p')).length, 900);
  });

  test(`${backend}: a master that was down while the log was compacted catches up by snapshot`, { skip }, async (t) => {
    const cluster = await start(t, { masters: 3, env: { CAIRN_CHECKPOINT_EVERY: '300', CAIRN_CHECKPOINT_KEEP: '20' } });
    const leader = await cluster.waitForLeader();
    const down = [...cluster.masters.keys()].find((id) => id !== leader)!;
    await cluster.kill(down);
    const c = cluster.client();
    await mkdir(c, '/s');
    for (let i = 0; i < 1000; i++) await create(c, `/s/f${i}`);
    // Compaction follows the checkpoints of a majority, in the background: on a loaded machine the
    // ZooKeeper journal's may come a little after the last create.
    let firstIndex = 0;
    await waitFor(async () => (firstIndex = (await cluster.status(leader))?.firstIndex ?? 0) > 100, "the leader's log to be compacted", 15_000, async () => `first index ${firstIndex}`);
    cluster.spawn(down);
    await cluster.waitConverged();
    const after = (await cluster.status(down))!;
    assert.ok(after.snapshotIndex > 0, `master ${down} installed a snapshot (snapshot index ${after.snapshotIndex})`);
    assert.equal((await listAll(c, '/s')).length, 1000);
  });

  test(`${backend}: every master killed at once restarts from its own checkpoint and WAL, losing nothing acknowledged`, { skip }, async (t) => {
    const cluster = await start(t, { masters: 3, env: { CAIRN_CHECKPOINT_EVERY: '200', CAIRN_CHECKPOINT_KEEP: '10' } });
    const c = cluster.client();
    await mkdir(c, '/r');
    await Promise.all(
      Array.from({ length: 4 }, async (_, w) => {
        const k = cluster.client();
        for (let i = w; i < 1000; i += 4) await create(k, `/r/f${i}`);
      }),
    );
    const before = await cluster.waitConverged();
    // On ZooKeeper the leader leaves periodic checkpoints to its standbys while they make a majority (docs/journal.md).
    const leader = await cluster.leaderId();
    for (const id of cluster.masters.keys()) {
      if (backend === 'zookeeper' && id === leader) continue;
      assert.ok(((await cluster.status(id))?.snapshotIndex ?? 0) > 0, `master ${id} took checkpoints`);
    }
    for (const id of cluster.masters.keys()) await cluster.kill(id);
    for (const id of cluster.masters.keys()) cluster.spawn(id);
    await cluster.waitForLeader();
    assert.equal(await cluster.waitConverged(), before, 'the same state after a full restart');
    assert.equal((await listAll(cluster.client(), '/r')).length, 1000);
  });

  test(`${backend}: backup, then restore into a fresh cluster: the same namespace`, { skip }, async (t) => {
    const a = await start(t, { masters: 3 });
    const ca = a.client();
    await mkdir(ca, '/b/x/y');
    for (let i = 0; i < 100; i++) await create(ca, `/b/x/f${i}`);
    await ca.mutate('meta.mutate', { op: 'symlink', path: '/b/link', target: '/b/x', uid: 0, gid: 0 });
    await ca.mutate('meta.mutate', { op: 'setattr', path: '/b/x/f1', mode: 0o600, sizeBytes: 12345 });
    const leaderA = a.masters.get((await a.leaderId())!)!;
    const backup = await ca.callRaw('admin.backup', {}, leaderA.address);
    assert.ok(backup.payload !== undefined && backup.payload.length > 0);

    const b = await start(t, { masters: 3 });
    const cb = b.client();
    const leaderB = b.masters.get((await b.leaderId())!)!;
    await cb.callRaw('admin.restore', {}, leaderB.address, backup.payload);
    assert.deepEqual(await tree(cb, '/'), await tree(ca, '/'));
    await b.waitConverged();
  });

  test(`${backend}: write sessions a client stopped renewing end after the lease; a live client's survive a failover`, { skip }, async (t) => {
    const leaseMs = 10_000;
    const cluster = await start(t, { masters: 3, env: { CAIRN_SESSION_LEASE_MS: String(leaseMs) } });
    const live = cluster.client({ deadlineMs: 30_000 });
    const dead = cluster.client({ deadlineMs: 30_000 });
    const open = (c: MasterClient, p: string) => c.mutate<CreateValue>('meta.mutate', { op: 'create', path: p, mode: 0o644, uid: 0, gid: 0, exclusive: true, openSession: true });
    const kept = await open(live, '/live');
    const gone = await open(dead, '/dead');
    const orphan = await open(dead, '/orphan');
    await dead.mutate('meta.mutate', { op: 'unlink', path: '/orphan' });
    // A temporary file, as a put makes one: it goes with its session.
    const temporary = await dead.mutate<CreateValue>('meta.mutate', { op: 'create', path: '/.t.cairn-put-1', mode: 0o644, uid: 0, gid: 0, exclusive: true, openSession: true, ephemeral: true });
    assert.equal(live.openSessions, 1);
    assert.equal(dead.openSessions, 3);
    dead.close(); // renews no more, as a killed process
    const leader = (await cluster.leaderId())!;
    await cluster.kill(leader);
    await cluster.waitForLeader(leader);
    cluster.spawn(leader);
    const admin = cluster.client({ deadlineMs: 30_000 });
    const openIds = async () => (await admin.query<{ sessions: Session[] }>('meta.query', { op: 'sessions', limit: 10 })).sessions.map((s) => s.sessionId);
    // The new leader waits a whole lease, then ends the silent client's sessions (checked every eighth of one).
    await waitFor(async () => (await openIds()).length === 1, 'the silent client\'s sessions to end', leaseMs * 3, async () => JSON.stringify(await openIds()));
    assert.deepEqual(await openIds(), [kept.sessionId], 'the live client renewed its session with the new leader');
    await assert.rejects(admin.mutate('meta.mutate', { op: 'expireSessions', sessionIds: [kept.sessionId] }), /cluster manager's/, 'only the leader ends sessions for want of renewal');
    const garbage = await admin.query<GcEntry[]>('meta.query', { op: 'pendingGc', limit: 10 });
    assert.deepEqual(garbage.map((e) => e.inodeId).sort(), [orphan.inode.inodeId, temporary.inode.inodeId].sort(), 'the unlinked file the dead client held, and its temporary file, are garbage now');
    await assert.rejects(admin.query('meta.query', { op: 'stat', path: '/.t.cairn-put-1' }), (err: unknown) => (err as { code?: string }).code === 'ENOENT');
    // What the dead client would have committed at its close still lands, by inode.
    const attr = await endWriteSession(admin, gone.sessionId!, gone.inode.inodeId, { lengthBytes: 4096 });
    assert.equal(attr?.sizeBytes, 4096);
    assert.equal((await endWriteSession(live, kept.sessionId!, kept.inode.inodeId, { lengthBytes: 10 }))?.sizeBytes, 10);
    assert.equal(live.openSessions, 0);
    await cluster.waitConverged();
  });

  async function tree(c: MasterClient, dir: string): Promise<string[]> {
    const out: string[] = [];
    for (const e of await listAll(c, dir)) {
      const p = dir === '/' ? `/${e.name}` : `${dir}/${e.name}`;
      const a = await c.query<InodeAttr>('meta.query', { op: 'stat', path: p });
      out.push(`${p} ${a.type} ${a.mode.toString(8)} ${a.sizeBytes} ${a.nlink} ${a.target ?? ''}`);
      if (a.type === 'dir') out.push(...(await tree(c, p)));
    }
    return out;
  }
}
