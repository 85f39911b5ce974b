// One schedule of whole-cluster chaos: 3 masters and 4 workers (3 targets each, replication 3),
// each process in a network namespace of its own (netlab.ts), clients writing, overwriting,
// renaming, deleting and reading files while a seeded schedule kills -9 and restarts masters and
// workers, pauses them (SIGSTOP) past the heartbeat timeout, partitions pairs of processes, and
// fills one target's small file system. Then everything is healed and the cluster must converge:
// every read matched what the history allows (file-history.ts), the metadata history of racing
// namespace clients is linearizable, all masters hold one state hash, all replicas of every chain
// agree, no process died that the schedule did not kill, and descriptors and memory stayed bounded.

import { randomBytes } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import type { TestContext } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import { DataClient } from '../../src/client/data-client.ts';
import { FileWriter } from '../../src/client/file-io.ts';
import { putFile } from '../../src/client/files.ts';
import type { MasterClient } from '../../src/client/master-client.ts';
import { systemClock } from '../../src/io/system-clock.ts';
import type { InodeAttr, SessionValue } from '../../src/meta/index.ts';
import { indexesIn } from '../../src/meta/chunk-ranges.ts';
import type { MetaResult } from '../../src/meta/namespace-state.ts';
import { RpcClient } from '../../src/rpc/index.ts';
import { checkLinearizable, type Operation } from '../../src/sim/linearizability.ts';
import { nsCommandBody, nsNextInput, nsReadOutput, nsReaddirLimit, nsWriteOutput } from '../../src/sim/meta-workload.ts';
import { isNsRead, namespaceModel, type NsInput, type NsOutput } from '../../src/sim/namespace-model.ts';
import { Prng } from '../../src/sim/prng.ts';
import { workerFrameBytesMax } from '../../src/worker/process.ts';
import { DataCluster, pieces, readAll } from '../cluster/data-cluster.ts';
import { logTail, sleep, waitFor } from '../cluster/process-cluster.ts';
import { FileHistory, type Content } from './file-history.ts';
import { NetLab } from './netlab.ts';
import { zkClusterFor } from '../zookeeper-fixture.ts';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { SlowDisk, slowDiskUnavailable, SmallDisk } from './disk-faults.ts';

const masters = 3;
const workers = 4;
const targetsPerWorker = 3;
const heartbeatMs = 300;
const offlineTimeoutMs = 2_000;
const fileClients = 3;
const namesPerClient = 6;
const nsClients = 2;
/** Small chunks and wide stripes: a file of a few hundred KiB spans several chains. */
const layout = { chunkSizeBytes: 64 * 1024, stripeWidth: 4 };
const fileBytesMax = 300 * 1024;
/** The target that runs out of space: worker 4's first, on a tmpfs of this size. */
const smallDiskWorker = 4;
const smallTargetBytes = 96 * 1024 * 1024;
/** The target whose disk turns slow: worker 3's first, on a loop device of this size. */
const slowDiskWorker = 3;
const slowTargetBytes = 256 * 1024 * 1024;
/** How long a client operation may take before its outcome is unknown. */
const opDeadlineMs = 8_000;
/** After healing, how long the cluster gets to converge. */
const convergeMs = 90_000;
/** Stated bounds on what a process may grow by over a schedule (processes never restarted). */
export const fdGrowthMax = 200;
export const rssGrowthMaxBytes = 400 * 1024 * 1024;

export interface ScheduleResult {
  seed: number;
  journal: string;
  /** Whether slow-disk faults could run here, or why not. */
  slowDisks: string;
  failures: string[];
  faults: string[];
  figures: Record<string, number>;
}

type Proc = { kind: 'master' | 'worker'; id: number };
const procName = (p: Proc): string => `${p.kind}-${p.id}`;

