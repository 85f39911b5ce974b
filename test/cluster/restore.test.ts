// Every master lost, on real processes with workers: masters started afresh are another cluster, which
// the workers do not join; `cairn admin restore` brings the backup's cluster back, its files read
// back, the chunks of files written after the backup are quarantined (reported, never removed by
// themselves), and files written after the restore get inode ids no earlier file had, so they read
// back their own bytes, not an old file's.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { FileWriter } from '../../src/client/file-io.ts';
import { putFile } from '../../src/client/files.ts';
import type { QuarantineReport } from '../../src/master/quarantine.ts';
import type { InodeAttr, SessionValue, TargetInfo, WorkerInfo } from '../../src/meta/index.ts';
import { MasterWorkerMethod, type WorkerHealth } from '../../src/worker/protocol.ts';
import { DataCluster, pieces, readAll, sha } from './data-cluster.ts';
import { waitFor } from './harness.ts';
import { runCairn } from './process-cluster.ts';

const chunk = 64 * 1024;
const layout = { chunkSizeBytes: chunk, stripeWidth: 1 };

async function cairn(cluster: DataCluster, args: string[]): Promise<{ code: number; out: string }> {
  const r = await runCairn([...args, '--masters', cluster.masters.addresses().join(',')], { CAIRN_SECRET: cluster.masters.secret });
  return { code: r.code, out: r.stdout + r.stderr };
}

test('all masters lost: a restore brings the backup back; later files are quarantined, not removed; new files get fresh ids and their own bytes', async (t) => {
  const cluster = await DataCluster.start(t, { masters: 3, workers: 3, targetsPerWorker: 1, heartbeatMs: 200, offlineTimeoutMs: 1_000, env: { CAIRN_GC_DELAY_MS: '0' } });
  const before = cluster.client();
  const kept = new Map<string, Buffer>();
  for (let i = 0; i < 3; i++) {
    const body = randomBytes(2 * chunk + 100 * i);
    await putFile(before.meta, before.data, `/before-${i}`, pieces(body, chunk), { layout });
    kept.set(`/before-${i}`, body);
  }
  const backupFile = path.join(cluster.masters.masters.get(1)!.dir, '..', 'meta.bak');
  const backup = await cairn(cluster, ['admin', 'backup', backupFile]);
  assert.equal(backup.code, 0, backup.out);

  // The lost cluster goes on after the backup: new files (two chunks each, on the one chain), and
  // a backed-up file deleted and collected.
  const later: InodeAttr[] = [];
  for (let i = 0; i < 4; i++) later.push(await putFile(before.meta, before.data, `/after-${i}`, pieces(Buffer.alloc(2 * chunk, 0xaa), chunk), { layout }));
  await before.meta.mutate('meta.mutate', { op: 'unlink', path: '/before-0' });
  await waitFor(async () => (await before.meta.query<unknown[]>('meta.query', { op: 'pendingGc', limit: 10 })).length === 0, 'the deleted file collected', 20_000);
  const lostClusterId = (await cluster.routing()).clusterId;

  // Every master lost: killed, its directory gone; started afresh they make a new cluster.
  cluster.closeClients();
  for (const id of cluster.masters.masters.keys()) await cluster.masters.kill(id);
  for (const m of cluster.masters.masters.values()) await rm(m.dir, { recursive: true, force: true });
  for (const id of cluster.masters.masters.keys()) cluster.masters.spawn(id);
  await cluster.masters.waitForLeader();
  await waitFor(async () => (await cluster.routing()).clusterId !== '', 'the fresh cluster named', 20_000);
  assert.notEqual((await cluster.routing()).clusterId, lostClusterId);
  // Several heartbeats: the workers try to register again and refuse a cluster that is not theirs.
  await new Promise((r) => setTimeout(r, 1_500));
  const fresh = cluster.client();
  assert.deepEqual(await fresh.meta.query<WorkerInfo[]>('meta.query', { op: 'workers' }), [], 'no worker joined the fresh cluster');

  const restored = await cairn(cluster, ['admin', 'restore', backupFile]);
  assert.equal(restored.code, 0, restored.out);
  assert.equal((await cluster.routing()).clusterId, lostClusterId);
  await waitFor(async () => (await cluster.allServing()) && (await cluster.replicasDiffer()) === undefined, 'the workers registered again and every chain serves', 30_000, () => cluster.logTails());

  const after = cluster.client();
  for (const [name, body] of kept) {
    if (name === '/before-0') continue;
    assert.equal(sha(await readAll(after, name)), sha(body), `${name} reads back`);
  }
  // Deleted after the backup: the restore brings its name back, but its chunks are gone: EIO, never wrong bytes.
  await assert.rejects(readAll(after, '/before-0'), (err: Error & { details?: { errno?: string } }) => err.details?.errno === 'EIO');
  for (const f of later) assert.equal(await after.meta.query<InodeAttr>('meta.query', { op: 'stat', path: `/after-${later.indexOf(f)}` }).catch(() => undefined), undefined, 'later files are not in the restored namespace');

  // The later files' chunks: quarantined on every replica, and still there after garbage collection rounds.
  const laterIds = later.map((f) => f.inodeId).sort((a, b) => a - b);
  const audit = (): Promise<QuarantineReport> => after.meta.query<QuarantineReport>(MasterWorkerMethod.quarantine, { refresh: true });
  const first = await audit();
  assert.equal(first.chunks, later.length * 2 * 3, JSON.stringify(first));
  for (const target of first.targets) assert.deepEqual(target.inodeIds, laterIds);
  assert.ok(first.targets.every((x) => x.aheadOfCounter === 0), 'the restored counter is past them');
  const report = await cairn(cluster, ['admin', 'report']);
  assert.match(report.out, new RegExp(`quarantined chunks .*: ${first.chunks} \\(`));
  await new Promise((r) => setTimeout(r, 1_000));
  assert.equal((await audit()).chunks, first.chunks, 'not removed by anything');

  // New files: ids past every earlier one, and their own bytes, holes reading as zeros (a reused
  // id would find an /after file's chunk and read its 0xaa bytes in the hole).
  const body = randomBytes(2 * chunk);
  const put = await putFile(after.meta, after.data, '/new', pieces(body, chunk), { layout });
  assert.ok(put.inodeId > laterIds[laterIds.length - 1], `new inode ${put.inodeId} is past the lost cluster's ${laterIds.join(', ')}`);
  assert.equal(sha(await readAll(after, '/new')), sha(body));
  await after.meta.mutate('meta.mutate', { op: 'create', path: '/sparse', mode: 0o644, uid: 0, gid: 0, exclusive: true });
  const s = await after.meta.mutate<SessionValue>('meta.mutate', { op: 'openSession', path: '/sparse', truncate: false });
  const writer = new FileWriter(after.data, { inodeId: s.inode.inodeId, layout: s.inode.layout! });
  const tail = randomBytes(1000);
  await writer.write(tail, 4096);
  await writer.flush();
  await after.meta.mutate('meta.mutate', { op: 'closeSession', sessionId: s.sessionId, lengthBytes: writer.highWater, chunks: writer.written.toArray() });
  const expected = Buffer.concat([Buffer.alloc(4096), tail]);
  assert.ok((await readAll(after, '/sparse')).equals(expected), 'the hole reads as zeros');
});

