// The RPC wire format (src/rpc/frame.ts): encoding, incremental decoding over any chunking, zero
// copies of payloads, and rejection of malformed or oversized frames.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { RpcError, RpcErrorCode } from '../../src/rpc/errors.ts';
import { FrameDecoder, decodeBody, decodeFrame, encodeBody, encodeHeader, frameParts, type Frame, type Header } from '../../src/rpc/frame.ts';
import { bodyInlineBytesMax, headerBytesMax } from '../../src/rpc/limits.ts';
import { BufferPool } from '../../src/buffer-pool.ts';

function wire(h: Header, body: unknown, payload?: Uint8Array): Buffer {
  return Buffer.concat(frameParts(encodeHeader(h), encodeBody(body), payload));
}

function decodeAll(chunks: Buffer[], frameBytesMax = 1 << 20): Frame[] {
  const frames: Frame[] = [];
  const d = new FrameDecoder(frameBytesMax, (raw) => frames.push(decodeFrame(raw)));
  for (const c of chunks) d.push(c);
  assert.equal(d.bufferedBytes, 0, 'every byte was delivered');
  return frames;
}

function rpcCode(code: string): (err: unknown) => boolean {
  return (err) => err instanceof RpcError && err.code === code;
}

test('a frame in one chunk decodes to views of that chunk: the payload is not copied', () => {
  const payload = randomBytes(100_000);
  const chunk = wire({ id: 7, kind: 'req', method: 'chunk.write', timeoutMs: 500 }, { chunk: [1, 2], tag: Buffer.from('ab') }, payload);
  const [f] = decodeAll([chunk]);
  assert.deepEqual(f.header, { id: 7, kind: 'req', method: 'chunk.write', timeoutMs: 500 });
  assert.deepEqual(decodeBody(f.body), { chunk: [1, 2], tag: Buffer.from('ab') });
  assert.ok(f.payload?.equals(payload));
  assert.equal(f.payload?.buffer, chunk.buffer, 'payload is a view of the received chunk');
});

test('frames split at every byte boundary, or fed a byte at a time, decode identically', () => {
  const frames = [
    wire({ id: 1, kind: 'req', method: 'a' }, { x: 1 }, Buffer.from('hello')),
    wire({ id: 1, kind: 'res' }, undefined),
    wire({ id: 2, kind: 'res', error: { code: 'ENOENT', message: 'no such file', details: { path: '/a' } } }, undefined),
    wire({ id: 3, kind: 'cancel' }, undefined),
  ];
  const stream = Buffer.concat(frames);
  const expected = decodeAll([stream]);
  assert.equal(expected.length, frames.length);
  for (let cut = 1; cut < stream.length; cut++) {
    assert.deepEqual(decodeAll([stream.subarray(0, cut), stream.subarray(cut)]), expected, `cut at ${cut}`);
  }
  const bytes = Array.from({ length: stream.length }, (_, i) => stream.subarray(i, i + 1));
  assert.deepEqual(decodeAll(bytes), expected);
});

test('a large frame over many chunks is assembled with one copy per byte', () => {
  const payload = randomBytes(3 * 2 ** 20 + 17);
  const stream = wire({ id: 9, kind: 'res' }, { ok: true }, payload);
  const chunks: Buffer[] = [];
  for (let i = 0; i < stream.length; i += 65_536) chunks.push(stream.subarray(i, i + 65_536));
  const [f] = decodeAll(chunks, 8 * 2 ** 20);
  assert.ok(f.payload?.equals(payload));
  assert.equal(f.payload?.buffer.byteLength, stream.length - 4, 'one buffer of exactly the frame size');
});

/** Feeds `stream` the way a socket with `onread` does: each read fills at most `readMax` bytes of the decoder's read target. */
function decodeByReads(stream: Buffer, readMax: number, frameBytesMax = 8 * 2 ** 20): { frames: Frame[]; targets: Buffer[] } {
  const frames: Frame[] = [];
  const targets: Buffer[] = [];
  const d = new FrameDecoder(frameBytesMax, (raw) => frames.push(decodeFrame(raw)));
  for (let at = 0; at < stream.length; ) {
    const target = d.readTarget();
    targets.push(target);
    const n = Math.min(readMax, target.length, stream.length - at);
    stream.copy(target, 0, at, at + n);
    at += n;
    d.received(n);
  }
  assert.equal(d.bufferedBytes, 0, 'every byte was delivered');
  return { frames, targets };
}