/** Runs one schedule; the result lists what failed (nothing, if it passed). */
export async function runSchedule(t: TestContext, seed: number, seconds: number, journal: 'raft' | 'zookeeper'): Promise<ScheduleResult> {
  const prng = new Prng(seed);
  const names = [...Array.from({ length: masters }, (_, i) => `master-${i + 1}`), ...Array.from({ length: workers }, (_, i) => `worker-${i + 1}`)];
  const lab = await NetLab.create(names);
  t.after(() => lab.close());
  const zookeeper = journal === 'zookeeper' ? await zooKeeperForLab(t, lab) : undefined;
  const disks: { small?: SmallDisk; slow?: SlowDisk } = {};
  const slowUnavailable = await slowDiskUnavailable();
  // Registered before the cluster's cleanup, so it runs first: a lazy unmount detaches a file
  // system at once, even under running workers, and the removal of the cluster's directory finds
  // no mount point in it.
  t.after(async () => {
    await disks.small?.unmount();
    await disks.slow?.unmount();
  });
  const cluster = await DataCluster.start(t, {
    masters,
    workers,
    targetsPerWorker,
    heartbeatMs,
    offlineTimeoutMs,
    zookeeper,
    placement: { host: (kind, id) => lab.host(`${kind}-${id}`).ip, prefix: (kind, id) => lab.netnsExec(`${kind}-${id}`) },
    prepareTargets: async (ws) => {
      disks.small = new SmallDisk(ws.get(smallDiskWorker)!.targets[0]);
      await disks.small.mount(smallTargetBytes);
      if (slowUnavailable !== undefined) return;
      disks.slow = new SlowDisk(ws.get(slowDiskWorker)!.targets[0]);
      await disks.slow.mount(slowTargetBytes);
    },
  });
  t.after(() => disks.slow?.removeGroup()); // after the cluster's cleanup: its processes are gone

  const failures: string[] = [];
  const faults: string[] = [];
  const t0 = performance.now();
  const at = (): string => `+${((performance.now() - t0) / 1000).toFixed(1)}s`;

  // ---- processes the schedule did not kill must not die --------------------------------------
  const expectedExits = new WeakSet<ChildProcess>();
  let finished = false; // the test's cleanup kills everything after the checks
  const exitReports: Promise<unknown>[] = [];
  const watched = new WeakSet<ChildProcess>();
  const watch = (): void => {
    const children: [string, ChildProcess | undefined][] = [
      ...[...cluster.masters.masters.values()].map((m) => [`master-${m.id}`, m.child] as [string, ChildProcess | undefined]),
      ...[...cluster.workers.values()].map((w) => [`worker-${w.id}`, w.child] as [string, ChildProcess | undefined]),
    ];
    for (const [name, child] of children) {
      if (child === undefined || watched.has(child)) continue;
      watched.add(child);
      child.once('exit', (code, signal) => {
        if (finished || expectedExits.has(child)) return;
        const log = name.startsWith('master') ? cluster.masters.masters.get(Number(name.split('-')[1]))?.log : cluster.workers.get(Number(name.split('-')[1]))?.log;
        const when = at();
        const report = logTail(name, log ?? '', 8).then((tail) => failures.push(`${when} ${name} exited by itself (code ${code}, signal ${signal}):\n${tail}`));
        exitReports.push(report);
      });
    }
  };
  watch();
  const childOf = (p: Proc): ChildProcess | undefined => (p.kind === 'master' ? cluster.masters.masters.get(p.id)?.child : cluster.workers.get(p.id)?.child);
  const kill = async (p: Proc): Promise<void> => {
    const child = childOf(p);
    if (child !== undefined) expectedExits.add(child);
    if (p.kind === 'master') await cluster.masters.kill(p.id);
    else await cluster.killWorker(p.id);
  };
  const restart = async (p: Proc): Promise<void> => {
    if (p.kind === 'master') cluster.masters.spawn(p.id);
    else await cluster.startWorker(p.id);
    watch();
  };

  const baseline = await processUsage(cluster);

  // ---- the workload ------------------------------------------------------------------------------
  const history = new FileHistory();
  const nsHistory: Operation<NsInput, NsOutput>[] = [];
  const endMs = seconds * 1000;
  const clients: { meta: MasterClient; data: DataClient }[] = [];
  const newClient = (): { meta: MasterClient; data: DataClient } => {
    const meta = cluster.masters.client({ deadlineMs: opDeadlineMs, callTimeoutMs: 2_000 });
    const data = new DataClient({ master: meta, connect: (a) => new RpcClient(a, { secret: cluster.masters.secret, frameBytesMax: workerFrameBytesMax }), clock: systemClock, retryDeadlineMs: opDeadlineMs });
    clients.push({ meta, data });
    return { meta, data };
  };
  const setup = newClient();
  for (let c = 1; c <= fileClients; c++) await setup.meta.mutate('meta.mutate', { op: 'mkdir', path: `/files/c${c}`, mode: 0o755, uid: 0, gid: 0, parents: true });
  await setup.meta.mutate('meta.mutate', { op: 'mkdir', path: nsRoot, mode: 0o755, uid: 0, gid: 0, parents: false });

  const fileWork = Array.from({ length: fileClients }, async (_, i) => {
    const c = newClient();
    const ops = prng.fork();
    const dir = `/files/c${i + 1}`;
    while (performance.now() - t0 < endMs) await fileOp(c, ops, dir, history, at);
  });
  const nsWork = Array.from({ length: nsClients }, async (_, i) => {
    const client = newClient().meta;
    const ops = prng.fork();
    while (performance.now() - t0 < endMs) nsHistory.push(await nsOp(client, i + 1, nsNextInput(ops), t0));
  });

  // ---- the schedule --------------------------------------------------------------------------------
  let masterSlot = false;
  const workersBusy = new Set<number>();
  const running: Promise<void>[] = [];
  const schedule = (async () => {
    while (performance.now() - t0 < endMs - 3_000) {
      await sleep(prng.range(300, 1_500));
      const roll = prng.int(100);
      const holdMs = prng.range(1_000, 4_000);
      if (roll < 45 && !masterSlot) {
        masterSlot = true;
        const victim: Proc = { kind: 'master', id: prng.chance(0.5) ? ((await cluster.masters.leaderId()) ?? prng.range(1, masters)) : prng.range(1, masters) };
        running.push(injectOn(victim, prng.int(3), holdMs).finally(() => (masterSlot = false)));
      } else if (roll < 90 && workersBusy.size < 2) {
        const free = Array.from({ length: workers }, (_, i) => i + 1).filter((w) => !workersBusy.has(w));
        const id = prng.pick(free);
        workersBusy.add(id);
        const kind = prng.int(5); // 3 and 4: the worker's disk fault, if it has one
        const done = kind >= 3 && id === smallDiskWorker ? fillDisk(holdMs) : kind >= 3 && id === slowDiskWorker && disks.slow !== undefined ? slowDisk(holdMs) : injectOn({ kind: 'worker', id }, kind % 3, holdMs);
        running.push(done.finally(() => workersBusy.delete(id)));
      }
    }
  })();

  /** 0: kill -9 then restart; 1: SIGSTOP past the heartbeat timeout; 2: a partition from another process or the clients. */
  async function injectOn(p: Proc, kind: number, holdMs: number): Promise<void> {
    const name = procName(p);
    if (kind === 0) {
      faults.push(`${at()} kill -9 ${name}, restart after ${holdMs} ms`);
      await kill(p);
      await sleep(holdMs);
      await restart(p).catch((err: unknown) => failures.push(`${at()} ${name} did not restart: ${(err as Error).message.split('\n')[0]}`));
    } else if (kind === 1) {
      const child = childOf(p);
      if (child?.pid === undefined) return;
      const pauseMs = offlineTimeoutMs + holdMs / 2;
      faults.push(`${at()} SIGSTOP ${name} for ${pauseMs} ms`);
      process.kill(child.pid, 'SIGSTOP');
      await sleep(pauseMs);
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGCONT');
    } else {
      const others = [...names.filter((n) => n !== name), 'client'];
      const other = prng.pick(others);
      faults.push(`${at()} partition ${name} from ${other} for ${holdMs} ms`);
      await lab.partition(name, other);
      await sleep(holdMs);
      await lab.heal(name, other);
    }
  }

  async function fillDisk(holdMs: number): Promise<void> {
    faults.push(`${at()} first target of worker-${smallDiskWorker} full for ${holdMs} ms`);
    await disks.small!.fill();
    await sleep(holdMs);
    await disks.small!.empty();
  }

  async function slowDisk(holdMs: number): Promise<void> {
    const pid = cluster.workers.get(slowDiskWorker)?.child?.pid;
    if (pid === undefined) return;
    faults.push(`${at()} first target of worker-${slowDiskWorker} slow (1 MiB/s, 50 IOPS) for ${holdMs} ms`);
    await disks.slow!.slow(pid);
    await sleep(holdMs);
    await disks.slow!.fast();
  }

  await Promise.all([schedule, ...fileWork, ...nsWork]);
  await Promise.all(running);

  // ---- heal, converge, check -------------------------------------------------------------------------
  await lab.healAll();
  await disks.small?.empty();
  await disks.slow?.fast();
  for (const m of cluster.masters.masters.values()) if (m.child === undefined) await restart({ kind: 'master', id: m.id });
  for (const w of cluster.workers.values()) if (w.child === undefined) await restart({ kind: 'worker', id: w.id });
  const converged = await converge(cluster).catch((err: unknown) => `the cluster did not converge after healing: ${(err as Error).message.split('\n').slice(0, 3).join(' ')}`);
  if (converged !== undefined) failures.push(converged);

  // Every file, read once more: what an acknowledged write left must be there.
  const reader = newClient();
  for (const p of history.paths()) {
    let got: Content;
    try {
      got = await readAll(reader, p);
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') {
        failures.push(`after healing, ${p} cannot be read: ${(err as Error).message.split('\n')[0]}; ${await explainUnreadable(reader, p)}`);
        continue;
      }
      got = null;
    }
    history.read(p, got, 'after healing');
  }
  failures.push(...history.violations);

  const lin = checkLinearizable(namespaceModel, nsHistory, { stepBudget: 20_000_000 });
  if (lin.result === 'illegal') failures.push(`the metadata history is not linearizable: ${lin.explanation}`);
  if (lin.result === 'unknown') failures.push('the linearizability check was inconclusive (step budget)');

  const end = await processUsage(cluster);
  for (const [name, before] of baseline) {
    const after = end.get(name);
    if (after === undefined || after.pid !== before.pid) continue; // restarted: nothing to compare
    if (after.fds - before.fds > fdGrowthMax) failures.push(`${name} holds ${after.fds} file descriptors, ${after.fds - before.fds} more than at the start (bound ${fdGrowthMax})`);
    if (after.rssBytes - before.rssBytes > rssGrowthMaxBytes) failures.push(`${name} grew by ${Math.round((after.rssBytes - before.rssBytes) / 2 ** 20)} MiB of resident memory (bound ${rssGrowthMaxBytes / 2 ** 20} MiB)`);
  }
  for (const c of clients) {
    c.data.close();
    c.meta.close();
  }
  const nsAnswered = nsHistory.filter((o) => o.output !== undefined).length;
  finished = true;
  await Promise.all(exitReports);
  return {
    seed,
    journal,
    slowDisks: slowUnavailable === undefined ? 'injected' : `not injected: ${slowUnavailable}`,
    failures,
    faults,
    figures: { faults: faults.length, fileOpsAcknowledged: history.acknowledged, fileOpsUnknown: history.unknown, readsChecked: history.readsChecked, metadataOpsAnswered: nsAnswered, metadataOpsRecorded: nsHistory.length },
  };
}

