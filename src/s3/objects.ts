// Object operations: PUT (streamed to a temporary name, checked, then renamed into place), GET and
// HEAD (ranges, conditions, response overrides; streamed with backpressure), DELETE (and the empty
// directories it leaves), and CopyObject. Memory per request stays within the gateway's
// streamBytesMax whatever the object's size.

import { validateHeaderValue, type IncomingMessage, type ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import { FileReader, fileRef, putFile, type LentBytes } from '../client/index.ts';
import type { InodeAttr } from '../meta/namespace-state.ts';
import { Access, mayAccess } from '../meta/permissions.ts';
import { contentMd5Of, payload, requestBytes, type PayloadResult } from './body.ts';
import { S3Error, S3ErrorCode } from './errors.ts';
import { mayUseBucket, pathConflict, sendXml, type S3Context, type S3Request } from './gateway.ts';
import { checkBucketName, isMarkerKey, keyPath, printableKey } from './keys.ts';
import { contentTypeOf, decodeMeta, encodeMeta, etagOf, metaFromHeaders, objectMetaXattr, type ObjectMeta } from './object-meta.ts';

/** S3's bound on a single PUT (larger objects go in parts). */
export const putBytesMax = 5 * 1024 ** 3;
/**
 * Objects, buckets and the directories made for keys are private to the key's user, as S3's are
 * to their owner: other keys (other users) get AccessDenied; root (a FUSE mount run as root) reads all.
 */
export const objectMode = 0o600;
export const dirMode = 0o700;
const emptyMd5 = createHash('md5').digest('hex');

export async function putObject(ctx: S3Context, r: S3Request): Promise<void> {
  if (r.req.headers['x-amz-copy-source'] !== undefined) return copyObject(ctx, r);
  const path = keyPath(r.bucket, r.key);
  const declared = declaredBytes(r);
  if (declared !== undefined && declared > putBytesMax) throw new S3Error(S3ErrorCode.EntityTooLarge, `your proposed upload of ${declared} bytes exceeds the ${putBytesMax} bytes a single PUT may hold: upload it in parts`);
  const fields = metaFromHeaders(r.req.headers);
  const contentMd5 = contentMd5Of(header(r.req, 'content-md5'));
  const result: PayloadResult = { sizeBytes: 0 };
  const body = payload(requestBytes(r.req), { check: r.verified.payload, declaredBytes: declared ?? putBytesMax, exact: declared !== undefined, headers: r.req.headers, ...(contentMd5 === undefined ? {} : { contentMd5 }) }, result);
  let etag: string;
  if (isMarkerKey(r.key)) {
    for await (const part of body) if (part.length > 0) throw new S3Error(S3ErrorCode.InvalidRequest, 'a key ending in / is a directory: its body must be empty');
    etag = emptyMd5;
    await makeMarker(ctx, r, path, { etag, ...fields, marker: true });
  } else {
    const replacing = await putConditions(ctx, r, path);
    etag = await writeObject(ctx, r, path, body, () => ({ etag: result.md5Hex!, ...fields }), replacing);
  }
  r.res.writeHead(200, { etag: `"${etag}"`, 'content-length': 0 });
  r.res.end();
}

/**
 * Writes `source` as the object at `path`: under a temporary name, then renamed over any old one
 * with its metadata, in one step. Missing directories on the way are made (once the bucket is known to be there).
 */
export async function writeObject(ctx: S3Context, r: S3Request, path: string, source: AsyncIterable<Uint8Array>, metaOf: () => ObjectMeta, replacing?: number): Promise<string> {
  let etag = '';
  // Whether the source was read from: a failure after that is the source's or the write's, and a
  // second try would take what is left of a half-read source (a completion whose parts an abort
  // removed would become an empty object under the whole one's ETag).
  let started = false;
  const tracked: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator]: () => {
      started = true;
      return source[Symbol.asyncIterator]();
    },
  };
  const put = (): Promise<unknown> =>
    putFile(ctx.meta, ctx.data, path, tracked, {
      mode: objectMode,
      caller: r.caller,
      streamBytesMax: ctx.streamBytesMax,
      ...(replacing === undefined ? {} : { replacing }),
      xattr: () => {
        const meta = metaOf();
        etag = meta.etag;
        return { name: objectMetaXattr, value: encodeMeta(meta) };
      },
    });
  try {
    await put();
  } catch (err) {
    // The create failed before any byte was read: the directories are missing (or the bucket).
    const code = (err as { code?: string }).code;
    // The object changed between the check of a conditional write and its rename.
    if (replacing !== undefined && (code === 'EEXIST' || code === 'EAGAIN') && started) throw preconditionFailed(header(r.req, 'if-match') !== undefined ? 'If-Match' : 'If-None-Match');
    if (code !== 'ENOENT' || started) throw conflictOr(err);
    await bucketMustExist(ctx, r);
    // The directories made for this key go again if the write fails (a bad digest, a cut
    // connection): a failed PUT leaves nothing, not even an empty prefix in listings. Another
    // failed PUT may remove them just as this one made them (ENOENT again): a few more tries.
    for (let tries = 1; ; tries++) {
      const made = await makeParents(ctx, r, path);
      try {
        await put();
        break;
      } catch (e) {
        await removeMade(ctx, r, made);
        if ((e as { code?: string }).code !== 'ENOENT' || started || tries === 3) throw conflictOr(e);
      }
    }
  }
  return etag;
}

