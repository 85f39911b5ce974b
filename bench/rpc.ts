// Calls per second and payload throughput of cairn's RPC over 127.0.0.1, beside the anchor: a
// plain net socket echo of messages of the same size, with the same number of callers in flight.
// The servers run in a worker thread, so that each side has its own event loop, as across processes.

import { once } from 'node:events';
import net from 'node:net';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { RpcClient, RpcServer, reply } from '../src/rpc/index.ts';
import { encodeBody, encodeHeader, frameBytes } from '../src/rpc/frame.ts';
import { Report } from './report.ts';
import { positiveInt, positiveIntList, positiveNumber } from './args.ts';

export const description = 'RPC echo calls/s (1 and 64 callers) and 1 MiB payload MB/s over 127.0.0.1, beside a plain socket echo of the same bytes';

const serverRole = 'cairn-bench-rpc-server';
const bytesPerMB = 1e6;
const smallBody = { op: 'stat', inode: 123_456, name: 'chunk-0001' };

interface Options {
  seconds: number;
  warmupSeconds: number;
  callers: number[];
  payloadBytes: number;
  payloadCallers: number[];
}

const usage = `usage: npm run bench -- rpc [options]
  --seconds S          measured time of each configuration (default 2)
  --warmup S           unmeasured time before each configuration (default 0.5)
  --callers LIST       concurrent callers of the small echo (default 1,64)
  --payload-bytes N    payload of each bulk call, echoed back (default 1048576)
  --payload-callers L  concurrent callers of the bulk echo (default 1,8)`;

function parseOptions(args: string[]): Options | undefined {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      seconds: { type: 'string', default: '2' },
      warmup: { type: 'string', default: '0.5' },
      callers: { type: 'string', default: '1,64' },
      'payload-bytes': { type: 'string', default: String(2 ** 20) },
      'payload-callers': { type: 'string', default: '1,8' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(usage);
    return undefined;
  }
  return {
    seconds: positiveNumber(values.seconds, '--seconds'),
    warmupSeconds: positiveNumber(values.warmup, '--warmup'),
    callers: positiveIntList(values.callers, '--callers'),
    payloadBytes: positiveInt(values['payload-bytes'], '--payload-bytes'),
    payloadCallers: positiveIntList(values['payload-callers'], '--payload-callers'),
  };
}



// ---- the worker: an RPC echo server and a plain echo server ----

async function serve(): Promise<void> {
  const rpc = new RpcServer({});
  rpc.handle('echo', async (body, ctx) => reply(body, ctx.payload));
  const rpcAddr = await rpc.listen('127.0.0.1', 0);
  const sockets = new Set<net.Socket>();
  const plain = net.createServer({ noDelay: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.on('data', (d: Buffer) => s.write(d));
  });
  plain.listen(0, '127.0.0.1');
  await once(plain, 'listening');
  const port = parentPort as NonNullable<typeof parentPort>;
  port.postMessage({ rpcPort: rpcAddr.port, plainPort: (plain.address() as net.AddressInfo).port });
  port.once('message', async () => {
    for (const s of sockets) s.destroy();
    plain.close();
    await rpc.close();
    port.close();
  });
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === serverRole) await serve();

// ---- the callers ----

/** A plain socket client: fixed-size messages echoed back in order, so each answer is the next `size` bytes. */
class PlainEchoClient {
  private readonly socket: net.Socket;
  private readonly size: number;
  private readonly waiters: (() => void)[] = [];
  private receivedBytes = 0;

  constructor(socket: net.Socket, size: number) {
    this.socket = socket;
    this.size = size;
    socket.on('data', (d: Buffer) => {
      this.receivedBytes += d.length;
      while (this.receivedBytes >= this.size) {
        this.receivedBytes -= this.size;
        (this.waiters.shift() as () => void)();
      }
    });
  }

  echo(message: Buffer): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.waiters.push(resolve);
    this.socket.write(message);
    return promise;
  }
}

interface Measured {
  calls: number;
  seconds: number;
  cpuSeconds: number;
  latenciesUs: number[];
}

/** Runs `callers` loops of `once()` for the warm-up, then for the measured time. */
async function measure(callers: number, opts: Options, one: () => Promise<unknown>): Promise<Measured> {
  const loop = async (untilMs: number, latencies: number[] | undefined): Promise<number> => {
    let calls = 0;
    while (performance.now() < untilMs) {
      const started = performance.now();
      await one();
      latencies?.push((performance.now() - started) * 1000);
      calls++;
    }
    return calls;
  };
  const warmUntil = performance.now() + opts.warmupSeconds * 1000;
  await Promise.all(Array.from({ length: callers }, () => loop(warmUntil, undefined)));
  const latenciesUs: number[] = [];
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const until = started + opts.seconds * 1000;
  const counts = await Promise.all(Array.from({ length: callers }, (_, i) => loop(until, i === 0 ? latenciesUs : undefined)));
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  return { calls: counts.reduce((a, b) => a + b, 0), seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, latenciesUs: latenciesUs.sort((a, b) => a - b) };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;
}

/** Bytes of the RPC request frame for an echo of `body` and `payloadBytes`: what the anchor sends per message. */
function requestFrameBytes(body: unknown, payloadBytes: number): number {
  const header = encodeHeader({ id: 1000, kind: 'req', method: 'echo', timeoutMs: 10_000 });
  return frameBytes(header.length, encodeBody(body).length, payloadBytes);
}