/** Waits for one leader, one state hash on every master, every target serving and every chain's replicas equal. */
async function converge(cluster: DataCluster): Promise<undefined> {
  await cluster.masters.waitConverged(convergeMs);
  await waitFor(() => cluster.allServing().catch(() => false), 'every target serving', convergeMs, () => cluster.logTails(15));
  let differ: string | undefined;
  await waitFor(
    async () => {
      differ = await cluster.replicasDiffer().catch((err: unknown) => (err as Error).message);
      return differ === undefined;
    },
    'every chain\'s replicas to agree',
    convergeMs,
    async () => `last difference: ${differ}`,
  );
  await cluster.masters.waitConverged(convergeMs);
  return undefined;
}

// ---- file operations ------------------------------------------------------------------------------

async function fileOp(c: { meta: MasterClient; data: DataClient }, prng: Prng, dir: string, h: FileHistory, at: () => string): Promise<void> {
  const name = `${dir}/f${prng.int(namesPerClient)}`;
  const known = h.known(name);
  const roll = prng.int(100);
  if (h.crowded(name) || roll < 30) {
    const content = randomBytes(prng.range(1, fileBytesMax));
    h.wrote(name, content, (await attempt(() => putFile(c.meta, c.data, name, pieces(content, 64 * 1024), { layout }))) === 'ok');
  } else if (roll < 50 && known !== undefined && known !== null && known.length > 0) {
    // An overwrite inside one chunk of the file as it is: the file's length stays.
    const offset = prng.int(known.length);
    const chunkEnd = (Math.floor(offset / layout.chunkSizeBytes) + 1) * layout.chunkSizeBytes;
    const bytes = randomBytes(prng.range(1, Math.min(known.length, chunkEnd) - offset));
    const next = Buffer.from(known);
    bytes.copy(next, offset);
    h.wrote(name, next, (await attempt(() => overwrite(c, name, bytes, offset))) === 'ok');
  } else if (roll < 62) {
    const to = `${dir}/f${prng.int(namesPerClient)}`;
    if (to === name) return;
    const outcome = await attempt(() => c.meta.mutate('meta.mutate', { op: 'rename', from: name, to }), ['ENOENT']);
    if (outcome !== 'refused') h.renamed(name, to, outcome === 'ok');
  } else if (roll < 70) {
    const outcome = await attempt(() => c.meta.mutate('meta.mutate', { op: 'unlink', path: name }), ['ENOENT']);
    if (outcome !== 'refused') h.wrote(name, null, outcome === 'ok');
  } else {
    const got = await readContent(c, name);
    if (got !== 'error') h.read(name, got, at());
  }
}

