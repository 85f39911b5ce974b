// `cairn local` and the journal choice, without starting processes: the flags masters get, the
// ZooKeeper part of cluster.json read back, the refusals of `local up`, and status and down on a
// record whose ZooKeeper PIDs are not ZooKeeper servers (left alone). Starting the ensemble itself is
// tested in test/cluster/zookeeper-ensemble.test.ts.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { clusterFileName, readLocalCluster, type LocalCluster, type LocalZooKeeper } from '../../src/cli/cluster-target.ts';
import { journalArgs, localDown, localUp, zooKeeperStatus } from '../../src/cli/local.ts';
import { CairnError, ErrorCode } from '../../src/errors.ts';

function zkRecord(dir: string, pid: number): LocalZooKeeper {
  const servers = [1, 2, 3].map((id) => ({ id, pid, clientPort: 30_000 + id, quorumPort: 31_000 + id, electionPort: 32_000 + id, dir: path.join(dir, 'zookeeper', `zk-${id}`), log: path.join(dir, 'zookeeper', `zk-${id}`, 'zookeeper.log') }));
  return { clusterId: 'c0123456789ab', connectString: '127.0.0.1:30001,127.0.0.1:30002,127.0.0.1:30003', servers };
}

/** A stopped cluster on ZooKeeper whose recorded ZooKeeper PIDs are this test process (alive, but not a server). */
function savedCluster(t: TestContext): { dir: string; cluster: LocalCluster } {
  const dir = mkdtempSync(path.join(tmpdir(), 'cairn-localzk-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cluster: LocalCluster = {
    secret: 's',
    createdAt: '2026-01-01T00:00:00.000Z',
    founders: [[1, '127.0.0.1:1']],
    shape: { workers: 0, targetsPerWorker: 1, replication: 1 },
    journal: 'zookeeper',
    zookeeper: zkRecord(dir, process.pid),
    processes: [],
  };
  writeFileSync(path.join(dir, clusterFileName), `${JSON.stringify(cluster, null, 2)}\n`);
  return { dir, cluster };
}

function badOption(pattern: RegExp): (err: unknown) => boolean {
  return (err) => err instanceof CairnError && err.code === ErrorCode.BadOption && pattern.test(err.message);
}

test('masters on Raft get no journal flags; masters on ZooKeeper get the ensemble and the cluster id', () => {
  assert.deepEqual(journalArgs('raft', undefined), []);
  const zk = zkRecord('/d', 1);
  assert.deepEqual(journalArgs('zookeeper', zk), ['--journal', 'zookeeper', '--zk', '127.0.0.1:30001,127.0.0.1:30002,127.0.0.1:30003', '--zk-cluster', 'c0123456789ab']);
  assert.throws(() => journalArgs('zookeeper', undefined), /invariant violated/);
});

test('cluster.json keeps the journal and the ensemble as written', (t) => {
  const { dir, cluster } = savedCluster(t);
  assert.deepEqual(readLocalCluster(dir), cluster);
});

test('local up refuses to change an existing cluster\'s journal, and --join on ZooKeeper', async (t) => {
  const { dir } = savedCluster(t);
  const log = (): void => undefined;
  const opts = { dir, masters: 3, workers: 0, targetsPerWorker: 1, replication: 1, log };
  await assert.rejects(localUp({ ...opts, journal: 'raft' }), badOption(/keeps its journal on zookeeper; --journal raft needs a new cluster/));
  await assert.rejects(localUp({ ...opts, join: 2 }), badOption(/--join .* with --journal zookeeper there is no membership/));
});

test('status lists the ZooKeeper servers; a recorded PID that is not the server is down, and down leaves it alone', async (t) => {
  const { dir, cluster } = savedCluster(t);
  const st = await zooKeeperStatus(cluster);
  assert.deepEqual(
    st.map((s) => [s.kind, s.id, s.address, s.alive, s.mode]),
    [1, 2, 3].map((id) => ['zookeeper', id, `127.0.0.1:${30_000 + id}`, false, 'down']),
  );
  assert.deepEqual(await zooKeeperStatus({ ...cluster, journal: 'raft', zookeeper: undefined }), []);
  const lines: string[] = [];
  await localDown(dir, (l) => lines.push(l));
  assert.ok(lines.includes('stopped 0 ZooKeeper servers'), lines.join('\n'));
});