export async function getObject(ctx: S3Context, r: S3Request): Promise<void> {
  const head = r.req.method === 'HEAD';
  const path = keyPath(r.bucket, r.key);
  const found = await objectAt(ctx, r, path);
  const { attr, meta } = found;
  const etag = etagOf(meta, attr);
  const notModified = conditions(r.req, etag, attr.mtimeMs);
  const headers: Record<string, string | number> = {
    etag,
    'last-modified': new Date(attr.mtimeMs).toUTCString(),
    'accept-ranges': 'bytes',
    'content-type': contentTypeOf(meta),
  };
  for (const [k, v] of Object.entries(meta?.headers ?? {})) headers[k] = v;
  for (const [k, v] of Object.entries(meta?.user ?? {})) headers[`x-amz-meta-${k}`] = v;
  if (notModified) {
    r.res.writeHead(304, headers);
    r.res.end();
    return;
  }
  for (const name of ['content-type', 'content-language', 'expires', 'cache-control', 'content-disposition', 'content-encoding']) {
    const override = r.query.get(`response-${name}`);
    if (override === undefined) continue;
    try {
      validateHeaderValue(name, override);
    } catch {
      throw new S3Error(S3ErrorCode.InvalidArgument, `response-${name} holds characters a header may not carry`, { ArgumentName: `response-${name}` });
    }
    headers[name] = override;
  }
  const size = objectBytes(found);
  const range = rangeOf(header(r.req, 'range'), size);
  if (range === 'unsatisfiable') {
    throw new S3Error(S3ErrorCode.InvalidRange, 'the requested range is not satisfiable', { ActualObjectSize: String(size) });
  }
  const [start, length] = range === undefined ? [0, size] : [range.start, range.end - range.start + 1];
  headers['content-length'] = length;
  if (range !== undefined) headers['content-range'] = `bytes ${range.start}-${range.end}/${size}`;
  r.res.writeHead(range === undefined ? 200 : 206, headers);
  if (head || length === 0) return void r.res.end();
  await streamOut(r.res, objectReader(ctx, found, path)!.lend(start, length));
}

/**
 * Sends parts with backpressure; stops reading when the client goes away. Each part's memory goes
 * back to the receive pool once its write is done with it (the callback runs on a failed or
 * dropped write too), and never earlier: the socket may still be sending it after write returns.
 */
export async function streamOut(res: ServerResponse, parts: AsyncIterable<LentBytes>): Promise<void> {
  for await (const part of parts) {
    if (res.destroyed) return part.release();
    if (!res.write(part.data, () => part.release())) {
      await drainedOrClosed(res);
      if (res.destroyed) return;
    }
  }
  res.end();
}