/** Runs a write: acknowledged, refused with one of the codes in `refusals` (nothing changed), or of unknown outcome. */
async function attempt(write: () => Promise<unknown>, refusals: string[] = []): Promise<'ok' | 'refused' | 'unknown'> {
  try {
    await write();
    return 'ok';
  } catch (err) {
    return refusals.includes((err as { code?: string }).code ?? '') ? 'refused' : 'unknown';
  }
}

async function overwrite(c: { meta: MasterClient; data: DataClient }, p: string, bytes: Buffer, offset: number): Promise<void> {
  const session = await c.meta.mutate<SessionValue>('meta.mutate', { op: 'openSession', path: p, truncate: false });
  try {
    const attr = session.inode;
    const writer = new FileWriter(c.data, { inodeId: attr.inodeId, layout: attr.layout!, chunks: attr.chunks ?? null });
    await writer.write(bytes, offset);
    await writer.flush();
    await c.meta.mutate('meta.mutate', { op: 'closeSession', sessionId: session.sessionId, chunks: writer.written.toArray() });
  } catch (err) {
    await c.meta.mutate('meta.mutate', { op: 'closeSession', sessionId: session.sessionId }).catch(() => undefined);
    throw err;
  }
}

/** What the masters and each chunk's chain say of a file that could not be read: for the failure report. */
async function explainUnreadable(c: { meta: MasterClient; data: DataClient }, p: string): Promise<string> {
  try {
    const attr = await c.meta.query<InodeAttr>('meta.query', { op: 'stat', path: p });
    const layout = attr.layout!;
    const routing = await c.data.refresh();
    const recorded = attr.chunks ?? [0, Math.ceil(attr.sizeBytes / layout.chunkSizeBytes)];
    const parts: string[] = [];
    for (const i of indexesIn(recorded)) {
      const chainId = c.data.chainOf(routing, layout, i);
      const got = await c.data.readChunk(layout, attr.inodeId, i, 0, layout.chunkSizeBytes).then(
        (r) => (r.found ? `${r.data.length} bytes` : 'on no replica'),
        (err: unknown) => `error ${(err as Error).message.split('\n')[0]}`,
      );
      parts.push(`chunk ${i} (chain ${chainId} v${routing.chain(chainId)?.version}): ${got}`);
    }
    return `inode ${attr.inodeId}, ${attr.sizeBytes} bytes, chunks recorded ${JSON.stringify(attr.chunks ?? null)}; ${parts.join('; ')}`;
  } catch (err) {
    return `(no more known: ${(err as Error).message.split('\n')[0]})`;
  }
}

