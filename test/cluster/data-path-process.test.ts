// The data path with real processes: 3 `cairn master`s and 3 `cairn worker`s (2 targets each, so 2
// chains of 3) on 127.0.0.1, and clients in this process. Files of many sizes and sparse files from 4
// concurrent clients come back byte for byte; kill -9 of a chain's tail, middle and head during
// writes loses no acknowledged write, and each returns through resync with replicas that agree; the
// leading master killed during writes fails over while writes go on; a flipped byte in a stored
// chunk is caught by the read, served from another replica, and reported by the worker.
//
// Bounded for `npm test`. Larger runs (a soak) through the environment:
//   CAIRN_DATA_TOTAL_MIB     bytes the many-files test writes in all, in MiB (default 64)
//   CAIRN_DATA_FILE_MIB_MAX  largest file of that test, in MiB (default 3)
//   CAIRN_DATA_FAULT_FILES   files written after each fault of the fault tests (default 8)
//   CAIRN_DATA_SEED          seed of the sizes and offsets (default: random; printed with each test)

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { FileWriter } from '../../src/client/file-io.ts';
import { getFile, putFile } from '../../src/client/files.ts';
import type { CloseSessionValue, SessionValue } from '../../src/meta/index.ts';
import { Routing } from '../../src/meta/routing.ts';
import { chainOfChunk, fileChains } from '../../src/placement/index.ts';
import { RpcClient } from '../../src/rpc/index.ts';
import { WorkerErrorCode } from '../../src/worker/errors.ts';
import { type Client, DataCluster, flipChunkByte, pieces, sha } from './data-cluster.ts';
import { waitFor } from './harness.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Small chunks, so that files of a few MiB span many chunks and both chains. */
const chunkBytes = 64 * KiB;
const totalBytes = envInt('CAIRN_DATA_TOTAL_MIB', 64) * MiB;
const fileBytesMax = envInt('CAIRN_DATA_FILE_MIB_MAX', 3) * MiB;
const filesPerFault = envInt('CAIRN_DATA_FAULT_FILES', 8);
/** Quick failure detection, so a kill costs seconds: workers heartbeat every 250 ms and are offline after 2 s. */
const shape = { masters: 3, workers: 3, targetsPerWorker: 2, heartbeatMs: 250, offlineTimeoutMs: 2_000 };
const mainScript = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

