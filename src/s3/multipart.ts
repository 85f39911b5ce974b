// Multipart uploads. An upload is a directory of the gateway's own (/.cairn-s3/uploads/BUCKET/ID)
// holding its record (an extended attribute: key, metadata, when) and one file per part, each
// written like an object (temporary name, then renamed: a part sent again replaces the old one).
// Completing copies the parts in order into the object's temporary file, which then takes the key's
// name at once, as a PUT does; the record is then marked completed (with the ETag) and the parts
// removed. A long completion answers 200 early and keeps the connection alive, as S3 does
// (completeUpload). A completed upload answers a retried completion with the same parts by its
// result, as S3 does, for completedUploadKeepMs; it is then removed (pruneCompletedUploads).

import { createHash, randomBytes } from 'node:crypto';
import { FileReader, fileRef, putFile } from '../client/index.ts';
import type { InodeAttr } from '../meta/namespace-state.ts';
import { Access } from '../meta/permissions.ts';
import { contentMd5Of, payload, requestBytes, type PayloadResult } from './body.ts';
import { S3Error, S3ErrorCode } from './errors.ts';
import { countParam, errorXml, sendXml, toS3Error, type S3Context, type S3Request } from './gateway.ts';
import { isMarkerKey, keyPath, printableKey, systemDir } from './keys.ts';
import { bucketMustAllow, bucketMustExist, copySourceOf, declaredBytes, header, objectAt, objectBytes, objectReader, putBytesMax, putConditions, writeObject } from './objects.ts';
import { decodeMeta, encodeMeta, metaFromHeaders, objectMetaXattr, type ObjectMeta } from './object-meta.ts';
import { readDirPlus, readWhole } from './buckets.ts';
import { parseXml, xmlDeclaration, xmlDocument, type XmlElement } from './xml.ts';

export const partsMax = 10_000;
/** Every part but the last must hold at least this much (S3's bound). */
export const partBytesMin = 5 * 1024 * 1024;
const uploadIdPattern = /^[A-Za-z0-9_-]{24}$/;
const uploadXattr = 'user.cairn.s3.upload';
const partsListedMax = 1000;
const uploadsListedMax = 1000;

interface UploadRecord {
  key: string;
  initiatedMs: number;
  accessKeyId: string;
  meta: Omit<ObjectMeta, 'etag'>;
  /** Set once the object is in place: the ETag it was given, and when. */
  completed?: { etag: string; completedMs: number };
}

function uploadsDir(bucket: string): string {
  return `${systemDir}/uploads/${bucket}`;
}

export async function createUpload(ctx: S3Context, r: S3Request): Promise<void> {
  keyPath(r.bucket, r.key);
  if (isMarkerKey(r.key)) throw new S3Error(S3ErrorCode.InvalidRequest, 'a key ending in / is a directory, which holds no bytes: make it with a PUT of an empty body');
  // Parts are written as the gateway: only a key that may write to the bucket starts an upload.
  await bucketMustAllow(ctx, r, Access.Write | Access.Search);
  const id = randomBytes(18).toString('base64url');
  const dir = `${uploadsDir(r.bucket)}/${id}`;
  // The gateway's own tree, as the gateway's user: keys need no permission there.
  await ctx.meta.mutate('meta.mutate', { op: 'mkdir', path: dir, mode: 0o700, uid: ctx.meta.caller.uid, gid: ctx.meta.caller.gid, parents: true });
  const record: UploadRecord = { key: r.key, initiatedMs: Date.now(), accessKeyId: r.user.accessKeyId, meta: metaFromHeaders(r.req.headers) };
  await ctx.meta.mutate('meta.mutate', { op: 'setxattr', path: dir, name: uploadXattr, value: Buffer.from(JSON.stringify(record)), flags: 0 });
  sendXml(r.res, 200, 'InitiateMultipartUploadResult', { Bucket: r.bucket, Key: r.key, UploadId: id });
  await pruneCompletedUploads(ctx, r.bucket);
}

