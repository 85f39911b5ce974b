// Signature V4 as the gateway checks it (src/s3/sigv4.ts), against the examples in AWS's S3
// documentation ("Signature Calculations for the Authorization Header", "Query String
// Authentication", "Signature Calculations for the Authorization Header: Transferring Payload in
// Multiple Chunks"), and the ways a request can be wrong.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createHash, createHmac } from 'node:crypto';
import { S3Error } from '../../src/s3/errors.ts';
import { accessKeyIdOf, canonicalRequest, emptySha256, signingKey, stringToSign, unsignedPayload, verifyRequest, type SigningRequest } from '../../src/s3/sigv4.ts';

const accessKeyId = 'AKIAIOSFODNN7EXAMPLE';
const secret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const secretOf = (k: string): string | undefined => (k === accessKeyId ? secret : undefined);
const signedAt = Date.UTC(2013, 4, 24);
const credential = `${accessKeyId}/20130524/us-east-1/s3/aws4_request`;

function auth(signedHeaders: string, signature: string): string {
  return `AWS4-HMAC-SHA256 Credential=${credential},SignedHeaders=${signedHeaders},Signature=${signature}`;
}

const getObject: SigningRequest = {
  method: 'GET',
  path: '/test.txt',
  rawQuery: '',
  headers: {
    host: 'examplebucket.s3.amazonaws.com',
    range: 'bytes=0-9',
    'x-amz-content-sha256': emptySha256,
    'x-amz-date': '20130524T000000Z',
    authorization: auth('host;range;x-amz-content-sha256;x-amz-date', 'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41'),
  },
};

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof S3Error, `not an S3Error: ${String(err)}`);
    return err.code;
  }
  return 'none';
}

test('AWS example: GET object, header signature', () => {
  const v = verifyRequest(getObject, secretOf, signedAt);
  assert.deepEqual(v, { accessKeyId, payload: { kind: 'sha256', hex: emptySha256 } });
  // A field given twice is malformed, whichever value is right.
  const twice = { ...getObject, headers: { ...getObject.headers, authorization: `${getObject.headers.authorization},Signature=${'0'.repeat(64)}` } };
  assert.equal(code(() => verifyRequest(twice, secretOf, signedAt)), 'AuthorizationHeaderMalformed');
});

test('AWS example: PUT object, with an escaped path and a Date header signed', () => {
  const body = 'Welcome to Amazon S3.';
  const req: SigningRequest = {
    method: 'PUT',
    path: '/test%24file.text',
    rawQuery: '',
    headers: {
      host: 'examplebucket.s3.amazonaws.com',
      date: 'Fri, 24 May 2013 00:00:00 GMT',
      'x-amz-date': '20130524T000000Z',
      'x-amz-storage-class': 'REDUCED_REDUNDANCY',
      'x-amz-content-sha256': createHash('sha256').update(body).digest('hex'),
      authorization: auth('date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class', '98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd'),
    },
  };
  const v = verifyRequest(req, secretOf, signedAt);
  assert.equal(v?.payload.kind, 'sha256');
});

test('AWS examples: a subresource without a value, and a list with query parameters', () => {
  const base = { host: 'examplebucket.s3.amazonaws.com', 'x-amz-content-sha256': emptySha256, 'x-amz-date': '20130524T000000Z' };
  const lifecycle: SigningRequest = { method: 'GET', path: '/', rawQuery: 'lifecycle', headers: { ...base, authorization: auth('host;x-amz-content-sha256;x-amz-date', 'fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543') } };
  assert.equal(verifyRequest(lifecycle, secretOf, signedAt)?.accessKeyId, accessKeyId);
  const list: SigningRequest = { method: 'GET', path: '/', rawQuery: 'max-keys=2&prefix=J', headers: { ...base, authorization: auth('host;x-amz-content-sha256;x-amz-date', '34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7') } };
  assert.equal(verifyRequest(list, secretOf, signedAt)?.accessKeyId, accessKeyId);
});

