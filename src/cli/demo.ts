// `cairn demo` (what `npm start` runs until masters land): three Raft nodes in this process, each
// with a real WAL on disk and messages passed in memory. It commits entries, kills the leader,
// shows another node take over, then restarts the old leader from its WAL and lets it catch up.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CairnError, ErrorCode, assert } from '../errors.ts';
import { nodeDisk } from '../io/node-disk.ts';
import { systemClock } from '../io/system-clock.ts';
import { RaftDriver } from '../journal/raft/driver.ts';
import { Role, type Entry, type Message } from '../raft/index.ts';

const ids = [1, 2, 3];
const tickMs = 50;
const deadlineMs = 10_000;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface DemoNode {
  id: number;
  dir: string;
  driver: RaftDriver | undefined;
  applied: string[];
}

export async function runDemo(opts: { dir?: string; keep: boolean; log: (line: string) => void }): Promise<void> {
  const log = opts.log;
  const root = opts.dir ?? (await mkdtemp(path.join(tmpdir(), 'cairn-demo-')));
  const nodes = new Map<number, DemoNode>(ids.map((id) => [id, { id, dir: path.join(root, `node${id}`), driver: undefined, applied: [] }]));
  const stopAll = async (): Promise<void> => {
    for (const n of nodes.values()) await n.driver?.stop();
  };
  const onSignal = (): void => {
    log('interrupted: stopping the nodes');
    void stopAll().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  try {
    log(`cairn demo: 3 Raft nodes, WALs under ${root}, election timeout ${10 * tickMs}-${20 * tickMs} ms`);
    for (const n of nodes.values()) await startNode(n, nodes, log);
    const first = await waitForLeader(nodes, 0);
    log(`node ${first} is leader`);
    await proposeAll(nodes, first, 'before', 20, log);

    log(`killing leader node ${first} (its process state is gone; its WAL stays on disk)`);
    await nodes.get(first)!.driver!.stop();
    nodes.get(first)!.driver = undefined;
    const t0 = performance.now();
    const second = await waitForLeader(nodes, first);
    log(`node ${second} took over after ${Math.round(performance.now() - t0)} ms`);
    await proposeAll(nodes, second, 'after', 10, log);

    log(`restarting node ${first} from its WAL`);
    await startNode(nodes.get(first)!, nodes, log);
    await waitFor(() => nodes.get(first)!.applied.length === nodes.get(second)!.applied.length, `node ${first} to catch up`);
    const same = ids.every((id) => nodes.get(id)!.applied.join() === nodes.get(second)!.applied.join());
    log(`node ${first} caught up: ${nodes.get(first)!.applied.length} entries applied on every node, logs identical: ${same}`);
    assert(same, 'the nodes applied different entries');
  } finally {
    process.removeListener('SIGINT', onSignal);
    await stopAll();
    if (!opts.keep && opts.dir === undefined) await rm(root, { recursive: true, force: true });
  }
}

async function startNode(n: DemoNode, nodes: Map<number, DemoNode>, log: (line: string) => void): Promise<void> {
  n.applied = [];
  n.driver = await RaftDriver.start({
    disk: nodeDisk,
    clock: systemClock,
    dir: n.dir,
    raft: { id: n.id, voters: ids, electionTicks: 10, heartbeatTicks: 2 },
    tickMs,
    send: (m: Message) => setImmediate(() => nodes.get(m.to)?.driver?.step(m)),
    apply: (e: Entry) => {
      if (e.data.length > 0 && e.type === 0) n.applied.push(decoder.decode(e.data));
    },
    onError: (err) => log(`node ${n.id}: ${String(err)}`),
  });
  n.driver.kick();
  if (n.driver.repair !== undefined) log(`node ${n.id}: repaired WAL tail (${n.driver.repair.truncatedBytes} bytes): ${n.driver.repair.problem}`);
  for (const s of n.driver.skippedSnapshots) log(`node ${n.id}: skipped snapshot ${s}`);
}

async function proposeAll(nodes: Map<number, DemoNode>, leader: number, tag: string, count: number, log: (line: string) => void): Promise<void> {
  const n = nodes.get(leader)!;
  for (let i = 1; i <= count; i++) n.driver!.raft.propose(encoder.encode(`${tag}-${i}`));
  n.driver!.kick();
  const target = n.applied.length + count;
  await waitFor(() => n.applied.length >= target, `${count} entries to commit on node ${leader}`);
  log(`committed ${count} entries '${tag}-1..${count}' through node ${leader} (commit index ${n.driver!.raft.log.committed})`);
}

async function waitForLeader(nodes: Map<number, DemoNode>, not: number): Promise<number> {
  let leader = 0;
  await waitFor(() => {
    for (const n of nodes.values()) if (n.id !== not && n.driver?.raft.role === Role.Leader) leader = n.id;
    return leader !== 0;
  }, 'a leader');
  return leader;
}

async function waitFor(cond: () => boolean, what: string): Promise<void> {
  const start = performance.now();
  while (!cond()) {
    if (performance.now() - start > deadlineMs) throw new CairnError(ErrorCode.Timeout, `timed out after ${deadlineMs} ms waiting for ${what}`);
    await sleep(10);
  }
}