/** Resolves once the response drains or closes; both listeners go then (a long GET waits thousands of times). */
function drainedOrClosed(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

export async function deleteObject(ctx: S3Context, r: S3Request): Promise<void> {
  await removeObject(ctx, r, r.key);
  r.res.writeHead(204);
  r.res.end();
}

/** Removes one key (nothing there is no error, as in S3), then the empty directories it leaves. */
export async function removeObject(ctx: S3Context, r: S3Request, key: string): Promise<void> {
  const path = keyPath(r.bucket, key);
  const as = { caller: r.caller };
  try {
    if (isMarkerKey(key)) {
      // A file of that name is another object (key without the slash): its metadata stays.
      const attr = await ctx.meta.query<InodeAttr>('meta.query', { op: 'stat', path, ...as });
      if (attr.type !== 'dir') return;
      await ctx.meta.mutate('meta.mutate', { op: 'removexattr', path, name: objectMetaXattr, ...as }).catch(ignore('ENODATA'));
      await ctx.meta.mutate('meta.mutate', { op: 'rmdir', path, ...as }).catch(ignore('ENOTEMPTY'));
    } else {
      await ctx.meta.mutate('meta.mutate', { op: 'unlink', path, ...as });
    }
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ENOENT') return bucketMustExist(ctx, r);
    if (code === 'EISDIR' || code === 'ENOTDIR') return; // no object of that name
    throw err;
  }
  await pruneParents(ctx, r, path);
}

/** Removes the directories above `path` that are left empty, up to the bucket; markers stay. */
async function pruneParents(ctx: S3Context, r: S3Request, path: string): Promise<void> {
  const bucketDir = `/${r.bucket}`;
  for (let dir = parentOf(path); dir !== bucketDir && dir.startsWith(`${bucketDir}/`); dir = parentOf(dir)) {
    if (!(await removeEmptyDir(ctx, r, dir))) return;
  }
}

/** Removes `dir` if it is empty and no marker (a key ending in '/' holds it); whether it did. */
async function removeEmptyDir(ctx: S3Context, r: S3Request, dir: string): Promise<boolean> {
  const marker = await ctx.meta.query('meta.query', { op: 'getxattr', path: dir, name: objectMetaXattr, caller: r.caller }).then(
    () => true,
    () => false,
  );
  if (marker) return false;
  return ctx.meta.mutate('meta.mutate', { op: 'rmdir', path: dir, caller: r.caller }).then(
    () => true,
    () => false,
  );
}

async function copyObject(ctx: S3Context, r: S3Request): Promise<void> {
  const { bucket, key } = copySourceOf(r);
  const directive = header(r.req, 'x-amz-metadata-directive') ?? 'COPY';
  if (directive !== 'COPY' && directive !== 'REPLACE') throw new S3Error(S3ErrorCode.InvalidArgument, 'x-amz-metadata-directive must be COPY or REPLACE');
  if (bucket === r.bucket && key === r.key && directive === 'COPY') {
    throw new S3Error(S3ErrorCode.InvalidRequest, 'this copy request is illegal because it is trying to copy an object to itself without changing the object\'s metadata');
  }
  const srcPath = keyPath(bucket, key);
  const src = await objectAt(ctx, { ...r, bucket, key }, srcPath);
  const srcEtag = etagOf(src.meta, src.attr);
  copyConditions(r.req, srcEtag, src.attr.mtimeMs);
  const fields = directive === 'REPLACE' ? metaFromHeaders(r.req.headers) : { contentType: src.meta?.contentType, headers: src.meta?.headers, user: src.meta?.user };
  const srcBytes = objectBytes(src);
  const path = keyPath(r.bucket, r.key);
  let etag: string;
  // If-Match and If-None-Match are about the destination, as on a PUT.
  const replacing = await putConditions(ctx, r, path);
  if (isMarkerKey(r.key)) {
    if (srcBytes > 0) throw new S3Error(S3ErrorCode.InvalidRequest, 'a key ending in / is a directory: only an empty object can be copied to it');
    etag = emptyMd5;
    await makeMarker(ctx, r, path, { etag, ...dropUndefined(fields), marker: true });
  } else {
    const md5 = createHash('md5');
    const reader = objectReader(ctx, src, srcPath);
    const bytes = (async function* () {
      if (reader === undefined) return;
      for await (const part of reader.stream()) {
        md5.update(part);
        yield part;
      }
    })();
    etag = await writeObject(ctx, r, path, bytes, () => ({ etag: md5.digest('hex'), ...dropUndefined(fields) }), replacing);
  }
  const attr = await ctx.meta.query<InodeAttr>('meta.query', { op: 'stat', path, caller: r.caller });
  sendXml(r.res, 200, 'CopyObjectResult', { LastModified: new Date(attr.mtimeMs).toISOString(), ETag: `"${etag}"` });
}

type FoundObject = Awaited<ReturnType<typeof objectAt>>;

/** An object's length: a directory marker is an empty object. */
export function objectBytes(found: FoundObject): number {
  return found.dir ? 0 : found.attr.sizeBytes;
}

/** A reader of an object's bytes; none for an empty object (a marker has no file to read). */
export function objectReader(ctx: S3Context, found: FoundObject, path: string): FileReader | undefined {
  const size = objectBytes(found);
  return size === 0 ? undefined : new FileReader(ctx.data, fileRef(found.attr, path), size, { streamBytesMax: ctx.streamBytesMax });
}

/** The object at a key: its attributes and stored metadata; NoSuchKey / NoSuchBucket otherwise. */
export async function objectAt(ctx: S3Context, r: S3Request, path: string): Promise<{ attr: InodeAttr; meta: ObjectMeta | undefined; dir: boolean }> {
  const marker = isMarkerKey(r.key);
  let attr: InodeAttr;
  try {
    // One query: the attributes and the object's metadata with them.
    attr = await ctx.meta.query<InodeAttr>('meta.query', { op: marker ? 'stat' : 'open', path, xattr: objectMetaXattr, caller: r.caller });
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR' || code === 'EINVAL') {
      if (code === 'ENOENT') await bucketMustExist(ctx, r);
      throw noSuchKey(r.key);
    }
    throw err;
  }
  if (marker !== (attr.type === 'dir')) throw noSuchKey(r.key);
  const value = attr.xattr;
  return { attr, meta: decodeMeta(value), dir: marker };
}

