// RpcServer and RpcClient (src/rpc/) over real sockets on 127.0.0.1: round trips, multiplexing,
// errors, deadlines, cancellation, reconnects, auth, every limit, malformed input and close().

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { once } from 'node:events';
import { test, type TestContext } from 'node:test';
import { RpcClient, RpcError, RpcErrorCode, RpcServer, reply, rpcLimits, type CallContext, type RpcClientOptions, type RpcServerOptions } from '../../src/rpc/index.ts';
import { clientProof } from '../../src/rpc/auth.ts';
import { BufferPool } from '../../src/buffer-pool.ts';
import { FrameDecoder, decodeBody, decodeFrame, encodeBody, encodeHeader, frameParts, type Frame } from '../../src/rpc/frame.ts';

const MiB = 2 ** 20;

interface Started {
  server: RpcServer;
  address: string;
  port: number;
  logs: string[];
}

async function startServer(t: TestContext, opts: RpcServerOptions = {}, port = 0): Promise<Started> {
  const logs: string[] = [];
  const server = new RpcServer({ log: (level, msg) => logs.push(`${level} ${msg}`), ...opts });
  server.handle('echo', async (body, ctx) => reply(body, ctx.payload));
  t.after(() => server.close());
  const addr = await server.listen('127.0.0.1', port);
  return { server, address: `${addr.host}:${addr.port}`, port: addr.port, logs };
}

function client(t: TestContext, address: string, opts?: RpcClientOptions): RpcClient {
  const c = new RpcClient(address, { reconnectBackoffMs: { min: 10, max: 50 }, ...opts });
  t.after(() => c.close());
  return c;
}