test('AWS example: a presigned GET, valid for its 86400 s and not after', () => {
  const rawQuery =
    'X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404';
  const req: SigningRequest = { method: 'GET', path: '/test.txt', rawQuery, headers: { host: 'examplebucket.s3.amazonaws.com' } };
  assert.deepEqual(verifyRequest(req, secretOf, signedAt + 3_600_000), { accessKeyId, payload: { kind: 'unsigned' } });
  assert.equal(code(() => verifyRequest(req, secretOf, signedAt + 86_401_000)), 'AccessDenied');
  assert.equal(code(() => verifyRequest({ ...req, rawQuery: rawQuery.replace('Expires=86400', 'Expires=86401') }, secretOf, signedAt)), 'SignatureDoesNotMatch');
  assert.equal(code(() => verifyRequest({ ...req, rawQuery: rawQuery.replace('Expires=86400', 'Expires=604801') }, secretOf, signedAt)), 'AuthorizationQueryParametersError');
  // A second signature (or any other parameter twice) is refused, whichever one is right.
  assert.equal(code(() => verifyRequest({ ...req, rawQuery: `${rawQuery}&X-Amz-Signature=${'0'.repeat(64)}` }, secretOf, signedAt)), 'AuthorizationQueryParametersError');
  assert.equal(code(() => verifyRequest({ ...req, rawQuery: `X-Amz-Signature=${'0'.repeat(64)}&${rawQuery}` }, secretOf, signedAt)), 'AuthorizationQueryParametersError');
  assert.equal(code(() => verifyRequest({ ...req, rawQuery: `${rawQuery}&X-Amz-Expires=86400` }, secretOf, signedAt)), 'AuthorizationQueryParametersError');
});

test('AWS example: a payload sent in signed chunks; each chunk\'s signature covers the one before', () => {
  const req: SigningRequest = {
    method: 'PUT',
    path: '/examplebucket/chunkObject.txt',
    rawQuery: '',
    headers: {
      host: 's3.amazonaws.com',
      'x-amz-date': '20130524T000000Z',
      'x-amz-storage-class': 'REDUCED_REDUNDANCY',
      'content-encoding': 'aws-chunked',
      'x-amz-decoded-content-length': '66560',
      'content-length': '66824',
      'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
      authorization: auth('content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class', '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9'),
    },
  };
  const v = verifyRequest(req, secretOf, signedAt);
  assert.equal(v?.payload.kind, 'chunked');
  if (v?.payload.kind !== 'chunked') return;
  const hash = (n: number): string => createHash('sha256').update(Buffer.alloc(n, 'a')).digest('hex');
  assert.equal(v.payload.chain.check(hash(65536), 'ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648'), true);
  // Out of order: the second chunk's signature does not fit the first's data.
  assert.equal(v.payload.chain.check(hash(0), '0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497'), false);
  assert.equal(v.payload.chain.check(hash(1024), '0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497'), true);
  assert.equal(v.payload.chain.check(emptySha256, 'b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9'), true);
});

test('a request without credentials is anonymous (the gateway refuses it)', () => {
  assert.equal(verifyRequest({ method: 'GET', path: '/', rawQuery: '', headers: { host: 'h' } }, secretOf, signedAt), undefined);
});

test('wrong, unknown, skewed and malformed signatures each get their S3 error', () => {
  const h = getObject.headers;
  const withHeaders = (headers: Record<string, string | undefined>): SigningRequest => ({ ...getObject, headers: { ...h, ...headers } });
  assert.equal(code(() => verifyRequest(withHeaders({ range: 'bytes=0-10' }), secretOf, signedAt)), 'SignatureDoesNotMatch');
  assert.equal(code(() => verifyRequest({ ...getObject, path: '/test.txt2' }, secretOf, signedAt)), 'SignatureDoesNotMatch');
  assert.equal(code(() => verifyRequest(getObject, () => 'another secret', signedAt)), 'SignatureDoesNotMatch');
  assert.equal(code(() => verifyRequest(getObject, () => undefined, signedAt)), 'InvalidAccessKeyId');
  assert.equal(code(() => verifyRequest(getObject, secretOf, signedAt + 16 * 60_000)), 'RequestTimeTooSkewed');
  assert.equal(code(() => verifyRequest(getObject, secretOf, signedAt - 16 * 60_000)), 'RequestTimeTooSkewed');
  assert.equal(code(() => verifyRequest(getObject, secretOf, signedAt + 14 * 60_000)), 'none');
  assert.equal(code(() => verifyRequest(withHeaders({ authorization: 'AWS4-HMAC-SHA256 Credential=x' }), secretOf, signedAt)), 'AuthorizationHeaderMalformed');
  assert.equal(code(() => verifyRequest(withHeaders({ authorization: 'AWS AKID:sig' }), secretOf, signedAt)), 'InvalidRequest');
  assert.equal(code(() => verifyRequest(withHeaders({ authorization: auth('range;x-amz-date', 'ab') }), secretOf, signedAt)), 'AuthorizationHeaderMalformed');
  assert.equal(code(() => verifyRequest(withHeaders({ 'x-amz-content-sha256': undefined }), secretOf, signedAt)), 'InvalidRequest');
  assert.equal(code(() => verifyRequest(withHeaders({ 'x-amz-content-sha256': 'nonsense' }), secretOf, signedAt)), 'InvalidArgument');
  assert.equal(code(() => verifyRequest(withHeaders({ 'x-amz-date': '20130525T000000Z' }), secretOf, signedAt)), 'AuthorizationHeaderMalformed');
  assert.equal(code(() => verifyRequest({ ...getObject, path: '/%zz' }, secretOf, signedAt)), 'InvalidArgument');
  assert.equal(code(() => verifyRequest({ ...getObject, rawQuery: 'X-Amz-Signature=ab' }, secretOf, signedAt)), 'InvalidArgument');
});