test('reads into the decoder targets: a large payload lands in the frame buffer, small frames are copied out of the reused scratch', () => {
  const payload = randomBytes(3 * 2 ** 20 + 17);
  const stream = Buffer.concat([
    wire({ id: 1, kind: 'res' }, { a: 1 }, Buffer.from('small')),
    wire({ id: 2, kind: 'res' }, { ok: true }, payload),
    wire({ id: 3, kind: 'res' }, { b: 2 }),
  ]);
  for (const readMax of [1, 7, 4096, 65_536, 1 << 22]) {
    if (readMax === 1 && stream.length > 1 << 20) continue; // a byte at a time is covered below
    const { frames, targets } = decodeByReads(stream, readMax);
    assert.deepEqual(frames.map((f) => f.header.id), [1, 2, 3], `reads of ${readMax}`);
    assert.ok(frames[1].payload?.equals(payload));
    assert.equal(String(frames[0].payload), 'small');
    assert.deepEqual(decodeBody(frames[2].body), { b: 2 });
    // The big frame's buffer was the target of the reads after its first one: no user-space copy.
    assert.ok(targets.some((t) => t.buffer === frames[1].payload?.buffer), 'reads went straight into the frame');
    // Frames delivered from the scratch do not change when the scratch is written again.
    const scratch = targets[0];
    assert.notEqual(frames[0].payload?.buffer, scratch.buffer);
  }
  const small = Buffer.concat([wire({ id: 4, kind: 'req', method: 'm' }, { x: [1, 2] }, Buffer.from('p')), wire({ id: 5, kind: 'cancel' }, undefined)]);
  assert.deepEqual(decodeByReads(small, 1).frames, decodeAll([small]));
});

test('frameParts passes a large body and the payload by reference and inlines a small body', () => {
  const payload = new Uint8Array(10);
  const small = frameParts(encodeHeader({ id: 1, kind: 'res' }), encodeBody({ a: 1 }), undefined);
  assert.equal(small.length, 1);
  const encoded = encodeBody({ blob: Buffer.alloc(bodyInlineBytesMax + 1) });
  const bigBody = Buffer.allocUnsafeSlow(encoded.length);
  encoded.copy(bigBody);
  const big = frameParts(encodeHeader({ id: 1, kind: 'res' }), bigBody, payload);
  assert.equal(big.length, 3);
  assert.equal(big[1], bigBody);
  assert.equal(big[2], payload);
});

test('frameParts: a large body sharing the encoder slab goes out as a copy of its own, so a queued frame pins only its bytes', () => {
  const body = encodeBody({ text: 'x'.repeat(bodyInlineBytesMax * 2) });
  assert.ok(body.buffer.byteLength > body.byteLength, 'msgpack returned a view of its slab');
  const parts = frameParts(encodeHeader({ id: 1, kind: 'res' }), body, undefined);
  assert.equal(parts.length, 2);
  assert.equal(parts[1].buffer.byteLength, body.byteLength);
  assert.deepEqual(Buffer.from(parts[1]), body);
});

test('an undefined body is zero bytes on the wire', () => {
  assert.equal(encodeBody(undefined).length, 0);
  assert.equal(decodeBody(Buffer.alloc(0)), undefined);
  assert.throws(() => decodeBody(Buffer.from([0x92, 0x01])), rpcCode(RpcErrorCode.BadRequest));
});

test('the decoder refuses a length prefix above frameBytesMax before buffering anything', () => {
  const d = new FrameDecoder(1024, () => assert.fail('no frame expected'));
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(1021);
  assert.throws(() => d.push(prefix), (err) => err instanceof RpcError && err.code === RpcErrorCode.FrameTooLarge && err.details.frameBytes === 1025);
  prefix.writeUInt32BE(3);
  assert.throws(() => new FrameDecoder(1024, () => {}).push(prefix), rpcCode(RpcErrorCode.BadRequest));
});

