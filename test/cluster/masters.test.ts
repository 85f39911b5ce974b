// Real masters on the Raft journal, on 127.0.0.1: the journal suite (journal-suite.ts, shared with
// the ZooKeeper journal), then what only Raft has: membership changes and leadership transfer with
// clients running, and a torn WAL tail.

import assert from 'node:assert/strict';
import { appendFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { TestCluster, listAll, waitFor } from './harness.ts';
import { create, journalSuite, mkdir } from './journal-suite.ts';

journalSuite('raft', (t, opts) => TestCluster.start(t, opts));

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