export async function uploadPart(ctx: S3Context, r: S3Request): Promise<void> {
  const { dir } = await upload(ctx, r);
  const n = partNumber(r.query.get('partNumber'));
  const partPath = `${dir}/${String(n).padStart(5, '0')}`;
  const copy = header(r.req, 'x-amz-copy-source');
  const result: PayloadResult = { sizeBytes: 0 };
  let source: AsyncIterable<Uint8Array>;
  if (copy !== undefined) source = await copyRange(ctx, r, result);
  else {
    const declared = declaredBytes(r);
    if (declared !== undefined && declared > putBytesMax) throw new S3Error(S3ErrorCode.EntityTooLarge, `a part holds at most ${putBytesMax} bytes`);
    const contentMd5 = contentMd5Of(header(r.req, 'content-md5'));
    source = payload(requestBytes(r.req), { check: r.verified.payload, declaredBytes: declared ?? putBytesMax, exact: declared !== undefined, headers: r.req.headers, ...(contentMd5 === undefined ? {} : { contentMd5 }) }, result);
  }
  await putFile(ctx.meta, ctx.data, partPath, source, {
    mode: 0o600,
    streamBytesMax: ctx.streamBytesMax,
    xattr: () => ({ name: objectMetaXattr, value: encodeMeta({ etag: result.md5Hex! }) }),
  }).catch((err: unknown) => {
    // The upload's directory went meanwhile: aborted or completed.
    throw (err as { code?: string }).code === 'ENOENT' ? noSuchUpload(r) : err;
  });
  if (copy === undefined) {
    r.res.writeHead(200, { etag: `"${result.md5Hex}"`, 'content-length': 0 });
    r.res.end();
  } else sendXml(r.res, 200, 'CopyPartResult', { LastModified: new Date().toISOString(), ETag: `"${result.md5Hex}"` });
}

/** UploadPartCopy's source bytes (x-amz-copy-source-range or all), with their MD5 on the way. */
async function copyRange(ctx: S3Context, r: S3Request, result: PayloadResult): Promise<AsyncIterable<Uint8Array>> {
  const { bucket, key } = copySourceOf(r);
  const path = keyPath(bucket, key);
  const found = await objectAt(ctx, { ...r, bucket, key }, path);
  const size = objectBytes(found);
  let start = 0;
  let end = size - 1;
  const range = header(r.req, 'x-amz-copy-source-range');
  if (range !== undefined) {
    const m = /^bytes=(\d+)-(\d+)$/.exec(range);
    if (m === null || Number(m[1]) > Number(m[2]) || Number(m[2]) >= size) throw new S3Error(S3ErrorCode.InvalidRange, 'the x-amz-copy-source-range is not within the source object');
    start = Number(m[1]);
    end = Number(m[2]);
  }
  const reader = objectReader(ctx, found, path);
  const md5 = createHash('md5');
  return (async function* () {
    for await (const part of reader?.stream(start, end - start + 1) ?? []) {
      md5.update(part);
      result.sizeBytes += part.length;
      yield part;
    }
    result.md5Hex = md5.digest('hex');
  })();
}