function envInt(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} must be a whole number, got ${JSON.stringify(v)}`);
  return n;
}

/** mulberry32: the sizes and offsets of a run replay from its seed. */
function prng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return Math.floor((((x ^ (x >>> 14)) >>> 0) / 4294967296) * n);
  };
}

function seeded(t: TestContext): (n: number) => number {
  const seed = process.env.CAIRN_DATA_SEED !== undefined ? envInt('CAIRN_DATA_SEED', 0) : randomBytes(4).readUInt32LE(0);
  t.diagnostic(`CAIRN_DATA_SEED=${seed}`);
  return prng(seed);
}

// ---- files -----------------------------------------------------------------------------------------

/** A file to write: its whole content, and for a sparse file the extents written (the rest are holes). */
interface FileSpec {
  name: string;
  body: Buffer;
  extents?: { offset: number; length: number }[];
  stripeWidth: number;
}

/** Sizes at and around chunk and stripe boundaries, and the empty file. */
const boundarySizes = [0, 1, chunkBytes - 1, chunkBytes, chunkBytes + 1, 2 * chunkBytes - 1, 2 * chunkBytes, 2 * chunkBytes + 1, 5 * chunkBytes, 16 * chunkBytes + 1];

function plainSpec(name: string, size: number, rand: (n: number) => number): FileSpec {
  return { name, body: randomBytes(size), stripeWidth: 1 + rand(2) };
}

/**
 * A sparse file: extents written in a shuffled order with gaps between them, some within a chunk
 * and some spanning whole chunks (never written: holes that read as zeros). Extents do not overlap,
 * so the order their writes land in does not change the content.
 */
function sparseSpec(name: string, sizeMax: number, rand: (n: number) => number): FileSpec {
  const extents: { offset: number; length: number }[] = [];
  let at = rand(3) === 0 ? 0 : rand(3 * chunkBytes);
  while (at < sizeMax) {
    const length = 1 + rand(Math.min(2 * chunkBytes, sizeMax - at));
    extents.push({ offset: at, length });
    at += length + 1 + rand(rand(2) === 0 ? chunkBytes : 4 * chunkBytes);
  }
  if (extents.length === 0) extents.push({ offset: 0, length: 1 });
  const last = extents[extents.length - 1];
  const body = Buffer.alloc(last.offset + last.length);
  for (const e of extents) randomBytes(e.length).copy(body, e.offset);
  for (let i = extents.length - 1; i > 0; i--) {
    const j = rand(i + 1);
    [extents[i], extents[j]] = [extents[j], extents[i]];
  }
  return { name, body, extents, stripeWidth: 1 + rand(2) };
}

/** Writes a file; resolves once it is acknowledged (on every replica, its length committed, in place). */
async function writeSpec(c: Client, spec: FileSpec, rand: (n: number) => number): Promise<void> {
  const layout = { chunkSizeBytes: chunkBytes, stripeWidth: spec.stripeWidth };
  if (spec.extents === undefined) {
    const attr = await putFile(c.meta, c.data, spec.name, pieces(spec.body, 1 + rand(200 * KiB)), { layout });
    assert.equal(attr.sizeBytes, spec.body.length, spec.name);
    return;
  }
  // putFile writes a stream; a sparse file is written at offsets through a session.
  const routing = await c.data.routing();
  const tableVersion = routing.info.tables.find((t) => t.tableId === 1)?.version ?? 0;
  await c.meta.mutate('meta.mutate', { op: 'create', path: spec.name, mode: 0o644, uid: 0, gid: 0, exclusive: true, layout: { chainTableId: 1, chainTableVersion: tableVersion, shuffleSeed: rand(0x1_0000_0000), ...layout } });
  const session = await c.meta.mutate<SessionValue>('meta.mutate', { op: 'openSession', path: spec.name, truncate: false });
  const writer = new FileWriter(c.data, { inodeId: session.inode.inodeId, layout: session.inode.layout! });
  for (const e of spec.extents) await writer.write(spec.body.subarray(e.offset, e.offset + e.length), e.offset);
  await writer.flush();
  await c.meta.mutate<CloseSessionValue>('meta.mutate', { op: 'closeSession', sessionId: session.sessionId, lengthBytes: writer.highWater, chunks: writer.written.toArray() });
}

async function readBack(c: Client, name: string): Promise<Buffer> {
  const { chunks } = await getFile(c.meta, c.data, name);
  const parts: Buffer[] = [];
  for await (const part of chunks) parts.push(part);
  return Buffer.concat(parts);
}

/** Reads every file back and names the ones whose content differs. */
async function verify(c: Client, files: Map<string, string>): Promise<string[]> {
  const bad: string[] = [];
  for (const [name, digest] of files) {
    const got = await readBack(c, name).catch((err: unknown) => `unreadable: ${(err as Error).message}`);
    if (typeof got === 'string') bad.push(`${name}: ${got}`);
    else if (sha(got) !== digest) bad.push(`${name}: ${got.length} bytes that differ`);
  }
  return bad;
}

// ---- writers that keep going while faults happen ----------------------------------------------------

/** Clients writing files in a loop; what was acknowledged is kept by name with its digest. */
class Writers {
  readonly acked = new Map<string, string>();
  readonly failures: string[] = [];
  private stopped = false;
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;
  private active = 0;
  private readonly loops: Promise<void>[];

  constructor(clients: Client[], rand: (n: number) => number, sizeMax: number) {
    this.loops = clients.map((c, i) => this.loop(c, i, rand, sizeMax));
  }

  private async loop(c: Client, client: number, rand: (n: number) => number, sizeMax: number): Promise<void> {
    for (let n = 0; !this.stopped; n++) {
      while (this.gate !== undefined) await this.gate;
      if (this.stopped) return;
      const name = `/w${client}-${n}`;
      const spec = rand(4) === 0 ? sparseSpec(name, sizeMax, rand) : plainSpec(name, rand(3) === 0 ? boundarySizes[rand(boundarySizes.length)] : rand(sizeMax), rand);
      this.active++;
      try {
        await writeSpec(c, spec, rand);
        this.acked.set(name, sha(spec.body));
      } catch (err) {
        this.failures.push(`${name}: ${(err as Error).message}`);
      } finally {
        this.active--;
      }
    }
  }

  /** Waits until `more` files beyond those acknowledged now are acknowledged. */
  async more(more: number, what: string, deadlineMs = 60_000): Promise<void> {
    const want = this.acked.size + more;
    await waitFor(() => this.acked.size >= want || this.failures.length > 0, `${more} more acknowledged writes ${what}`, deadlineMs);
    assert.deepEqual(this.failures, [], `no write fails ${what}`);
  }

  /** Lets the writes in progress finish and starts no more until resume(). */
  async pause(): Promise<void> {
    this.gate ??= new Promise((r) => (this.open = r));
    await waitFor(() => this.active === 0, 'writes in progress to finish', 60_000);
  }

  resume(): void {
    this.gate = undefined;
    this.open?.();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.resume();
    await Promise.all(this.loops);
  }
}

async function startWriters(t: TestContext, c: DataCluster, rand: (n: number) => number): Promise<Writers> {
  const w = new Writers([c.client(), c.client(), c.client(), c.client()], rand, 320 * KiB);
  t.after(() => w.stop());
  return w;
}

// ---- cluster views ---------------------------------------------------------------------------------

/** `cairn admin targets --json` against the cluster, as an operator runs it. */
async function adminTargets(c: DataCluster): Promise<{ targetId: number; workerId: number; state: string }[]> {
  const r = await promisify(execFile)(process.execPath, [mainScript, 'admin', 'targets', '--json', '--masters', c.masters.addresses().join(',')], { env: { ...process.env, CAIRN_SECRET: c.masters.secret }, timeout: 30_000 });
  return JSON.parse(r.stdout) as { targetId: number; workerId: number; state: string }[];
}

async function waitAgreed(c: DataCluster, w: Writers | undefined, what: string): Promise<void> {
  await w?.pause();
  let why: string | undefined;
  await waitFor(async () => (why = await c.replicasDiffer()) === undefined, `every chain's replicas to agree ${what}`, 60_000, async () => why ?? '');
  w?.resume();
}