/** A whole file's bytes, null when there is no such file, or 'error' when it could not be read now. */
async function readContent(c: { meta: MasterClient; data: DataClient }, p: string): Promise<Content | 'error'> {
  try {
    return await readAll(c, p);
  } catch (err) {
    const code = (err as { code?: string }).code ?? '';
    return code === 'ENOENT' ? null : 'error';
  }
}

// ---- racing namespace clients (under /ns, which the model sees as its root) ------------------------

const nsRoot = '/ns';
const nsCodes = new Set(['ENOENT', 'EEXIST', 'ENOTDIR', 'EISDIR', 'ENOTEMPTY', 'EINVAL']);
const under = (p: string): string => (p === '/' ? nsRoot : `${nsRoot}${p}`);

async function nsOp(client: MasterClient, clientId: number, input: NsInput, t0: number): Promise<Operation<NsInput, NsOutput>> {
  const call = performance.now() - t0;
  let output: NsOutput | undefined;
  try {
    if (isNsRead(input) && (input.kind === 'stat' || input.kind === 'readdir')) {
      const q = input.kind === 'stat' ? { op: 'stat', path: under(input.path) } : { op: 'readdir', path: under(input.path), limit: nsReaddirLimit };
      output = nsReadOutput(input, { ok: true, value: await client.query('meta.query', q) } as MetaResult<unknown>);
    } else {
      const body = nsCommandBody(input) as Record<string, unknown>;
      for (const f of ['path', 'from', 'to']) if (typeof body[f] === 'string') body[f] = under(body[f] as string);
      output = nsWriteOutput(input, { ok: true, value: await client.mutate('meta.mutate', body) });
    }
  } catch (err) {
    const code = (err as { code?: string }).code ?? '';
    if (!nsCodes.has(code)) return { clientId, input, call, ret: Infinity, output: undefined };
    output = { code } as NsOutput;
  }
  return { clientId, input, call, ret: performance.now() - t0, output };
}

