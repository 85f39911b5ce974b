// The S3 gateway under load: PUT and GET of 1 MiB and 64 MiB objects with 1 and 16 clients, and
// 4 KiB objects (PUT, GET, HEAD, LIST) with 16 clients, beside the native client (putFile, and a
// FileReader whose chunk reads land in a pool, as the gateway's do) moving the same bytes with the
// same concurrency and the same window of bytes in flight per object (the gateway's --stream-mib)
// in the same run: the gateway's overhead. A local cluster (3 masters, 3 workers
// with 2 targets each, replication 3) and one gateway process, all on this machine.
//
// Large objects are moved by two S3 clients: curl (its own SigV4 signing, one process per client,
// each request over keep-alive), and a small client on Node's http module in this process. Node's
// HTTP client takes a core to receive about 300 MiB/s, so on this machine it, not the gateway, is
// what bounds its GETs; curl costs little per byte and shows the gateway's own overhead. Both sign
// with UNSIGNED-PAYLOAD (as SDKs do over TLS), so that hashing in the client does not take the CPU
// the gateway needs.

import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DataClient, FileReader, fileRef, MasterClient, putFile } from '../src/client/index.ts';
import type { InodeAttr } from '../src/meta/index.ts';
import { readLocalCluster, receiveBufferPool } from '../src/cli/cluster-target.ts';
import { localDown, localUp, startLocalS3, type LocalS3 } from '../src/cli/local.ts';
import { systemClock } from '../src/io/system-clock.ts';
import { rootCaller } from '../src/meta/index.ts';
import { RpcClient } from '../src/rpc/index.ts';
import { canonicalRequest, signingKey, stringToSign, unsignedPayload, uriEncode } from '../src/s3/sigv4.ts';
import { workerFrameBytesMax } from '../src/worker/process.ts';
import { positiveInt } from './args.ts';
import { ensureDebianTool } from './cluster.ts';
import { formatNumber, Report } from './report.ts';
import { mainScript } from '../test/cluster/process-cluster.ts';

export const description = 'the S3 gateway: PUT/GET of 1 MiB and 64 MiB objects (1 and 16 clients, curl and Node http) and 4 KiB PUT/GET/HEAD/LIST (16 clients), beside the native client';

const MiB = 2 ** 20;
const usage = `usage: npm run bench -- s3 [options]
  --total-mib N     MiB each large-object case moves each way (default 1024)
  --seconds N       seconds of each 4 KiB operation (default 10)
  --huge-mib N      the one large object sent and read back while the gateway's memory is watched (default 2048)
  --dir PATH        where the cluster lives (default a new directory under ${tmpdir()})`;