export async function completeUpload(ctx: S3Context, r: S3Request): Promise<void> {
  const { dir, record } = await upload(ctx, r, true);
  const doc = parseXml(await readWhole(r), 'CompleteMultipartUpload');
  const asked = ((doc.Part as { PartNumber?: unknown; ETag?: unknown }[] | undefined) ?? []).map((p) => {
    if (typeof p !== 'object' || p === null || Array.isArray(p.PartNumber) || Array.isArray(p.ETag)) throw new S3Error(S3ErrorCode.MalformedXML, 'each Part holds one PartNumber and one ETag');
    return { n: partNumber(String(p.PartNumber ?? '')), etag: String(p.ETag ?? '').replace(/"/g, '').toLowerCase() };
  });
  if (asked.length === 0) throw new S3Error(S3ErrorCode.MalformedXML, 'the XML you provided names no parts');
  for (let i = 1; i < asked.length; i++) if (asked[i].n <= asked[i - 1].n) throw new S3Error(S3ErrorCode.InvalidPartOrder, 'the list of parts was not in ascending order');
  const etag = multipartEtag(asked.map((a) => a.etag));
  // Copying the parts takes about a second per 100 MiB here. A completion still running after
  // completeKeepAliveMs answers as S3 does: a 200 then, a space every interval so that clients'
  // read timeouts do not fire (60 s in the AWS CLI and SDKs), and at the end the result, or an
  // <Error> document, which S3 clients look for in a completion's 200.
  const res = r.res;
  let streaming = false;
  let keepAlive: NodeJS.Timeout | undefined;
  const answer = (): void => {
    clearInterval(keepAlive);
    const result = { Location: `/${r.bucket}/${encodeURI(record.key)}`, Bucket: r.bucket, Key: record.key, ETag: `"${etag}"` };
    if (streaming) res.end(xmlDocument('CompleteMultipartUploadResult', result, true, false));
    else sendXml(res, 200, 'CompleteMultipartUploadResult', result);
  };
  // A retry of a completion that succeeded (its answer was lost): the same result, as S3 gives.
  if (record.completed !== undefined) {
    if (record.completed.etag !== etag) throw noSuchUpload(r);
    answer();
    return;
  }
  const path = keyPath(r.bucket, record.key);
  try {
    // If-Match and If-None-Match are about the key's object, as on a PUT.
    const replacing = await putConditions(ctx, r, path);
    const parts = await partsToComplete(ctx, dir, asked);
    keepAlive = setInterval(() => {
      if (!streaming) {
        streaming = true;
        res.writeHead(200, { 'content-type': 'application/xml' });
        res.write(xmlDeclaration);
      }
      res.write(' ');
    }, ctx.completeKeepAliveMs);
    const bytes = (async function* () {
      for (const p of parts) {
        // A part gone meanwhile: the upload was aborted or completed by another request.
        const attr = await ctx.meta.query<InodeAttr>('meta.query', { op: 'open', path: p.path, xattr: objectMetaXattr }).catch((err: unknown) => {
          throw (err as { code?: string }).code === 'ENOENT' ? noSuchUpload(r) : err;
        });
        // A part sent again since the check holds other bytes than the ETag named (the file opened
        // now is read to its end, whatever replaces it later).
        if (decodeMeta(attr.xattr)?.etag !== p.etag) throw new S3Error(S3ErrorCode.InvalidPart, `part ${p.n} was uploaded again while the upload was being completed: its ETag no longer matches`, { PartNumber: String(p.n) });
        yield* new FileReader(ctx.data, fileRef(attr, p.path), attr.sizeBytes, { streamBytesMax: ctx.streamBytesMax }).stream();
      }
    })();
    await writeObject(ctx, r, path, bytes, () => ({ etag, ...record.meta }), replacing);
    await markCompleted(ctx, dir, record, etag);
  } catch (err) {
    // Parts gone because another completion of the same parts (an SDK's retry, or the request
    // this one retries) finished first: its result is this one's.
    const code = err instanceof S3Error ? err.code : undefined;
    // (A conditional retry finds the first's object in place: PreconditionFailed, and the same answer.)
    if ((code === S3ErrorCode.NoSuchUpload || code === S3ErrorCode.InvalidPart || code === S3ErrorCode.PreconditionFailed) && (await upload(ctx, r, true).catch(() => undefined))?.record.completed?.etag === etag) {
      answer();
      return;
    }
    if (!streaming) throw err;
    const e = toS3Error(err);
    ctx.log(e.code === S3ErrorCode.InternalError ? 'error' : 'warn', `completing upload ${r.query.get('uploadId')} of ${printableKey(`/${r.bucket}/${record.key}`)} failed after its 200 went out: ${(err as Error).stack ?? String(err)}`);
    res.end(errorXml(e, `/${r.bucket}/${record.key}`, r.id, false));
    return;
  } finally {
    clearInterval(keepAlive);
  }
  answer();
  await pruneCompletedUploads(ctx, r.bucket);
}

/** The uploaded parts a completion names, checked: each there with its ETag, all but the last big enough. */
async function partsToComplete(ctx: S3Context, dir: string, asked: { n: number; etag: string }[]): Promise<PartFile[]> {
  const have = new Map((await listPartFiles(ctx, dir, 0, partsMax)).map((p) => [p.n, p]));
  return asked.map((a, i) => {
    const p = have.get(a.n);
    if (p === undefined || p.etag !== a.etag) throw new S3Error(S3ErrorCode.InvalidPart, `part ${a.n} was not uploaded, or its ETag does not match`, { PartNumber: String(a.n) });
    if (i < asked.length - 1 && p.sizeBytes < partBytesMin) throw new S3Error(S3ErrorCode.EntityTooSmall, `part ${a.n} holds ${p.sizeBytes} bytes: every part but the last needs ${partBytesMin}`, { PartNumber: String(a.n) });
    return p;
  });
}

/** S3's ETag of a multipart object: the MD5 of its parts' binary MD5s, then "-" and their count. */
function multipartEtag(partEtags: string[]): string {
  return `${createHash('md5').update(Buffer.concat(partEtags.map((e) => Buffer.from(e, 'hex')))).digest('hex')}-${partEtags.length}`;
}

/** The object is in place: the record says so (for a retried completion), and the parts go. */
async function markCompleted(ctx: S3Context, dir: string, record: UploadRecord, etag: string): Promise<void> {
  const completed: UploadRecord = { ...record, completed: { etag, completedMs: Date.now() } };
  try {
    await ctx.meta.mutate('meta.mutate', { op: 'setxattr', path: dir, name: uploadXattr, value: Buffer.from(JSON.stringify(completed)), flags: 0 });
  } catch (err) {
    // Aborted once the object was in place: the completion stands, and there is nothing to mark.
    if ((err as { code?: string }).code === 'ENOENT') return;
    throw err;
  }
  // Parts left by a failure here go with the record (pruneCompletedUploads).
  for await (const e of readDirPlus(ctx, dir, objectMetaXattr)) await ctx.meta.mutate('meta.mutate', { op: 'unlink', path: `${dir}/${e.name}` }).catch(() => undefined);
}

/**
 * Removes a bucket's uploads completed more than completedUploadKeepMs ago, at most once a tenth of
 * that per bucket and gateway (it lists the bucket's uploads). A failure is only logged: the next
 * one tries again.
 */
async function pruneCompletedUploads(ctx: S3Context, bucket: string): Promise<void> {
  const now = Date.now();
  const last = ctx.uploadsPrunedMs.get(bucket);
  if (last !== undefined && now - last < ctx.completedUploadKeepMs / 10) return;
  ctx.uploadsPrunedMs.set(bucket, now);
  try {
    const dir = uploadsDir(bucket);
    for await (const e of readDirPlus(ctx, dir, uploadXattr)) {
      const rec = e.type === 'dir' && e.xattr !== undefined ? parseRecord(e.xattr) : undefined;
      if (rec?.completed !== undefined && now - rec.completed.completedMs >= ctx.completedUploadKeepMs) await removeUpload(ctx, `${dir}/${e.name}`);
    }
  } catch (err) {
    ctx.log('warn', `removing the completed uploads of bucket ${bucket} failed (tried again later): ${(err as Error).message}`);
  }
}

export async function abortUpload(ctx: S3Context, r: S3Request): Promise<void> {
  const { dir } = await upload(ctx, r);
  await removeUpload(ctx, dir);
  r.res.writeHead(204);
  r.res.end();
}

export async function listParts(ctx: S3Context, r: S3Request): Promise<void> {
  const { dir } = await upload(ctx, r);
  const rawMarker = r.query.get('part-number-marker') ?? '0';
  if (!/^\d{1,10}$/.test(rawMarker)) throw new S3Error(S3ErrorCode.InvalidArgument, 'part-number-marker must be a non-negative integer', { ArgumentName: 'part-number-marker' });
  const marker = Number(rawMarker);
  const max = countParam(r, 'max-parts', partsListedMax);
  const parts = await listPartFiles(ctx, dir, marker, max + 1);
  const shown = parts.slice(0, max);
  const truncated = parts.length > max;
  sendXml(r.res, 200, 'ListPartsResult', {
    Bucket: r.bucket,
    Key: r.key,
    UploadId: r.query.get('uploadId'),
    PartNumberMarker: marker,
    ...(shown.length > 0 ? { NextPartNumberMarker: shown[shown.length - 1].n } : {}),
    MaxParts: max,
    IsTruncated: truncated,
    Part: shown.map((p) => ({ PartNumber: p.n, LastModified: new Date(p.mtimeMs).toISOString(), ETag: `"${p.etag}"`, Size: p.sizeBytes })),
    StorageClass: 'STANDARD',
  });
}

export async function listUploads(ctx: S3Context, r: S3Request): Promise<void> {
  await bucketMustExist(ctx, r);
  const prefix = r.query.get('prefix') ?? '';
  const keyMarker = r.query.get('key-marker') ?? '';
  const idMarker = r.query.get('upload-id-marker') ?? '';
  const max = countParam(r, 'max-uploads', uploadsListedMax);
  const uploads: { key: string; id: string; initiatedMs: number }[] = [];
  for await (const e of readDirPlus(ctx, uploadsDir(r.bucket), uploadXattr)) {
    if (e.type !== 'dir' || e.xattr === undefined) continue;
    const rec = parseRecord(e.xattr);
    if (rec === undefined || rec.completed !== undefined || !rec.key.startsWith(prefix) || rec.key < keyMarker || !mayUseUpload(rec, r)) continue;
    uploads.push({ key: rec.key, id: e.name, initiatedMs: rec.initiatedMs });
  }
  // S3's order: by key, then by when initiated (the id breaks ties, so that a marker is exact).
  uploads.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.initiatedMs - b.initiatedMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)));
  // After the markers: keys past key-marker, or, with upload-id-marker, that key's uploads after that one.
  let from = uploads.findIndex((u) => u.key > keyMarker);
  if (from === -1) from = uploads.length;
  if (idMarker !== '') {
    const at = uploads.findIndex((u) => u.key === keyMarker && u.id === idMarker);
    if (at !== -1) from = at + 1;
  }
  const rest = uploads.slice(from);
  const shown = rest.slice(0, max);
  const truncated = rest.length > max;
  const owner: XmlElement = { ID: String(r.user.uid), DisplayName: r.user.accessKeyId };
  sendXml(r.res, 200, 'ListMultipartUploadsResult', {
    Bucket: r.bucket,
    KeyMarker: keyMarker,
    UploadIdMarker: idMarker,
    ...(truncated && shown.length > 0 ? { NextKeyMarker: shown[shown.length - 1].key, NextUploadIdMarker: shown[shown.length - 1].id } : {}),
    MaxUploads: max,
    IsTruncated: truncated,
    ...(prefix === '' ? {} : { Prefix: prefix }),
    Upload: shown.map((u) => ({ Key: u.key, UploadId: u.id, Initiator: owner, Owner: owner, StorageClass: 'STANDARD', Initiated: new Date(u.initiatedMs).toISOString() })),
  });
}