// ---- the tests --------------------------------------------------------------------------------------

test('files of many sizes and sparse files from 4 concurrent clients come back byte for byte', async (t) => {
  const rand = seeded(t);
  const c = await DataCluster.start(t, shape);
  const started = Date.now();
  // Made as they are written and dropped once written (a soak's total need not fit in memory).
  const boundary = [...boundarySizes];
  let written = 0;
  let sparse = 0;
  let made = 0;
  const nextSpec = (): FileSpec | undefined => {
    const size = boundary.shift();
    if (size !== undefined) return plainSpec(`/b${size}`, size, rand);
    if (written >= totalBytes) return undefined;
    const name = `/f${made++}`;
    if (rand(4) === 0) {
      sparse++;
      return sparseSpec(name, 1 + rand(fileBytesMax), rand);
    }
    return plainSpec(name, rand(3) === 0 ? rand(4 * chunkBytes) : rand(fileBytesMax + 1), rand);
  };
  const files = new Map<string, string>();
  const clients = [c.client(), c.client(), c.client(), c.client()];
  await Promise.all(
    clients.map(async (client) => {
      for (let spec = nextSpec(); spec !== undefined; spec = nextSpec()) {
        written += spec.body.length;
        await writeSpec(client, spec, rand);
        files.set(spec.name, sha(spec.body));
      }
    }),
  );
  t.diagnostic(`${files.size} files (${sparse} sparse), ${(written / MiB).toFixed(1)} MiB written in ${Date.now() - started} ms`);
  const names = [...files.keys()];
  const bad = await Promise.all(clients.map((client, i) => verify(client, new Map(names.filter((_, k) => k % clients.length === i).map((n) => [n, files.get(n)!])))));
  assert.deepEqual(bad.flat(), []);
  for (const cl of clients) assert.deepEqual(cl.data.corruptSeen, [], 'no replica was corrupt');
  await waitAgreed(c, undefined, 'after the writes');
});

/**
 * The target at `role` (head: first serving member) of a whole chain, and its worker: the first
 * chain where that worker is not in `exclude`, so that a run kills a different worker per role.
 */