export async function run(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, strict: true, options: { 'total-mib': { type: 'string', default: '1024' }, seconds: { type: 'string', default: '10' }, 'huge-mib': { type: 'string', default: '2048' }, dir: { type: 'string' }, help: { type: 'boolean', default: false } } });
  if (values.help) return console.log(usage);
  const totalMiB = positiveInt(values['total-mib'], '--total-mib');
  const seconds = positiveInt(values.seconds, '--seconds');
  const hugeMiB = positiveInt(values['huge-mib'], '--huge-mib');
  ensureDebianTool('curl');
  const dir = values.dir ?? mkdtempSync(path.join(tmpdir(), 'cairn-bench-s3-'));
  const report = new Report('s3');
  // The gateway's default per-request window (cairn s3 --stream-mib); the native client gets the same.
  const gatewayStreamMiB = 16;
  const window = { streamBytesMax: gatewayStreamMiB * MiB };
  report.configure({ totalMiBPerCase: totalMiB, smallSeconds: seconds, hugeMiB, dir, masters: 3, workers: 3, targetsPerWorker: 2, replication: 3, gatewayStreamMiB });
  const clusterDir = path.join(dir, 'cluster');
  console.log('starting the local cluster and the gateway...');
  await localUp({ dir: clusterDir, masters: 3, workers: 3, targetsPerWorker: 2, replication: 3, log: () => undefined });
  const rows: string[][] = [];
  try {
    const s3 = await startLocalS3(clusterDir, '127.0.0.1:0', [mainScript], () => undefined);
    const client = new S3(s3);
    const curl = new Curl(s3);
    await client.send('PUT', '/bench');
    const native = nativeClients(clusterDir);
    try {
      for (const sizeMiB of [1, 64]) {
        for (const clients of [1, 16]) {
          const objects = Math.max(clients, Math.floor(totalMiB / sizeMiB));
          const per = Math.ceil(objects / clients);
          const body = randomBytes(sizeMiB * MiB);
          const bodyFile = path.join(dir, `body-${sizeMiB}`);
          writeFileSync(bodyFile, body);
          const name = `${sizeMiB} MiB objects, ${clients} client${clients === 1 ? '' : 's'}`;
          console.log(`${name}: ${per * clients} objects each way...`);
          // Each round writes keys of its own (no overwrites, whose collection would run into the next).
          const key = (round: number, c: number, i: number): string => `/bench/o${sizeMiB}-${round}-${c}-${i}`;
          const keysOf = (round: number, c: number): string[] => Array.from({ length: per }, (_, i) => key(round, c, i));
          const nativePath = (round: number, c: number, i: number): string => `/bench/n${sizeMiB}-${round}-${c}-${i}`;
          // Rounds in the order curl, native, Node http, native, curl: the machine's speed drifts
          // over minutes here, and curl and the native client, each measured twice around the
          // middle, see the same drift on average (their ratio is what the target is about).
          const curlRound = async (round: number): Promise<{ put: Timed; get: Timed }> => ({
            put: await cpuOf(s3.pid, () => timedAll(clients, (c) => curl.put(bodyFile, keysOf(round, c)))),
            get: await cpuOf(s3.pid, () => timedAll(clients, (c) => curl.get(keysOf(round, c)))),
          });
          const nativeRound = async (round: number): Promise<{ put: Timed; get: Timed }> => ({
            put: { ms: await timed(clients, per, (c, i) => putFile(native.meta, native.data, nativePath(round, c, i), [body], window).then(() => undefined)), cores: 0 },
            get: {
              ms: await timed(clients, per, async (c, i) => {
                const p = nativePath(round, c, i);
                const attr = await native.meta.query<InodeAttr>('meta.query', { op: 'open', path: p });
                for await (const piece of new FileReader(native.data, fileRef(attr, p), attr.sizeBytes, window).lend()) piece.release();
              }),
              cores: 0,
            },
          });
          const curl1 = await curlRound(1);
          const native1 = await nativeRound(1);
          const put = await timed(clients, per, (c, i) => client.send('PUT', key(0, c, i), body));
          const get = await timed(clients, per, (c, i) => client.send('GET', key(0, c, i)));
          const native2 = await nativeRound(2);
          const curl2 = await curlRound(2);
          const both = (a: Timed, b: Timed): Timed => ({ ms: (a.ms + b.ms) / 2, cores: (a.cores * a.ms + b.cores * b.ms) / (a.ms + b.ms) });
          const cput = both(curl1.put, curl2.put);
          const cget = both(curl1.get, curl2.get);
          const nput = both(native1.put, native2.put).ms;
          const nget = both(native1.get, native2.get).ms;
          rmSync(bodyFile);
          const mibs = (ms: number): number => (per * clients * sizeMiB) / (ms / 1000);
          const pct = (a: number, b: number): string => `${Math.round((100 * mibs(a)) / mibs(b))}%`;
          for (const [op, c, n, native, rounds] of [['PUT', cput, put, nput, [curl1.put, native1.put, native2.put, curl2.put]], ['GET', cget, get, nget, [curl1.get, native1.get, native2.get, curl2.get]]] as const) {
            report.figure(`${op} ${name}: gateway, curl`, mibs(c.ms), 'MiB/s');
            report.figure(`${op} ${name}: gateway's CPU under curl`, c.cores, 'cores');
            report.figure(`${op} ${name}: gateway, Node http`, mibs(n), 'MiB/s');
            report.figure(`${op} ${name}: native client`, mibs(native), 'MiB/s');
            console.log(`  ${op}: curl ${formatNumber(mibs(rounds[0].ms))} then ${formatNumber(mibs(rounds[3].ms))} MiB/s, native ${formatNumber(mibs(rounds[1].ms))} then ${formatNumber(mibs(rounds[2].ms))} MiB/s`);
            rows.push([`${op} ${name}`, 'MiB/s', formatNumber(mibs(c.ms)), formatNumber(c.cores), formatNumber(mibs(n)), formatNumber(mibs(native)), pct(c.ms, native), pct(n, native)]);
          }
          for (const round of [0, 1, 2]) for (let c = 0; c < clients; c++) for (let i = 0; i < per; i++) await client.send('DELETE', key(round, c, i));
          for (const round of [1, 2]) for (let c = 0; c < clients; c++) for (let i = 0; i < per; i++) await client.send('DELETE', nativePath(round, c, i));
        }
      }
      console.log(`one ${hugeMiB} MiB object in and out, the gateway's peak memory watched...`);
      const before = resetPeakRssMiB(s3.pid);
      const piece = randomBytes(MiB);
      let start = performance.now();
      await client.send('PUT', '/bench/huge', (function* () {
        for (let i = 0; i < hugeMiB; i++) yield piece;
      })(), hugeMiB * MiB);
      const hugePut = hugeMiB / ((performance.now() - start) / 1000);
      start = performance.now();
      await client.send('GET', '/bench/huge');
      const hugeGet = hugeMiB / ((performance.now() - start) / 1000);
      const peak = peakRssMiB(s3.pid);
      // Its heap already grown by the cases before: the peak may stay where it was (growth 0).
      const growth = Math.max(0, peak - before);
      report.figure(`${hugeMiB} MiB object: PUT`, hugePut, 'MiB/s');
      report.figure(`${hugeMiB} MiB object: GET`, hugeGet, 'MiB/s');
      report.figure(`${hugeMiB} MiB object: gateway peak memory growth`, growth, 'MiB');
      report.figure(`${hugeMiB} MiB object: gateway peak resident memory`, peak, 'MiB');
      rows.push([`PUT one ${hugeMiB} MiB object (Node http)`, 'MiB/s', '', '', formatNumber(hugePut), '', '', ''], [`GET one ${hugeMiB} MiB object (Node http)`, 'MiB/s', '', '', formatNumber(hugeGet), '', '', ''], [`gateway peak memory growth over them`, 'MiB', '', '', formatNumber(growth), '', '', ''], [`gateway peak resident memory over them`, 'MiB', '', '', formatNumber(peak), '', '', '']);
      await client.send('DELETE', '/bench/huge');
      console.log(`4 KiB objects, 16 clients, ${seconds} s each...`);
      const small = randomBytes(4096);
      const keys = 1000;
      const forSeconds = async (op: (c: number, i: number) => Promise<unknown>): Promise<number> => {
        let done = 0;
        const end = performance.now() + seconds * 1000;
        await Promise.all(Array.from({ length: 16 }, async (_, c) => {
          for (let i = 0; performance.now() < end; i++, done++) await op(c, i);
        }));
        return done / seconds;
      };
      const key = (c: number, i: number): string => `/bench/small/k${(c * 7919 + i) % keys}`;
      // Every key there first, so that reads never miss whatever the PUT phase reached.
      await timed(16, Math.ceil(keys / 16), (c, i) => (c * Math.ceil(keys / 16) + i < keys ? client.send('PUT', `/bench/small/k${c * Math.ceil(keys / 16) + i}`, small) : Promise.resolve()));
      const ops: [string, number][] = [
        ['PUT', await forSeconds((c, i) => client.send('PUT', key(c, i), small))],
        ['GET', await forSeconds((c, i) => client.send('GET', key(c, i)))],
        ['HEAD', await forSeconds((c, i) => client.send('HEAD', key(c, i)))],
        ['LIST (100 keys a page)', await forSeconds((c, i) => client.send('GET', `/bench?list-type=2&prefix=small%2F&max-keys=100&start-after=${uriEncode(key(c, i).slice(7))}`))],
      ];
      for (const [op, rate] of ops) {
        report.figure(`4 KiB ${op}, 16 clients`, rate, 'ops/s');
        rows.push([`4 KiB ${op}, 16 clients (Node http)`, 'ops/s', '', '', formatNumber(rate), '', '', '']);
      }
    } finally {
      native.close();
    }
  } finally {
    await localDown(clusterDir, () => undefined);
    if (values.dir === undefined) rmSync(dir, { recursive: true, force: true });
  }
  report.table('the S3 gateway beside the native client (same bytes, same concurrency, same run)', ['case', 'unit', 'gateway, curl', "gateway's cores (curl)", 'gateway, Node http', 'native client', 'curl / native', 'Node http / native'], rows);
  report.finish();
}

