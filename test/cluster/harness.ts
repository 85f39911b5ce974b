// Real masters for process tests: process-cluster.ts's MasterCluster tied to a node:test test, so
// the masters are killed and their directory removed when it ends, and their log tails are printed
// when it fails.

import type { TestContext } from 'node:test';
import { MasterCluster, ProcessGroup } from './process-cluster.ts';

export { waitFor, type MasterProc } from './process-cluster.ts';

export interface ClusterOptions {
  masters: number;
  /** Environment for every master, e.g. checkpoint settings. */
  env?: Record<string, string>;
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
    cluster = await MasterCluster.start(procs, { count: opts.masters, env: opts.env, deadlineMs: 20_000 });
    return cluster;
  },
};