test('malformed frames are rejected with CAIRN_BAD_REQUEST', () => {
  const frame = (header: Buffer, rest = Buffer.alloc(4)) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(header.length);
    return Buffer.concat([len, header, rest]);
  };
  const cases: [string, Buffer][] = [
    ['not msgpack', frame(Buffer.from([0xc1]))],
    ['trailing bytes in the header', frame(Buffer.from([0x01, 0x02]))],
    ['header not a map', frame(encodeBody([1, 2]))],
    ['unknown kind', frame(encodeBody({ id: 1, kind: 'bogus' }))],
    ['negative id', frame(encodeBody({ id: -1, kind: 'res' }))],
    ['request without a method', frame(encodeBody({ id: 1, kind: 'req' }))],
    ['request with id 0', frame(encodeBody({ id: 0, kind: 'req', method: 'm' }))],
    ['timeout out of range', frame(encodeBody({ id: 1, kind: 'req', method: 'm', timeoutMs: -5 }))],
    ['error without code', frame(encodeBody({ id: 1, kind: 'res', error: { message: 'x' } }))],
    ['body overruns the frame', frame(encodeBody({ id: 1, kind: 'res' }), Buffer.from([0, 0, 1, 0]))],
    ['header overruns the frame', Buffer.from([0, 0, 0, 50, 0x80])],
    ['header above headerBytesMax', Buffer.from([0, 1, 0, 1, 0x80, 0, 0, 0, 0])],
    ['shorter than the fixed fields', Buffer.from([0, 0])],
  ];
  assert.ok(headerBytesMax < 0x0001_0001);
  for (const [what, bytes] of cases) assert.throws(() => decodeFrame(bytes), rpcCode(RpcErrorCode.BadRequest), what);
});

test('a map key __proto__ in a header cannot change its prototype', () => {
  const evil = Buffer.concat([Buffer.from([0x83]), encodeBody('id').subarray(0), encodeBody(1), encodeBody('kind'), encodeBody('res'), encodeBody('__proto__'), encodeBody({ polluted: 1 })]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(evil.length);
  const f = decodeFrame(Buffer.concat([len, evil, Buffer.alloc(4)]));
  assert.deepEqual(f.header, { id: 1, kind: 'res' });
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test('a receive pool: large frames land in its buffers, released once; small ones and a stop mid-frame', () => {
  const pool = new BufferPool({ idleBytesMax: 8 * 2 ** 20, classBytesMax: 4 * 2 ** 20, granularityBytes: 64 * 1024 });
  const delivered: { frame: Frame; raw: Buffer; release: (() => void) | undefined }[] = [];
  // Without an admission there is nothing else to give back: the recycle is the whole release.
  const d = new FrameDecoder(8 * 2 ** 20, (raw, _release, recycle) => delivered.push({ frame: decodeFrame(raw), raw, release: recycle }), { pool, bytesMin: 1000 });
  const feed = (stream: Buffer, readMax = 65_536): void => {
    for (let at = 0; at < stream.length; ) {
      const target = d.readTarget();
      const n = Math.min(readMax, target.length, stream.length - at);
      stream.copy(target, 0, at, at + n);
      at += n;
      d.received(n);
    }
  };
  const first = randomBytes(300_000);
  const second = randomBytes(290_000);
  feed(Buffer.concat([wire({ id: 1, kind: 'res' }, undefined, first), wire({ id: 2, kind: 'res' }, undefined, Buffer.from('small'))]));
  assert.equal(delivered.length, 2);
  assert.ok(delivered[0].frame.payload?.equals(first));
  assert.equal(delivered[0].frame.payload?.buffer.byteLength, 320 * 1024, 'a pooled buffer of the frame size rounded up to the granularity');
  assert.equal(delivered[1].release, undefined, 'a frame under bytesMin is not pooled');
  const lent = delivered[0].frame.payload!.buffer;
  delivered[0].release!();
  delivered[0].release!(); // a second release must not put the buffer in the pool twice
  assert.equal(pool.idleBytesNow, 320 * 1024);
  feed(wire({ id: 3, kind: 'res' }, undefined, second));
  assert.equal(delivered[2].frame.payload?.buffer, lent, 'the next large frame reuses the released buffer');
  assert.ok(delivered[2].frame.payload?.equals(second));
  assert.equal(pool.idleBytesNow, 0);
  assert.notEqual(pool.take(300_000).buffer, lent, 'the double release did not hand it out again');
  // A frame cut short by stop(): its buffer goes back, as nobody else can hold it.
  const cut = wire({ id: 4, kind: 'res' }, undefined, randomBytes(300_000));
  const target = d.readTarget();
  cut.copy(target, 0, 0, 100_000);
  d.received(Math.min(100_000, target.length));
  d.stop();
  assert.equal(pool.idleBytesNow, 320 * 1024);
});