/** How long a round took, and the gateway's CPU meanwhile in cores (0 where not watched). */
interface Timed {
  ms: number;
  cores: number;
}

/** Runs one operation per client, all at once; the elapsed milliseconds. */
async function timedAll(clients: number, op: (c: number) => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await Promise.all(Array.from({ length: clients }, (_, c) => op(c)));
  return performance.now() - start;
}

/** What `run` took (its milliseconds) and the CPU process `pid` spent meanwhile, in cores. */
async function cpuOf(pid: number, run: () => Promise<number>): Promise<{ ms: number; cores: number }> {
  const before = cpuSeconds(pid);
  const ms = await run();
  return { ms, cores: (cpuSeconds(pid) - before) / (ms / 1000) };
}

/** User and system CPU seconds of a process so far (/proc/PID/stat, in clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Runs `clients` loops of `per` operations each; the elapsed milliseconds. */
async function timed(clients: number, per: number, op: (c: number, i: number) => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await Promise.all(Array.from({ length: clients }, async (_, c) => {
    for (let i = 0; i < per; i++) await op(c, i);
  }));
  return performance.now() - start;
}

function nativeClients(clusterDir: string): { meta: MasterClient; data: DataClient; close(): void } {
  const cluster = readLocalCluster(clusterDir)!;
  const meta = new MasterClient({ masters: cluster.processes.filter((p) => p.kind === 'master').map((p) => p.address), secret: cluster.secret, caller: rootCaller });
  // Chunk reads land in a pool and go back once read, as the gateway's do: each at its best.
  const receiveBuffers = receiveBufferPool();
  const data = new DataClient({ master: meta, connect: (a) => new RpcClient(a, { secret: cluster.secret, frameBytesMax: workerFrameBytesMax, receiveBuffers }), clock: systemClock });
  return { meta, data, close: () => (data.close(), meta.close()) };
}

