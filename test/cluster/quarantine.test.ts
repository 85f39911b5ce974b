// The quarantine in one process over real TCP and disks (src/master/quarantine.ts): chunks of inodes
// the namespace does not know are never removed by garbage collection or resync, the leader reports
// them (cluster.quarantine, /metrics, `cairn admin quarantine list`), and only a confirmed purge
// removes them. A chunk of an inode the counter has not reached moves the counter past it.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DataClient } from '../../src/client/data-client.ts';
import { putFile } from '../../src/client/files.ts';
import { MasterClient } from '../../src/client/master-client.ts';
import { freePort } from '../../src/cli/local.ts';
import { systemClock } from '../../src/io/system-clock.ts';
import { createLogger } from '../../src/log.ts';
import type { PurgeReply } from '../../src/master/cluster-manager.ts';
import { startMaster } from '../../src/master/index.ts';
import type { QuarantineReport } from '../../src/master/quarantine.ts';
import { rootCaller, type CreateValue, type InodeAttr, type RoutingInfo } from '../../src/meta/index.ts';
import { RpcClient } from '../../src/rpc/index.ts';
import { startWorkerProcess, workerFrameBytesMax, type WorkerProcess } from '../../src/worker/process.ts';
import { MasterWorkerMethod } from '../../src/worker/protocol.ts';
import { pieces, readAll, replicasDiffer, sha } from './data-cluster.ts';
import { waitFor } from './harness.ts';

const secret = randomBytes(16).toString('hex');
const timing = { heartbeatMs: 200, offlineTimeoutMs: 1_000 };
const mainScript = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const chunk = 64 * 1024;

test('chunks of unknown inodes: kept through garbage collection and resync, reported, removed only by a confirmed purge', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-quarantine-'));
  const log = createLogger({ test: 'quarantine' }, 'warn');
  const listen = `127.0.0.1:${await freePort()}`;
  const master = await startMaster({ id: 1, dir: path.join(dir, 'master'), listen, peers: new Map([[1, listen]]), secret, log, replication: 3, timing, tickMs: 10, http: '127.0.0.1:0', gcDelayMs: 0 });
  const workers: WorkerProcess[] = [];
  const meta = new MasterClient({ masters: [master.address], secret, caller: rootCaller });
  const data = new DataClient({ master: meta, connect: (a) => new RpcClient(a, { secret, frameBytesMax: workerFrameBytesMax }), clock: systemClock });
  t.after(async () => {
    data.close();
    meta.close();
    for (const w of workers) await w.stop().catch(() => undefined);
    await master.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const startWorker = async (id: number): Promise<WorkerProcess> => startWorkerProcess({ id, listen: '127.0.0.1:0', masters: [master.address], targets: [path.join(dir, `worker-${id}`)], secret, log, syncPageChunks: 3 });
  for (let id = 1; id <= 3; id++) workers.push(await startWorker(id));
  const routing = (): Promise<RoutingInfo> => meta.query<RoutingInfo>('cluster.routing', {});
  const serving = async (): Promise<boolean> => (await routing()).targets.every((x) => x.state === 'serving') && (await replicasDiffer(await routing(), secret)) === undefined;
  await waitFor(async () => (await routing()).chains.length === 1 && (await serving()), 'a chain of 3, serving', 20_000);
  const audit = (): Promise<QuarantineReport> => meta.query<QuarantineReport>(MasterWorkerMethod.quarantine, { refresh: true });
  assert.equal((await audit()).chunks, 0, 'a fresh cluster holds nothing unknown');

  const kept = randomBytes(3 * chunk);
  await putFile(meta, data, '/kept', pieces(kept, chunk), { layout: { chunkSizeBytes: chunk } });
  await putFile(meta, data, '/gone', pieces(randomBytes(chunk), chunk), { layout: { chunkSizeBytes: chunk } });
  const gone = await meta.query<InodeAttr>('meta.query', { op: 'stat', path: '/gone' });
  await meta.mutate('meta.mutate', { op: 'unlink', path: '/gone' });
  await waitFor(async () => (await meta.query<unknown[]>('meta.query', { op: 'pendingGc', limit: 10 })).length === 0, 'the deleted file collected', 10_000);
  // A client that still writes to the collected file leaves a chunk no file owns.
  const stray = randomBytes(1000);
  await data.writeChunk(gone.layout!, gone.inodeId, 0, 0, stray);

  const first = await audit();
  assert.equal(first.chunks, 3, 'one chunk on each replica');
  assert.deepEqual(first.targets.map((x) => x.inodeIds), [[gone.inodeId], [gone.inodeId], [gone.inodeId]]);
  assert.ok(first.targets.every((x) => x.aheadOfCounter === 0 && x.error === undefined));
  const metrics = await (await fetch(`http://${master.httpAddress}/metrics`)).text();
  assert.match(metrics, new RegExp(`cairn_quarantine_chunks\\{target="${first.targets[0].targetId}"\\} 1`));

  // A worker restart makes its target resync from the chain's serving member: the stray chunk
  // stays, as the source holds it too; garbage collection rounds pass meanwhile.
  await workers[2].stop();
  workers[2] = await startWorker(3);
  await waitFor(serving, 'the restarted worker resynced', 20_000);
  assert.equal((await audit()).chunks, 3, 'kept through resync and garbage collection');

  // A chunk of an inode past the counter (as after a restore whose floor fell short): the leader
  // moves the counter past it, so no new file finds it.
  const probe = await meta.mutate<CreateValue>('meta.mutate', { op: 'create', path: '/probe', mode: 0o644, uid: 0, gid: 0, exclusive: true });
  const ahead = probe.inode.inodeId + 1000;
  await data.writeChunk(probe.inode.layout!, ahead, 0, 0, stray);
  let n = 0;
  await waitFor(async () => (await meta.mutate<CreateValue>('meta.mutate', { op: 'create', path: `/after-${n++}`, mode: 0o644, uid: 0, gid: 0, exclusive: true })).inode.inodeId > ahead, 'the inode counter moved past the stray chunk', 10_000);
  assert.equal((await audit()).chunks, 6);

  // The CLI refuses to purge without a confirmation when it cannot ask.
  const cli = (...args: string[]): Promise<{ code: number; out: string }> =>
    promisify(execFile)(process.execPath, [mainScript, 'admin', 'quarantine', ...args, '--masters', master.address], { env: { ...process.env, CAIRN_SECRET: secret } }).then(
      (r) => ({ code: 0, out: r.stdout + r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
    );
  const listed = await cli('list');
  assert.equal(listed.code, 0, listed.out);
  assert.match(listed.out, /6 chunks .* on 3 of 3 targets/);
  const refused = await cli('purge');
  assert.notEqual(refused.code, 0);
  assert.match(refused.out, /CAIRN_NOT_CONFIRMED|pass --yes/);
  assert.equal((await audit()).chunks, 6, 'nothing removed without --yes');

  const purged = await meta.call<PurgeReply>(MasterWorkerMethod.quarantinePurge, {});
  assert.equal(purged.chunks, 6);
  assert.equal(purged.left.chunks, 0);
  assert.equal((await audit()).chunks, 0);
  assert.equal(sha(await readAll({ meta, data }, '/kept')), sha(kept), 'the live file is untouched');
});