test('what a probe found: a decoy credential, x-amz headers outside the signature, a presigned body hash', () => {
  // The key the gateway looks up (accessKeyIdOf) is the one the signature is checked with: a part
  // S3 does not define is refused, so a decoy Credential cannot send the lookup elsewhere.
  const decoy = { ...getObject, headers: { ...getObject.headers, authorization: `AWS4-HMAC-SHA256 XCredential=NOSUCHKEY/x, ${String(getObject.headers.authorization).slice('AWS4-HMAC-SHA256 '.length)}` } };
  assert.equal(code(() => verifyRequest(decoy, secretOf, signedAt)), 'AuthorizationHeaderMalformed');
  assert.equal(accessKeyIdOf(decoy), undefined);
  assert.equal(accessKeyIdOf(getObject), accessKeyId);
  // An x-amz-* header the signature does not cover is refused (added to a signed request, or to a presigned URL).
  const added = { ...getObject, headers: { ...getObject.headers, 'x-amz-copy-source': '/other/secret' } };
  assert.equal(code(() => verifyRequest(added, secretOf, signedAt)), 'AccessDenied');
  const presignedAt = Date.UTC(2026, 0, 2);
  const amzDate = '20260102T000000Z';
  const presign = (method: string, headers: Record<string, string>, signed: string[]): SigningRequest => {
    const q: [string, string][] = [
      ['X-Amz-Algorithm', 'AWS4-HMAC-SHA256'],
      ['X-Amz-Credential', `${accessKeyId}/20260102/us-east-1/s3/aws4_request`],
      ['X-Amz-Date', amzDate],
      ['X-Amz-Expires', '600'],
      ['X-Amz-SignedHeaders', signed.join(';')],
    ];
    const canonical = canonicalRequest(method, '/b/k', q, signed, headers, headers['x-amz-content-sha256'] ?? unsignedPayload);
    const sig = createHmac('sha256', signingKey(secret, '20260102', 'us-east-1', 's3')).update(stringToSign(amzDate, '20260102/us-east-1/s3/aws4_request', canonical)).digest('hex');
    return { method, path: '/b/k', rawQuery: new URLSearchParams([...q, ['X-Amz-Signature', sig]]).toString(), headers };
  };
  const url = presign('PUT', { host: 'h' }, ['host']);
  assert.deepEqual(verifyRequest(url, secretOf, presignedAt), { accessKeyId, payload: { kind: 'unsigned' } });
  assert.equal(code(() => verifyRequest({ ...url, headers: { host: 'h', 'x-amz-copy-source': '/other/secret' } }, secretOf, presignedAt)), 'AccessDenied');
  assert.equal(code(() => verifyRequest({ ...url, headers: { host: 'h', 'x-amz-meta-a': 'b' } }, secretOf, presignedAt)), 'AccessDenied');
  // A presigned URL that signs the body's hash takes that body only.
  const bodyHash = createHash('sha256').update('the body').digest('hex');
  assert.deepEqual(verifyRequest(presign('PUT', { host: 'h', 'x-amz-content-sha256': bodyHash }, ['host', 'x-amz-content-sha256']), secretOf, presignedAt), { accessKeyId, payload: { kind: 'sha256', hex: bodyHash } });
});