/**
 * curl as an S3 client (its --aws-sigv4): one process per call moves a list of keys in turn over
 * one keep-alive connection, signing each request with UNSIGNED-PAYLOAD. Bodies go to /dev/null.
 */
class Curl {
  private readonly s3: LocalS3;

  constructor(s3: LocalS3) {
    this.s3 = s3;
  }

  /** Uploads the file's bytes as each key. */
  put(file: string, keys: string[]): Promise<void> {
    return this.run(keys.flatMap((k) => ['-T', file, '-o', '/dev/null', this.s3.endpoint + k]));
  }

  get(keys: string[]): Promise<void> {
    return this.run(keys.flatMap((k) => ['-o', '/dev/null', this.s3.endpoint + k]));
  }

  private run(urlArgs: string[]): Promise<void> {
    // The key pair goes in on standard input (a config file), not where `ps` shows it.
    const args = ['--config', '-', '--silent', '--show-error', '--fail', '--aws-sigv4', 'aws:amz:us-east-1:s3', '-H', `x-amz-content-sha256: ${unsignedPayload}`, ...urlArgs];
    return new Promise((resolve, reject) => {
      let err = '';
      const child = spawn('curl', args, { stdio: ['pipe', 'ignore', 'pipe'] });
      child.stdin.end(`user = "${this.s3.accessKeyId}:${this.s3.secretKey}"\n`);
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('error', reject);
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`curl exited with ${code}: ${err.trim()}`))));
    });
  }
}

/** A small S3 client: path-style requests signed with SigV4 and UNSIGNED-PAYLOAD, over keep-alive. */
class S3 {
  private readonly url: URL;
  private readonly s3: LocalS3;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });

  constructor(s3: LocalS3) {
    this.s3 = s3;
    this.url = new URL(s3.endpoint);
  }

  /** One request; a body of pieces (an iterable) goes out with backpressure, `length` bytes declared. */
  async send(method: string, pathAndQuery: string, body?: Buffer | Iterable<Buffer>, length?: number): Promise<void> {
    const [pathname, rawQuery = ''] = pathAndQuery.split('?');
    const amzDate = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
    const date = amzDate.slice(0, 8);
    const headers: Record<string, string> = { host: this.url.host, 'x-amz-date': amzDate, 'x-amz-content-sha256': unsignedPayload };
    const names = Object.keys(headers).sort();
    const query = rawQuery === '' ? [] : rawQuery.split('&').map((p) => p.split('=').map(decodeURIComponent) as [string, string]);
    const canonical = canonicalRequest(method, pathname, query, names, headers, unsignedPayload);
    const sig = createHmac('sha256', signingKey(this.s3.secretKey, date, 'us-east-1', 's3')).update(stringToSign(amzDate, `${date}/us-east-1/s3/aws4_request`, canonical)).digest('hex');
    headers.authorization = `AWS4-HMAC-SHA256 Credential=${this.s3.accessKeyId}/${date}/us-east-1/s3/aws4_request, SignedHeaders=${names.join(';')}, Signature=${sig}`;
    if (body !== undefined) headers['content-length'] = String(Buffer.isBuffer(body) ? body.length : length);
    await new Promise<void>((resolve, reject) => {
      const req = request({ host: this.url.hostname, port: this.url.port, method, path: pathAndQuery, headers, agent: this.agent }, (res) => {
        res.on('data', () => undefined);
        res.on('end', () => ((res.statusCode ?? 500) < 300 ? resolve() : reject(new Error(`${method} ${pathAndQuery}: ${res.statusCode}`))));
      });
      req.on('error', reject);
      if (body === undefined || Buffer.isBuffer(body)) return void req.end(body);
      void (async () => {
        for (const piece of body) if (!req.write(piece)) await new Promise((r) => req.once('drain', r));
        req.end();
      })();
    });
  }
}

/** Starts a process's peak resident memory over from what it holds now (Linux clear_refs 5); that, in MiB. */
function resetPeakRssMiB(pid: number): number {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

function peakRssMiB(pid: number): number {
  return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}