async function plainClient(port: number, messageBytes: number): Promise<{ client: PlainEchoClient; socket: net.Socket }> {
  const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
  await once(socket, 'connect');
  return { client: new PlainEchoClient(socket, messageBytes), socket };
}

interface Pair {
  label: string;
  unit: 'calls/s' | 'MB/s';
  callers: number;
  rpc: Measured;
  anchor: Measured;
  bytesPerCall: number;
}

async function smallPair(callers: number, opts: Options, ports: { rpcPort: number; plainPort: number }): Promise<Pair> {
  const client = new RpcClient(`127.0.0.1:${ports.rpcPort}`, { inflightMax: Math.max(1024, callers) });
  const rpc = await measure(callers, opts, () => client.call('echo', smallBody));
  client.close();
  const size = requestFrameBytes(smallBody, 0);
  const { client: plain, socket } = await plainClient(ports.plainPort, size);
  const message = Buffer.alloc(size, 7);
  const anchor = await measure(callers, opts, () => plain.echo(message));
  socket.destroy();
  return { label: `echo, ${callers} caller${callers === 1 ? '' : 's'}`, unit: 'calls/s', callers, rpc, anchor, bytesPerCall: size };
}

async function payloadPair(callers: number, opts: Options, ports: { rpcPort: number; plainPort: number }): Promise<Pair> {
  const payload = Buffer.alloc(opts.payloadBytes, 0x5a);
  const client = new RpcClient(`127.0.0.1:${ports.rpcPort}`);
  const rpc = await measure(callers, opts, async () => {
    const res = await client.call('echo', { chunk: 1 }, { payload });
    if (res.payload?.length !== payload.length) throw new Error('echoed payload has the wrong length');
  });
  client.close();
  const size = requestFrameBytes({ chunk: 1 }, opts.payloadBytes);
  const { client: plain, socket } = await plainClient(ports.plainPort, size);
  const message = Buffer.alloc(size, 0x5a);
  const anchor = await measure(callers, opts, () => plain.echo(message));
  socket.destroy();
  return { label: `${opts.payloadBytes} B payload, ${callers} caller${callers === 1 ? '' : 's'}`, unit: 'MB/s', callers, rpc, anchor, bytesPerCall: opts.payloadBytes };
}

function rate(p: Pair, m: Measured): number {
  const callsPerSecond = m.calls / m.seconds;
  return p.unit === 'calls/s' ? callsPerSecond : (callsPerSecond * p.bytesPerCall) / bytesPerMB;
}

function reportPair(report: Report, p: Pair): void {
  report.figure(`rpc ${p.label}`, rate(p, p.rpc), p.unit);
  report.figure(`anchor ${p.label}`, rate(p, p.anchor), p.unit);
  report.figure(`ratio rpc / anchor, ${p.label}`, rate(p, p.rpc) / rate(p, p.anchor), 'x');
  report.figure(`rpc ${p.label}: CPU per call (both sides)`, (p.rpc.cpuSeconds * 1e6) / p.rpc.calls, 'µs/call');
  report.figure(`anchor ${p.label}: CPU per call (both sides)`, (p.anchor.cpuSeconds * 1e6) / p.anchor.calls, 'µs/call');
  if (p.callers === 1) {
    report.figure(`rpc ${p.label}: latency p50`, percentile(p.rpc.latenciesUs, 50), 'µs');
    report.figure(`rpc ${p.label}: latency p99`, percentile(p.rpc.latenciesUs, 99), 'µs');
    report.figure(`anchor ${p.label}: latency p50`, percentile(p.anchor.latenciesUs, 50), 'µs');
  }
  report.attach(p.label, { callers: p.callers, bytesPerCall: p.bytesPerCall, rpc: { ...p.rpc, latenciesUs: undefined }, anchor: { ...p.anchor, latenciesUs: undefined } });
}

export async function run(args: string[]): Promise<void> {
  const opts = parseOptions(args);
  if (opts === undefined) return;
  const report = new Report('rpc');
  report.configure({
    transport: 'TCP over 127.0.0.1, Nagle off, one connection per client',
    servers: 'in a worker thread of this process (own event loop); the clients on the main thread',
    'small echo body': JSON.stringify(smallBody),
    'small echo callers': opts.callers.join(', '),
    'payload bytes': `${opts.payloadBytes} each way (the server echoes the payload back)`,
    'payload callers': opts.payloadCallers.join(', '),
    'measured seconds per configuration': opts.seconds,
    'warm-up seconds per configuration': opts.warmupSeconds,
    auth: 'off (dev mode): the handshake costs once per connection, not per call',
    anchor: 'plain net echo server (write back each chunk) and a client sending messages of the RPC request frame size, same callers in flight',
  });
  report.note('MB/s counts payload bytes sent per second (1 MB = 1e6 bytes); as each is echoed back, the loopback carries twice that');
  report.note('CPU per call is the whole process (client, server worker, GC), from process.cpuUsage');

  const worker = new Worker(new URL(import.meta.url), { workerData: { role: serverRole } });
  const [ports] = (await once(worker, 'message')) as [{ rpcPort: number; plainPort: number }];
  try {
    for (const callers of opts.callers) reportPair(report, await smallPair(callers, opts, ports));
    for (const callers of opts.payloadCallers) reportPair(report, await payloadPair(callers, opts, ports));
  } finally {
    worker.postMessage('stop');
    await once(worker, 'exit');
  }
  report.figure('max resident set size', process.resourceUsage().maxRSS / 1024, 'MiB');
  report.finish();
}