async function chainMember(c: DataCluster, role: 'head' | 'middle' | 'tail', exclude: ReadonlySet<number> = new Set()): Promise<{ targetId: number; workerId: number; chainId: number }> {
  const r = await c.routing();
  for (const chain of r.chains) {
    const serving = chain.targetIds.map((id) => r.targets.find((x) => x.targetId === id)!).filter((x) => x.state === 'serving');
    assert.equal(serving.length, 3, `chain ${chain.chainId} is whole: ${JSON.stringify(chain)}`);
    const target = serving[{ head: 0, middle: 1, tail: 2 }[role]];
    if (!exclude.has(target.workerId)) return { targetId: target.targetId, workerId: target.workerId, chainId: chain.chainId };
  }
  assert.fail(`no chain has a ${role} outside workers ${[...exclude].join(', ')}: ${JSON.stringify(r.chains)}`);
}

test('kill -9 of a chain\'s tail, middle and head in turn during writes, then a restart at once: no acknowledged write is lost, and each returns through resync', async (t) => {
  const rand = seeded(t);
  const c = await DataCluster.start(t, shape);
  const w = await startWriters(t, c, rand);
  const reader = c.client();
  await w.more(filesPerFault, 'before any fault');
  const killed = new Set<number>();
  // A member that returns is appended to its chains: killing the tail first, then the middle, then
  // the head reaches three different workers (head first would bring the same worker round again).
  for (const role of ['tail', 'middle', 'head'] as const) {
    const victim = await chainMember(c, role, killed);
    killed.add(victim.workerId);
    t.diagnostic(`killing worker ${victim.workerId}, the ${role} of chain ${victim.chainId} (target ${victim.targetId})`);
    await c.killWorker(victim.workerId);
    await waitFor(async () => (await c.routing()).targets.filter((x) => x.workerId === victim.workerId).every((x) => x.state === 'offline'), `worker ${victim.workerId}'s targets to go offline`, 30_000, () => c.logTails());
    const seen = (await adminTargets(c)).filter((x) => x.workerId === victim.workerId);
    assert.ok(seen.length === 2 && seen.every((x) => x.state === 'offline'), `admin targets shows them offline: ${JSON.stringify(seen)}`);
    const ackedBefore = w.acked.size;
    await w.more(filesPerFault, `with worker ${victim.workerId} down`);
    const whileDown = new Map([...w.acked].slice(ackedBefore));
    assert.deepEqual(await verify(reader, whileDown), [], `files acknowledged with worker ${victim.workerId} down read back from the other replicas`);
    await c.startWorker(victim.workerId);
    await waitFor(() => c.allServing(), `worker ${victim.workerId}'s targets to serve again`, 60_000, () => c.logTails());
    await waitAgreed(c, w, `after worker ${victim.workerId} returned`);
    await w.more(filesPerFault, `after worker ${victim.workerId} returned`);
  }
  // Restarted at once, before the masters count it out: the new process waits out its old
  // instance's heartbeats to register, and whatever the masters decided meanwhile, it serves again.
  const quick = await chainMember(c, 'head');
  t.diagnostic(`killing worker ${quick.workerId}, the head of chain ${quick.chainId}, and restarting it at once`);
  await c.killWorker(quick.workerId);
  await c.startWorker(quick.workerId);
  await waitFor(() => c.allServing(), `worker ${quick.workerId}'s targets to serve again`, 60_000, () => c.logTails());
  await waitAgreed(c, w, `after worker ${quick.workerId} restarted at once`);
  await w.more(filesPerFault, `after worker ${quick.workerId} restarted at once`);
  await w.stop();
  assert.equal(killed.size, 3, 'the tail, the middle and the head were three different workers');
  assert.deepEqual(w.failures, []);
  await waitAgreed(c, undefined, 'at the end');
  assert.deepEqual(await verify(reader, w.acked), [], 'every acknowledged file reads back intact');
  t.diagnostic(`${w.acked.size} files acknowledged and read back`);
});

