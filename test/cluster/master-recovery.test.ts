// Masters lost for good, on real processes: one master's disk lost (it comes back as a new member
// under a new id and catches up from a snapshot), and a majority lost (the survivor is made the only
// member with `cairn admin journal recover`, keeps every acknowledged write, and new members join it).

import assert from 'node:assert/strict';
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { TestCluster, listAll } from './harness.ts';
import { runCairn } from './process-cluster.ts';

const creates = 600;
const writers = 4;
// Small checkpoints, so that a new member's catch-up needs a snapshot (the log it would need is gone).
const env = { CAIRN_CHECKPOINT_EVERY: '150', CAIRN_CHECKPOINT_KEEP: '20' };

async function createAll(cluster: TestCluster, names: string[]): Promise<void> {
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      const c = cluster.client();
      for (let i = w; i < names.length; i += writers) await c.mutate('meta.mutate', { op: 'create', path: names[i], mode: 0o644, uid: 0, gid: 0, exclusive: true });
    }),
  );
}

/** `cairn ARGS...` as an operator runs it, with the cluster's secret in the environment; never throws. */
async function cairn(args: string[], secret: string): Promise<{ code: number; out: string }> {
  const r = await runCairn(args, { CAIRN_SECRET: secret });
  return { code: r.code, out: r.stdout + r.stderr };
}

async function names(cluster: TestCluster): Promise<string[]> {
  return (await listAll(cluster.client(), '/c')).map((e) => e.name).sort();
}

test("a master's disk lost: its id is removed, and it returns as a new member that catches up from a snapshot", async (t) => {
  const cluster = await TestCluster.start(t, { masters: 3, env });
  const leader = await cluster.waitForLeader();
  await cluster.client().mutate('meta.mutate', { op: 'mkdir', path: '/c', mode: 0o755, uid: 0, gid: 0 });
  await createAll(cluster, Array.from({ length: creates }, (_, i) => `/c/f${i}`));
  const victim = [...cluster.masters.keys()].find((id) => id !== leader)!;
  const lost = cluster.masters.get(victim)!;
  await cluster.kill(victim);
  await rm(lost.dir, { recursive: true, force: true });
  const others = [...cluster.masters.values()].filter((m) => m.id !== victim).map((m) => m.address).join(',');

  const removed = await cairn(['admin', 'journal', 'remove', String(victim), '--masters', others], cluster.secret);
  assert.equal(removed.code, 0, removed.out);
  const newId = Number(/needs a new id, such as (\d+)/.exec(removed.out)?.[1]);
  assert.equal(newId, 4, removed.out);
  cluster.masters.delete(victim);
  const joiner = await cluster.addJoiner(newId);
  const added = await cairn(['admin', 'journal', 'add', String(newId), joiner.address, '--masters', others], cluster.secret);
  assert.equal(added.code, 0, added.out);
  await createAll(cluster, Array.from({ length: 50 }, (_, i) => `/c/g${i}`));
  await cluster.waitConverged();
  const st = (await cluster.status(newId))!;
  assert.ok(st.snapshotIndex > 0 && st.firstIndex > 1, `master ${newId} caught up from a snapshot: ${JSON.stringify(st)}`);
  assert.ok((await readdir(path.join(joiner.dir, 'snap'))).some((f) => f.endsWith('.snap')), 'its snapshot is on its disk');
  assert.equal((await names(cluster)).length, creates + 50);
  assert.deepEqual(st.members.map((m) => m.id).sort(), [...cluster.masters.keys()].sort());
});

test('a majority of masters lost for good: the survivor is recovered alone with every acknowledged write, and new members join it', async (t) => {
  const cluster = await TestCluster.start(t, { masters: 3, env });
  const leader = await cluster.waitForLeader();
  await cluster.client().mutate('meta.mutate', { op: 'mkdir', path: '/c', mode: 0o755, uid: 0, gid: 0 });
  const acknowledged = Array.from({ length: creates }, (_, i) => `f${i}`);
  await createAll(cluster, acknowledged.map((n) => `/c/${n}`));
  // The survivor is a follower that holds every acknowledged write (a majority held each one; the
  // operator recovers the survivor with the highest last index, which `recover` prints).
  const survivor = [...cluster.masters.keys()].find((id) => id !== leader)!;
  await cluster.waitCaughtUp(survivor);
  const running = await cairn(['admin', 'journal', 'recover', '--dir', cluster.masters.get(survivor)!.dir, '--id', String(survivor), '--yes'], cluster.secret);
  assert.match(running.out, /CAIRN_DIR_LOCKED/, 'a running master\'s directory is refused');
  for (const id of cluster.masters.keys()) await cluster.kill(id);
  for (const m of [...cluster.masters.values()].filter((x) => x.id !== survivor)) {
    await rm(m.dir, { recursive: true, force: true });
    cluster.masters.delete(m.id);
  }
  const dir = cluster.masters.get(survivor)!.dir;
  const walBefore = await walBytes(dir);

  const unconfirmed = await cairn(['admin', 'journal', 'recover', '--dir', dir, '--id', String(survivor)], cluster.secret);
  assert.notEqual(unconfirmed.code, 0);
  assert.match(unconfirmed.out, /removing masters? [\d, ]+, and commits through \d+/);
  assert.match(unconfirmed.out, /pass --yes/);
  assert.deepEqual(await walBytes(dir), walBefore, 'nothing written without --yes');
  const wrongId = await cairn(['admin', 'journal', 'recover', '--dir', dir, '--id', '9', '--yes'], cluster.secret);
  assert.match(wrongId.out, /master 9 is not a voter/);
  assert.deepEqual(await walBytes(dir), walBefore, 'nothing written for a wrong id');

  const recovered = await cairn(['admin', 'journal', 'recover', '--dir', dir, '--id', String(survivor), '--yes'], cluster.secret);
  assert.equal(recovered.code, 0, recovered.out);
  cluster.spawn(survivor);
  assert.equal(await cluster.waitForLeader(), survivor);
  assert.deepEqual(await names(cluster), [...acknowledged].sort(), 'every acknowledged create is there, once');
  await createAll(cluster, Array.from({ length: 40 }, (_, i) => `/c/after${i}`));

  for (const id of [4, 5]) {
    const m = await cluster.addJoiner(id);
    await cluster.client().call('admin.journal.add', { id, address: m.address });
  }
  await cluster.waitConverged();
  const st = (await cluster.status(survivor))!;
  assert.deepEqual(st.members.map((m) => [m.id, m.role]).sort(), [[survivor, 'voter'], [4, 'voter'], [5, 'voter']].sort());
  const lostIds = [1, 2, 3].filter((id) => id !== survivor);
  assert.deepEqual(st.removedIds, lostIds);
  await assert.rejects(cluster.client().call('admin.journal.add', { id: lostIds[0], address: '127.0.0.1:1' }), (err: { code?: string }) => err.code === 'CAIRN_ID_REMOVED');
  // The new group survives the loss of its first member: a majority of {survivor, 4, 5} remains.
  await cluster.kill(survivor);
  assert.notEqual(await cluster.waitForLeader(survivor), survivor);
  assert.equal((await names(cluster)).length, creates + 40);
});

/** The survivor's WAL segments, concatenated: to see that a refused recovery wrote nothing. */
async function walBytes(dir: string): Promise<Buffer> {
  const walDir = path.join(dir, 'wal');
  const files = (await readdir(walDir)).sort();
  return Buffer.concat(await Promise.all(files.map((f) => readFile(path.join(walDir, f)))));
}