export function bucketMustExist(ctx: S3Context, r: S3Request): Promise<void> {
  return bucketMustAllow(ctx, r, 0);
}

/** The bucket, if the key's user may `want` (Access bits) on it: NoSuchBucket, AccessDenied otherwise. */
export async function bucketMustAllow(ctx: S3Context, r: S3Request, want: number): Promise<void> {
  const attr = await ctx.meta.query<InodeAttr>('meta.query', { op: 'stat', path: `/${r.bucket}`, caller: r.caller }).catch((err: unknown) => {
    if ((err as { code?: string }).code !== 'ENOENT') throw err;
    return undefined;
  });
  if (attr?.type !== 'dir') throw new S3Error(S3ErrorCode.NoSuchBucket, 'the specified bucket does not exist', { BucketName: r.bucket });
  if (!mayAccess(r.caller, attr, want)) throw new S3Error(S3ErrorCode.AccessDenied, `access key ${r.user.accessKeyId} (uid ${r.user.uid}) may not ${want & Access.Write ? 'write to' : 'read'} bucket ${r.bucket}`, { BucketName: r.bucket });
}

/**
 * Makes the missing directories above `path`, a level at a time; returns those this request made
 * (deepest first), so that a failure removes them and only them: one another request or a mount
 * made meanwhile (EEXIST here) is not this one's to remove.
 */
async function makeParents(ctx: S3Context, r: S3Request, path: string): Promise<string[]> {
  const bucketDir = `/${r.bucket}`;
  const missing: string[] = [];
  for (let dir = parentOf(path); dir !== bucketDir; dir = parentOf(dir)) {
    const there = await ctx.meta.query('meta.query', { op: 'stat', path: dir, caller: r.caller }).then(
      () => true,
      () => false,
    );
    if (there) break;
    missing.push(dir);
  }
  const made: string[] = [];
  for (const dir of missing.reverse()) {
    const ours = await ctx.meta.mutate('meta.mutate', { op: 'mkdir', path: dir, mode: dirMode, uid: r.user.uid, gid: r.user.gid, parents: false, caller: r.caller }).then(
      () => true,
      (err: unknown) => {
        if ((err as { code?: string }).code !== 'EEXIST') throw conflictOr(err);
        return false;
      },
    );
    if (ours) made.unshift(dir);
  }
  return made;
}

/** Removes the directories a failed request made for its key (deepest first) while they are empty (a marker put there meanwhile stays). */
async function removeMade(ctx: S3Context, r: S3Request, made: readonly string[]): Promise<void> {
  for (const dir of made) if (!(await removeEmptyDir(ctx, r, dir))) return;
}

