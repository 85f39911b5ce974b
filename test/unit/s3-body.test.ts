// Request payloads as the gateway reads them (src/s3/body.ts): aws-chunked framing and its chunk
// signatures (AWS's documented example), its trailer, and the length, digest and additional
// checksum (x-amz-checksum-*) checks, however the bytes are split into reads.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { payload, type PayloadResult, type PayloadSpec } from '../../src/s3/body.ts';
import { S3Error } from '../../src/s3/errors.ts';
import type { RequestHeaders } from '../../src/s3/body.ts';
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

// The checksums of '123456789': the CRCs' published check values (0xCBF43926, 0xE3069283), big-endian in base64.
const checkData = Buffer.from('123456789');
const checkSums: Record<string, string> = {
  crc32: 'y/Q5Jg==',
  crc32c: '4waSgw==',
  sha1: createHash('sha1').update(checkData).digest('base64'),
  sha256: createHash('sha256').update(checkData).digest('base64'),
};
/** The error code, or 'stored' (a short value, so that a failed assertion prints no large buffer). */
const outcome = (got: { data: Buffer } | string): string => (typeof got === 'string' ? got : 'stored');
/** The same length of digest, another value. */
const otherSum = (b64: string): string => Buffer.from(Buffer.from(b64, 'base64').map((b) => b ^ 1)).toString('base64');

/** A plain (unsigned) payload of checkData with these headers, read in pieces. */
function plain(headers: RequestHeaders): Promise<{ data: Buffer; result: PayloadResult } | string> {
  return consume(reads(checkData, [2, 3]), { check: { kind: 'unsigned' }, declaredBytes: checkData.length, headers });
}

/** checkData as STREAMING-UNSIGNED-PAYLOAD-TRAILER chunks (4 and 5 bytes), then `trailer` (its lines), then `after`. */
function trailerBody(trailer: string[], after = ''): Buffer {
  return Buffer.from(`4\r\n1234\r\n5\r\n56789\r\n0\r\n${trailer.map((l) => `${l}\r\n`).join('')}\r\n${after}`);
}

function trailed(body: Buffer, headers: RequestHeaders, sizes: number[] = [7, 7, 7]): Promise<{ data: Buffer; result: PayloadResult } | string> {
  return consume(reads(body, sizes), { check: { kind: 'chunked-unsigned' }, declaredBytes: checkData.length, headers });
}

test('x-amz-checksum-* headers: the right value of each algorithm passes, another is BadDigest', async () => {
  for (const [algorithm, sum] of Object.entries(checkSums)) {
    const ok = await plain({ [`x-amz-checksum-${algorithm}`]: sum, 'x-amz-sdk-checksum-algorithm': algorithm.toUpperCase() });
    assert.ok(typeof ok !== 'string' && ok.data.equals(checkData), `${algorithm}: refused ${String(ok)}`);
    assert.equal(outcome(await plain({ [`x-amz-checksum-${algorithm}`]: otherSum(sum) })), 'BadDigest', algorithm);
  }
  // The header form checks an aws-chunked body too (signed, AWS's example).
  const a = Buffer.alloc(66560, 'a');
  const spec = (sum: string): PayloadSpec => ({ check: { kind: 'chunked', chain: signer() }, declaredBytes: 66560, headers: { 'x-amz-checksum-sha256': sum } });
  const sum = createHash('sha256').update(a).digest('base64');
  assert.ok(typeof (await consume(reads(exampleBody(), [1000]), spec(sum))) !== 'string');
  assert.equal(outcome(await consume(reads(exampleBody(), [1000]), spec(otherSum(sum)))), 'BadDigest');
});

test('trailer checksum (x-amz-trailer): right passes however split, wrong is BadDigest, missing or undeclared is MalformedTrailerError', async () => {
  const declared = { 'x-amz-trailer': 'x-amz-checksum-crc32', 'x-amz-sdk-checksum-algorithm': 'CRC32' };
  const good = trailerBody([`x-amz-checksum-crc32:${checkSums.crc32}`]);
  await fc.assert(
    fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 8 }), async (sizes) => {
      const got = await trailed(good, declared, sizes);
      assert.ok(typeof got !== 'string' && got.data.equals(checkData) && got.result.sizeBytes === checkData.length, `refused: ${String(got)}`);
      assert.equal(outcome(await trailed(trailerBody([`x-amz-checksum-crc32:${otherSum(checkSums.crc32)}`]), declared, sizes)), 'BadDigest');
    }),
    { numRuns: 30 },
  );
  for (const algorithm of ['crc32c', 'sha1', 'sha256']) {
    const headers = { 'x-amz-trailer': `x-amz-checksum-${algorithm}` };
    assert.ok(typeof (await trailed(trailerBody([`x-amz-checksum-${algorithm}:${checkSums[algorithm]}`]), headers)) !== 'string', algorithm);
    assert.equal(outcome(await trailed(trailerBody([`x-amz-checksum-${algorithm}:${otherSum(checkSums[algorithm])}`]), headers)), 'BadDigest', algorithm);
  }
  // The SDK's form without the closing empty line.
  assert.ok(typeof (await trailed(Buffer.from(`9\r\n123456789\r\n0\r\nx-amz-checksum-crc32:${checkSums.crc32}\r\n`), declared)) !== 'string');
  assert.equal(outcome(await trailed(trailerBody([]), declared)), 'MalformedTrailerError');
  assert.equal(outcome(await trailed(trailerBody(['x-amz-checksum-sha1:' + checkSums.sha1]), declared)), 'MalformedTrailerError');
  assert.equal(outcome(await trailed(trailerBody([`x-amz-checksum-crc32:${checkSums.crc32}`, `x-amz-checksum-crc32:${checkSums.crc32}`]), declared)), 'MalformedTrailerError');
  assert.equal(outcome(await trailed(trailerBody([`x-amz-checksum-crc32${checkSums.crc32}`]), declared)), 'MalformedTrailerError');
  assert.equal(outcome(await trailed(good, {})), 'MalformedTrailerError');
  assert.equal(outcome(await trailed(trailerBody(['x-amz-checksum-crc32:NhCm']), declared)), 'InvalidRequest');
  assert.equal(outcome(await trailed(trailerBody([`x-amz-checksum-crc32:${checkSums.crc32}`], 'x'.repeat(16 * 1024)), declared)), 'MalformedTrailerError');
  assert.equal(outcome(await trailed(trailerBody([`x-amz-meta-a:${'x'.repeat(16 * 1024)}`]), declared)), 'MalformedTrailerError');
});