test('a restore after a chain member moved: the emptied source, back last, is resynced from the members that served on, never the other way round', async (t) => {
  const cluster = await DataCluster.start(t, { masters: 3, workers: 3, targetsPerWorker: 2, heartbeatMs: 200, offlineTimeoutMs: 1_000, env: { CAIRN_GC_DELAY_MS: '0' } });
  const client = cluster.client();
  const kept = new Map<string, Buffer>();
  for (let i = 0; i < 6; i++) {
    const body = randomBytes(3 * chunk + 7 * i);
    await putFile(client.meta, client.data, `/f-${i}`, pieces(body, chunk), { layout: { chunkSizeBytes: chunk, stripeWidth: 2 } });
    kept.set(`/f-${i}`, body);
  }
  const backupFile = path.join(cluster.masters.masters.get(1)!.dir, '..', 'meta.bak');
  const backup = await cairn(cluster, ['admin', 'backup', backupFile]);
  assert.equal(backup.code, 0, backup.out);

  // After the backup, a new worker takes a member of a chain; the member that left is reclaimed (emptied).
  const before = await cluster.routing();
  await cluster.addWorker(4, 2);
  const health = (): Promise<WorkerHealth[]> => client.meta.query<WorkerHealth[]>('cluster.health', {});
  let source: TargetInfo | undefined;
  const moved = async (): Promise<string | undefined> => {
    const r = await cluster.routing();
    if (r.chains.some((ch) => ch.moving !== undefined) || !r.targets.some((x) => x.workerId === 4 && x.chainId !== 0)) return 'no member moved to worker 4 yet';
    source = before.targets.find((x) => x.chainId !== 0 && r.targets.find((y) => y.targetId === x.targetId)!.chainId === 0);
    if (source === undefined) return 'no member left its chain yet';
    const chunks = (await health()).flatMap((w) => w.targets).find((x) => x.targetId === source!.targetId)?.chunks;
    return chunks === 0 ? undefined : `target ${source.targetId} left its chain and holds ${chunks} chunks`;
  };
  await waitFor(async () => (await moved()) === undefined, 'a member moved to worker 4, the source emptied', 60_000, async () => (await moved()) ?? '');

  // Every master lost; the source's worker is down while the others register again, and comes back last.
  cluster.closeClients();
  for (const id of cluster.masters.masters.keys()) await cluster.masters.kill(id);
  for (const m of cluster.masters.masters.values()) await rm(m.dir, { recursive: true, force: true });
  await cluster.killWorker(source!.workerId);
  for (const id of cluster.masters.masters.keys()) cluster.masters.spawn(id);
  await cluster.masters.waitForLeader();
  await waitFor(async () => (await cluster.routing()).clusterId !== '', 'the fresh cluster named', 20_000);
  const restored = await cairn(cluster, ['admin', 'restore', backupFile]);
  assert.equal(restored.code, 0, restored.out);
  const others = [...cluster.workers.keys()].filter((w) => w !== source!.workerId);
  const registered = async (): Promise<boolean> => {
    const workers = await cluster.client().meta.query<WorkerInfo[]>('meta.query', { op: 'workers' });
    return others.every((id) => workers.some((w) => w.workerId === id && w.instance !== 'restored'));
  };
  await waitFor(registered, 'the other workers registered again', 20_000);
  await new Promise((r) => setTimeout(r, 1_500));
  const waiting = await cluster.routing();
  const chainOf = waiting.chains.find((ch) => ch.targetIds.includes(source!.targetId))!;
  assert.ok(chainOf.targetIds.every((id) => waiting.targets.find((x) => x.targetId === id)!.state !== 'serving'), 'the chain waits for its silent member');
  await cluster.startWorker(source!.workerId);
  await waitFor(async () => (await cluster.membersServing()) && (await cluster.replicasDiffer()) === undefined, 'every chain member serving and agreeing', 60_000, () => cluster.logTails());
  const after = cluster.client();
  for (const [name, body] of kept) assert.equal(sha(await readAll(after, name)), sha(body), `${name} reads back`);
});