async function makeMarker(ctx: S3Context, r: S3Request, path: string, meta: ObjectMeta): Promise<void> {
  await bucketMustExist(ctx, r);
  const made = await ctx.meta.mutate('meta.mutate', { op: 'mkdir', path, mode: dirMode, uid: r.user.uid, gid: r.user.gid, parents: true, caller: r.caller }).then(
    () => true,
    (err: unknown) => {
      if ((err as { code?: string }).code !== 'EEXIST') throw conflictOr(err);
      return false;
    },
  );
  // Something was there: a directory takes the marker; a file of that name keeps its own metadata.
  if (!made) await mustBeDir(ctx, r, path);
  await ctx.meta.mutate('meta.mutate', { op: 'setxattr', path, name: objectMetaXattr, value: encodeMeta(meta), flags: 0, caller: r.caller }).catch((err: unknown) => {
    throw conflictOr(err);
  });
}

/**
 * A conditional write's check (If-None-Match, If-Match: ETags or *): 412 if it does not hold now;
 * else the inode the new object may replace (0: none), so that the rename refuses if another
 * write took the key meanwhile. Undefined: no condition.
 */
export async function putConditions(ctx: S3Context, r: S3Request, path: string): Promise<number | undefined> {
  const ifNoneMatch = header(r.req, 'if-none-match');
  const ifMatch = header(r.req, 'if-match');
  if (ifNoneMatch === undefined && ifMatch === undefined) return undefined;
  const found = await objectAt(ctx, r, path).catch((err: unknown) => {
    if ((err as { code?: string }).code === S3ErrorCode.NoSuchKey) return undefined;
    throw err;
  });
  // As S3 (and, for ETags in If-None-Match and * in If-Match, as Ceph's gateway): * matches any object.
  const etag = found === undefined ? undefined : etagOf(found.meta, found.attr);
  if (ifMatch !== undefined) {
    if (etag === undefined) throw noSuchKey(r.key);
    if (!etagMatches(ifMatch, etag)) throw preconditionFailed('If-Match');
  }
  if (ifNoneMatch !== undefined && etag !== undefined && etagMatches(ifNoneMatch, etag)) throw preconditionFailed('If-None-Match');
  return found?.attr.inodeId ?? 0;
}

/** 412, naming the condition that failed when the answer does. */
function preconditionFailed(condition?: string): S3Error {
  return new S3Error(S3ErrorCode.PreconditionFailed, 'at least one of the preconditions you specified did not hold', condition === undefined ? {} : { Condition: condition });
}

async function mustBeDir(ctx: S3Context, r: S3Request, path: string): Promise<void> {
  const attr = await ctx.meta.query<InodeAttr>('meta.query', { op: 'stat', path, caller: r.caller });
  if (attr.type !== 'dir') throw pathConflict(`${printableKey(path)} is an object, not a directory: the key ${printableKey(r.key)} would make it both`);
}

/** The payload length a PUT declares (S3 needs one; an HTTP chunked body may go up to putBytesMax). */
export function declaredBytes(r: S3Request): number | undefined {
  const chunked = r.verified.payload.kind === 'chunked' || r.verified.payload.kind === 'chunked-unsigned';
  const raw = header(r.req, chunked ? 'x-amz-decoded-content-length' : 'content-length');
  if (raw === undefined && !chunked && /chunked/i.test(header(r.req, 'transfer-encoding') ?? '')) return undefined;
  if (raw === undefined) throw new S3Error(S3ErrorCode.MissingContentLength, `you must provide the ${chunked ? 'x-amz-decoded-content-length' : 'Content-Length'} HTTP header`);
  if (!/^\d{1,15}$/.test(raw)) throw new S3Error(S3ErrorCode.InvalidArgument, `the ${chunked ? 'x-amz-decoded-content-length' : 'Content-Length'} header is not a length`);
  return Number(raw);
}

function rangeOf(h: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (h === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(h.trim());
  if (m === null || (m[1] === '' && m[2] === '')) return undefined; // not one range S3 serves: the whole object
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0 || size === 0) return 'unsatisfiable'; // RFC 9110: no suffix of an empty representation
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}

