// Bucket operations: list, create, delete, head, location; ListObjects (V1 and V2) over the
// bucket's directory tree; DeleteObjects.

import { isPutTempName } from '../client/index.ts';
import type { DirEntry, InodeAttr, ReaddirPage } from '../meta/namespace-state.ts';
import { readdirLimitMax } from '../meta/commands.ts';
import { S3Error, S3ErrorCode } from './errors.ts';
import { countParam, mayUseBucket, sendXml, toS3Error, type S3Context, type S3Request } from './gateway.ts';
import type { Caller } from '../meta/commands.ts';
import { checkNewBucketName, isBucketName, keyBytesMax } from './keys.ts';
import { listObjects, type ReadDir } from './list.ts';
import { bucketMustAllow, bucketMustExist, dirMode, header, removeObject } from './objects.ts';
import { Access } from '../meta/permissions.ts';
import { removeBucketUploads } from './multipart.ts';
import { decodeMeta, etagOf, objectMetaXattr } from './object-meta.ts';
import { parseXml, type XmlElement } from './xml.ts';
import { contentMd5Of, payload, requestBytes } from './body.ts';

/** Keys DeleteObjects takes at once (S3's bound). */
const deleteObjectsMax = 1000;
/** Request bodies read whole (XML): at most this many bytes. */
export const xmlBodyBytesMax = 2 * 1024 * 1024;
const maxKeysDefault = 1000;

export async function listBuckets(ctx: S3Context, r: S3Request): Promise<void> {
  const buckets: XmlElement[] = [];
  for await (const e of readDirPlus(ctx, '/', objectMetaXattr, undefined, r.caller)) {
    if (e.type !== 'dir' || !isBucketName(e.name)) continue;
    if (!mayUseBucket(r.user, e.name)) continue;
    // As S3: your own buckets (a key acting as root, an administrator's, sees every one).
    if (r.user.uid !== 0 && e.uid !== r.user.uid) continue;
    buckets.push({ Name: e.name, CreationDate: new Date(e.mtimeMs ?? 0).toISOString() });
  }
  sendXml(r.res, 200, 'ListAllMyBucketsResult', { Owner: owner(r), Buckets: { Bucket: buckets } });
}

export async function createBucket(ctx: S3Context, r: S3Request): Promise<void> {
  checkNewBucketName(r.bucket);
  // A CreateBucketConfiguration (a location) or nothing: any region is taken (as in signatures),
  // nothing is kept, but a body that is not one is refused before anything is made.
  const body = await readWhole(r, true);
  if (body.length > 0) parseXml(body, 'CreateBucketConfiguration');
  try {
    // Made by the gateway (the root directory is not the keys'), owned by the key's user.
    await ctx.meta.mutate('meta.mutate', { op: 'mkdir', path: `/${r.bucket}`, mode: dirMode, uid: r.user.uid, gid: r.user.gid, parents: false });
  } catch (err) {
    if ((err as { code?: string }).code !== 'EEXIST') throw err;
    // As S3 in us-east-1: creating your own bucket again succeeds and changes nothing.
    const attr = await ctx.meta.query<InodeAttr>('meta.query', { op: 'stat', path: `/${r.bucket}` });
    if (attr.type !== 'dir' || attr.uid !== r.user.uid) throw new S3Error(S3ErrorCode.BucketAlreadyExists, 'the requested bucket name is not available: it belongs to another user, or names a file', { BucketName: r.bucket });
  }
  r.res.writeHead(200, { location: `/${r.bucket}`, 'content-length': 0 });
  r.res.end();
}