/** The upload named by ?uploadId, for this bucket and key, in progress (or completed too); NoSuchUpload otherwise. */
async function upload(ctx: S3Context, r: S3Request, orCompleted = false): Promise<{ dir: string; record: UploadRecord }> {
  const id = r.query.get('uploadId') ?? '';
  const missing = noSuchUpload(r);
  if (!uploadIdPattern.test(id)) throw missing;
  const dir = `${uploadsDir(r.bucket)}/${id}`;
  const value = await ctx.meta.query<Uint8Array>('meta.query', { op: 'getxattr', path: dir, name: uploadXattr }).catch(() => undefined);
  const record = value === undefined ? undefined : parseRecord(value);
  // Another key's upload is not there for this one (it could read, replace or abort its parts).
  if (record === undefined || record.key !== r.key || !mayUseUpload(record, r) || (record.completed !== undefined && !orCompleted)) throw missing;
  return { dir, record };
}

/** Uploads are their initiator's (the gateway writes their parts as itself); a root key sees all. */
function mayUseUpload(record: UploadRecord, r: S3Request): boolean {
  return record.accessKeyId === r.user.accessKeyId || r.user.uid === 0;
}

function noSuchUpload(r: S3Request): S3Error {
  return new S3Error(S3ErrorCode.NoSuchUpload, 'the specified upload does not exist: it may have been aborted or completed', { UploadId: (r.query.get('uploadId') ?? '').slice(0, 64) });
}

