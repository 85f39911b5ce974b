// The RPC server's overload limits (src/rpc/server.ts, request-budget.ts, the decoder's admission):
// connections in all and per peer address, and the bytes of clients' requests held at once (a
// request waits for room, its connection unread, then is refused). Each refuses with
// CAIRN_OVERLOADED, runs no handler for what it refused, and keeps serving afterwards.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import { RpcClient, RpcError, RpcErrorCode, RpcServer, reply, rpcLimits, type RpcClientOptions, type RpcServerOptions } from '../../src/rpc/index.ts';
import { FrameDecoder, decodeFrame, decodeFrameHead, encodeBody, encodeHeader, frameParts, type FrameAdmission } from '../../src/rpc/frame.ts';
import { RequestBudget } from '../../src/rpc/request-budget.ts';

const KiB = 1024;
const MiB = 2 ** 20;

async function startServer(t: TestContext, opts: RpcServerOptions = {}): Promise<{ server: RpcServer; address: string; port: number }> {
  const server = new RpcServer({ log: () => undefined, ...opts });
  server.handle('echo', async (body, ctx) => reply(body, ctx.payload));
  t.after(() => server.close());
  const addr = await server.listen('127.0.0.1', 0);
  return { server, address: `${addr.host}:${addr.port}`, port: addr.port };
}

function client(t: TestContext, address: string, opts?: RpcClientOptions): RpcClient {
  const c = new RpcClient(address, { reconnectBackoffMs: { min: 10, max: 50 }, ...opts });
  t.after(() => c.close());
  return c;
}

function overloaded(check?: (err: RpcError) => void): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof RpcError, `expected an RpcError, got ${String(err)}`);
    assert.equal(err.code, RpcErrorCode.Overloaded, err.message);
    check?.(err);
    return true;
  };
}