export async function deleteBucket(ctx: S3Context, r: S3Request): Promise<void> {
  try {
    // A bucket is its owner's to delete (as S3's); the gateway removes it, as it made it (the
    // root directory is not the keys').
    const attr = await ctx.meta.query<InodeAttr>('meta.query', { op: 'stat', path: `/${r.bucket}`, caller: r.caller });
    if (attr.type !== 'dir') throw noSuchBucket(r.bucket);
    if (attr.uid !== r.user.uid && r.user.uid !== 0) throw new S3Error(S3ErrorCode.AccessDenied, 'only the bucket\'s owner may delete it', { BucketName: r.bucket });
    await ctx.meta.mutate('meta.mutate', { op: 'rmdir', path: `/${r.bucket}` });
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') throw noSuchBucket(r.bucket);
    throw err;
  }
  // Its unfinished uploads go with it: a bucket made later under the name starts with none.
  await removeBucketUploads(ctx, r.bucket);
  r.res.writeHead(204);
  r.res.end();
}

export async function headBucket(ctx: S3Context, r: S3Request): Promise<void> {
  // As S3: another user's bucket is 403 (it exists, and is not yours).
  await bucketMustAllow(ctx, r, Access.Read | Access.Search);
  r.res.writeHead(200, { 'x-amz-bucket-region': ctx.region, 'content-length': 0 });
  r.res.end();
}

export async function bucketLocation(ctx: S3Context, r: S3Request): Promise<void> {
  await bucketMustAllow(ctx, r, Access.Read | Access.Search);
  // us-east-1 is written as an empty constraint, as S3 does.
  const text = `<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${ctx.region === 'us-east-1' ? '' : ctx.region}</LocationConstraint>`;
  r.res.writeHead(200, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(text) });
  r.res.end(text);
}

export async function listObjectsV1(ctx: S3Context, r: S3Request): Promise<void> {
  const p = listParams(r);
  const marker = r.query.get('marker') ?? '';
  const listed = await list(ctx, r, p, marker);
  const body: XmlElement = {
    Name: r.bucket,
    Prefix: p.prefix,
    Marker: marker,
    MaxKeys: p.maxKeys,
    ...(p.delimiter === '' ? {} : { Delimiter: p.delimiter }),
    IsTruncated: listed.truncated,
    ...(listed.truncated && p.delimiter !== '' && listed.last !== undefined ? { NextMarker: enc(p, listed.last) } : {}),
    ...(p.encoding ? { EncodingType: 'url' } : {}),
    Contents: listed.contents,
    CommonPrefixes: listed.prefixes,
  };
  sendXml(r.res, 200, 'ListBucketResult', body);
}

export async function listObjectsV2(ctx: S3Context, r: S3Request): Promise<void> {
  const p = listParams(r);
  const token = r.query.get('continuation-token');
  let after = r.query.get('start-after') ?? '';
  if (token !== undefined && token !== '') {
    const decoded = Buffer.from(token, 'base64url').toString('utf8');
    if (token === '' || Buffer.byteLength(decoded) > keyBytesMax) throw new S3Error(S3ErrorCode.InvalidArgument, 'the continuation token provided is incorrect');
    after = decoded;
  }
  const listed = await list(ctx, r, p, after);
  const body: XmlElement = {
    Name: r.bucket,
    Prefix: p.prefix,
    ...(r.query.has('start-after') ? { StartAfter: enc(p, r.query.get('start-after')!) } : {}),
    ...(token === undefined ? {} : { ContinuationToken: token }),
    MaxKeys: p.maxKeys,
    ...(p.delimiter === '' ? {} : { Delimiter: p.delimiter }),
    KeyCount: listed.contents.length + listed.prefixes.length,
    IsTruncated: listed.truncated,
    ...(listed.truncated && listed.last !== undefined ? { NextContinuationToken: Buffer.from(listed.last).toString('base64url') } : {}),
    ...(p.encoding ? { EncodingType: 'url' } : {}),
    Contents: listed.contents.map((c) => (r.query.get('fetch-owner') === 'true' ? c : { ...c, Owner: undefined })),
    CommonPrefixes: listed.prefixes,
  };
  sendXml(r.res, 200, 'ListBucketResult', body);
}

/**
 * ListObjectVersions of a bucket without versioning (cairn keeps one version): every object once,
 * as its only version, "null" (what S3 answers for objects written before versioning).
 */