function parseRecord(value: Uint8Array): UploadRecord | undefined {
  try {
    const rec = JSON.parse(Buffer.from(value).toString('utf8')) as UploadRecord;
    return typeof rec.key === 'string' && typeof rec.initiatedMs === 'number' ? rec : undefined;
  } catch {
    return undefined;
  }
}

function partNumber(raw: string | undefined): number {
  const n = Number(raw);
  if (raw === undefined || !/^\d{1,5}$/.test(raw) || n < 1 || n > partsMax) throw new S3Error(S3ErrorCode.InvalidArgument, `part number must be an integer between 1 and ${partsMax}`);
  return n;
}

interface PartFile {
  n: number;
  path: string;
  etag: string;
  sizeBytes: number;
  mtimeMs: number;
}

/** The parts numbered above `after`, in order, at most `max`. */
async function listPartFiles(ctx: S3Context, dir: string, after: number, max: number): Promise<PartFile[]> {
  const out: PartFile[] = [];
  for await (const e of readDirPlus(ctx, dir, objectMetaXattr, after === 0 ? undefined : String(after).padStart(5, '0'))) {
    if (e.type !== 'file' || !/^\d{5}$/.test(e.name)) continue;
    const meta = decodeMeta(e.xattr);
    if (meta === undefined) continue;
    out.push({ n: Number(e.name), path: `${dir}/${e.name}`, etag: meta.etag, sizeBytes: e.sizeBytes ?? 0, mtimeMs: e.mtimeMs ?? 0 });
    if (out.length === max) break;
  }
  return out;
}

/** Removes every upload of a bucket (the bucket is gone). */
export async function removeBucketUploads(ctx: S3Context, bucket: string): Promise<void> {
  const dir = uploadsDir(bucket);
  for await (const e of readDirPlus(ctx, dir, uploadXattr)) if (e.type === 'dir') await removeUpload(ctx, `${dir}/${e.name}`);
  await ctx.meta.mutate('meta.mutate', { op: 'rmdir', path: dir }).catch(() => undefined);
}

async function removeUpload(ctx: S3Context, dir: string): Promise<void> {
  for await (const e of readDirPlus(ctx, dir, objectMetaXattr)) await ctx.meta.mutate('meta.mutate', { op: 'unlink', path: `${dir}/${e.name}` }).catch(() => undefined);
  await ctx.meta.mutate('meta.mutate', { op: 'rmdir', path: dir }).catch(() => undefined);
}

