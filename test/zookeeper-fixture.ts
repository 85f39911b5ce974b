// ZooKeeper for tests: one ensemble per test file, started on first use and stopped after the
// file's tests; a cluster id per test, so that each test's chroot (/cairn/ID) is its own; clients
// closed when their test ends; and requireZooKeeper, which skips a test where ZooKeeper is not
// installed, except in CI (CI=true), where the test fails: the suite never passes by skipping there.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, type TestContext } from 'node:test';
import zookeeper from 'node-zookeeper-client';
import { CairnError, ErrorCode } from '../src/errors.ts';
import { newZkClusterId, zkChroot } from '../src/journal/zookeeper/cluster-id.ts';
import { findZooKeeper, startEnsemble, type Ensemble } from '../src/journal/zookeeper/ensemble.ts';

/**
 * Whether ZooKeeper and Java are installed. If not: throws when CI=true (the test fails with the
 * install command), and otherwise skips the test with that message and returns false.
 */
export function requireZooKeeper(t: TestContext): boolean {
  try {
    findZooKeeper();
    return true;
  } catch (err) {
    if (!(err instanceof CairnError && err.code === ErrorCode.NotInstalled)) throw err;
    if (process.env.CI === 'true') throw new Error(`${err.message} (CI=true: a test that needs ZooKeeper fails rather than skips)`, { cause: err });
    t.skip(`${err.message}; this test is skipped (it fails where CI=true)`);
    return false;
  }
}

/**
 * For `test(name, { skip: zooKeeperSkipReason() }, ...)`: outside CI, why tests that need ZooKeeper
 * are skipped on this machine (with the command to install it); in CI (CI=true) never, so they run
 * and fail there.
 */
export function zooKeeperSkipReason(): string | undefined {
  if (process.env.CI === 'true') return undefined;
  try {
    findZooKeeper();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

let shared: { dir: string; ensemble: Promise<Ensemble> } | undefined;

/** This file's ensemble (3 servers, attached), started on the first call. */
export function fileEnsemble(): Promise<Ensemble> {
  if (shared === undefined) {
    const dir = mkdtempSync(path.join(tmpdir(), 'cairn-zk-'));
    shared = { dir, ensemble: startEnsemble({ dir, servers: 3 }) };
  }
  return shared.ensemble;
}

after(async () => {
  if (shared === undefined) return;
  const { dir, ensemble } = shared;
  shared = undefined;
  // A start that failed has stopped its servers already.
  await ensemble.then((e) => e.stop()).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

export interface TestZkCluster {
  /** A fresh id, unique to this test: its journal lives under `chroot`. */
  clusterId: string;
  chroot: string;
  /** The ensemble's servers, without the chroot (what `--zk` takes). */
  connectString: string;
  ensemble: Ensemble;
}

/** A cluster id for this test on this file's ensemble. */
export async function zkClusterFor(t: TestContext): Promise<TestZkCluster> {
  const ensemble = await fileEnsemble();
  const slug = t.name.replace(/[^A-Za-z0-9_-]+/g, '-').slice(0, 40);
  const clusterId = `${slug}-${newZkClusterId()}`;
  return { clusterId, chroot: zkChroot(clusterId), connectString: ensemble.connectString, ensemble };
}

/** How long a test client waits to connect before the test fails. */
const connectDeadlineMs = 15_000;

/** A connected client (node-zookeeper-client), closed when the test ends. */
export async function zkClient(t: TestContext, connectString: string, opts: { sessionTimeoutMs?: number } = {}): Promise<zookeeper.Client> {
  const client = zookeeper.createClient(connectString, { sessionTimeout: opts.sessionTimeoutMs ?? 10_000, spinDelay: 200, retries: 0 });
  t.after(() => client.close());
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ZooKeeper session with ${connectString} after ${connectDeadlineMs} ms`)), connectDeadlineMs);
    client.once('connected', () => {
      clearTimeout(timer);
      resolve();
    });
    client.connect();
  });
  return client;
}