// ---- ZooKeeper, for the masters on their hosts ------------------------------------------------------

/**
 * The test's ensemble listens on 127.0.0.1 of the test's own namespace, which the masters' hosts
 * cannot reach: a relay per server on the test's lab address forwards to it. A partition between
 * a master and the clients' end therefore also cuts that master from ZooKeeper.
 */
async function zooKeeperForLab(t: TestContext, lab: NetLab): Promise<{ connect: string; clusterId: string }> {
  const zk = await zkClusterFor(t);
  const relays: Server[] = [];
  const sockets = new Set<Socket>();
  t.after(() => {
    for (const s of sockets) s.destroy();
    for (const r of relays) r.close();
  });
  const addresses: string[] = [];
  for (const server of zk.connectString.split(',')) {
    const port = Number(server.split(':')[1]);
    const relay = createServer((down) => {
      const up = connect(port, '127.0.0.1');
      for (const s of [down, up]) {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
        s.on('error', () => {
          down.destroy();
          up.destroy();
        });
      }
      down.pipe(up).pipe(down);
    });
    relays.push(relay);
    await new Promise<void>((resolve) => relay.listen(0, lab.clientIp, resolve));
    addresses.push(`${lab.clientIp}:${(relay.address() as AddressInfo).port}`);
  }
  return { connect: addresses.join(','), clusterId: zk.clusterId };
}

// ---- resources ---------------------------------------------------------------------------------------

async function processUsage(cluster: DataCluster): Promise<Map<string, { pid: number; fds: number; rssBytes: number }>> {
  const out = new Map<string, { pid: number; fds: number; rssBytes: number }>();
  const all: [string, ChildProcess | undefined][] = [
    ...[...cluster.masters.masters.values()].map((m) => [`master-${m.id}`, m.child] as [string, ChildProcess | undefined]),
    ...[...cluster.workers.values()].map((w) => [`worker-${w.id}`, w.child] as [string, ChildProcess | undefined]),
  ];
  for (const [name, child] of all) {
    const pid = child?.pid;
    if (pid === undefined) continue;
    try {
      const fds = (await readdir(`/proc/${pid}/fd`)).length;
      const status = await readFile(`/proc/${pid}/status`, 'utf8');
      const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      out.set(name, { pid, fds, rssBytes: rssKb * 1024 });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}