test('kill -9 of the leading master during writes: writes go on once another leads', async (t) => {
  const rand = seeded(t);
  const c = await DataCluster.start(t, shape);
  const w = await startWriters(t, c, rand);
  await w.more(filesPerFault, 'before the failover');
  const leader = await c.masters.waitForLeader();
  const before = await c.routing();
  t.diagnostic(`killing master ${leader}, the leader`);
  await c.masters.kill(leader);
  const next = await c.masters.waitForLeader(leader);
  await w.more(filesPerFault, `after master ${next} took over`);
  c.masters.spawn(leader);
  await c.masters.waitCaughtUp(leader);
  await w.more(filesPerFault, `with master ${leader} back`);
  const after = await c.routing();
  // A new leader waits a full offline timeout of fresh heartbeats before it judges a worker.
  assert.equal(after.routingVersion, before.routingVersion, 'the failover took no target out of its chain');
  await w.stop();
  assert.deepEqual(w.failures, []);
  await waitFor(() => c.allServing(), 'every target serving', 30_000, () => c.logTails());
  await waitAgreed(c, undefined, 'at the end');
  assert.deepEqual(await verify(c.client(), w.acked), [], 'every acknowledged file reads back intact');
  t.diagnostic(`${w.acked.size} files acknowledged and read back`);
});

/** Flips one data byte of the stored chunk file of chunk `index` of `inodeId` on the target at `targetPath`; returns the file's name. */

test('a flipped byte in a stored chunk: the read catches it, another replica serves the data, the worker reports it, and a write repairs it', async (t) => {
  const rand = seeded(t);
  const c = await DataCluster.start(t, shape);
  const client = c.client();
  const body = randomBytes(8 * chunkBytes + 123);
  const attr = await putFile(client.meta, client.data, '/victim', pieces(body, 100 * KiB), { layout: { chunkSizeBytes: chunkBytes, stripeWidth: 2 } });
  const info = await c.routing();
  const routing = new Routing(info);
  const layout = attr.layout!;
  const chains = fileChains(routing.tableChains(layout.chainTableId, layout.chainTableVersion)!, layout.stripeWidth, layout.shuffleSeed);
  // The replica the client reads a chunk from first (DataClient.readChunk spreads reads by chunk):
  // damage one chunk where that is the chain's head and one where it is another member.
  const damaged: { index: number; chainId: number; targetId: number; workerId: number; file: string; head: boolean }[] = [];
  for (const head of [true, false]) {
    const index = [0, 1, 2, 3, 4, 5, 6, 7].find((i) => ((attr.inodeId + i) % 3 === 0) === head && !damaged.some((d) => d.index === i))!;
    const chainId = chainOfChunk(chains, index);
    const members = routing.readMembers(chainId);
    const target = members[(attr.inodeId + index) % members.length];
    const file = await flipChunkByte(info.targets.find((x) => x.targetId === target.targetId)!.path, attr.inodeId, index, rand(chunkBytes));
    damaged.push({ index, chainId, targetId: target.targetId, workerId: target.workerId, file, head });
    t.diagnostic(`flipped a byte of ${file}: chunk ${index}, target ${target.targetId} (${head ? 'head' : 'not head'}) of chain ${chainId}, worker ${target.workerId}`);
  }

  // Straight to the replica: refused with the code, never the bad bytes.
  for (const d of damaged) {
    const conn = new RpcClient(c.worker(d.workerId).address, { secret: c.masters.secret });
    const chain = info.chains.find((x) => x.chainId === d.chainId)!;
    const direct = await conn.call('chunk.read', { chainId: d.chainId, chainVersion: chain.version, inodeId: attr.inodeId, index: d.index, offset: 0, length: chunkBytes }).then(() => undefined, (err: unknown) => err as { code?: string });
    conn.close();
    assert.equal(direct?.code, WorkerErrorCode.ChunkCorrupt, `target ${d.targetId} refuses chunk ${d.index}`);
  }

  // Through the client: the data is whole, served by other replicas; the bad ones are recorded.
  const reader = c.client();
  assert.equal(sha(await readBack(reader, '/victim')), sha(body), 'the file reads back intact');
  const seen = reader.data.corruptSeen.map((x) => [x.chainId, x.targetId, x.inodeId, x.index]);
  assert.deepEqual(seen.sort(), damaged.map((d) => [d.chainId, d.targetId, attr.inodeId, d.index]).sort());

  // The workers report them: a warning in the log, the gauges and /healthz.
  const perTarget = new Map<number, number>();
  for (const d of damaged) perTarget.set(d.targetId, (perTarget.get(d.targetId) ?? 0) + 1);
  for (const [id, w] of c.workers) {
    const metrics = await c.metrics(id);
    for (const x of info.targets.filter((x) => x.workerId === id)) {
      const n = perTarget.get(x.targetId) ?? 0;
      assert.match(metrics, new RegExp(`^cairn_worker_chunks_corrupt\\{target="${x.targetId}"\\} ${n}$`, 'm'), `worker ${id}, target ${x.targetId}`);
      assert.match(metrics, new RegExp(`^cairn_worker_chunks_corrupt_detected\\{target="${x.targetId}"\\} ${n}$`, 'm'));
    }
    const health = (await (await fetch(`http://${w.http}/healthz`)).json()) as { targets: { targetId: number; chunksCorrupt: number }[] };
    for (const x of health.targets) assert.equal(x.chunksCorrupt, perTarget.get(x.targetId) ?? 0);
  }
  for (const d of damaged) {
    const log = await readFile(c.worker(d.workerId).log, 'utf8');
    assert.ok(log.split('\n').some((l) => l.includes('"msg":"chunk corrupt"') && l.includes(d.file)), `worker ${d.workerId} logs ${d.file}`);
  }

  // A write into a damaged chunk (a few bytes in its middle) succeeds, and leaves every replica whole.
  const writer = c.client();
  for (const d of damaged) {
    const patch = randomBytes(1000);
    const offset = 100 + rand(chunkBytes - 1100);
    await writer.data.writeChunk(layout, attr.inodeId, d.index, offset, patch);
    patch.copy(body, d.index * chunkBytes + offset);
  }
  assert.equal(sha(await readBack(c.client(), '/victim')), sha(body), 'the file reads back with the writes');
  for (const id of c.workers.keys()) assert.doesNotMatch(await c.metrics(id), /^cairn_worker_chunks_corrupt\{.*\} [1-9]/m, `worker ${id} holds no corrupt chunk now`);
  await waitAgreed(c, undefined, 'after the writes');
});

