// The local ZooKeeper ensemble (src/journal/zookeeper/ensemble.ts) on real JVMs: it starts with one
// leader, serves a client under a chroot, keeps serving writes with one server killed -9, refuses
// them with two gone, serves again once they are restarted, and stop() leaves no process behind.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type zookeeper from 'node-zookeeper-client';
import { fileEnsemble, requireZooKeeper, zkClient, zkClusterFor } from '../zookeeper-fixture.ts';
import type { Ensemble, ZkMode } from '../../src/journal/zookeeper/ensemble.ts';
import { processAlive } from './process-cluster.ts';

/** How long one write may take before the test calls it unanswered (a quorum lost leaves it queued in the client). */
const writeDeadlineMs = 8_000;

type WriteOutcome = { ok: true; ms: number } | { ok: false; ms: number; error: string };

/**
 * Creates `path` and reports what happened within the deadline: done, an error (its name), or no
 * answer. A connection lost (the client's server was killed) is retried, as ZooKeeper asks of its
 * clients; a retry that finds the node there counts as done, since the first try may have landed.
 */
function tryCreate(client: zookeeper.Client, path: string): Promise<WriteOutcome> {
  const start = performance.now();
  const ms = (): number => Math.round(performance.now() - start);
  return new Promise((resolve) => {
    let retried = false;
    const timer = setTimeout(() => resolve({ ok: false, ms: ms(), error: `no answer in ${writeDeadlineMs} ms` }), writeDeadlineMs);
    const attempt = (): void =>
      client.create(path, Buffer.from(path), (err) => {
        const name = err === null || err === undefined ? undefined : (err as { name?: string }).name;
        if (name === 'CONNECTION_LOSS' && ms() < writeDeadlineMs) {
          retried = true;
          setTimeout(attempt, 100);
          return;
        }
        clearTimeout(timer);
        const ok = name === undefined || (retried && name === 'NODE_EXISTS');
        resolve(ok ? { ok: true, ms: ms() } : { ok: false, ms: ms(), error: String(err) });
      });
    attempt();
  });
}

function getData(client: zookeeper.Client, path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => client.getData(path, (err, data) => (err ? reject(err) : resolve(data))));
}

function mkdirp(client: zookeeper.Client, path: string): Promise<void> {
  return new Promise((resolve, reject) => client.mkdirp(path, (err) => (err ? reject(err) : resolve())));
}

async function modes(e: Ensemble): Promise<ZkMode[]> {
  return Promise.all(e.servers.map((s) => e.status(s.id)));
}

test('an ensemble of three: one leader, a chroot, one server lost, two lost, both back, stopped', async (t) => {
  if (!requireZooKeeper(t)) return;
  const start = performance.now();
  const e = await fileEnsemble();
  t.diagnostic(`3 servers serving after ${Math.round(performance.now() - start)} ms: ${e.connectString}`);
  const first = await modes(e);
  assert.equal(first.filter((m) => m === 'leader').length, 1, `one leader: ${first.join(', ')}`);
  assert.equal(first.filter((m) => m === 'follower').length, 2, `two followers: ${first.join(', ')}`);

  const zk = await zkClusterFor(t);
  const root = await zkClient(t, zk.connectString);
  await mkdirp(root, zk.chroot);
  const client = await zkClient(t, `${zk.connectString}${zk.chroot}`);
  assert.deepEqual(await tryCreate(client, '/a').then((o) => o.ok), true);
  assert.equal((await getData(client, '/a')).toString(), '/a');
  assert.equal((await getData(root, `${zk.chroot}/a`)).toString(), '/a', 'the chrooted znode is under the chroot');

  // The leader first, so that the other two have to elect a new one.
  const leader = e.servers[first.indexOf('leader')].id;
  await e.kill(leader);
  const afterOne = await tryCreate(client, '/b');
  t.diagnostic(`leader ${leader} killed -9: write ${afterOne.ok ? 'done' : afterOne.error} in ${afterOne.ms} ms`);
  assert.ok(afterOne.ok, 'two of three servers are a quorum');

  // A client of its own for the write that fails: closed afterwards, so that a write it still
  // holds cannot land later, when the quorum is back.
  const probe = await zkClient(t, `${zk.connectString}${zk.chroot}`);
  const second = e.servers.find((s) => s.id !== leader)!.id;
  await e.kill(second);
  const survivor = e.servers.find((s) => s.id !== leader && s.id !== second)!.id;
  const lost = await tryCreate(probe, '/c');
  probe.close();
  t.diagnostic(`server ${second} killed too: write ${lost.ok ? 'done' : `failed: ${lost.error}`} after ${lost.ms} ms; server ${survivor} is ${await e.status(survivor)}`);
  assert.equal(lost.ok, false, 'one server of three is no quorum');
  assert.equal(await e.status(survivor), 'looking');

  const back = performance.now();
  await e.start([leader, second]);
  t.diagnostic(`both restarted and serving after ${Math.round(performance.now() - back)} ms`);
  const resumed = await tryCreate(client, '/d');
  assert.ok(resumed.ok, `writes resume: ${JSON.stringify(resumed)}`);
  assert.deepEqual((await modes(e)).sort(), ['follower', 'follower', 'leader']);

  const pids = e.servers.map((s) => s.pid);
  await e.stop();
  for (const s of e.servers) assert.equal(e.isRunning(s.id), false, `server ${s.id} stopped`);
  assert.deepEqual(
    pids.filter((pid) => processAlive(pid)),
    [],
    'no JVM left behind',
  );
  assert.deepEqual(await modes(e), ['down', 'down', 'down']);
});