async function until(what: string, cond: () => boolean, deadlineMs = 5_000): Promise<void> {
  const end = performance.now() + deadlineMs;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The first frame a raw socket receives from the server (its hello). */
async function firstFrame(socket: net.Socket): Promise<ReturnType<typeof decodeFrame>> {
  const { promise, resolve } = Promise.withResolvers<ReturnType<typeof decodeFrame>>();
  const decoder = new FrameDecoder(MiB, (raw) => resolve(decodeFrame(raw)));
  socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  return promise;
}

// ---- the budget and the decoder ----------------------------------------------------------------

test('RequestBudget: takes what fits; a waiter in line goes first when room comes back; a release beyond what is held is a broken invariant', () => {
  const b = new RequestBudget(100);
  assert.equal(b.tryTake(160), true, 'more than the whole budget goes when nothing is held');
  assert.equal(b.tryTake(1), false);
  b.release(160);
  assert.equal(b.tryTake(60), true);
  const order: string[] = [];
  const waiter = (name: string, bytes: number): { retry(): void } => {
    const w = { retry: () => (b.tryTake(bytes, w) ? order.push(name) : undefined) };
    return w;
  };
  const big = waiter('big', 80);
  const small = waiter('small', 10);
  assert.equal(b.tryTake(80, big), false);
  b.wait(big);
  // Room for the small one, but the big one waits first: no passing in line.
  assert.equal(b.tryTake(10, small), false);
  b.wait(small);
  assert.equal(b.waiting, 2);
  b.release(60);
  assert.deepEqual(order, ['big', 'small']);
  assert.equal(b.bytesHeld, 90);
  assert.equal(b.waiting, 0);
  // One that gives up lets the next go.
  const c = waiter('c', 50);
  const d = waiter('d', 5);
  assert.equal(b.tryTake(50, c), false);
  b.wait(c);
  b.wait(d);
  b.leave(c);
  assert.deepEqual(order, ['big', 'small', 'd']);
  b.release(95);
  assert.equal(b.bytesHeld, 0);
  assert.throws(() => b.release(1), /invariant violated/);
});

function frameOf(id: number, payloadBytes: number, method = 'echo'): Buffer {
  return Buffer.concat(frameParts(encodeHeader({ id, kind: 'req', method }), encodeBody({ id }), Buffer.alloc(payloadBytes, id)));
}

test('decoder admission: decided on the header; a skipped frame leaves its header and the frames after it decode', () => {
  const stream = Buffer.concat([frameOf(1, 100), frameOf(2, 50_000), frameOf(3, 100)]);
  for (const pieceBytes of [stream.length, 7, 4096]) {
    const delivered: number[] = [];
    const refused: number[] = [];
    let held = 0;
    const admission: FrameAdmission = {
      decide: (frameBytes, head) => {
        assert.equal(decodeFrameHead(head).method, 'echo');
        if (frameBytes > 1000) return 'skip';
        held += frameBytes;
        return { release: () => (held -= frameBytes) };
      },
      onRefused: (head) => refused.push(decodeFrameHead(head).id),
    };
    const decoder = new FrameDecoder(MiB, (raw, release) => {
      delivered.push(decodeFrame(raw).header.id);
      release?.();
    });
    decoder.admission = admission;
    for (let at = 0; at < stream.length; at += pieceBytes) decoder.push(stream.subarray(at, at + pieceBytes));
    assert.deepEqual(delivered, [1, 3], `pieces of ${pieceBytes} bytes`);
    assert.deepEqual(refused, [2]);
    assert.equal(held, 0);
  }
});

test('decoder admission: a frame told to wait holds back what follows, pushed or not, until a retry lets it in', () => {
  const stream = Buffer.concat([frameOf(1, 10), frameOf(2, 3000), frameOf(3, 10), frameOf(4, 10)]);
  let room = false;
  const delivered: number[] = [];
  const decoder = new FrameDecoder(MiB, (raw) => delivered.push(decodeFrame(raw).header.id));
  decoder.admission = { decide: (frameBytes) => (frameBytes < 1000 || room ? { release: () => undefined } : 'wait'), onRefused: () => assert.fail('nothing skipped') };
  const cut = frameOf(1, 10).length + 2000;
  decoder.push(stream.subarray(0, cut));
  assert.equal(decoder.waiting, true);
  decoder.push(stream.subarray(cut)); // arrived before the owner paused the socket
  assert.deepEqual(delivered, [1]);
  decoder.retry();
  assert.equal(decoder.waiting, true, 'still no room');
  room = true;
  decoder.retry();
  assert.equal(decoder.waiting, false);
  assert.deepEqual(delivered, [1, 2, 3, 4]);
});

test('decoder admission: stopping in the middle of a taken frame gives its bytes back', () => {
  let held = 0;
  const decoder = new FrameDecoder(MiB, () => assert.fail('no frame is whole'));
  decoder.admission = {
    decide: (frameBytes) => {
      held += frameBytes;
      return { release: () => (held -= frameBytes) };
    },
    onRefused: () => assert.fail('nothing refused'),
  };
  const whole = frameOf(1, 10_000);
  decoder.push(whole.subarray(0, 5_000));
  assert.equal(held, whole.length);
  decoder.stop();
  assert.equal(held, 0);
});

// ---- connections -------------------------------------------------------------------------------

test('limit connectionsMax: a connection beyond it is refused with CAIRN_OVERLOADED; the others keep working, and a freed place is taken', async (t) => {
  const { server, address } = await startServer(t, { connectionsMax: 2 });
  const a = client(t, address);
  const b = client(t, address);
  assert.equal((await a.call('echo', 'a')).body, 'a');
  assert.equal((await b.call('echo', 'b')).body, 'b');
  const c = client(t, address);
  await assert.rejects(c.call('echo', 'c'), overloaded((e) => assert.equal(e.details.connectionsMax, 2)));
  assert.equal(server.stats().connectionsRefused, 1);
  assert.equal((await a.call('echo', 'still a')).body, 'still a');
  b.close();
  await until('the server to see b close', () => server.stats().connections === 1);
  assert.equal((await c.call('echo', 'c again')).body, 'c again');
});

test('limit connectionsMax: with a cluster secret the refusal arrives before the handshake, with its code', async (t) => {
  const secret = 'limits-secret';
  const { server, address } = await startServer(t, { connectionsMax: 1, secret });
  const a = client(t, address, { secret });
  assert.equal((await a.call('echo', 1)).body, 1);
  const b = client(t, address, { secret });
  await assert.rejects(b.call('echo', 2), overloaded());
  assert.equal(server.stats().connectionsRefused, 1);
  assert.equal((await a.call('echo', 3)).body, 3);
});

test('limit connectionsPerAddressMax: one address is refused beyond it, another address is not', async (t) => {
  const { server, address, port } = await startServer(t, { connectionsPerAddressMax: 2, connectionsMax: 10 });
  const open = [client(t, address), client(t, address)];
  for (const c of open) assert.equal((await c.call('echo', 'in')).body, 'in');
  const third = client(t, address);
  await assert.rejects(third.call('echo', 'over'), overloaded((e) => assert.equal(e.details.connectionsPerAddressMax, 2)));
  // 127.0.0.2 is loopback too on Linux: another peer address, with places of its own.
  const other = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
  other.on('error', () => undefined);
  t.after(() => other.destroy());
  const hello = await firstFrame(other);
  assert.equal(hello.header.kind, 'hello');
  assert.equal(hello.header.error, undefined);
  await until('the other address to count', () => server.stats().connections === 3);
  // A raw refused connection sees the refusal in its hello, then the server closes it.
  const refusedSocket = net.connect({ host: '127.0.0.1', port });
  refusedSocket.on('error', () => undefined);
  t.after(() => refusedSocket.destroy());
  const refusal = await firstFrame(refusedSocket);
  assert.equal(refusal.header.error?.code, RpcErrorCode.Overloaded);
  await once(refusedSocket, 'close');
  assert.equal(server.stats().connectionsRefused, 2);
});

// ---- bytes of requests -------------------------------------------------------------------------

test('limit requestBytesMax: a request that does not fit waits, unread, then is answered CAIRN_OVERLOADED without running its handler; held bytes never pass the bound', async (t) => {
  const requestBytesMax = 2 * MiB;
  const { server, address } = await startServer(t, { frameBytesMax: MiB, requestBytesMax, admissionWaitMs: 100 });
  const gates: (() => void)[] = [];
  let runs = 0;
  server.handle('hold', async (_body, ctx) => {
    runs++;
    await new Promise<void>((resolve) => gates.push(resolve));
    return ctx.payload?.length ?? 0;
  });
  let heldMax = 0;
  const sampler = setInterval(() => (heldMax = Math.max(heldMax, server.stats().requestBytesHeld)), 1);
  t.after(() => clearInterval(sampler));
  const big = Buffer.alloc(900 * KiB, 1);
  const c = client(t, address);
  const held = [c.call('hold', {}, { payload: big }), c.call('hold', {}, { payload: big })];
  await until('two requests held', () => runs === 2);
  assert.ok(server.stats().requestBytesHeld > 2 * big.length);
  // From another connection too: the budget is the server's, not the connection's.
  const other = client(t, address);
  const started = performance.now();
  await assert.rejects(other.call('hold', {}, { payload: big }), overloaded((e) => assert.equal(e.details.requestBytesMax, requestBytesMax)));
  assert.ok(performance.now() - started >= 90, 'it waited for room first');
  await assert.rejects(c.call('hold', {}, { payload: big }), overloaded());
  assert.equal(runs, 2, 'no handler ran for a refused request');
  assert.equal(server.stats().requestsRefused, 2);
  assert.equal(server.stats().connectionsWaiting, 0);
  // Small requests still fit beside the held ones.
  assert.equal((await other.call('echo', 'small')).body, 'small');
  for (const open of gates.splice(0)) open();
  assert.deepEqual((await Promise.all(held)).map((r) => r.body), [big.length, big.length]);
  await until('the held bytes to be given back', () => server.stats().requestBytesHeld === 0);
  clearInterval(sampler);
  assert.ok(heldMax <= requestBytesMax, `held ${heldMax} bytes, the bound is ${requestBytesMax}`);
});

test('limit requestBytesMax: a waiting request gets in when room comes back within the wait, and internal methods never wait', async (t) => {
  const { server, address } = await startServer(t, { frameBytesMax: MiB, requestBytesMax: 2 * MiB, admissionWaitMs: 30_000 });
  const gates: (() => void)[] = [];
  server.handle('hold', async (_body, ctx) => {
    await new Promise<void>((resolve) => gates.push(resolve));
    return ctx.payload?.length ?? 0;
  });
  server.handle('peer', async (_body, ctx) => ctx.payload?.length ?? 0, { internal: true });
  const big = Buffer.alloc(900 * KiB, 2);
  const a = client(t, address);
  const first = [a.call('hold', {}, { payload: big }), a.call('hold', {}, { payload: big })];
  await until('two requests held', () => gates.length === 2);
  const b = client(t, address);
  const third = b.call('hold', {}, { payload: big });
  await until('the third to wait', () => server.stats().connectionsWaiting === 1);
  // A peer's request passes: it is not counted, and waits for nothing.
  const peer = client(t, address);
  assert.equal((await peer.call('peer', {}, { payload: big })).body, big.length);
  assert.equal(server.stats().connectionsWaiting, 1);
  gates[0]();
  await until('the third to run', () => gates.length === 3);
  assert.equal(server.stats().connectionsWaiting, 0);
  for (const open of gates.splice(1)) open();
  assert.deepEqual((await Promise.all([...first, third])).map((r) => r.body), [big.length, big.length, big.length]);
  assert.equal(server.stats().requestsRefused, 0);
  assert.equal(server.stats().internalBytesHeld, 0);
});

test('limit requestBytesMax: many concurrent writers are served or refused, every one answered, and held bytes stay under the bound', async (t) => {
  const requestBytesMax = 4 * MiB;
  const { server, address } = await startServer(t, { frameBytesMax: MiB, requestBytesMax, admissionWaitMs: 50 });
  server.handle('slow', async (_body, ctx) => {
    await new Promise((r) => setTimeout(r, 200));
    return ctx.payload?.length ?? 0;
  });
  let heldMax = 0;
  const sampler = setInterval(() => (heldMax = Math.max(heldMax, server.stats().requestBytesHeld)), 1);
  t.after(() => clearInterval(sampler));
  const payload = Buffer.alloc(512 * KiB, 7);
  const clients = Array.from({ length: 32 }, () => client(t, address));
  const outcomes = await Promise.all(clients.map((c) => c.call('slow', {}, { payload }).then(() => 'ok', (e: RpcError) => e.code)));
  clearInterval(sampler);
  const ok = outcomes.filter((o) => o === 'ok').length;
  const refused = outcomes.filter((o) => o === RpcErrorCode.Overloaded).length;
  assert.equal(ok + refused, clients.length, `only answers, no other errors: ${outcomes.join(',')}`);
  assert.ok(refused > 0 && ok > 0, `${ok} served, ${refused} refused`);
  assert.ok(heldMax <= requestBytesMax, `held ${heldMax} bytes, the bound is ${requestBytesMax}`);
  assert.equal(server.stats().requestBytesHeld, 0);
});

test('limit requestBytesMax: one-way messages that find no room are dropped and counted; a connection closed mid-frame gives its bytes back', async (t) => {
  const { server, address, port } = await startServer(t, { frameBytesMax: MiB, requestBytesMax: MiB, admissionWaitMs: 50 });
  const gates: (() => void)[] = [];
  server.handle('hold', () => new Promise((resolve) => gates.push(() => resolve(0))));
  let messages = 0;
  server.handle('note', async () => void messages++);
  const c = client(t, address);
  const held = c.call('hold', {}, { payload: Buffer.alloc(900 * KiB) });
  await until('the request to be held', () => gates.length === 1);
  c.notify('note', {}, Buffer.alloc(200 * KiB));
  c.notify('note', {});
  await until('the small message', () => messages === 1);
  assert.equal(server.stats().messagesDropped, 1);
  gates[0]();
  await held;
  // Half a frame, then the connection goes: the bytes it took come back.
  const raw = net.connect({ host: '127.0.0.1', port });
  raw.on('error', () => undefined);
  t.after(() => raw.destroy());
  await once(raw, 'connect');
  const whole = frameOf(1, 500 * KiB);
  raw.write(whole.subarray(0, 100 * KiB));
  await until('the frame to be taken', () => server.stats().requestBytesHeld === whole.length);
  raw.destroy();
  await until('its bytes to come back', () => server.stats().requestBytesHeld === 0);
  assert.equal((await c.call('echo', 'still serving')).body, 'still serving');
});

test('bad limits fail at construction with CAIRN_BAD_OPTION', () => {
  const bad = (opts: RpcServerOptions): void => assert.throws(() => new RpcServer(opts), (e: unknown) => (e as RpcError).code === RpcErrorCode.BadOption);
  bad({ connectionsMax: 0 });
  bad({ connectionsPerAddressMax: -1 });
  bad({ requestBytesMax: 0 });
  bad({ admissionWaitMs: 0 });
  assert.equal(new RpcServer().stats().requestBytesMax, rpcLimits.requestBytesMaxDefault);
});

test('limit sendBacklogBytesMax: a peer that sends requests but reads no answers is not read either, until it reads again', async (t) => {
  const { server, port } = await startServer(t, { sendBacklogBytesMax: 2 * MiB });
  let answered = 0;
  server.handle('big', async () => {
    answered++;
    return reply({}, Buffer.alloc(MiB));
  });
  const raw = net.connect({ host: '127.0.0.1', port });
  raw.on('error', () => undefined);
  t.after(() => raw.destroy());
  await once(raw, 'connect');
  raw.pause(); // reads nothing: the answers pile up in the server
  const requests = 200;
  for (let id = 1; id <= requests; id++) raw.write(frameOf(id, 0, 'big'));
  // The kernel's buffers on both sides hold some answers; beyond them the server must stop.
  await new Promise((r) => setTimeout(r, 500));
  assert.ok(answered < requests / 2, `${answered} of ${requests} requests were answered to a peer that reads nothing`);
  const paused = answered;
  // Reading again brings every answer.
  let frames = 0;
  const decoder = new FrameDecoder(4 * MiB, () => frames++);
  raw.on('data', (chunk: Buffer) => decoder.push(chunk));
  raw.resume();
  await until('every answer', () => frames === requests + 1, 20_000); // and the hello
  assert.ok(answered > paused);
});

test('limit sendBacklogBytesMax: a client drops one-way messages to a server that reads nothing, and counts them', async (t) => {
  // A server that accepts and never reads: the client's writes fill the kernel and then its queue.
  const silent = net.createServer((s) => s.pause());
  t.after(() => silent.close());
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  const c = client(t, `127.0.0.1:${(silent.address() as net.AddressInfo).port}`, { sendBacklogBytesMax: MiB });
  // Without a secret no handshake is needed: the first call makes the connection ready.
  void c.call('x', {}, { timeoutMs: 60_000 }).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 100));
  for (let i = 0; i < 400; i++) c.notify('note', {}, Buffer.alloc(256 * KiB));
  assert.ok(c.messagesDropped > 0, 'no message was dropped');
  assert.ok(c.messagesDropped < 400, 'every message was dropped');
});
