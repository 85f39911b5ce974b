// The S3 gateway (`cairn s3`) as a process over a cluster of real processes, used by real S3
// clients: the AWS SDK for JavaScript, Debian's AWS CLI (/usr/bin/aws), plain HTTP for presigned
// URLs, and hand-made requests for what a careless or hostile client sends. Every byte compared.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { execFile, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { request, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import path from 'node:path';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListMultipartUploadsCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { DataCluster } from './data-cluster.ts';
import { mainScript, sleep, waitFor } from './process-cluster.ts';
import { canonicalRequest, signingKey, stringToSign, unsignedPayload } from '../../src/s3/sigv4.ts';

const objectMiB = Number(process.env.CAIRN_S3_OBJECT_MIB ?? 256);
const cliMiB = Number(process.env.CAIRN_S3_CLI_MIB ?? 100);

interface Key {
  accessKeyId: string;
  secretKey: string;
}

/** Debian's AWS CLI: missing fails the test in CI and skips it elsewhere. */
function awsCliSkip(): string | undefined {
  if (existsSync('/usr/bin/aws') || process.env.CI === 'true') return undefined;
  return 'Debian\'s awscli is not installed (/usr/bin/aws): scripts/install-system-packages.sh as root';
}

test('cairn s3: real S3 clients against a cluster', async (t) => {
  const c = await DataCluster.start(t, { masters: 1, workers: 3, targetsPerWorker: 2, heartbeatMs: 300, offlineTimeoutMs: 2_000 });
  const admin = c.client().meta;
  const key: Key = { accessKeyId: 'TESTKEY1', secretKey: randomBytes(20).toString('hex') };
  await admin.mutate('meta.mutate', { op: 's3UserAdd', ...key, buckets: ['*'], uid: 0, gid: 0 });
  const narrow: Key = { accessKeyId: 'NARROW1', secretKey: randomBytes(20).toString('hex') };
  await admin.mutate('meta.mutate', { op: 's3UserAdd', ...narrow, buckets: ['mine'], uid: 1000, gid: 1000 });

  const other: Key = { accessKeyId: 'OTHER1', secretKey: randomBytes(20).toString('hex') };
  await admin.mutate('meta.mutate', { op: 's3UserAdd', ...other, buckets: ['*'], uid: 1001, gid: 1001 });
  const log = path.join(path.dirname(c.workers.get(1)!.log), 's3.log');
  const gw = await startGateway(c, log);
  t.after(() => gw.child.kill('SIGKILL'));
  const s3 = (k: Key = key, opts: Record<string, unknown> = {}): S3Client => new S3Client({ endpoint: gw.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: k.accessKeyId, secretAccessKey: k.secretKey }, maxAttempts: 1, ...opts });
  const client = s3();
  const bodyOf = async (p: Promise<{ Body?: { transformToByteArray(): Promise<Uint8Array> } }>): Promise<Buffer> => Buffer.from(await (await p).Body!.transformToByteArray());

  await t.test('AWS SDK: buckets, a multipart upload, listings, ranges, copy, a presigned GET, deletes', async () => {
    await client.send(new CreateBucketCommand({ Bucket: 'sdk' }));
    // As S3 in us-east-1: your own bucket again is no error; another user's is.
    await client.send(new CreateBucketCommand({ Bucket: 'sdk' }));
    await assert.rejects(s3(other).send(new CreateBucketCommand({ Bucket: 'sdk' })), { name: 'BucketAlreadyExists' });
    assert.ok((await client.send(new ListBucketsCommand({}))).Buckets!.some((b) => b.Name === 'sdk'));
    assert.ok(!((await s3(other).send(new ListBucketsCommand({}))).Buckets ?? []).some((b) => b.Name === 'sdk'), 'another user lists only its own buckets');

    // Multipart: three parts of 5 MiB, 5 MiB and 1 MiB, sent out of order.
    const parts = [randomBytes(5 << 20), randomBytes(5 << 20), randomBytes(1 << 20)];
    const whole = Buffer.concat(parts);
    const up = await client.send(new CreateMultipartUploadCommand({ Bucket: 'sdk', Key: 'big/multi.bin', ContentType: 'application/x-test', Metadata: { origin: 'sdk' } }));
    const etags: string[] = [];
    for (const i of [2, 0, 1]) etags[i] = (await client.send(new UploadPartCommand({ Bucket: 'sdk', Key: 'big/multi.bin', UploadId: up.UploadId, PartNumber: i + 1, Body: parts[i] }))).ETag!;
    assert.deepEqual((await client.send(new ListPartsCommand({ Bucket: 'sdk', Key: 'big/multi.bin', UploadId: up.UploadId }))).Parts!.map((p) => [p.PartNumber, p.Size]), [[1, 5 << 20], [2, 5 << 20], [3, 1 << 20]]);
    assert.equal((await client.send(new ListMultipartUploadsCommand({ Bucket: 'sdk' }))).Uploads!.length, 1);
    // Not visible before it completes.
    await assert.rejects(client.send(new HeadObjectCommand({ Bucket: 'sdk', Key: 'big/multi.bin' })), { name: 'NotFound' });
    const done = await client.send(new CompleteMultipartUploadCommand({ Bucket: 'sdk', Key: 'big/multi.bin', UploadId: up.UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } }));
    const md5s = Buffer.concat(etags.map((e) => Buffer.from(e.replace(/"/g, ''), 'hex')));
    assert.equal(done.ETag, `"${createHash('md5').update(md5s).digest('hex')}-3"`);
    // A retry of the completion (an SDK that lost the answer) gets the same result, as from S3; one
    // naming other parts, and every other use of the upload, get NoSuchUpload.
    const completeAgain = (n: number): Promise<{ ETag?: string }> => client.send(new CompleteMultipartUploadCommand({ Bucket: 'sdk', Key: 'big/multi.bin', UploadId: up.UploadId, MultipartUpload: { Parts: etags.slice(0, n).map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } }));
    assert.equal((await completeAgain(3)).ETag, done.ETag);
    await assert.rejects(completeAgain(2), { name: 'NoSuchUpload' });
    await assert.rejects(client.send(new ListPartsCommand({ Bucket: 'sdk', Key: 'big/multi.bin', UploadId: up.UploadId })), { name: 'NoSuchUpload' });
    await assert.rejects(client.send(new UploadPartCommand({ Bucket: 'sdk', Key: 'big/multi.bin', UploadId: up.UploadId, PartNumber: 4, Body: 'late' })), { name: 'NoSuchUpload' });
    await assert.rejects(client.send(new AbortMultipartUploadCommand({ Bucket: 'sdk', Key: 'big/multi.bin', UploadId: up.UploadId })), { name: 'NoSuchUpload' });
    const uploadDir = `/.cairn-s3/uploads/sdk/${up.UploadId}`;
    assert.deepEqual((await admin.query<{ entries: unknown[] }>('meta.query', { op: 'readdir', path: uploadDir, limit: 10 })).entries, [], 'the parts are gone once completed');
    assert.deepEqual(await bodyOf(client.send(new GetObjectCommand({ Bucket: 'sdk', Key: 'big/multi.bin' }))), whole);
    const head = await client.send(new HeadObjectCommand({ Bucket: 'sdk', Key: 'big/multi.bin' }));
    assert.equal(head.ContentType, 'application/x-test');
    assert.deepEqual(head.Metadata, { origin: 'sdk' });
    assert.equal((await client.send(new ListMultipartUploadsCommand({ Bucket: 'sdk' }))).Uploads, undefined);
    // Past --completed-upload-keep-ms the next upload in the bucket removes the completed one's record
    // (after its answer has gone out, so the test waits for it).
    await sleep(completedUploadKeepMs);
    await client.send(new AbortMultipartUploadCommand({ Bucket: 'sdk', Key: 'x', UploadId: (await client.send(new CreateMultipartUploadCommand({ Bucket: 'sdk', Key: 'x' }))).UploadId }));
    const gone = (): Promise<boolean> => admin.query('meta.query', { op: 'stat', path: uploadDir }).then(() => false, (err: { code?: string }) => { if (err.code === 'ENOENT') return true; throw err; });
    await waitFor(gone, 'the completed upload\'s record to be removed', 10_000);
    await assert.rejects(completeAgain(3), { name: 'NoSuchUpload' });
    // A part too small before the last one is refused; an aborted upload leaves nothing.
    const small = await client.send(new CreateMultipartUploadCommand({ Bucket: 'sdk', Key: 'small' }));
    const e1 = (await client.send(new UploadPartCommand({ Bucket: 'sdk', Key: 'small', UploadId: small.UploadId, PartNumber: 1, Body: Buffer.alloc(1000) }))).ETag!;
    const e2 = (await client.send(new UploadPartCommand({ Bucket: 'sdk', Key: 'small', UploadId: small.UploadId, PartNumber: 2, Body: Buffer.alloc(1000) }))).ETag!;
    await assert.rejects(client.send(new CompleteMultipartUploadCommand({ Bucket: 'sdk', Key: 'small', UploadId: small.UploadId, MultipartUpload: { Parts: [{ ETag: e1, PartNumber: 1 }, { ETag: e2, PartNumber: 2 }] } })), { name: 'EntityTooSmall' });
    await client.send(new AbortMultipartUploadCommand({ Bucket: 'sdk', Key: 'small', UploadId: small.UploadId }));
    await assert.rejects(client.send(new ListPartsCommand({ Bucket: 'sdk', Key: 'small', UploadId: small.UploadId })), { name: 'NoSuchUpload' });
    // A completion that takes longer than the keep-alive interval, as the wire shows it: a 200 and the
    // XML declaration at once, spaces while the parts are copied, then the result.
    const slow = await client.send(new CreateMultipartUploadCommand({ Bucket: 'sdk', Key: 'slow.bin' }));
    const slowParts = [randomBytes(5 << 20), randomBytes(5 << 20), randomBytes(5 << 20)];
    const slowEtags: string[] = [];
    for (const [i, p] of slowParts.entries()) slowEtags.push((await client.send(new UploadPartCommand({ Bucket: 'sdk', Key: 'slow.bin', UploadId: slow.UploadId, PartNumber: i + 1, Body: p }))).ETag!);
    const completeXml = Buffer.from(`<CompleteMultipartUpload>${slowEtags.map((e, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${e}</ETag></Part>`).join('')}</CompleteMultipartUpload>`);
    const kept = await raw(gw.endpoint, key, 'POST', '/sdk/slow.bin', completeXml, { query: [['uploadId', slow.UploadId!]] });
    assert.equal(kept.status, 200);
    assert.match(kept.text, /^<\?xml version="1.0" encoding="UTF-8"\?>\n +<CompleteMultipartUploadResult xmlns="[^"]+"><Location>\/sdk\/slow.bin<\/Location><Bucket>sdk<\/Bucket><Key>slow.bin<\/Key><ETag>&quot;[0-9a-f]{32}-3&quot;<\/ETag><\/CompleteMultipartUploadResult>$/);
    assert.deepEqual(await bodyOf(client.send(new GetObjectCommand({ Bucket: 'sdk', Key: 'slow.bin' }))), Buffer.concat(slowParts));
    await client.send(new DeleteObjectCommand({ Bucket: 'sdk', Key: 'slow.bin' }));

    // Listings with prefixes and delimiters, and keys that need URL encoding.
    const keys = ['a/1.txt', 'a/2.txt', 'a/b/3.txt', 'a-x', 'c d/ü+&.txt', 'z'];
    for (const k of keys) await client.send(new PutObjectCommand({ Bucket: 'sdk', Key: k, Body: `body of ${k}` }));
    const all = await client.send(new ListObjectsV2Command({ Bucket: 'sdk' }));
    assert.deepEqual(all.Contents!.map((o) => o.Key), ['a-x', 'a/1.txt', 'a/2.txt', 'a/b/3.txt', 'big/multi.bin', 'c d/ü+&.txt', 'z']);
    const top = await client.send(new ListObjectsV2Command({ Bucket: 'sdk', Delimiter: '/' }));
    assert.deepEqual([top.Contents!.map((o) => o.Key), top.CommonPrefixes!.map((p) => p.Prefix)], [['a-x', 'z'], ['a/', 'big/', 'c d/']]);
    const inA = await client.send(new ListObjectsV2Command({ Bucket: 'sdk', Prefix: 'a/', Delimiter: '/' }));
    assert.deepEqual([inA.Contents!.map((o) => o.Key), inA.CommonPrefixes!.map((p) => p.Prefix)], [['a/1.txt', 'a/2.txt'], ['a/b/']]);
    const paged: string[] = [];
    let token: string | undefined;
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: 'sdk', MaxKeys: 2, ContinuationToken: token }));
      paged.push(...page.Contents!.map((o) => o.Key!));
      token = page.NextContinuationToken;
    } while (token !== undefined);
    assert.deepEqual(paged, all.Contents!.map((o) => o.Key));
    const v1 = await client.send(new ListObjectsCommand({ Bucket: 'sdk', Prefix: 'a', Marker: 'a/1.txt' }));
    assert.deepEqual(v1.Contents!.map((o) => o.Key), ['a/2.txt', 'a/b/3.txt']);

    // Ranges, a copy, a presigned GET fetched with plain HTTP.
    assert.equal((await bodyOf(client.send(new GetObjectCommand({ Bucket: 'sdk', Key: 'big/multi.bin', Range: 'bytes=5242870-5242889' })))).toString('hex'), whole.subarray(5242870, 5242890).toString('hex'));
    assert.deepEqual(await bodyOf(client.send(new GetObjectCommand({ Bucket: 'sdk', Key: 'big/multi.bin', Range: 'bytes=-100' }))), whole.subarray(whole.length - 100));
    await assert.rejects(client.send(new GetObjectCommand({ Bucket: 'sdk', Key: 'z', Range: 'bytes=1000-' })), { name: 'InvalidRange' });
    await client.send(new CopyObjectCommand({ Bucket: 'sdk', Key: 'copies/multi.bin', CopySource: 'sdk/big/multi.bin' }));
    assert.deepEqual(await bodyOf(client.send(new GetObjectCommand({ Bucket: 'sdk', Key: 'copies/multi.bin' }))), whole);
    const url = await getSignedUrl(client, new GetObjectCommand({ Bucket: 'sdk', Key: 'c d/ü+&.txt' }), { expiresIn: 60 });
    const fetched = await fetch(url);
    assert.equal(fetched.status, 200);
    assert.equal(await fetched.text(), 'body of c d/ü+&.txt');
    const conditional = await fetch(url, { headers: { 'if-none-match': head.ETag ?? '' } });
    assert.equal(conditional.status, 200, 'another object\'s ETag does not match');

    // Deletes: one, several, the directories they leave, then the bucket.
    await client.send(new DeleteObjectCommand({ Bucket: 'sdk', Key: 'a/b/3.txt' }));
    const removed = await client.send(new DeleteObjectsCommand({ Bucket: 'sdk', Delete: { Objects: keys.filter((k) => k !== 'a/b/3.txt').map((Key) => ({ Key })) } }));
    assert.equal(removed.Deleted!.length, keys.length - 1);
    await assert.rejects(client.send(new DeleteBucketCommand({ Bucket: 'sdk' })), { name: 'BucketNotEmpty' });
    await client.send(new DeleteObjectsCommand({ Bucket: 'sdk', Delete: { Objects: [{ Key: 'big/multi.bin' }, { Key: 'copies/multi.bin' }] } }));
    assert.equal((await client.send(new ListObjectsV2Command({ Bucket: 'sdk' }))).KeyCount, 0);
    await client.send(new DeleteBucketCommand({ Bucket: 'sdk' }));
  });

  await t.test(`AWS CLI: a ${cliMiB} MiB file in (multipart) and out, listed, removed`, { skip: awsCliSkip() }, async () => {
    const dir = path.dirname(log);
    const src = path.join(dir, 'cli-src.bin');
    await writeFile(src, randomBytes(cliMiB << 20));
    const aws = (...args: string[]): Promise<string> =>
      new Promise((resolve, reject) =>
        execFile('/usr/bin/aws', ['--endpoint-url', gw.endpoint, ...args], { env: { ...process.env, AWS_ACCESS_KEY_ID: key.accessKeyId, AWS_SECRET_ACCESS_KEY: key.secretKey, AWS_DEFAULT_REGION: 'us-east-1', AWS_EC2_METADATA_DISABLED: 'true' }, maxBuffer: 1 << 20 }, (err, out, errOut) => (err === null ? resolve(out) : reject(new Error(`aws ${args.join(' ')}: ${errOut || err.message}`)))),
      );
    await aws('s3', 'mb', 's3://cli');
    await aws('s3', 'cp', '--only-show-errors', src, 's3://cli/dir/file.bin');
    assert.match(await aws('s3', 'ls', 's3://cli/dir/'), new RegExp(`${cliMiB << 20} file.bin`));
    const back = path.join(dir, 'cli-back.bin');
    await aws('s3', 'cp', '--only-show-errors', 's3://cli/dir/file.bin', back);
    assert.ok((await readFile(src)).equals(await readFile(back)), 'the file came back changed');
    const headOut = JSON.parse(await aws('s3api', 'head-object', '--bucket', 'cli', '--key', 'dir/file.bin')) as { ETag: string; ContentLength: number };
    assert.equal(headOut.ContentLength, cliMiB << 20);
    assert.match(headOut.ETag, /-\d+"$/, 'a multipart upload\'s ETag');
    await aws('s3', 'rm', '--only-show-errors', 's3://cli/dir/file.bin');
    await aws('s3', 'rb', 's3://cli');
  });

  await t.test(`a ${objectMiB} MiB object in and out: the gateway's memory stays bounded`, async () => {
    await client.send(new CreateBucketCommand({ Bucket: 'large' }));
    const before = resetPeakRss(gw.child.pid!);
    // Made as it is sent: the test holds no copy; its MD5 is checked against the ETag.
    const md5 = createHash('md5');
    const pieceBytes = 1 << 20;
    const stream = (async function* () {
      for (let i = 0; i < objectMiB; i++) {
        const piece = Buffer.alloc(pieceBytes, i % 251);
        md5.update(piece);
        yield piece;
      }
    })();
    // Sent unsigned (the SDK signs a body's hash over plain HTTP, which needs it whole first).
    const put = await raw(gw.endpoint, key, 'PUT', '/large/object', stream, { contentLength: objectMiB * pieceBytes });
    assert.equal(put.status, 200, `PUT answered ${put.status} ${put.code}`);
    assert.equal(put.etag, `"${md5.digest('hex')}"`);
    const got = await client.send(new GetObjectCommand({ Bucket: 'large', Key: 'object' }));
    const check = createHash('md5');
    let n = 0;
    for await (const part of got.Body as AsyncIterable<Uint8Array>) {
      check.update(part);
      n += part.length;
    }
    assert.equal(n, objectMiB * pieceBytes);
    assert.equal(`"${check.digest('hex')}"`, put.etag);
    const growth = peakRssMiB(gw.child.pid!) - before;
    t.diagnostic(`gateway peak resident memory grew by ${growth} MiB for a ${objectMiB} MiB object in and out`);
    assert.ok(growth < 96, `the gateway's peak memory grew by ${growth} MiB (bound 96 MiB: 16 MiB in flight per request, socket buffers)`);
    await client.send(new DeleteObjectCommand({ Bucket: 'large', Key: 'object' }));
  });

  await t.test('concurrent GETs of many chunks each: every byte its own object\'s, while the gateway reuses its receive buffers', async () => {
    // The gateway gives each chunk's buffer back once the socket is done with it and receives the
    // next chunk into it: given back too early, one object's bytes would show up in another's body.
    await client.send(new CreateBucketCommand({ Bucket: 'many' }));
    const bodies = Array.from({ length: 6 }, () => randomBytes(9 << 20)); // 3 chunks of 4 MiB each
    await Promise.all(bodies.map((b, i) => client.send(new PutObjectCommand({ Bucket: 'many', Key: `o${i}`, Body: b }))));
    for (let round = 0; round < 2; round++) {
      const got = await Promise.all(bodies.map((_, i) => bodyOf(client.send(new GetObjectCommand({ Bucket: 'many', Key: `o${i}` })))));
      got.forEach((g, i) => assert.ok(g.equals(bodies[i]), `object o${i}, round ${round}: bytes differ`));
      const ranges = await Promise.all(bodies.map((_, i) => bodyOf(client.send(new GetObjectCommand({ Bucket: 'many', Key: `o${i}`, Range: `bytes=${i * 1000}-${(5 << 20) + i}` })))));
      ranges.forEach((g, i) => assert.ok(g.equals(bodies[i].subarray(i * 1000, (5 << 20) + i + 1)), `range of o${i}, round ${round}: bytes differ`));
    }
    for (let i = 0; i < bodies.length; i++) await client.send(new DeleteObjectCommand({ Bucket: 'many', Key: `o${i}` }));
  });

  await t.test('bad input: signatures, keys, clock skew, headers, bodies: the right error, nothing written', async () => {
    await client.send(new CreateBucketCommand({ Bucket: 'bad' }));
    await assert.rejects(s3({ accessKeyId: key.accessKeyId, secretKey: 'wrong-secret' }).send(new ListBucketsCommand({})), { name: 'SignatureDoesNotMatch' });
    await assert.rejects(s3({ accessKeyId: 'NOSUCHKEY', secretKey: 'whatever1' }).send(new ListBucketsCommand({})), { name: 'InvalidAccessKeyId' });
    await assert.rejects(s3(key, { systemClockOffset: -20 * 60_000 }).send(new ListBucketsCommand({})), { name: 'RequestTimeTooSkewed' });
    await assert.rejects(s3(narrow).send(new PutObjectCommand({ Bucket: 'bad', Key: 'x', Body: 'x' })), { name: 'AccessDenied' }, 'a key not allowed this bucket');
    await assert.rejects(s3(other).send(new PutObjectCommand({ Bucket: 'bad', Key: 'x', Body: 'x' })), { name: 'AccessDenied' }, 'another user, in a bucket private to its owner');
    const expired = await getSignedUrl(client, new GetObjectCommand({ Bucket: 'bad', Key: 'x' }), { expiresIn: 1 });
    await sleep(2_100);
    assert.equal((await fetch(expired)).status, 403);
    assert.equal((await fetch(`${gw.endpoint}/bad/x`)).status, 403, 'an anonymous request');

    for (const [k, code] of [
      ['a/../b', 'InvalidArgument'],
      ['a//b', 'InvalidArgument'],
      ['nul\u0000key', 'InvalidArgument'],
      ['k'.repeat(1025), 'KeyTooLongError'],
    ] as const) {
      await assert.rejects(client.send(new PutObjectCommand({ Bucket: 'bad', Key: k, Body: 'x' })), { name: code }, `key ${JSON.stringify(k.slice(0, 20))}`);
    }
    // A body whose signed hash does not match, or that is longer than its signed hash covers.
    const longer = await raw(gw.endpoint, key, 'PUT', '/bad/longer', Buffer.from('12345'), { sha256Of: Buffer.from('1234567890'), contentLength: 5 });
    assert.equal(longer.code, 'XAmzContentSHA256Mismatch');
    const md5Bad = await raw(gw.endpoint, key, 'PUT', '/bad/md5', Buffer.from('hello'), { headers: { 'content-md5': createHash('md5').update('other').digest('base64') } });
    assert.equal(md5Bad.code, 'BadDigest');
    // Headers past the bound.
    const big = await raw(gw.endpoint, key, 'GET', '/bad', undefined, { headers: { 'x-amz-meta-big': 'x'.repeat(20_000) }, unsigned: true });
    assert.equal(big.code, 'RequestHeaderSectionTooLarge');
    // A CreateBucket whose body is not a CreateBucketConfiguration makes no bucket.
    assert.equal((await raw(gw.endpoint, key, 'PUT', '/junk-body', Buffer.from('not xml at all'))).code, 'MalformedXML');
    assert.equal((await raw(gw.endpoint, key, 'HEAD', '/junk-body', undefined)).status, 404, 'no bucket made');
    const located = Buffer.from('<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>');
    assert.equal((await raw(gw.endpoint, key, 'PUT', '/located', located)).status, 200, 'a location is taken (any region signs too)');
    await client.send(new DeleteBucketCommand({ Bucket: 'located' }));
    // A DeleteObjects whose body does not match its x-amz-checksum-crc32 deletes nothing.
    await client.send(new PutObjectCommand({ Bucket: 'bad', Key: 'kept', Body: 'k' }));
    const deleteBody = Buffer.from('<Delete><Object><Key>kept</Key></Object></Delete>');
    const wrongCrc = await raw(gw.endpoint, key, 'POST', '/bad', deleteBody, { query: [['delete', '']], headers: { 'x-amz-checksum-crc32': Buffer.alloc(4).toString('base64') } });
    assert.equal(wrongCrc.code, 'BadDigest', wrongCrc.text);
    assert.equal((await client.send(new HeadObjectCommand({ Bucket: 'bad', Key: 'kept' }))).ContentLength, 1, 'nothing deleted');
    await client.send(new DeleteObjectCommand({ Bucket: 'bad', Key: 'kept' }));
    // A body shorter than its Content-Length, the connection then closed.
    await shortBody(gw.endpoint, key, '/bad/short', 1000, 100);
    await sleep(500);
    assert.equal((await client.send(new ListObjectsV2Command({ Bucket: 'bad' }))).KeyCount, 0, 'a refused request wrote nothing');
    const names = await admin.query<{ entries: { name: string }[] }>('meta.query', { op: 'readdir', path: '/bad', limit: 100 });
    assert.deepEqual(names.entries, [], 'no temporary file left behind');
    await client.send(new DeleteBucketCommand({ Bucket: 'bad' }));
  });

  await t.test('what a probe found: racing completions, markers over files, other keys\' uploads, conditional PUTs, copies to and from markers, bad overrides, long names', async () => {
    await client.send(new CreateBucketCommand({ Bucket: 'probe' }));
    const text = async (k: string): Promise<string> => (await bodyOf(client.send(new GetObjectCommand({ Bucket: 'probe', Key: k })))).toString();
    // Two completions of one upload at once (an SDK's retry after a timeout), and an abort during
    // one: the key ends up holding the whole object or the old one, never an empty one.
    const parts = [randomBytes(5 << 20), randomBytes(5 << 20), randomBytes(5 << 20)];
    for (const ending of ['complete', 'abort'] as const) {
      await client.send(new PutObjectCommand({ Bucket: 'probe', Key: 'mp', Body: 'old' }));
      const up = await client.send(new CreateMultipartUploadCommand({ Bucket: 'probe', Key: 'mp' }));
      const etags: string[] = [];
      for (const [i, p] of parts.entries()) etags.push((await client.send(new UploadPartCommand({ Bucket: 'probe', Key: 'mp', UploadId: up.UploadId, PartNumber: i + 1, Body: p }))).ETag!);
      const complete = (): Promise<unknown> => client.send(new CompleteMultipartUploadCommand({ Bucket: 'probe', Key: 'mp', UploadId: up.UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } }));
      const first = complete();
      await sleep(30);
      const second = ending === 'complete' ? complete() : client.send(new AbortMultipartUploadCommand({ Bucket: 'probe', Key: 'mp', UploadId: up.UploadId }));
      const settled = await Promise.allSettled([first, second]);
      // Both completions succeed (the later one answers with the first's result); an abort may win.
      if (ending === 'complete') for (const s of settled) assert.equal(s.status, 'fulfilled', s.status === 'rejected' ? String(s.reason) : '');
      for (const s of settled) if (s.status === 'rejected') assert.equal((s.reason as { name?: string }).name, 'NoSuchUpload', String(s.reason));
      const now = await bodyOf(client.send(new GetObjectCommand({ Bucket: 'probe', Key: 'mp' })));
      assert.ok(now.equals(Buffer.concat(parts)) || now.toString() === 'old', `after racing ${ending}s the key holds ${now.length} bytes`);
      const completions = ending === 'complete' ? settled : settled.slice(0, 1);
      assert.ok(completions.some((s) => s.status === 'fulfilled') === now.equals(Buffer.concat(parts)), `the key holds the upload exactly when a completion succeeded (${ending}: ${settled.map((s) => (s.status === 'fulfilled' ? 'ok' : (s.reason as Error).name)).join(', ')}; key holds ${now.length} bytes)`);
    }
    // A marker key over a file of that name: refused, and the file's metadata stays.
    await client.send(new PutObjectCommand({ Bucket: 'probe', Key: 'f1', Body: 'hello', ContentType: 'text/plain', Metadata: { x: '1' } }));
    await assert.rejects(client.send(new PutObjectCommand({ Bucket: 'probe', Key: 'f1/', Body: '' })), { name: 'XCairnObjectPathConflict' });
    await client.send(new DeleteObjectCommand({ Bucket: 'probe', Key: 'f1/' }));
    await client.send(new DeleteObjectsCommand({ Bucket: 'probe', Delete: { Objects: [{ Key: 'f1/' }] } }));
    const f1 = await client.send(new HeadObjectCommand({ Bucket: 'probe', Key: 'f1' }));
    assert.deepEqual([f1.ContentType, f1.Metadata, f1.ETag], ['text/plain', { x: '1' }, `"${createHash('md5').update('hello').digest('hex')}"`]);
    // Copies to a marker key take an empty source only; a marker copies as an empty object.
    await assert.rejects(client.send(new CopyObjectCommand({ Bucket: 'probe', Key: 'cp/', CopySource: 'probe/f1' })), { name: 'InvalidRequest' });
    await client.send(new PutObjectCommand({ Bucket: 'probe', Key: 'm/', Body: '' }));
    await client.send(new CopyObjectCommand({ Bucket: 'probe', Key: 'from-marker', CopySource: 'probe/m/' }));
    assert.equal(await text('from-marker'), '');
    await assert.rejects(client.send(new CreateMultipartUploadCommand({ Bucket: 'probe', Key: 'mpdir/' })), { name: 'InvalidRequest' });
    // Another key's upload is not there for it: no parts over it, no listing, no abort.
    await s3(other).send(new CreateBucketCommand({ Bucket: 'others' }));
    const theirs = await s3(other).send(new CreateMultipartUploadCommand({ Bucket: 'others', Key: 'k' }));
    await assert.rejects(s3(narrow).send(new UploadPartCommand({ Bucket: 'others', Key: 'k', UploadId: theirs.UploadId, PartNumber: 1, Body: 'evil' })), { name: 'AccessDenied' });
    const asOther = s3(other, {});
    await asOther.send(new CreateBucketCommand({ Bucket: 'shared' }));
    const sharedUp = await asOther.send(new CreateMultipartUploadCommand({ Bucket: 'shared', Key: 'k' }));
    const third: Key = { accessKeyId: 'THIRD1', secretKey: randomBytes(20).toString('hex') };
    await admin.mutate('meta.mutate', { op: 's3UserAdd', ...third, buckets: ['*'], uid: 1002, gid: 1002 });
    await assert.rejects(s3(third).send(new UploadPartCommand({ Bucket: 'shared', Key: 'k', UploadId: sharedUp.UploadId, PartNumber: 1, Body: 'evil' })), { name: 'NoSuchUpload' });
    await assert.rejects(s3(third).send(new AbortMultipartUploadCommand({ Bucket: 'shared', Key: 'k', UploadId: sharedUp.UploadId })), { name: 'NoSuchUpload' });
    assert.equal((await s3(third).send(new ListMultipartUploadsCommand({ Bucket: 'shared' }))).Uploads, undefined);
    // A bucket's owner deletes it (not only root), and its unfinished uploads go with it.
    await asOther.send(new AbortMultipartUploadCommand({ Bucket: 'shared', Key: 'k', UploadId: sharedUp.UploadId }));
    await asOther.send(new CreateMultipartUploadCommand({ Bucket: 'shared', Key: 'left' }));
    await assert.rejects(s3(third).send(new DeleteBucketCommand({ Bucket: 'shared' })), { name: 'AccessDenied' });
    await asOther.send(new DeleteBucketCommand({ Bucket: 'shared' }));
    await asOther.send(new CreateBucketCommand({ Bucket: 'shared' }));
    assert.equal((await asOther.send(new ListMultipartUploadsCommand({ Bucket: 'shared' }))).Uploads, undefined, 'a new bucket of the name starts with no uploads');
    // Paging uploads of one key by max-uploads=1 moves on.
    const ids = [(await client.send(new CreateMultipartUploadCommand({ Bucket: 'probe', Key: 'pa' }))).UploadId, (await client.send(new CreateMultipartUploadCommand({ Bucket: 'probe', Key: 'pa' }))).UploadId];
    const seen: string[] = [];
    let markers: { KeyMarker?: string; UploadIdMarker?: string } = {};
    for (let page = 0; page < 5; page++) {
      const l = await client.send(new ListMultipartUploadsCommand({ Bucket: 'probe', MaxUploads: 1, ...markers }));
      seen.push(...(l.Uploads ?? []).map((u) => u.UploadId!));
      if (l.IsTruncated !== true) break;
      markers = { KeyMarker: l.NextKeyMarker, UploadIdMarker: l.NextUploadIdMarker };
    }
    assert.deepEqual(seen.sort(), [...ids].sort() as string[]);
    assert.equal((await raw(gw.endpoint, key, 'GET', '/probe', undefined, { query: [['uploads', ''], ['max-uploads', '-1']] })).code, 'InvalidArgument');
    // Any count up to 2^31-1 lists (Java tools ask for Integer.MAX_VALUE), at most 1000; beyond is refused.
    const huge: [string, string][][] = [[['list-type', '2'], ['max-keys', '2147483647']], [['max-keys', '2147483647']], [['uploads', ''], ['max-uploads', '2147483647']]];
    for (const query of huge) {
      const r = await raw(gw.endpoint, key, 'GET', '/probe', undefined, { query });
      assert.equal(r.status, 200, JSON.stringify(query));
    }
    assert.equal((await client.send(new ListObjectsV2Command({ Bucket: 'probe', MaxKeys: 2147483647 }))).MaxKeys, 1000);
    for (const bad of ['2147483648', '1e3', '', '5.0', '-0', '99999999999']) {
      assert.equal((await raw(gw.endpoint, key, 'GET', '/probe', undefined, { query: [['list-type', '2'], ['max-keys', bad]] })).code, 'InvalidArgument', bad);
    }
    // Conditional PUTs.
    assert.equal((await raw(gw.endpoint, key, 'PUT', '/probe/f1', Buffer.from('over'), { headers: { 'if-none-match': '*' } })).status, 412);
    assert.equal((await raw(gw.endpoint, key, 'PUT', '/probe/f1', Buffer.from('over'), { headers: { 'if-match': '"nope"' } })).status, 412);
    assert.equal(await text('f1'), 'hello');
    assert.equal((await raw(gw.endpoint, key, 'PUT', '/probe/f1', Buffer.from('over'), { headers: { 'if-match': f1.ETag! } })).status, 200);
    assert.equal(await text('f1'), 'over');
    assert.equal((await raw(gw.endpoint, key, 'PUT', '/probe/new', Buffer.from('new'), { headers: { 'if-none-match': '*' } })).status, 200);
    assert.equal((await raw(gw.endpoint, key, 'PUT', '/probe/absent', Buffer.from('x'), { headers: { 'if-match': '"abc"' } })).code, 'NoSuchKey');
    // Response overrides a header may not carry, a suffix range of an empty object.
    assert.equal((await raw(gw.endpoint, key, 'GET', '/probe/f1', undefined, { query: [['response-content-type', 'a\r\nX-Injected:1']] })).code, 'InvalidArgument');
    await client.send(new PutObjectCommand({ Bucket: 'probe', Key: 'empty', Body: '' }));
    assert.equal((await raw(gw.endpoint, key, 'GET', '/probe/empty', undefined, { headers: { range: 'bytes=-1' } })).status, 416);
    // A name of 255 bytes (the temporary name of its PUT is longer than a name may be).
    const long = 'x'.repeat(255);
    await client.send(new PutObjectCommand({ Bucket: 'probe', Key: long, Body: 'long' }));
    assert.equal(await text(long), 'long');
  });

  await t.test('what a second probe found: foreign subresources, unsigned headers, conditions on completions and copies, entities, left-over prefixes, stored headers', async () => {
    await client.send(new CreateBucketCommand({ Bucket: 'probe2' }));
    const text = async (k: string): Promise<string> => (await bodyOf(client.send(new GetObjectCommand({ Bucket: 'probe2', Key: k })))).toString();
    await client.send(new PutObjectCommand({ Bucket: 'probe2', Key: 'keep', Body: 'kept' }));
    // Operations S3 has and cairn does not are refused, not served as the plain PUT or DELETE.
    for (const [method, pathname, query] of [
      ['PUT', '/probe2/keep', [['annotation', '']]],
      ['DELETE', '/probe2/keep', [['annotation', '']]],
      ['PUT', '/probe2/keep', [['renameObject', '']]],
      ['GET', '/probe2/keep', [['partNumber', '2']]],
      ['DELETE', '/probe2', [['metadataTable', '']]],
      ['PUT', '/probe2', [['tagging', '']]],
      ['GET', '/', [['prefix', 'x']]],
    ] as [string, string, [string, string][]][]) {
      const got = await raw(gw.endpoint, key, method, pathname, method === 'PUT' ? Buffer.from('annotated') : undefined, { query });
      assert.equal(got.code, 'NotImplemented', `${method} ${pathname}?${query[0][0]}: ${got.status} ${got.text}`);
    }
    assert.equal(await text('keep'), 'kept', 'the object is untouched');
    // x-amz-* headers outside the signature: refused (they could turn a presigned PUT into a copy).
    await client.send(new PutObjectCommand({ Bucket: 'probe2', Key: 'secret', Body: 'secret' }));
    const copied = await raw(gw.endpoint, key, 'PUT', '/probe2/stolen', Buffer.from(''), { unsignedHeaders: { 'x-amz-copy-source': '/probe2/secret' } });
    assert.equal(copied.code, 'AccessDenied', copied.text);
    const url = await getSignedUrl(client, new PutObjectCommand({ Bucket: 'probe2', Key: 'stolen' }), { expiresIn: 60 });
    assert.equal((await fetch(url, { method: 'PUT', body: '', headers: { 'x-amz-copy-source': '/probe2/secret' } })).status, 403);
    await assert.rejects(client.send(new HeadObjectCommand({ Bucket: 'probe2', Key: 'stolen' })), { name: 'NotFound' });
    // A removed key stops working, whatever decoy its Authorization header carries first.
    const temp: Key = { accessKeyId: 'TEMPKEY2', secretKey: randomBytes(20).toString('hex') };
    await admin.mutate('meta.mutate', { op: 's3UserAdd', ...temp, buckets: ['*'], uid: 0, gid: 0 });
    assert.equal((await raw(gw.endpoint, temp, 'GET', '/probe2/keep', undefined)).status, 200);
    await admin.mutate('meta.mutate', { op: 's3UserRemove', accessKeyId: temp.accessKeyId });
    await sleep(1_200); // the test gateway's --credential-ttl-ms
    assert.equal((await raw(gw.endpoint, temp, 'GET', '/probe2/keep', undefined)).code, 'InvalidAccessKeyId');
    assert.equal((await raw(gw.endpoint, temp, 'GET', '/probe2/keep', undefined, { decoyCredential: true })).code, 'AuthorizationHeaderMalformed');
    // If-None-Match and If-Match hold on a completion and on a copy, as on a PUT.
    const parts = [randomBytes(5 << 20), randomBytes(1000)];
    const up = await client.send(new CreateMultipartUploadCommand({ Bucket: 'probe2', Key: 'keep' }));
    const etags: string[] = [];
    for (const [i, p] of parts.entries()) etags.push((await client.send(new UploadPartCommand({ Bucket: 'probe2', Key: 'keep', UploadId: up.UploadId, PartNumber: i + 1, Body: p }))).ETag!);
    const completion = Buffer.from(`<CompleteMultipartUpload>${etags.map((e, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${e}</ETag></Part>`).join('')}</CompleteMultipartUpload>`);
    const refused = await raw(gw.endpoint, key, 'POST', '/probe2/keep', completion, { query: [['uploadId', up.UploadId!]], headers: { 'if-none-match': '*' } });
    assert.equal(refused.status, 412, refused.text);
    assert.equal((await raw(gw.endpoint, key, 'PUT', '/probe2/keep', Buffer.from(''), { headers: { 'x-amz-copy-source': '/probe2/secret', 'if-none-match': '*' } })).status, 412);
    assert.equal((await raw(gw.endpoint, key, 'PUT', '/probe2/keep', Buffer.from(''), { headers: { 'x-amz-copy-source': '/probe2/secret', 'if-match': '"0123"' } })).status, 412);
    assert.equal(await text('keep'), 'kept', 'neither replaced the object');
    assert.equal((await raw(gw.endpoint, key, 'POST', '/probe2/keep', completion, { query: [['uploadId', up.UploadId!]], headers: { 'if-match': `"${createHash('md5').update('kept').digest('hex')}"` } })).status, 200);
    assert.ok((await bodyOf(client.send(new GetObjectCommand({ Bucket: 'probe2', Key: 'keep' })))).equals(Buffer.concat(parts)));
    // DeleteObjects reads character references: the SDK writes a carriage return in a key as &#x0D;.
    for (const k of ['cr\rx', 'new\nline', 'a&b']) await client.send(new PutObjectCommand({ Bucket: 'probe2', Key: k, Body: 'x' }));
    const deleted = await client.send(new DeleteObjectsCommand({ Bucket: 'probe2', Delete: { Objects: [{ Key: 'cr\rx' }, { Key: 'new\nline' }, { Key: 'a&b' }] } }));
    assert.deepEqual((deleted.Deleted ?? []).map((d) => d.Key).sort(), ['a&b', 'cr\rx', 'new\nline']);
    for (const k of ['cr\rx', 'new\nline', 'a&b']) await assert.rejects(client.send(new HeadObjectCommand({ Bucket: 'probe2', Key: k })), { name: 'NotFound' }, JSON.stringify(k));
    // A refused PUT under a new prefix leaves no directory behind (it would list as a prefix).
    const md5Bad = await raw(gw.endpoint, key, 'PUT', '/probe2/bd/x/y', Buffer.from('hello'), { headers: { 'content-md5': createHash('md5').update('other').digest('base64') } });
    assert.equal(md5Bad.code, 'BadDigest');
    assert.deepEqual((await client.send(new ListObjectsV2Command({ Bucket: 'probe2', Prefix: 'bd', Delimiter: '/' }))).CommonPrefixes ?? [], []);
    await client.send(new PutObjectCommand({ Bucket: 'probe2', Key: 'bd', Body: 'a file where the prefix was' }));
    // Another user may not start uploads in (or look into) a bucket it may not write.
    await assert.rejects(s3(other).send(new CreateMultipartUploadCommand({ Bucket: 'probe2', Key: 'k' })), { name: 'AccessDenied' });
    assert.equal((await raw(gw.endpoint, other, 'HEAD', '/probe2', undefined)).status, 403);
    // Stored metadata set through a mount or the CLI goes out only as the headers S3 stores.
    await admin.mutate('meta.mutate', {
      op: 'setxattr',
      path: '/probe2/secret',
      name: 'user.cairn.s3',
      value: Buffer.from(JSON.stringify({ etag: 'x', headers: { 'set-cookie': 's=1', 'transfer-encoding': 'chunked', 'cache-control': 'no-cache' }, user: { ok: 'yes', 'bad\r\nname': 'v' } })),
      flags: 0,
    });
    const injected = await raw(gw.endpoint, key, 'GET', '/probe2/secret', undefined);
    assert.equal(injected.status, 200);
    assert.equal(injected.text, 'secret');
    assert.equal(injected.headers['set-cookie'], undefined);
    assert.equal(injected.headers['x-amz-meta-ok'], undefined, 'an ETag not of S3\'s form: the whole record is not the gateway\'s');
    await admin.mutate('meta.mutate', {
      op: 'setxattr',
      path: '/probe2/secret',
      name: 'user.cairn.s3',
      value: Buffer.from(JSON.stringify({ etag: createHash('md5').update('secret').digest('hex'), headers: { 'set-cookie': 's=1', location: 'http://elsewhere/', 'cache-control': 'no-cache' }, user: { ok: 'yes', 'bad name': 'v', evil: 'a\r\nb' } })),
      flags: 0,
    });
    const kept = await raw(gw.endpoint, key, 'GET', '/probe2/secret', undefined);
    assert.deepEqual([kept.headers['set-cookie'], kept.headers.location, kept.headers['cache-control'], kept.headers['x-amz-meta-ok'], kept.headers['x-amz-meta-evil']], [undefined, undefined, 'no-cache', 'yes', undefined]);
    // Smaller ones: the temporary names of unfinished PUTs, a copy source's version, reserved bucket names, metadata names.
    assert.equal((await raw(gw.endpoint, key, 'PUT', '/probe2/.x.cairn-put-0123456789ab', Buffer.from('x'))).code, 'InvalidArgument');
    assert.equal((await raw(gw.endpoint, key, 'PUT', '/probe2/c', Buffer.from(''), { headers: { 'x-amz-copy-source': '/probe2/secret?versionId=123' } })).code, 'InvalidArgument');
    assert.equal((await raw(gw.endpoint, key, 'PUT', '/probe2/c', Buffer.from(''), { headers: { 'x-amz-copy-source': '/.cairn-s3/uploads' } })).code, 'InvalidBucketName');
    assert.equal((await raw(gw.endpoint, key, 'PUT', '/xn--abc', undefined)).code, 'InvalidBucketName');
    assert.equal((await raw(gw.endpoint, key, 'PUT', '/probe2/m', Buffer.from('x'), { headers: { 'x-amz-meta-': 'v' } })).code, 'InvalidArgument');
    assert.equal((await raw(gw.endpoint, key, 'PUT', '/probe2/proto', Buffer.from('p'), { headers: { 'x-amz-meta-__proto__': 'kept', 'x-amz-meta-constructor': 'also' } })).status, 200);
    const proto = await raw(gw.endpoint, key, 'HEAD', '/probe2/proto', undefined);
    assert.deepEqual([proto.headers['x-amz-meta-__proto__'], proto.headers['x-amz-meta-constructor']], ['kept', 'also']);
  });
});

/** How long the test gateway answers a retried completion (an hour by default). */
const completedUploadKeepMs = 2_000;

/** Starts `cairn s3` on a free port and waits for its endpoint line. */
async function startGateway(c: DataCluster, log: string): Promise<{ child: ChildProcess; endpoint: string }> {
  // Completions answer 200 early after 20 ms (5 s by default): every multipart upload below, by
  // the SDK and the AWS CLI, is read back from the kept-alive form.
  const child = c['procs'].spawn(process.execPath, [mainScript, 's3', '--listen', '127.0.0.1:0', '--masters', c.masters.addresses().join(','), '--credential-ttl-ms', '1000', '--complete-keepalive-ms', '20', '--completed-upload-keep-ms', String(completedUploadKeepMs)], log, { CAIRN_SECRET: c.masters.secret });
  let endpoint = '';
  await waitFor(async () => {
    if (child.exitCode !== null) throw new Error(`cairn s3 exited: ${await readFile(log, 'utf8')}`);
    endpoint = /serving on (http:\/\/[0-9.:]+)/.exec(await readFile(log, 'utf8').catch(() => ''))?.[1] ?? '';
    return endpoint !== '';
  }, 'the S3 gateway to start', 30_000);
  return { child, endpoint };
}

function peakRssMiB(pid: number): number {
  return Math.round(Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024);
}

/** Starts the process's peak resident memory over from what it holds now (Linux: clear_refs 5); that figure in MiB. */
function resetPeakRss(pid: number): number {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
  return Math.round(Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024);
}

/** A request signed here (src/s3/sigv4.ts's canonical form), to send what an SDK would not. */
async function raw(
  endpoint: string,
  key: Key,
  method: string,
  pathname: string,
  body: Buffer | AsyncIterable<Buffer> | undefined,
  opts: { sha256Of?: Buffer; contentLength?: number; headers?: Record<string, string>; unsigned?: boolean; query?: [string, string][]; unsignedHeaders?: Record<string, string>; decoyCredential?: boolean } = {},
): Promise<{ status: number; code: string; etag?: string; text: string; headers: IncomingHttpHeaders }> {
  const url = new URL(endpoint);
  const amzDate = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const date = amzDate.slice(0, 8);
  const payloadHash = !Buffer.isBuffer(body) ? unsignedPayload : createHash('sha256').update(opts.sha256Of ?? body).digest('hex');
  const headers: Record<string, string> = { host: url.host, 'x-amz-date': amzDate, 'x-amz-content-sha256': payloadHash, ...opts.headers };
  if (body !== undefined) headers['content-length'] = String(opts.contentLength ?? (body as Buffer).length);
  const names = Object.keys(headers).map((h) => h.toLowerCase()).filter((h) => h === 'host' || h.startsWith('x-amz-') || h === 'content-md5').sort();
  if (opts.unsigned !== true) {
    const canonical = canonicalRequest(method, pathname, opts.query ?? [], names, headers, payloadHash);
    const sig = createHmac('sha256', signingKey(key.secretKey, date, 'us-east-1', 's3')).update(stringToSign(amzDate, `${date}/us-east-1/s3/aws4_request`, canonical)).digest('hex');
    headers.authorization = `AWS4-HMAC-SHA256 ${opts.decoyCredential === true ? 'XCredential=NOSUCHKEY/x, ' : ''}Credential=${key.accessKeyId}/${date}/us-east-1/s3/aws4_request, SignedHeaders=${names.join(';')}, Signature=${sig}`;
  }
  Object.assign(headers, opts.unsignedHeaders);
  return new Promise((resolve, reject) => {
    const search = opts.query === undefined ? '' : `?${new URLSearchParams(opts.query).toString()}`;
    const req = request({ host: url.hostname, port: url.port, method, path: pathname + search, headers }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, code: /<Code>([^<]+)<\/Code>/.exec(text)?.[1] ?? '', etag: res.headers.etag, text, headers: res.headers }));
    });
    req.on('error', reject);
    if (body === undefined || Buffer.isBuffer(body)) return void req.end(body);
    void (async () => {
      for await (const piece of body) if (!req.write(piece)) await new Promise((r) => req.once('drain', r));
      req.end();
    })();
  });
}

/** Sends a PUT's headers (Content-Length `declared`) and `sent` bytes of body, then closes the connection. */
async function shortBody(endpoint: string, key: Key, pathname: string, declared: number, sent: number): Promise<void> {
  const url = new URL(endpoint);
  const amzDate = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const date = amzDate.slice(0, 8);
  const headers: Record<string, string> = { host: url.host, 'x-amz-date': amzDate, 'x-amz-content-sha256': unsignedPayload };
  const names = Object.keys(headers).sort();
  const canonical = canonicalRequest('PUT', pathname, [], names, headers, unsignedPayload);
  const sig = createHmac('sha256', signingKey(key.secretKey, date, 'us-east-1', 's3')).update(stringToSign(amzDate, `${date}/us-east-1/s3/aws4_request`, canonical)).digest('hex');
  const head = [`PUT ${pathname} HTTP/1.1`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), `content-length: ${declared}`, `authorization: AWS4-HMAC-SHA256 Credential=${key.accessKeyId}/${date}/us-east-1/s3/aws4_request, SignedHeaders=${names.join(';')}, Signature=${sig}`, '', ''].join('\r\n');
  await new Promise<void>((resolve) => {
    const s = connect(Number(url.port), url.hostname, () => {
      s.write(head);
      s.end(Buffer.alloc(sent, 'x'));
    });
    s.on('data', () => undefined);
    s.on('close', () => resolve());
    s.on('error', () => resolve());
  });
}

test('cairn local up --s3: a gateway with a key of its own, in local status; local down stops it', { timeout: 180_000 }, async (t) => {
  const cairn = (...args: string[]) => spawnSync(process.execPath, [mainScript, ...args], { encoding: 'utf8', timeout: 120_000 });
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-local-s3-'));
  const cluster = path.join(dir, 'cluster');
  t.after(async () => {
    cairn('local', 'down', '--dir', cluster);
    await rm(dir, { recursive: true, force: true });
  });
  const up = cairn('local', 'up', '--dir', cluster, '--workers', '3', '--targets-per-worker', '1', '--s3');
  assert.equal(up.status, 0, up.stderr);
  assert.match(up.stdout, /S3 endpoint http:\/\/127\.0\.0\.1:\d+, access key \S+, secret \S+/);
  const status = JSON.parse(cairn('local', 'status', '--json', '--dir', cluster).stdout) as { kind: string; endpoint?: string; accessKeyId?: string; secretKey?: string; alive: boolean; pid: number }[];
  const s3 = status.find((p) => p.kind === 's3');
  assert.ok(s3?.alive === true && s3.endpoint !== undefined, `no live s3 entry in ${JSON.stringify(status)}`);
  const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: s3.accessKeyId!, secretAccessKey: s3.secretKey! }, maxAttempts: 1 });
  await client.send(new CreateBucketCommand({ Bucket: 'data' }));
  await client.send(new PutObjectCommand({ Bucket: 'data', Key: 'dir/hello.txt', Body: 'hello from S3' }));
  const stat = cairn('fs', 'cat', '/data/dir/hello.txt', '--dir', cluster);
  assert.equal(stat.stdout, 'hello from S3', 'the object is a file of the namespace');
  client.destroy();
  const down = cairn('local', 'down', '--dir', cluster);
  assert.match(down.stdout, /stopped the S3 gateway/);
  assert.throws(() => process.kill(s3.pid, 0), 'the gateway is gone');
});
