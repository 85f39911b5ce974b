// Real masters on 127.0.0.1: kill -9 of the leader under load, catch-up by snapshot, membership
// changes and leadership transfer with clients running, a torn WAL tail, backup and restore.

import assert from 'node:assert/strict';
import { appendFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import type { MasterClient } from '../../src/client/master-client.ts';
import type { InodeAttr } from '../../src/meta/namespace-state.ts';
import { TestCluster, listAll, waitFor } from './harness.ts';

const creates = Number(process.env.CAIRN_TEST_CREATES ?? 10_000);
const writers = 8;

async function mkdir(c: MasterClient, p: string): Promise<void> {
  await c.mutate('meta.mutate', { op: 'mkdir', path: p, mode: 0o755, uid: 0, gid: 0, parents: true });
}

async function create(c: MasterClient, p: string): Promise<void> {
  await c.mutate('meta.mutate', { op: 'create', path: p, mode: 0o644, uid: 0, gid: 0, exclusive: true });
}

test(`3 masters: ${creates} creates from ${writers} clients survive kill -9 of the leader, exactly once`, async (t) => {
  const cluster = await TestCluster.start(t, { masters: 3 });
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

test('one client with many concurrent mutations across a failover gets every answer right', async (t) => {
  const cluster = await TestCluster.start(t, { masters: 3 });
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

test('a master that was down while the log was compacted catches up by snapshot', async (t) => {
  const cluster = await TestCluster.start(t, { masters: 3, env: { CAIRN_CHECKPOINT_EVERY: '300', CAIRN_CHECKPOINT_KEEP: '20' } });
  const leader = await cluster.waitForLeader();
  const down = [...cluster.masters.keys()].find((id) => id !== leader)!;
  await cluster.kill(down);
  const c = cluster.client();
  await mkdir(c, '/s');
  for (let i = 0; i < 1000; i++) await create(c, `/s/f${i}`);
  const st = (await cluster.status(leader))!;
  assert.ok(st.firstIndex > 100, `the leader's log was compacted (first index ${st.firstIndex})`);
  cluster.spawn(down);
  await cluster.waitConverged();
  const after = (await cluster.status(down))!;
  assert.ok(after.snapshotIndex > 0, `master ${down} installed a snapshot (snapshot index ${after.snapshotIndex})`);
  assert.equal((await listAll(c, '/s')).length, 1000);
});

test('every master killed at once restarts from its own checkpoint and WAL, losing nothing acknowledged', async (t) => {
  const cluster = await TestCluster.start(t, { masters: 3, env: { CAIRN_CHECKPOINT_EVERY: '200', CAIRN_CHECKPOINT_KEEP: '10' } });
  const c = cluster.client();
  await mkdir(c, '/r');
  await Promise.all(
    Array.from({ length: 4 }, async (_, w) => {
      const k = cluster.client();
      for (let i = w; i < 1000; i += 4) await create(k, `/r/f${i}`);
    }),
  );
  const before = await cluster.waitConverged();
  for (const id of cluster.masters.keys()) assert.ok(((await cluster.status(id))?.snapshotIndex ?? 0) > 0, `master ${id} took checkpoints`);
  for (const id of cluster.masters.keys()) await cluster.kill(id);
  for (const id of cluster.masters.keys()) cluster.spawn(id);
  await cluster.waitForLeader();
  assert.equal(await cluster.waitConverged(), before, 'the same state after a full restart');
  assert.equal((await listAll(cluster.client(), '/r')).length, 1000);
});

test('adding two masters, removing one and transferring leadership keep clients working', async (t) => {
  const cluster = await TestCluster.start(t, { masters: 3 });
  const admin = cluster.client({ deadlineMs: 60_000 });
  await mkdir(admin, '/m');
  let writing = true;
  let written = 0;
  const writer = (async () => {
    const c = cluster.client({ deadlineMs: 30_000 });
    while (writing) await create(c, `/m/f${written++}`);
  })();
  for (const id of [4, 5]) {
    const m = await cluster.addJoiner(id);
    await admin.call('admin.journal.add', { id, address: m.address });
  }
  let st = (await cluster.status((await cluster.leaderId())!))!;
  assert.deepEqual(st.members.filter((m) => m.role === 'voter').map((m) => m.id).sort(), [1, 2, 3, 4, 5]);
  const leader = (await cluster.leaderId())!;
  const removed = leader === 2 ? 3 : 2;
  await admin.call('admin.journal.remove', { id: removed });
  await cluster.kill(removed);
  cluster.masters.delete(removed);
  await admin.call('admin.journal.transfer', { id: 4 });
  await waitFor(async () => (await cluster.leaderId()) === 4, 'master 4 to lead', 10_000);
  const before = written;
  await waitFor(() => written > before + 20, 'writes under the new leader', 20_000);
  writing = false;
  await writer;
  st = (await cluster.status(4))!;
  assert.deepEqual(st.members.map((m) => m.id).sort(), [1, 2, 3, 4, 5].filter((id) => id !== removed));
  await cluster.waitConverged();
  assert.equal((await listAll(admin, '/m')).length, written);
});

test('a master with a torn WAL tail starts, reports the truncation, and catches up', async (t) => {
  const cluster = await TestCluster.start(t, { masters: 3 });
  const leader = await cluster.waitForLeader();
  const victim = [...cluster.masters.keys()].find((id) => id !== leader)!;
  const c = cluster.client();
  await mkdir(c, '/w');
  for (let i = 0; i < 50; i++) await create(c, `/w/a${i}`);
  await cluster.waitConverged();
  await cluster.kill(victim);
  const walDir = path.join(cluster.masters.get(victim)!.dir, 'wal');
  const segments = (await readdir(walDir)).filter((f) => f.endsWith('.wal')).sort();
  // Half a record: a length that promises more bytes than follow.
  await appendFile(path.join(walDir, segments[segments.length - 1]), Buffer.from([0, 0, 1, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3]));
  for (let i = 0; i < 50; i++) await create(c, `/w/b${i}`);
  cluster.spawn(victim);
  await cluster.waitConverged();
  await waitFor(async () => (await cluster.logTails(1000)).includes('WAL tail repaired'), 'the repair to be logged', 5_000);
});

test('backup, then restore into a fresh cluster: the same namespace', async (t) => {
  const a = await TestCluster.start(t, { masters: 3 });
  const ca = a.client();
  await mkdir(ca, '/b/x/y');
  for (let i = 0; i < 100; i++) await create(ca, `/b/x/f${i}`);
  await ca.mutate('meta.mutate', { op: 'symlink', path: '/b/link', target: '/b/x', uid: 0, gid: 0 });
  await ca.mutate('meta.mutate', { op: 'setattr', path: '/b/x/f1', mode: 0o600, sizeBytes: 12345 });
  const leaderA = a.masters.get((await a.leaderId())!)!;
  const backup = await ca.callRaw('admin.backup', {}, leaderA.address);
  assert.ok(backup.payload !== undefined && backup.payload.length > 0);

  const b = await TestCluster.start(t, { masters: 3 });
  const cb = b.client();
  const leaderB = b.masters.get((await b.leaderId())!)!;
  await cb.callRaw('admin.restore', {}, leaderB.address, backup.payload);
  assert.deepEqual(await tree(cb, '/'), await tree(ca, '/'));
  await b.waitConverged();
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
