// Real masters for process tests: process-cluster.ts's MasterCluster tied to a node:test test, so
// the masters are killed and their directory removed when it ends, and their log tails are printed
// when it fails.

import type { TestContext } from 'node:test';
import type { MasterClient } from '../../src/client/master-client.ts';
import type { DirEntry, ReaddirPage } from '../../src/meta/namespace-state.ts';
import { MasterCluster, ProcessGroup } from './process-cluster.ts';

export { waitFor, type MasterProc } from './process-cluster.ts';

export interface ClusterOptions {
  masters: number;
  /** Environment for every master, e.g. checkpoint settings. */
  env?: Record<string, string>;
  /** Run on the ZooKeeper journal (an ensemble and a cluster id from test/zookeeper-fixture.ts); Raft when absent. */
  zookeeper?: { connect: string; clusterId: string };
}

/** A test's cluster is a MasterCluster; the waits and client calls fail after 20 s unless told otherwise. */
export type TestCluster = MasterCluster;

export const TestCluster = {
  async start(t: TestContext, opts: ClusterOptions): Promise<TestCluster> {
    const procs = await ProcessGroup.create('cairn-cluster');
    let cluster: MasterCluster | undefined;
    t.after(async () => {
      cluster?.closeClients();
      const failed = (t as unknown as { passed?: boolean }).passed === false;
      if (failed && cluster !== undefined) console.error(await cluster.logTails());
      await procs.close('SIGKILL');
    });
    cluster = await MasterCluster.start(procs, { count: opts.masters, env: opts.env, deadlineMs: 20_000, zookeeper: opts.zookeeper });
    return cluster;
  },
};

/** Every entry of a directory, read page by page. */
export async function listAll(c: MasterClient, dir: string): Promise<DirEntry[]> {
  const out: DirEntry[] = [];
  let after: string | undefined;
  do {
    const page = await c.query<ReaddirPage>('meta.query', { op: 'readdir', path: dir, limit: 1000, ...(after === undefined ? {} : { after }) });
    out.push(...page.entries);
    after = page.next;
  } while (after !== undefined);
  return out;
}