export async function listObjectVersions(ctx: S3Context, r: S3Request): Promise<void> {
  const p = listParams(r);
  const keyMarker = r.query.get('key-marker') ?? '';
  const listed = await list(ctx, r, p, keyMarker);
  const body: XmlElement = {
    Name: r.bucket,
    Prefix: p.prefix,
    KeyMarker: keyMarker,
    VersionIdMarker: r.query.get('version-id-marker') ?? '',
    MaxKeys: p.maxKeys,
    ...(p.delimiter === '' ? {} : { Delimiter: p.delimiter }),
    IsTruncated: listed.truncated,
    ...(listed.truncated && listed.last !== undefined ? { NextKeyMarker: enc(p, listed.last), NextVersionIdMarker: 'null' } : {}),
    ...(p.encoding ? { EncodingType: 'url' } : {}),
    Version: listed.contents.map((c) => ({ Key: c.Key, VersionId: 'null', IsLatest: true, LastModified: c.LastModified, ETag: c.ETag, Size: c.Size, Owner: c.Owner, StorageClass: c.StorageClass })),
    CommonPrefixes: listed.prefixes,
  };
  sendXml(r.res, 200, 'ListVersionsResult', body);
}

interface ListParams {
  prefix: string;
  delimiter: string;
  maxKeys: number;
  encoding: boolean;
}

function listParams(r: S3Request): ListParams {
  const maxKeys = countParam(r, 'max-keys', maxKeysDefault);
  const encodingType = r.query.get('encoding-type');
  if (encodingType !== undefined && encodingType !== 'url') throw new S3Error(S3ErrorCode.InvalidArgument, 'invalid encoding method specified in request: only url');
  return { prefix: r.query.get('prefix') ?? '', delimiter: r.query.get('delimiter') ?? '', maxKeys, encoding: encodingType === 'url' };
}

async function list(ctx: S3Context, r: S3Request, p: ListParams, after: string): Promise<{ contents: XmlElement[]; prefixes: XmlElement[]; truncated: boolean; last?: string }> {
  await bucketMustExist(ctx, r);
  const readDir: ReadDir = (path, from) => readDirPlus(ctx, path, objectMetaXattr, from, r.caller);
  const listed = await listObjects(readDir, {
    root: `/${r.bucket}`,
    prefix: p.prefix,
    delimiter: p.delimiter,
    startAfter: after,
    maxKeys: p.maxKeys,
    isMarker: (e) => e.empty === true || e.xattr !== undefined,
    hidden: isPutTempName,
    dirEntry: async (path) => {
      const attr = await ctx.meta.query<InodeAttr>('meta.query', { op: 'stat', path, xattr: objectMetaXattr, caller: r.caller }).catch(() => undefined);
      if (attr?.type !== 'dir') return undefined;
      const marker = attr.xattr;
      const page = await ctx.meta.query<ReaddirPage>('meta.query', { op: 'readdir', path, limit: 1, caller: r.caller }).catch(() => undefined);
      return { name: path.slice(path.lastIndexOf('/') + 1), inodeId: attr.inodeId, type: 'dir', empty: page?.entries.length === 0, ...(marker === undefined ? {} : { xattr: marker }) };
    },
  });
  const contents = listed.objects.map(({ key, entry }) => {
    const meta = decodeMeta(entry.xattr);
    return {
      Key: enc(p, key),
      LastModified: new Date(entry.mtimeMs ?? 0).toISOString(),
      ETag: etagOf(meta, { inodeId: entry.inodeId, sizeBytes: entry.sizeBytes ?? 0, mtimeMs: entry.mtimeMs ?? 0 }),
      Size: entry.sizeBytes ?? 0,
      StorageClass: 'STANDARD',
      Owner: owner(r),
    } as XmlElement;
  });
  return { contents, prefixes: listed.commonPrefixes.map((cp) => ({ Prefix: enc(p, cp) })), truncated: listed.truncated, ...(listed.last === undefined ? {} : { last: listed.last }) };
}