/** If-Match and If-Unmodified-Since refuse (412); If-None-Match and If-Modified-Since answer "not modified". */
function conditions(req: IncomingMessage, etag: string, mtimeMs: number): boolean {
  const ifMatch = header(req, 'if-match');
  const ifNoneMatch = header(req, 'if-none-match');
  const since = dateHeader(req, 'if-modified-since');
  const unmodifiedSince = dateHeader(req, 'if-unmodified-since');
  const mtime = Math.floor(mtimeMs / 1000) * 1000;
  if (ifMatch !== undefined ? !etagMatches(ifMatch, etag) : unmodifiedSince !== undefined && mtime > unmodifiedSince) {
    throw preconditionFailed(ifMatch !== undefined ? 'If-Match' : 'If-Unmodified-Since');
  }
  if (ifNoneMatch !== undefined) return etagMatches(ifNoneMatch, etag);
  return since !== undefined && mtime <= since;
}

function copyConditions(req: IncomingMessage, etag: string, mtimeMs: number): void {
  const mtime = Math.floor(mtimeMs / 1000) * 1000;
  const ifMatch = header(req, 'x-amz-copy-source-if-match');
  const ifNoneMatch = header(req, 'x-amz-copy-source-if-none-match');
  const since = dateHeader(req, 'x-amz-copy-source-if-modified-since');
  const unmodifiedSince = dateHeader(req, 'x-amz-copy-source-if-unmodified-since');
  const failed =
    (ifMatch !== undefined && !etagMatches(ifMatch, etag)) ||
    (ifNoneMatch !== undefined && etagMatches(ifNoneMatch, etag)) ||
    (ifMatch === undefined && unmodifiedSince !== undefined && mtime > unmodifiedSince) ||
    (ifNoneMatch === undefined && since !== undefined && mtime <= since);
  if (failed) throw preconditionFailed();
}

function etagMatches(list: string, etag: string): boolean {
  return list.split(',').some((t) => {
    const tag = t.trim();
    return tag === '*' || tag === etag || `"${tag}"` === etag;
  });
}

function dateHeader(req: IncomingMessage, name: string): number | undefined {
  const v = header(req, name);
  if (v === undefined) return undefined;
  const ms = Date.parse(v);
  return Number.isNaN(ms) ? undefined : ms;
}

/** The request's x-amz-copy-source, in a bucket its key may use (CopyObject, UploadPartCopy). */
export function copySourceOf(r: S3Request): { bucket: string; key: string } {
  const src = copySource(header(r.req, 'x-amz-copy-source') ?? '');
  if (!mayUseBucket(r.user, src.bucket)) throw new S3Error(S3ErrorCode.AccessDenied, `access key ${r.user.accessKeyId} may not read bucket ${src.bucket}`);
  return src;
}

/** x-amz-copy-source: "bucket/key" or "/bucket/key", URL-encoded, maybe with "?versionId=null" (the only version). */
function copySource(value: string): { bucket: string; key: string } {
  let v = value.startsWith('/') ? value.slice(1) : value;
  const q = v.indexOf('?');
  if (q !== -1) {
    if (v.slice(q + 1) !== 'versionId=null') throw new S3Error(S3ErrorCode.InvalidArgument, 'x-amz-copy-source may name no version but "null": cairn keeps one version of each object');
    v = v.slice(0, q);
  }
  const slash = v.indexOf('/');
  if (slash <= 0 || slash === v.length - 1) throw new S3Error(S3ErrorCode.InvalidArgument, 'x-amz-copy-source must be bucket/key');
  let src: { bucket: string; key: string };
  try {
    src = { bucket: decodeURIComponent(v.slice(0, slash)), key: decodeURIComponent(v.slice(slash + 1)) };
  } catch {
    throw new S3Error(S3ErrorCode.InvalidArgument, 'x-amz-copy-source has malformed percent-encoding');
  }
  // A bucket's name, not a path into the gateway's own tree.
  checkBucketName(src.bucket);
  return src;
}

export function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

function parentOf(path: string): string {
  return path.slice(0, path.lastIndexOf('/')) || '/';
}

function noSuchKey(key: string): S3Error {
  return new S3Error(S3ErrorCode.NoSuchKey, 'the specified key does not exist', { Key: printableKey(key) });
}

/** A path in the way (a file where a directory must be, or the other way) as S3's conflict error. */
function conflictOr(err: unknown): unknown {
  const code = (err as { code?: string }).code;
  if (code === 'ENOTDIR' || code === 'EISDIR' || code === 'EEXIST') return pathConflict((err as Error).message);
  return err;
}

function ignore(code: string): (err: unknown) => void {
  return (err) => {
    if ((err as { code?: string }).code !== code) throw err;
  };
}

function dropUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