test('checksums cairn cannot compute, two at once, malformed values and misplaced x-amz-trailer are InvalidRequest before the body is read', async () => {
  const refused = async (headers: RequestHeaders): Promise<string> => {
    let read = false;
    const source = (async function* (): AsyncGenerator<Buffer> {
      read = true;
      yield checkData;
    })();
    const got = await consume(source, { check: { kind: 'unsigned' }, declaredBytes: checkData.length, headers });
    assert.equal(read, false, `the body was read for ${JSON.stringify(headers)}`);
    return typeof got === 'string' ? got : 'stored';
  };
  assert.equal(outcome(await refused({ 'x-amz-checksum-crc64nvme': 'AAAAAAAAAAA=' })), 'InvalidRequest');
  assert.equal(outcome(await refused({ 'x-amz-checksum-md4': checkSums.crc32 })), 'InvalidRequest');
  assert.equal(outcome(await refused({ 'x-amz-checksum-crc32': checkSums.crc32, 'x-amz-checksum-sha1': checkSums.sha1 })), 'InvalidRequest');
  assert.equal(outcome(await refused({ 'x-amz-checksum-crc32': checkSums.sha1 })), 'InvalidRequest');
  assert.equal(outcome(await refused({ 'x-amz-checksum-crc32': 'y/Q5Jg' })), 'InvalidRequest');
  assert.equal(outcome(await refused({ 'x-amz-checksum-sha256': `${checkSums.sha256}, ${checkSums.sha256}` })), 'InvalidRequest');
  assert.equal(outcome(await refused({ 'x-amz-sdk-checksum-algorithm': 'CRC32' })), 'InvalidRequest');
  assert.equal(outcome(await refused({ 'x-amz-sdk-checksum-algorithm': 'SHA1', 'x-amz-checksum-crc32': checkSums.crc32 })), 'InvalidRequest');
  assert.equal(outcome(await refused({ 'x-amz-sdk-checksum-algorithm': 'CRC64NVME', 'x-amz-checksum-crc32': checkSums.crc32 })), 'InvalidRequest');
  assert.equal(outcome(await refused({ 'x-amz-trailer': 'x-amz-checksum-crc32' })), 'InvalidRequest');
  // Settings named like checksums are not checksums.
  assert.ok(typeof (await plain({ 'x-amz-checksum-algorithm': 'CRC64NVME', 'x-amz-checksum-type': 'FULL_OBJECT', 'x-amz-checksum-mode': 'ENABLED' })) !== 'string');
  // In a trailer payload's x-amz-trailer: an unknown algorithm, a header that is no checksum, two algorithms.
  const good = trailerBody([`x-amz-checksum-crc32:${checkSums.crc32}`]);
  assert.equal(outcome(await trailed(good, { 'x-amz-trailer': 'x-amz-checksum-crc64nvme' })), 'InvalidRequest');
  assert.equal(outcome(await trailed(good, { 'x-amz-trailer': 'x-amz-meta-a' })), 'InvalidRequest');
  assert.equal(outcome(await trailed(good, { 'x-amz-trailer': 'x-amz-checksum-crc32', 'x-amz-checksum-sha1': checkSums.sha1 })), 'InvalidRequest');
});

test('aws-chunked: bytes after the final chunk and its trailer are refused', async () => {
  const spec = (): PayloadSpec => ({ check: { kind: 'chunked', chain: signer() }, declaredBytes: 66560 });
  assert.ok(typeof (await consume(reads(exampleBody(), []), spec())) !== 'string');
  for (const junk of ['x', '\r\n', '5\r\nhello\r\n']) {
    assert.equal(outcome(await consume(reads(Buffer.concat([exampleBody(), Buffer.from(junk)]), []), spec())), 'MalformedTrailerError', JSON.stringify(junk));
    assert.equal(outcome(await consume(reads(Buffer.concat([exampleBody(), Buffer.from(junk)]), [66000, 1000, 120]), spec())), 'MalformedTrailerError', JSON.stringify(junk));
  }
  // A trailer line where a signed (trailerless) payload has none.
  const withTrailer = Buffer.from(exampleBody().toString('latin1').replace(/\r\n\r\n$/, `\r\nx-amz-checksum-crc32:${checkSums.crc32}\r\n\r\n`), 'latin1');
  assert.equal(outcome(await consume(reads(withTrailer, []), spec())), 'MalformedTrailerError');
  // Unsigned: after the trailer's empty line, or cut inside a trailer line.
  const headers = { 'x-amz-trailer': 'x-amz-checksum-crc32' };
  assert.equal(outcome(await trailed(trailerBody([`x-amz-checksum-crc32:${checkSums.crc32}`], '0\r\n\r\n'), headers)), 'MalformedTrailerError');
  assert.equal(outcome(await trailed(Buffer.from(`9\r\n123456789\r\n0\r\nx-amz-checksum-crc32:${checkSums.crc32}`), headers)), 'MalformedTrailerError');
});