export async function deleteObjects(ctx: S3Context, r: S3Request): Promise<void> {
  const body = await readWhole(r, true);
  const doc = parseXml(body, 'Delete');
  const objects = (doc.Object as { Key?: unknown }[] | undefined) ?? [];
  if (objects.length > deleteObjectsMax) throw new S3Error(S3ErrorCode.MalformedXML, `a DeleteObjects request may name at most ${deleteObjectsMax} keys`);
  const quiet = String(doc.Quiet ?? 'false').toLowerCase() === 'true';
  await bucketMustExist(ctx, r);
  const deleted: XmlElement[] = [];
  const errors: XmlElement[] = [];
  for (const o of objects as { Key?: unknown; VersionId?: unknown }[]) {
    const key = typeof o.Key === 'string' ? o.Key : '';
    try {
      if (key === '') throw new S3Error(S3ErrorCode.InvalidArgument, 'an object has no key');
      checkVersionId(o.VersionId);
      await removeObject(ctx, r, key);
      if (!quiet) deleted.push({ Key: key });
    } catch (err) {
      const e = toS3Error(err);
      errors.push({ Key: key, Code: e.code, Message: e.message });
    }
  }
  sendXml(r.res, 200, 'DeleteResult', { Deleted: deleted, Error: errors });
}

/** Objects have one version, "null": another id names nothing (S3 answers NoSuchVersion; InvalidArgument here). */
export function checkVersionId(id: unknown): void {
  if (id !== undefined && id !== 'null') throw new S3Error(S3ErrorCode.InvalidArgument, 'cairn keeps one version of each object: the only version id is "null"');
}

/**
 * A whole small request body (XML), checked like any payload: its signature, Content-MD5 and, with
 * `bodyChecksum`, its x-amz-checksum-* (a CompleteMultipartUpload's is the whole object's, not its
 * body's, so it is not checked here).
 */
export async function readWhole(r: S3Request, bodyChecksum = false): Promise<Buffer> {
  const chunked = r.verified.payload.kind === 'chunked' || r.verified.payload.kind === 'chunked-unsigned';
  const raw = header(r.req, chunked ? 'x-amz-decoded-content-length' : 'content-length') ?? '0';
  const declared = /^\d{1,10}$/.test(raw) ? Number(raw) : -1;
  if (declared < 0 || declared > xmlBodyBytesMax) throw new S3Error(S3ErrorCode.InvalidRequest, `a request body of this kind holds at most ${xmlBodyBytesMax} bytes`);
  const contentMd5 = contentMd5Of(header(r.req, 'content-md5'));
  const parts: Buffer[] = [];
  const spec = { check: r.verified.payload, declaredBytes: declared, ...(contentMd5 === undefined ? {} : { contentMd5 }), ...(bodyChecksum ? { headers: r.req.headers } : {}) };
  for await (const part of payload(requestBytes(r.req), spec, { sizeBytes: 0 })) parts.push(part);
  return Buffer.concat(parts);
}

/**
 * A directory's entries with sizes, times, owners and the extended attribute `xattr`, a page at a
 * time; none if it is not there. As `caller`, else as the gateway itself (its own tree).
 */
export async function* readDirPlus(ctx: S3Context, path: string, xattr: string, after?: string, caller?: Caller): AsyncGenerator<DirEntry> {
  let from = after;
  for (;;) {
    let page: ReaddirPage;
    try {
      page = await ctx.meta.query<ReaddirPage>('meta.query', { op: 'readdir', path, limit: readdirLimitMax, plus: true, xattr, ...(from === undefined ? {} : { after: from }), ...(caller === undefined ? {} : { caller }) });
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw err;
    }
    yield* page.entries;
    if (page.next === undefined) return;
    from = page.next;
  }
}

function enc(p: ListParams, key: string): string {
  return p.encoding ? encodeURIComponent(key).replace(/%2F/g, '/') : key;
}

function owner(r: S3Request): XmlElement {
  return { ID: String(r.user.uid), DisplayName: r.user.accessKeyId };
}

function noSuchBucket(bucket: string): S3Error {
  return new S3Error(S3ErrorCode.NoSuchBucket, 'the specified bucket does not exist', { BucketName: bucket });
}
