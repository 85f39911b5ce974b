// Chaos against real masters: a seeded schedule of kill -9 and restart, and of stalls (SIGSTOP, then
// SIGCONT), while clients race namespace operations over a few paths; the recorded history must be
// linearizable under the same namespace model the simulator uses, and the masters must converge.
// Even seeds run the masters with lease reads (--lease-read), which a stalled leader must not
// abuse. Each seed runs on each journal backend (CAIRN_CHAOS_JOURNALS, default raft,zookeeper; the
// ZooKeeper runs share one ensemble, left alone by the schedule). `npm test` runs a bounded
// schedule; `npm run chaos` runs longer ones (CAIRN_CHAOS_SECONDS, CAIRN_CHAOS_SEEDS).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MasterClient } from '../../src/client/master-client.ts';
import type { MetaResult } from '../../src/meta/namespace-state.ts';
import { checkLinearizable, type Operation } from '../../src/sim/linearizability.ts';
import { nsCommandBody, nsNextInput, nsReadOutput, nsReaddirLimit, nsWriteOutput } from '../../src/sim/meta-workload.ts';
import { isNsRead, namespaceModel, type NsInput, type NsOutput } from '../../src/sim/namespace-model.ts';
import { Prng } from '../../src/sim/prng.ts';
import { TestCluster } from '../cluster/harness.ts';
import { zkClusterFor, zooKeeperSkipReason } from '../zookeeper-fixture.ts';

const seconds = Number(process.env.CAIRN_CHAOS_SECONDS ?? 10);
const seeds = (process.env.CAIRN_CHAOS_SEEDS ?? '1,2').split(',').map(Number);
const journals = (process.env.CAIRN_CHAOS_JOURNALS ?? 'raft,zookeeper').split(',');
const zkMissing = zooKeeperSkipReason();
const clients = 4;
const nsCodes = new Set(['ENOENT', 'EEXIST', 'ENOTDIR', 'EISDIR', 'ENOTEMPTY', 'EINVAL']);

const runs = journals.flatMap((journal) => seeds.map((seed) => ({ journal, seed })));

for (const { journal, seed } of runs) {
  const zk = journal === 'zookeeper';
  const leaseRead = !zk && seed % 2 === 0;
  test(`chaos ${journal} seed ${seed}: ${seconds} s of kill -9, restarts and stalls under racing clients stay linearizable${leaseRead ? ' (lease reads)' : ''}`, { skip: zk ? zkMissing : undefined }, async (t) => {
    const zookeeper = zk ? await zkClusterFor(t) : undefined;
    const cluster = await TestCluster.start(t, {
      masters: 3,
      env: leaseRead ? { CAIRN_LEASE_READ: '1' } : {},
      ...(zookeeper === undefined ? {} : { zookeeper: { connect: zookeeper.connectString, clusterId: zookeeper.clusterId } }),
    });
    const prng = new Prng(seed);
    const history: Operation<NsInput, NsOutput>[] = [];
    const t0 = performance.now();
    const endMs = seconds * 1000;
    const faults: string[] = [];
    const chaos = (async () => {
      while (performance.now() - t0 < endMs - 2000) {
        await sleep(prng.range(500, 1500));
        const ids = [...cluster.masters.keys()];
        const victim = prng.chance(0.5) ? ((await cluster.leaderId()) ?? prng.pick(ids)) : prng.pick(ids);
        const child = cluster.masters.get(victim)?.child;
        if (prng.chance(0.3) && child?.pid !== undefined) {
          // A stall: the process keeps its sockets and state but runs nothing, as in a long pause.
          const pauseMs = prng.range(300, 2000);
          faults.push(`${Math.round(performance.now() - t0)}ms stall master ${victim} for ${pauseMs} ms`);
          process.kill(child.pid, 'SIGSTOP');
          await sleep(pauseMs);
          if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGCONT');
          continue;
        }
        faults.push(`${Math.round(performance.now() - t0)}ms kill -9 master ${victim}`);
        await cluster.kill(victim);
        await sleep(prng.range(200, 1500));
        cluster.spawn(victim);
      }
    })();
    await Promise.all(
      Array.from({ length: clients }, async (_, c) => {
        const client = cluster.client({ deadlineMs: 3_000 });
        const ops = prng.fork();
        while (performance.now() - t0 < endMs) history.push(await runOp(client, c + 1, nsNextInput(ops), t0));
      }),
    );
    await chaos;
    await cluster.waitConverged(30_000);
    const answered = history.filter((op) => op.output !== undefined).length;
    // Faults pause service for about a second each (a ZooKeeper failover waits out a 2 s session),
    // and a machine shared with other suites slows the rest: from a few dozen to a few thousand
    // answers in 10 s. A stuck cluster answers next to none.
    assert.ok(answered >= seconds * 2, `only ${answered} operations were answered in ${seconds} s`);
    const lin = checkLinearizable(namespaceModel, history, { stepBudget: 20_000_000 });
    const context = `${journal} seed ${seed}; faults: ${faults.join(', ')}`;
    t.diagnostic(`${answered} operations answered; ${context}`);
    assert.notEqual(lin.result, 'unknown', `linearizability check inconclusive (${context})`);
    assert.equal(lin.result, 'ok', lin.result === 'illegal' ? `${lin.explanation}\n${context}` : context);
  });
}

/** One operation; an answer that never came (no quorum in time) leaves the outcome unknown. */
async function runOp(client: MasterClient, clientId: number, input: NsInput, t0: number): Promise<Operation<NsInput, NsOutput>> {
  const call = performance.now() - t0;
  let output: NsOutput | undefined;
  try {
    if (isNsRead(input) && (input.kind === 'stat' || input.kind === 'readdir')) {
      const q = input.kind === 'stat' ? { op: 'stat', path: input.path } : { op: 'readdir', path: input.path, limit: nsReaddirLimit };
      output = nsReadOutput(input, { ok: true, value: await client.query('meta.query', q) } as MetaResult<unknown>);
    } else {
      output = nsWriteOutput(input, { ok: true, value: await client.mutate('meta.mutate', nsCommandBody(input)) });
    }
  } catch (err) {
    const code = (err as { code?: string }).code ?? '';
    if (!nsCodes.has(code)) return { clientId, input, call, ret: Infinity, output: undefined };
    output = { code } as NsOutput;
  }
  return { clientId, input, call, ret: performance.now() - t0, output };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