test('a returning worker\'s resync source holds a corrupt chunk: the source repairs it from another member and the resync completes', async (t) => {
  const rand = seeded(t);
  const c = await DataCluster.start(t, shape);
  const tail = await chainMember(c, 'tail');
  const middle = await chainMember(c, 'middle');
  await c.killWorker(tail.workerId);
  await waitFor(async () => (await c.routing()).targets.filter((x) => x.workerId === tail.workerId).every((x) => x.state === 'offline'), `worker ${tail.workerId}'s targets to go offline`, 30_000, () => c.logTails());
  // Written while the tail is away: its resync must send these chunks, from the middle (now the last serving member).
  const client = c.client();
  const body = randomBytes(6 * chunkBytes + 5);
  const attr = await putFile(client.meta, client.data, '/while-away', pieces(body, 100 * KiB), { layout: { chunkSizeBytes: chunkBytes, stripeWidth: 2 } });
  const info = await c.routing();
  const routing = new Routing(info);
  const layout = attr.layout!;
  const chains = fileChains(routing.tableChains(layout.chainTableId, layout.chainTableVersion)!, layout.stripeWidth, layout.shuffleSeed);
  const index = [0, 1, 2, 3, 4, 5].find((i) => chainOfChunk(chains, i) === middle.chainId)!;
  const file = await flipChunkByte(info.targets.find((x) => x.targetId === middle.targetId)!.path, attr.inodeId, index, rand(chunkBytes));
  t.diagnostic(`worker ${tail.workerId} (tail of chain ${tail.chainId}) down; flipped a byte of ${file} on the middle, target ${middle.targetId}`);
  await c.startWorker(tail.workerId);
  await waitFor(() => c.allServing(), `worker ${tail.workerId}'s targets to finish their resync and serve`, 30_000, () => c.logTails());
  await waitAgreed(c, undefined, 'after the resync');
  assert.doesNotMatch(await c.metrics(middle.workerId), /^cairn_worker_chunks_corrupt\{.*\} [1-9]/m, 'the source repaired its chunk');
  assert.equal(sha(await readBack(c.client(), '/while-away')), sha(body));
});
