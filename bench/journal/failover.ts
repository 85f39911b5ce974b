// Leader-kill failovers under load, the same for every system: kill -9 the leader, then probe each
// survivor with a write every few milliseconds until one succeeds; the time from the kill to that
// write is the failover time. The killed member is restarted and caught up between runs.

import { sleep } from '../../test/cluster/process-cluster.ts';
import { Load, longestGapMs } from '../cluster.ts';
import { formatNumber } from '../report.ts';

/**
 * During a failover every survivor gets a new probe write this often, without waiting for earlier
 * ones (a write forwarded to the dead leader may hang until its deadline): the failover figures are
 * good to about this much.
 */
export const probeIntervalMs = 5;
export const probeCallTimeoutMs = 1_000;
/** Writes must resume within this long after a kill, or the run fails (a liveness bug, not a slow run). */
const recoveryDeadlineMs = 30_000;
/** Load before each kill, and after writes resume (to see how long the load's own clients stall). */
export const loadBeforeKillMs = 1_000;
export const loadAfterRecoveryMs = 5_000;

export interface FailoverRun {
  killed: string;
  /** From the kill to the first successful write on the new leader, as the probes saw it. */
  recoveryMs: number;
  /** Longest stretch with no write completed by the load's own clients, from the kill on. */
  loadStallMs: number;
  /** The load had not resumed when its window closed: loadStallMs is a lower bound. */
  loadStallOpen: boolean;
  newLeader: string;
  /** What the system logged about the election, when it tells (cairn: role changes, sessions). */
  story?: string[];
}

/** What a failover needs from a system: its leader, probes of the survivors, kill, restart, load. */
export interface FailoverTarget {
  waitForLeader(): Promise<string>;
  /** One write on each member other than `leader`, addressed to that member alone; connections opened. */
  probes(leader: string, run: number): Promise<(() => Promise<unknown>)[]>;
  /** Sends SIGKILL before it returns (synchronously), then waits for the exit. */
  kill(name: string): Promise<void>;
  restart(name: string): Promise<void>;
  startLoad(): Load;
  /** The election as logged since `sinceWallMs`, if the system's logs tell it. */
  story?(sinceWallMs: number): Promise<string[]>;
}

/**
 * Starts every probe each probeIntervalMs until one succeeds; resolves to that moment
 * (performance.now()) once every attempt has settled, so nothing is left running.
 */
async function firstSuccess(probes: (() => Promise<unknown>)[], deadlineMs: number): Promise<number> {
  let doneAt: number | undefined;
  const attempts: Promise<void>[] = [];
  const giveUpAt = performance.now() + deadlineMs;
  while (doneAt === undefined && performance.now() < giveUpAt) {
    for (const probe of probes) {
      attempts.push(
        probe().then(
          () => {
            doneAt ??= performance.now();
          },
          () => undefined,
        ),
      );
    }
    await sleep(probeIntervalMs);
  }
  await Promise.all(attempts);
  if (doneAt === undefined) throw new Error(`writes did not resume within ${deadlineMs} ms of the leader's kill`);
  return doneAt;
}

export async function runFailovers(label: string, target: FailoverTarget, runs: number): Promise<FailoverRun[]> {
  const results: FailoverRun[] = [];
  for (let r = 0; r < runs; r++) {
    const leader = await target.waitForLeader();
    const probes = await target.probes(leader, r);
    const load = target.startLoad();
    let killedAt = 0;
    let killedAtWallMs = 0;
    let recoveredAt = 0;
    try {
      await sleep(loadBeforeKillMs);
      killedAtWallMs = Date.now();
      killedAt = performance.now();
      const killing = target.kill(leader); // SIGKILL is sent before this returns
      recoveredAt = await firstSuccess(probes, recoveryDeadlineMs);
      await killing;
      await sleep(loadAfterRecoveryMs);
    } finally {
      await load.stop();
    }
    const run: FailoverRun = {
      killed: leader,
      recoveryMs: recoveredAt - killedAt,
      loadStallMs: longestGapMs(load.doneAtMs, killedAt, recoveredAt + loadAfterRecoveryMs),
      loadStallOpen: !load.doneAtMs.some((t) => t > recoveredAt && t <= recoveredAt + loadAfterRecoveryMs),
      newLeader: await target.waitForLeader(),
    };
    if (target.story !== undefined) run.story = await target.story(killedAtWallMs);
    console.log(`${label} failover ${r + 1}/${runs}: killed ${run.killed}, writes resumed on ${run.newLeader} after ${formatNumber(run.recoveryMs)} ms; load stalled ${run.loadStallOpen ? '>= ' : ''}${formatNumber(run.loadStallMs)} ms`);
    for (const line of run.story ?? []) console.log(`  ${line}`);
    results.push(run);
    await target.restart(leader);
  }
  return results;
}