function hasCode(code: string, check?: (err: RpcError) => void): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof RpcError, `expected an RpcError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    check?.(err);
    return true;
  };
}

/** A handler that never resolves on its own; it records each call's context. */
function hanging(): { calls: CallContext[]; started: Promise<CallContext>; handler: (body: unknown, ctx: CallContext) => Promise<unknown> } {
  const calls: CallContext[] = [];
  const { promise: started, resolve } = Promise.withResolvers<CallContext>();
  return {
    calls,
    started,
    handler: (_body, ctx) => {
      calls.push(ctx);
      resolve(ctx);
      return new Promise(() => {});
    },
  };
}

function abortReason(signal: AbortSignal): Promise<unknown> {
  if (signal.aborted) return Promise.resolve(signal.reason);
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(signal.reason), { once: true }));
}

async function rawSocket(t: TestContext, port: number): Promise<net.Socket> {
  const s = net.connect({ host: '127.0.0.1', port });
  s.on('error', () => {}); // the server may reset it; the test watches 'close'
  s.resume(); // read (and drop) what the server sends, so that its close is seen
  t.after(() => s.destroy());
  await once(s, 'connect');
  return s;
}

function frame(header: object, body?: unknown, payload?: Uint8Array): Buffer {
  return Buffer.concat(frameParts(encodeHeader(header as Parameters<typeof encodeHeader>[0]), encodeBody(body), payload));
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

test('an IPv6 address: a client of [::1]:port reaches a server on ::1, which names the peer in brackets', async (t) => {
  const server = new RpcServer();
  t.after(() => server.close());
  let peer = '';
  server.handle('peer', async (_body, ctx) => (peer = ctx.peer));
  let bound: { host: string; port: number };
  try {
    bound = await server.listen('::1', 0);
  } catch (err) {
    t.skip(`no IPv6 loopback here: ${(err as Error).message}`);
    return;
  }
  assert.equal(bound.host, '::1');
  const c = client(t, `[::1]:${bound.port}`);
  assert.equal((await c.call('peer', {})).body, peer);
  assert.match(peer, /^\[::1\]:\d+$/);
});

test('round trip: a body and a 4 MiB payload come back byte for byte', async (t) => {
  const { server, address } = await startServer(t);
  let seenPeer = '';
  server.handle('inspect', async (body, ctx) => {
    seenPeer = ctx.peer;
    return { body, length: ctx.payload?.length ?? -1 };
  });
  const c = client(t, address);
  const payload = randomBytes(4 * MiB);
  const body = { path: '/a/b', chunk: [12, 3], tag: Buffer.from([1, 2, 3]), nested: { ok: true, n: null } };
  const res = await c.call<typeof body>('echo', body, { payload });
  assert.deepEqual(res.body, body);
  assert.ok(res.payload !== undefined && res.payload.equals(payload));
  const inspected = await c.call('inspect', 'plain', { payload: payload.subarray(0, 10) });
  assert.deepEqual(inspected, { body: { body: 'plain', length: 10 }, payload: undefined });
  assert.match(seenPeer, /^127\.0\.0\.1:\d+$/);
  assert.deepEqual(await c.call('echo', undefined), { body: undefined, payload: undefined });
});

test('a payload in pieces arrives as one, in order; its size counts every piece against frameBytesMax', async (t) => {
  const { address } = await startServer(t);
  const c = client(t, address);
  const pieces = [randomBytes(65_536), randomBytes(1), Buffer.alloc(0), randomBytes(300_000)];
  const res = await c.call('echo', { n: 1 }, { payload: pieces });
  assert.ok(res.payload !== undefined && res.payload.equals(Buffer.concat(pieces)));
  const small = new RpcClient(address, { frameBytesMax: 100_000 });
  t.after(() => small.close());
  await assert.rejects(small.call('echo', {}, { payload: [randomBytes(60_000), randomBytes(60_000)] }), (err: RpcError) => err.code === RpcErrorCode.FrameTooLarge);
});

test('a plain { body, payload } object is a body: only reply() sends a raw payload', async (t) => {
  const { server, address } = await startServer(t);
  server.handle('plain', async () => ({ body: 1, payload: new Uint8Array([9]) }));
  const res = await client(t, address).call('plain', null);
  assert.deepEqual(res, { body: { body: 1, payload: Buffer.from([9]) }, payload: undefined });
});

test('1,000 concurrent calls share one connection and each gets its own answer', async (t) => {
  const { server, address } = await startServer(t);
  const peers = new Set<string>();
  server.handle('square', async (body, ctx) => {
    peers.add(ctx.peer);
    await new Promise((resolve) => setImmediate(resolve));
    return (body as number) ** 2;
  });
  const c = client(t, address);
  const results = await Promise.all(Array.from({ length: 1000 }, (_, i) => c.call<number>('square', i)));
  results.forEach((r, i) => assert.equal(r.body, i * i));
  assert.equal(peers.size, 1);
});

test('errors carry their code, message and details; others become CAIRN_INTERNAL and are logged', async (t) => {
  const { server, address, logs } = await startServer(t);
  server.handle('notLeader', async () => {
    throw Object.assign(new Error('not the leader'), { code: 'NOT_LEADER', details: { leader: '10.0.0.2:7000', term: 4 } });
  });
  server.handle('stat', async () => {
    throw Object.assign(new Error('no such file: /a'), { code: 'ENOENT' });
  });
  server.handle('bug', async () => {
    throw new TypeError('cannot read properties of undefined');
  });
  server.handle('syncThrow', (() => {
    throw Object.assign(new Error('thrown synchronously'), { code: 'EXISTS' });
  }) as never);
  const c = client(t, address);
  await assert.rejects(
    c.call('notLeader', {}),
    hasCode('NOT_LEADER', (e) => {
      assert.equal(e.message, 'not the leader');
      assert.deepEqual(e.details, { leader: '10.0.0.2:7000', term: 4 });
    }),
  );
  await assert.rejects(c.call('stat', {}), hasCode('ENOENT', (e) => assert.deepEqual(e.details, {})));
  await assert.rejects(c.call('syncThrow', {}), hasCode('EXISTS'));
  await assert.rejects(c.call('bug', {}), hasCode(RpcErrorCode.Internal, (e) => assert.doesNotMatch(e.message, /undefined/)));
  assert.ok(logs.some((l) => l.startsWith('error ') && l.includes('without an error code')));
  await assert.rejects(c.call('nope', {}), hasCode(RpcErrorCode.UnknownMethod));
  assert.equal((await c.call('echo', 'still fine')).body, 'still fine');
});

test('deadline: the caller gets CAIRN_TIMEOUT and the handler signal is aborted', async (t) => {
  const { server, address } = await startServer(t);
  const hang = hanging();
  server.handle('hang', hang.handler);
  const c = client(t, address);
  const started = performance.now();
  await assert.rejects(c.call('hang', {}, { timeoutMs: 150 }), hasCode(RpcErrorCode.Timeout));
  assert.ok(performance.now() - started >= 145);
  const ctx = await hang.started;
  const reason = await abortReason(ctx.signal);
  assert.ok(reason instanceof RpcError && reason.code === RpcErrorCode.Timeout);
  assert.equal(c.inflight, 0);
});

test('cancellation: aborting the signal rejects with CAIRN_CANCELLED and aborts the handler', async (t) => {
  const { server, address } = await startServer(t);
  const hang = hanging();
  server.handle('hang', hang.handler);
  const c = client(t, address);
  const ac = new AbortController();
  const call = c.call('hang', {}, { signal: ac.signal });
  const ctx = await hang.started;
  ac.abort();
  await assert.rejects(call, hasCode(RpcErrorCode.Cancelled));
  const reason = await abortReason(ctx.signal);
  assert.ok(reason instanceof RpcError && reason.code === RpcErrorCode.Cancelled);
  await assert.rejects(c.call('hang', {}, { signal: AbortSignal.abort() }), hasCode(RpcErrorCode.Cancelled));
  assert.equal(hang.calls.length, 1, 'a call cancelled before sending never reaches the server');
});

test('server restart: calls in flight fail with CAIRN_UNAVAILABLE, then the client reconnects', async (t) => {
  const first = await startServer(t);
  const hang = hanging();
  first.server.handle('hang', hang.handler);
  const c = client(t, first.address);
  assert.equal((await c.call('echo', 1)).body, 1);
  const inFlight = c.call('hang', {});
  await hang.started;
  await first.server.close();
  await assert.rejects(inFlight, hasCode(RpcErrorCode.Unavailable));
  await assert.rejects(c.call('echo', 2), hasCode(RpcErrorCode.Unavailable, (e) => assert.match(e.message, /ECONNREFUSED/)));
  await startServer(t, {}, first.port);
  assert.equal((await c.call('echo', 3)).body, 3);
});

test('reconnect attempts back off exponentially up to the bound', async (t) => {
  const c = client(t, `127.0.0.1:${await freePort()}`, { reconnectBackoffMs: { min: 40, max: 80 } });
  const durations: number[] = [];
  for (let i = 0; i < 4; i++) {
    const started = performance.now();
    await assert.rejects(c.call('echo', i), hasCode(RpcErrorCode.Unavailable));
    durations.push(performance.now() - started);
  }
  // Attempt n waits min * 2^(n-1) capped at max, jittered over its upper half: >= 20, then >= 40.
  assert.ok(durations[1] >= 19 && durations[2] >= 39 && durations[3] >= 39, `durations ${durations.map((d) => d.toFixed(0))}`);
  assert.ok(Math.max(...durations) < 1000, `durations ${durations.map((d) => d.toFixed(0))}`);
});

test('calls with deadlines shorter than the backoff still reconnect once the backoff has passed', async (t) => {
  const port = await freePort();
  const c = client(t, `127.0.0.1:${port}`, { reconnectBackoffMs: { min: 400, max: 400 } });
  await assert.rejects(c.call('echo', 0), hasCode(RpcErrorCode.Unavailable)); // the next attempt waits 200-400 ms
  await startServer(t, {}, port);
  // Each call gives up after 50 ms; the backoff must run from the failure, not restart per call.
  let answered = false;
  for (let i = 0; i < 40 && !answered; i++) {
    answered = await c.call('echo', i, { timeoutMs: 50 }).then(() => true, () => false);
    if (!answered) await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(answered, 'a call got through within 40 short-deadline tries');
});

test('a call made while a reconnect is pending waits for it, up to its own deadline', async (t) => {
  const port = await freePort();
  const c = client(t, `127.0.0.1:${port}`, { reconnectBackoffMs: { min: 300, max: 300 } });
  await assert.rejects(c.call('echo', 0), hasCode(RpcErrorCode.Unavailable));
  // The next attempt is 150..300 ms away: a short deadline expires while waiting for it.
  await assert.rejects(c.call('echo', 1, { timeoutMs: 20 }), hasCode(RpcErrorCode.Timeout, (e) => assert.match(e.message, /waiting for a connection/)));
  await startServer(t, {}, port);
  assert.equal((await c.call('echo', 2, { timeoutMs: 2000 })).body, 2);
});

test('notify: one-way messages arrive in order, queued while connecting, with no answer sent back', async (t) => {
  const { server, address, logs } = await startServer(t);
  const got: unknown[] = [];
  let payloadBytes = 0;
  server.handle('note', async (body, ctx) => {
    got.push(body);
    payloadBytes += ctx.payload?.length ?? 0;
    return { ignored: true };
  });
  const c = client(t, address);
  for (let i = 0; i < 100; i++) c.notify('note', i, i === 99 ? randomBytes(MiB) : undefined); // before any connection exists
  assert.equal((await c.call('echo', 'after')).body, 'after'); // same connection: the notes went first
  assert.deepEqual(got, Array.from({ length: 100 }, (_, i) => i));
  assert.equal(payloadBytes, MiB);
  assert.equal(c.inflight, 0, 'notes are not calls in flight');
  // A failing or unknown one-way message is logged by the server; the connection serves on.
  server.handle('bad', async () => {
    throw new RpcError(RpcErrorCode.BadRequest, 'not this');
  });
  c.notify('bad', {});
  c.notify('nowhere', {});
  assert.equal((await c.call('echo', 2)).body, 2);
  assert.ok(logs.some((l) => /one-way bad dropped: not this/.test(l)), logs.join('\n'));
  assert.ok(logs.some((l) => /one-way nowhere dropped: unknown method/.test(l)), logs.join('\n'));
  assert.throws(() => c.notify('', {}), hasCode(RpcErrorCode.BadRequest));
});

test('notify: a message to a server that is down is dropped, not queued forever', async (t) => {
  const port = await freePort();
  const c = client(t, `127.0.0.1:${port}`);
  c.notify('note', 'lost');
  await assert.rejects(c.call('echo', 1, { timeoutMs: 2000 }), hasCode(RpcErrorCode.Unavailable));
  const { server } = await startServer(t, {}, port);
  const got: unknown[] = [];
  server.handle('note', async (body) => got.push(body));
  c.notify('note', 'kept');
  for (let i = 0; i < 100 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(got, ['kept']);
});

test('auth: the same secret on both sides lets calls through', async (t) => {
  const { address } = await startServer(t, { secret: 's3cret' });
  const c = client(t, address, { secret: 's3cret' });
  const res = await c.call('echo', 'hi', { payload: Buffer.from('data') });
  assert.equal(res.body, 'hi');
  assert.equal(res.payload?.toString(), 'data');
});

test('auth: a wrong secret fails with CAIRN_UNAUTHENTICATED, runs no handler and does not retry in a loop', async (t) => {
  const { server, address, logs } = await startServer(t, { secret: 's3cret' });
  let ran = 0;
  server.handle('count', async () => ++ran);
  const c = client(t, address, { secret: 'wrong' });
  await assert.rejects(c.call('count', {}), hasCode(RpcErrorCode.Unauthenticated, (e) => assert.match(e.message, /refused the cluster secret/)));
  await assert.rejects(c.call('count', {}), hasCode(RpcErrorCode.Unauthenticated));
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(ran, 0);
  assert.equal(logs.filter((l) => l.includes('failed authentication')).length, 2, 'one attempt per call');
});

test('auth: a client without the secret fails with CAIRN_UNAUTHENTICATED', async (t) => {
  const { server, address } = await startServer(t, { secret: 's3cret' });
  let ran = 0;
  server.handle('count', async () => ++ran);
  const c = client(t, address);
  await assert.rejects(c.call('count', {}), hasCode(RpcErrorCode.Unauthenticated, (e) => assert.match(e.message, /secret/)));
  assert.equal(ran, 0);
});

test('auth: a client with a secret refuses a dev-mode server', async (t) => {
  const { server, address } = await startServer(t);
  let ran = 0;
  server.handle('count', async () => ++ran);
  const c = client(t, address, { secret: 's3cret' });
  await assert.rejects(c.call('count', {}), hasCode(RpcErrorCode.Unauthenticated, (e) => assert.match(e.message, /without a cluster secret/)));
  assert.equal(ran, 0);
});

test('auth is mutual: a server that cannot prove the secret is refused', async (t) => {
  const fake = net.createServer((s) => {
    s.on('error', () => {});
    s.write(frame({ id: 0, kind: 'hello' }, { v: rpcLimits.protocolVersion, nonce: randomBytes(32) }));
    s.once('data', () => s.write(frame({ id: 0, kind: 'auth' }, { proof: randomBytes(32) })));
  });
  t.after(() => fake.close());
  await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
  const c = client(t, `127.0.0.1:${(fake.address() as net.AddressInfo).port}`, { secret: 's3cret' });
  await assert.rejects(c.call('echo', {}), hasCode(RpcErrorCode.Unauthenticated, (e) => assert.match(e.message, /could not prove/)));
});

test('auth: a peer that does not authenticate within authTimeoutMs is disconnected', async (t) => {
  const { port, logs } = await startServer(t, { secret: 's3cret', authTimeoutMs: 100 });
  const s = await rawSocket(t, port);
  await once(s, 'close');
  assert.ok(logs.some((l) => l.includes('did not authenticate in time')));
});

test('limit handshakeFrameBytesMax: before auth, a larger frame closes the connection', async (t) => {
  const { port, address, logs } = await startServer(t, { secret: 's3cret' });
  const s = await rawSocket(t, port);
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(rpcLimits.handshakeFrameBytesMax);
  s.write(prefix);
  await once(s, 'close');
  assert.ok(logs.some((l) => l.includes('protocol violation')));
  assert.equal((await client(t, address, { secret: 's3cret' }).call('echo', 'ok')).body, 'ok');
});

test('limit connectTimeoutMs: a server that never completes the handshake fails the call', async (t) => {
  const silent = net.createServer((s) => s.on('error', () => {}));
  const sockets = new Set<net.Socket>();
  silent.on('connection', (s) => sockets.add(s));
  t.after(() => {
    for (const s of sockets) s.destroy();
    silent.close();
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const c = client(t, `127.0.0.1:${(silent.address() as net.AddressInfo).port}`, { secret: 's3cret', connectTimeoutMs: 100 });
  await assert.rejects(c.call('echo', {}), hasCode(RpcErrorCode.Unavailable, (e) => assert.match(e.message, /timed out after 100 ms/)));
});

test('limit frameBytesMax: an outgoing call above it is rejected locally, before sending', async (t) => {
  const { server, address } = await startServer(t);
  let ran = 0;
  server.handle('count', async () => ++ran);
  const c = client(t, address, { frameBytesMax: MiB });
  await assert.rejects(c.call('count', {}, { payload: new Uint8Array(MiB) }), hasCode(RpcErrorCode.FrameTooLarge, (e) => assert.equal(e.details.frameBytesMax, MiB)));
  await assert.rejects(c.call('count', { blob: Buffer.alloc(MiB) }), hasCode(RpcErrorCode.FrameTooLarge));
  assert.equal(ran, 0);
  assert.equal((await c.call('count', {}, { payload: new Uint8Array(MiB - 1024) })).body, 1);
});

test('limit frameBytesMax: the server closes a connection sending a larger frame and keeps serving others', async (t) => {
  const { address, logs } = await startServer(t, { frameBytesMax: MiB });
  const big = client(t, address, { frameBytesMax: 4 * MiB });
  const other = client(t, address);
  assert.equal((await other.call('echo', 'before')).body, 'before');
  await assert.rejects(big.call('echo', {}, { payload: new Uint8Array(2 * MiB) }), hasCode(RpcErrorCode.Unavailable));
  assert.ok(logs.some((l) => l.includes('protocol violation')));
  assert.equal((await other.call('echo', 'after')).body, 'after');
  assert.equal((await big.call('echo', 'small')).body, 'small', 'the big client reconnects for its next call');
});

test('limit frameBytesMax: a response above the client limit fails the calls on that connection', async (t) => {
  const { server, address } = await startServer(t);
  server.handle('download', async () => reply({}, new Uint8Array(2 * MiB)));
  const c = client(t, address, { frameBytesMax: MiB });
  await assert.rejects(c.call('download', {}), hasCode(RpcErrorCode.Unavailable, (e) => assert.equal(e.details.cause, RpcErrorCode.FrameTooLarge)));
  assert.equal((await c.call('echo', 'next')).body, 'next');
});

test('limit frameBytesMax: a response above the server limit is answered with CAIRN_FRAME_TOO_LARGE', async (t) => {
  const { server, address } = await startServer(t, { frameBytesMax: MiB });
  server.handle('download', async () => reply({}, new Uint8Array(2 * MiB)));
  const c = client(t, address);
  await assert.rejects(c.call('download', {}), hasCode(RpcErrorCode.FrameTooLarge));
  assert.equal((await c.call('echo', 'next')).body, 'next');
});

test('limit inflightMax: calls beyond it are rejected locally with CAIRN_OVERLOADED', async (t) => {
  const { server, address } = await startServer(t);
  const hang = hanging();
  server.handle('hang', hang.handler);
  const c = client(t, address, { inflightMax: 3 });
  const ac = new AbortController();
  const held = [1, 2, 3].map(() => c.call('hang', {}, { signal: ac.signal }));
  await assert.rejects(c.call('echo', {}), hasCode(RpcErrorCode.Overloaded, (e) => assert.equal(e.details.inflightMax, 3)));
  ac.abort();
  for (const p of held) await assert.rejects(p, hasCode(RpcErrorCode.Cancelled));
  assert.equal((await c.call('echo', 'room again')).body, 'room again');
});

test('limit inflightMax default is 1024', () => {
  assert.equal(rpcLimits.inflightMaxDefault, 1024);
  assert.equal(rpcLimits.frameBytesMaxDefault, 64 * MiB);
  assert.equal(rpcLimits.timeoutMsDefault, 10_000);
});

test('limit inflightPerConnectionMax: the server answers CAIRN_OVERLOADED beyond it', async (t) => {
  const { server, address } = await startServer(t, { inflightPerConnectionMax: 2 });
  const gates: (() => void)[] = [];
  server.handle('gate', () => new Promise((resolve) => gates.push(() => resolve('opened'))));
  const c = client(t, address);
  const held = [c.call('gate', {}), c.call('gate', {})];
  await assert.rejects(c.call('echo', {}), hasCode(RpcErrorCode.Overloaded, (e) => assert.equal(e.details.inflightPerConnectionMax, 2)));
  for (const open of gates) open();
  assert.deepEqual((await Promise.all(held)).map((r) => r.body), ['opened', 'opened']);
  assert.equal((await c.call('echo', 'room again')).body, 'room again');
});

test('limit timeoutMsMax: a longer deadline is refused locally', async (t) => {
  const c = client(t, '127.0.0.1:1');
  await assert.rejects(c.call('echo', {}, { timeoutMs: rpcLimits.timeoutMsMax + 1 }), hasCode(RpcErrorCode.BadOption));
  await assert.rejects(c.call('echo', {}, { timeoutMs: 0 }), hasCode(RpcErrorCode.BadOption));
});

test('limit headerBytesMax: a peer announcing a larger header is disconnected', async (t) => {
  const { port, logs } = await startServer(t);
  const s = await rawSocket(t, port);
  const f = Buffer.alloc(12);
  f.writeUInt32BE(8, 0);
  f.writeUInt32BE(rpcLimits.headerBytesMax + 1, 4);
  s.write(f);
  await once(s, 'close');
  assert.ok(logs.some((l) => l.includes('protocol violation')));
});

test('malformed input closes only that connection; the server keeps serving', async (t) => {
  const { port, address, logs } = await startServer(t);
  const c = client(t, address);
  const truncated = frame({ id: 1, kind: 'req', method: 'echo' }, { x: 1 }, Buffer.alloc(100));
  const inputs: [string, Buffer, 'closed-by-server' | 'closed-by-us'][] = [
    ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), 'closed-by-server'],
    ['random bytes', Buffer.concat([Buffer.from([0, 0, 0, 40]), randomBytes(40)]), 'closed-by-server'],
    ['a header that is not msgpack', Buffer.from([0, 0, 0, 9, 0, 0, 0, 1, 0xc1, 0, 0, 0, 0]), 'closed-by-server'],
    ['an unknown kind', frame({ id: 1, kind: 'bogus' }), 'closed-by-server'],
    ['a response sent to the server', frame({ id: 1, kind: 'res' }), 'closed-by-server'],
    ['a hello sent to the server', frame({ id: 0, kind: 'hello' }, { v: 1 }), 'closed-by-server'],
    ['a truncated frame, then close', truncated.subarray(0, truncated.length - 30), 'closed-by-us'],
  ];
  for (const [what, bytes, how] of inputs) {
    const s = await rawSocket(t, port);
    s.write(bytes);
    if (how === 'closed-by-us') s.end();
    await once(s, 'close');
    assert.equal((await c.call('echo', what)).body, what, `still serving after ${what}`);
  }
  assert.equal(logs.filter((l) => l.includes('protocol violation')).length, inputs.length - 1);
});

test('a request with a malformed msgpack body is answered with CAIRN_BAD_REQUEST', async (t) => {
  const { port } = await startServer(t);
  const s = await rawSocket(t, port);
  const header = encodeHeader({ id: 5, kind: 'req', method: 'echo' });
  s.write(Buffer.concat(frameParts(header, Buffer.from([0x92, 0x01]), undefined)));
  let received = '';
  const answered = Promise.withResolvers<void>();
  s.on('data', (d: Buffer) => {
    received += d.toString('latin1');
    if (received.includes(RpcErrorCode.BadRequest)) answered.resolve();
  });
  await answered.promise;
  assert.equal(s.destroyed, false, 'a bad body fails the call, not the connection');
});

test('client.close() rejects calls in flight and calls waiting for a connection with CAIRN_UNAVAILABLE', async (t) => {
  const { server, address } = await startServer(t);
  const hang = hanging();
  server.handle('hang', hang.handler);
  const waiting = new RpcClient(address);
  const beforeConnect = waiting.call('echo', 1);
  waiting.close();
  await assert.rejects(beforeConnect, hasCode(RpcErrorCode.Unavailable));

  const c = new RpcClient(address);
  t.after(() => c.close());
  assert.equal((await c.call('echo', 'up')).body, 'up');
  const inFlight = c.call('hang', {});
  const ctx = await hang.started;
  c.close();
  await assert.rejects(inFlight, hasCode(RpcErrorCode.Unavailable));
  await assert.rejects(c.call('echo', 2), hasCode(RpcErrorCode.Unavailable));
  const reason = await abortReason(ctx.signal);
  assert.ok(reason instanceof RpcError && reason.code === RpcErrorCode.Unavailable, 'the server saw the connection go');
});

test('server.close() aborts running handlers and fails their calls with CAIRN_UNAVAILABLE', async (t) => {
  const { server, address } = await startServer(t);
  const hang = hanging();
  server.handle('hang', hang.handler);
  const c = client(t, address);
  const inFlight = c.call('hang', {});
  const ctx = await hang.started;
  await server.close();
  assert.ok(ctx.signal.aborted);
  await assert.rejects(inFlight, hasCode(RpcErrorCode.Unavailable));
});

test('bad options fail at construction with CAIRN_BAD_OPTION, misuse with CAIRN_INVALID_ARGUMENT', async () => {
  assert.throws(() => new RpcClient('no-port'), hasCode(RpcErrorCode.BadOption));
  assert.throws(() => new RpcClient('127.0.0.1:1', { secret: '' }), hasCode(RpcErrorCode.BadOption));
  assert.throws(() => new RpcServer({ inflightPerConnectionMax: 0 }), hasCode(RpcErrorCode.BadOption));
  assert.throws(() => new RpcServer().handle('', async () => 1), hasCode(RpcErrorCode.InvalidArgument));
  const server = new RpcServer();
  server.handle('m', async () => 1);
  assert.throws(() => server.handle('m', async () => 2), hasCode(RpcErrorCode.InvalidArgument));
  await server.close();
  await assert.rejects(server.listen('127.0.0.1', 0), hasCode(RpcErrorCode.InvalidArgument));
});

test('reply onSent: called once the payload is written, and also when the reply is dropped or refused', async (t) => {
  const { server, address } = await startServer(t, { frameBytesMax: 4 * MiB });
  const events: string[] = [];
  const payload = randomBytes(3 * MiB);
  server.handle('download', async (body) => reply({}, (body as { big: boolean }).big ? new Uint8Array(5 * MiB) : payload, () => events.push(`sent ${String((body as { tag: string }).tag)}`)));
  const { promise: release, resolve: go } = Promise.withResolvers<void>();
  server.handle('slow', async () => {
    await release;
    return reply({}, payload, () => events.push('sent slow'));
  });
  const c = client(t, address, { frameBytesMax: 8 * MiB });
  const r = await c.call('download', { tag: 'a', big: false });
  assert.ok(r.payload?.equals(payload), 'the bytes arrive intact');
  assert.deepEqual(events, ['sent a']);
  // Refused by the server's own limit: an error goes out instead, and the buffer is given back.
  await assert.rejects(c.call('download', { tag: 'b', big: true }), hasCode(RpcErrorCode.FrameTooLarge));
  assert.deepEqual(events, ['sent a', 'sent b']);
  // The caller gave up before the handler answered: nothing is sent, the buffer is given back.
  await assert.rejects(c.call('slow', {}, { timeoutMs: 50 }), hasCode(RpcErrorCode.Timeout));
  go();
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.deepEqual(events, ['sent a', 'sent b', 'sent slow']);
});

/** A raw socket that has passed the handshake with `secret`, for tests of what an authenticated peer may do. */
async function authenticatedSocket(t: TestContext, port: number, secret: string): Promise<net.Socket> {
  const s = net.connect({ host: '127.0.0.1', port });
  s.on('error', () => {});
  t.after(() => s.destroy());
  const frames: Frame[] = [];
  const decoder = new FrameDecoder(1 << 20, (raw) => frames.push(decodeFrame(raw)));
  s.on('data', (b: Buffer) => decoder.push(b));
  const next = async (): Promise<Frame> => {
    while (frames.length === 0) await once(s, 'data');
    return frames.shift()!;
  };
  const hello = decodeBody((await next()).body) as { nonce: Uint8Array };
  const clientNonce = randomBytes(32);
  s.write(frame({ id: 0, kind: 'auth' }, { nonce: clientNonce, proof: clientProof(secret, hello.nonce, clientNonce) }));
  const answer = await next();
  assert.equal(answer.header.kind, 'auth');
  assert.equal(answer.header.error, undefined, 'the handshake passed');
  return s;
}

test('limit frameStallMs: an authenticated peer that sends half a frame and stalls is cut off', async (t) => {
  const { port, logs } = await startServer(t, { secret: 'stall', frameStallMs: 200 });
  const s = await authenticatedSocket(t, port, 'stall');
  const whole = frame({ id: 1, kind: 'req', method: 'echo', timeoutMs: 5_000 }, 'x', randomBytes(1000));
  const began = performance.now();
  s.write(whole.subarray(0, 500));
  await once(s, 'close');
  const took = performance.now() - began;
  assert.ok(took >= 200 && took < 5_000, `closed after ${Math.round(took)} ms`);
  assert.ok(logs.some((l) => /stalled in the middle of a frame/.test(l)), logs.join('\n'));
});

test('limit idleTimeoutMs: a connection with nothing running is closed when idle, and the client reconnects for its next call', async (t) => {
  // Margins wide enough for a loaded machine: the first call must reach the server well within the timeout.
  const { address, server } = await startServer(t, { secret: 'idle', idleTimeoutMs: 1_500 });
  const { promise: release, resolve: go } = Promise.withResolvers<void>();
  server.handle('slow', async () => {
    await release;
    return 'done';
  });
  const c = client(t, address, { secret: 'idle' });
  // A call that runs longer than the idle timeout keeps its connection.
  const slow = c.call('slow', {}, { timeoutMs: 5_000 });
  await new Promise((r) => setTimeout(r, 2_500));
  go();
  assert.equal((await slow).body, 'done');
  const conns = (): number => (server as unknown as { connections: Set<unknown> }).connections.size;
  await waitUntil(() => conns() === 0, 'the idle connection to close', 10_000);
  assert.equal((await c.call('echo', 'again')).body, 'again');
});

test("limit idleTimeoutMs: a request crossing the server's idle close (its 'bye') is sent again on a new connection, once", async (t) => {
  // A fake server in dev mode: its first connection reads one request, says 'bye' without
  // answering it and closes, as an idle close that lost the race does; later connections answer.
  const seen: string[] = [];
  let connections = 0;
  const fake = net.createServer((s) => {
    const n = ++connections;
    s.on('error', () => {});
    s.write(frame({ id: 0, kind: 'hello' }, { v: rpcLimits.protocolVersion }));
    const decoder = new FrameDecoder(rpcLimits.frameBytesMaxDefault, (raw) => {
      const f = decodeFrame(raw);
      seen.push(`${n}:${String(decodeBody(f.body))}`);
      if (n === 1) s.end(frame({ id: 0, kind: 'bye' }));
      else s.write(frame({ id: f.header.id, kind: 'res' }, `answer to ${String(decodeBody(f.body))}`));
    });
    s.on('data', (d: Buffer) => decoder.push(d));
  });
  t.after(() => fake.close());
  await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
  const c = client(t, `127.0.0.1:${(fake.address() as net.AddressInfo).port}`);
  assert.equal((await c.call('echo', 'first')).body, 'answer to first');
  assert.deepEqual(seen, ['1:first', '2:first']);
  assert.equal(connections, 2);
});

async function waitUntil(cond: () => boolean, what: string, ms: number): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('receiveBuffers: a large response arrives in a pooled buffer with its release; released, the next one reuses it', async (t) => {
  const { address } = await startServer(t);
  const pool = new BufferPool({ idleBytesMax: 16 * MiB, classBytesMax: 8 * MiB, granularityBytes: 64 * 1024 });
  const c = client(t, address, { receiveBuffers: pool });
  const a = randomBytes(4 * MiB);
  const first = await c.call('echo', undefined, { payload: a });
  assert.ok(first.payload?.equals(a));
  assert.equal(typeof first.release, 'function');
  const lent = first.payload!.buffer;
  first.release!();
  const b = randomBytes(4 * MiB);
  const second = await c.call('echo', undefined, { payload: b });
  assert.equal(second.payload?.buffer, lent, 'the released buffer received the next response');
  assert.ok(second.payload?.equals(b));
  // Not released: the next response gets a buffer of its own, and this one keeps its bytes.
  const third = await c.call('echo', undefined, { payload: a });
  assert.notEqual(third.payload?.buffer, lent);
  assert.ok(second.payload?.equals(b) && third.payload?.equals(a));
  const small = await c.call('echo', undefined, { payload: Buffer.from('small') });
  assert.equal(small.release, undefined, 'small responses are not pooled');
});

test('receive: a large request arrives in a pooled buffer with recyclePayload; recycled, the next one reuses it; not recycled, never', async (t) => {
  const pool = new BufferPool({ idleBytesMax: 16 * MiB, classBytesMax: 8 * MiB, granularityBytes: 64 * 1024 });
  const { server, address } = await startServer(t, { receive: { pool, bytesMin: 64 * 1024 } });
  const seen: { payload: Buffer | undefined; copy: Buffer | undefined; recycle: (() => void) | undefined }[] = [];
  server.handle('keep', async (_body, ctx) => {
    seen.push({ payload: ctx.payload, copy: ctx.payload === undefined ? undefined : Buffer.from(ctx.payload), recycle: ctx.recyclePayload });
    return ctx.payload?.length ?? 0;
  });
  const c = client(t, address);
  const a = randomBytes(4 * MiB);
  assert.equal((await c.call('keep', undefined, { payload: a })).body, a.length);
  assert.ok(seen[0].payload?.equals(a));
  assert.equal(typeof seen[0].recycle, 'function');
  // Kept (not recycled): the next request gets a buffer of its own, and this one keeps its bytes.
  const b = randomBytes(4 * MiB);
  await c.call('keep', undefined, { payload: b });
  assert.notEqual(seen[1].payload?.buffer, seen[0].payload?.buffer);
  assert.ok(seen[0].payload?.equals(a) && seen[1].payload?.equals(b));
  // Recycled (twice: the second does nothing): the next request is received into it.
  const lent = seen[1].payload!.buffer;
  seen[1].recycle!();
  seen[1].recycle!();
  await c.call('keep', undefined, { payload: a });
  assert.equal(seen[2].payload?.buffer, lent, 'the recycled buffer received the next request');
  assert.ok(seen[2].copy?.equals(a));
  await c.call('keep', undefined, { payload: b });
  assert.notEqual(seen[3].payload?.buffer, lent, 'a buffer recycled twice is handed out once');
  // A request refused before any handler saw it gives its buffer back at once.
  const idle = pool.idleBytesNow;
  await assert.rejects(c.call('nope', undefined, { payload: randomBytes(MiB) }), hasCode(RpcErrorCode.UnknownMethod));
  assert.equal(pool.idleBytesNow, idle + MiB + 64 * 1024);
  await c.call('keep', undefined, { payload: Buffer.from('small') });
  assert.equal(seen[4].recycle, undefined, 'small requests are not pooled');
});
