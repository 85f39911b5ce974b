// Request payloads as the gateway reads them (src/s3/body.ts): aws-chunked framing and its chunk
// signatures (AWS's documented example), and the length and digest checks, however the bytes are
// split into reads.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { payload, type PayloadResult, type PayloadSpec } from '../../src/s3/body.ts';
import { S3Error } from '../../src/s3/errors.ts';
import { ChunkSigner, signingKey } from '../../src/s3/sigv4.ts';

const seed = '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9';
const chunkSigs = ['ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648', '0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497', 'b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9'];
const key = signingKey('wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', '20130524', 'us-east-1', 's3');
const signer = (): ChunkSigner => new ChunkSigner(key, '20130524T000000Z', '20130524/us-east-1/s3/aws4_request', seed);

/** AWS's example body: 65536 and 1024 bytes of 'a', then the final chunk. */
function exampleBody(sigs = chunkSigs): Buffer {
  const chunk = (n: number, sig: string): Buffer => Buffer.concat([Buffer.from(`${n.toString(16)};chunk-signature=${sig}\r\n`), Buffer.alloc(n, 'a'), Buffer.from('\r\n')]);
  return Buffer.concat([chunk(65536, sigs[0]), chunk(1024, sigs[1]), chunk(0, sigs[2])]);
}

/** `bytes` in reads of the given sizes (the last takes the rest). */
async function* reads(bytes: Buffer, sizes: number[]): AsyncGenerator<Buffer> {
  let at = 0;
  for (const n of sizes) {
    if (at >= bytes.length) return;
    yield bytes.subarray(at, at + n);
    at += n;
  }
  if (at < bytes.length) yield bytes.subarray(at);
}

async function consume(source: AsyncIterable<Buffer>, spec: PayloadSpec): Promise<{ data: Buffer; result: PayloadResult } | string> {
  const result: PayloadResult = { sizeBytes: 0 };
  const parts: Buffer[] = [];
  try {
    for await (const p of payload(source, spec, result)) parts.push(Buffer.from(p));
  } catch (err) {
    assert.ok(err instanceof S3Error, `not an S3Error: ${String(err)}`);
    return err.code;
  }
  return { data: Buffer.concat(parts), result };
}

test('AWS example: a signed aws-chunked payload, split into reads of any size', async () => {
  const body = exampleBody();
  await fc.assert(
    fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 70_000 }), { maxLength: 12 }), async (sizes) => {
      const got = await consume(reads(body, sizes), { check: { kind: 'chunked', chain: signer() }, declaredBytes: 66560 });
      assert.ok(typeof got !== 'string', `refused: ${String(got)}`);
      assert.deepEqual(got.data, Buffer.alloc(66560, 'a'));
      assert.equal(got.result.md5Hex, createHash('md5').update(Buffer.alloc(66560, 'a')).digest('hex'));
    }),
    { numRuns: 40 },
  );
});

test('aws-chunked: a changed byte, a wrong or missing signature, a cut body each refused', async () => {
  const body = exampleBody();
  const tampered = Buffer.from(body);
  tampered[1000] = 'b'.charCodeAt(0);
  const spec = (): PayloadSpec => ({ check: { kind: 'chunked', chain: signer() }, declaredBytes: 66560 });
  assert.equal(await consume(reads(tampered, []), spec()), 'SignatureDoesNotMatch');
  assert.equal(await consume(reads(exampleBody([chunkSigs[1], chunkSigs[0], chunkSigs[2]]), []), spec()), 'SignatureDoesNotMatch');
  assert.equal(await consume(reads(Buffer.from(body.toString('latin1').replace(/;chunk-signature=[0-9a-f]{64}/, ''), 'latin1'), []), spec()), 'SignatureDoesNotMatch');
  assert.equal(await consume(reads(body.subarray(0, body.length - 90), []), spec()), 'IncompleteBody');
  assert.equal(await consume(reads(Buffer.from('zz;chunk-signature=x\r\n'), []), spec()), 'IncompleteBody');
  // Unsigned chunks (STREAMING-UNSIGNED-PAYLOAD-TRAILER) with a trailing checksum header.
  const unsigned = Buffer.from('5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n');
  const got = await consume(reads(unsigned, [3, 3, 3]), { check: { kind: 'chunked-unsigned' }, declaredBytes: 5 });
  assert.ok(typeof got !== 'string' && got.data.toString() === 'hello');
});

test('plain payloads: length, SHA-256 and Content-MD5 checked at the end', async () => {
  const data = Buffer.from('Welcome to Amazon S3.');
  const sha = createHash('sha256').update(data).digest('hex');
  const md5 = createHash('md5').update(data).digest('base64');
  const ok = await consume(reads(data, [4, 4]), { check: { kind: 'sha256', hex: sha }, declaredBytes: data.length, contentMd5: md5 });
  assert.ok(typeof ok !== 'string' && ok.result.sizeBytes === data.length);
  assert.equal(await consume(reads(data, []), { check: { kind: 'sha256', hex: sha.replace(/^./, '0') }, declaredBytes: data.length }), 'XAmzContentSHA256Mismatch');
  assert.equal(await consume(reads(data, []), { check: { kind: 'unsigned' }, declaredBytes: data.length, contentMd5: createHash('md5').update('other').digest('base64') }), 'BadDigest');
  assert.equal(await consume(reads(data, []), { check: { kind: 'unsigned' }, declaredBytes: data.length + 1 }), 'IncompleteBody');
  assert.equal(await consume(reads(data, []), { check: { kind: 'unsigned' }, declaredBytes: data.length - 1 }), 'InvalidRequest');
});
