// What S3 keeps with an object besides its bytes (ETag, Content-Type, user metadata, a few stored
// headers), as one JSON extended attribute on the file, set before the object takes its name. A
// file written another way (FUSE, the CLI) has none: it is served as binary, with an ETag made from
// its inode, size and mtime (stable while the file does not change, but not its MD5).

import { createHash } from 'node:crypto';
import { validateHeaderValue, type IncomingHttpHeaders } from 'node:http';
import { S3Error, S3ErrorCode } from './errors.ts';

export const objectMetaXattr = 'user.cairn.s3';
/** S3's bound on user metadata (names and values of x-amz-meta-*). */
export const userMetaBytesMax = 2048;
/** Headers S3 stores with an object and returns on GET and HEAD. */
export const storedHeaders = ['cache-control', 'content-disposition', 'content-encoding', 'content-language', 'expires'] as const;
const defaultContentType = 'binary/octet-stream';

export interface ObjectMeta {
  /** Hex MD5 of the bytes, or of the parts' MD5s with "-N" for a multipart upload. */
  etag: string;
  contentType?: string;
  headers?: Record<string, string>;
  user?: Record<string, string>;
  /** Set on a directory made by a key ending in '/'. */
  marker?: boolean;
}

/** The metadata a request carries (PUT, POST uploads, a copy with REPLACE). */
export function metaFromHeaders(h: IncomingHttpHeaders): Omit<ObjectMeta, 'etag'> {
  // Null-prototype: a header named x-amz-meta-__proto__ is a name like any other.
  const user: Record<string, string> = Object.create(null) as Record<string, string>;
  let bytes = 0;
  for (const [name, value] of Object.entries(h)) {
    if (!name.startsWith('x-amz-meta-') || value === undefined) continue;
    const key = name.slice('x-amz-meta-'.length);
    if (key === '') throw new S3Error(S3ErrorCode.InvalidArgument, 'a user metadata header needs a name after x-amz-meta-');
    const v = Array.isArray(value) ? value.join(',') : value;
    bytes += Buffer.byteLength(key) + Buffer.byteLength(v);
    user[key] = v;
  }
  if (bytes > userMetaBytesMax) throw new S3Error(S3ErrorCode.MetadataTooLarge, `your metadata headers hold ${bytes} bytes, more than the ${userMetaBytesMax} allowed`);
  const headers: Record<string, string> = {};
  for (const name of storedHeaders) {
    let v = h[name];
    // aws-chunked is how this request's body was framed, not how the object is encoded.
    if (name === 'content-encoding' && typeof v === 'string') v = v.split(',').map((x) => x.trim()).filter((x) => x !== '' && x !== 'aws-chunked').join(', ') || undefined;
    if (typeof v === 'string') headers[name] = v;
  }
  const out: Omit<ObjectMeta, 'etag'> = {};
  if (typeof h['content-type'] === 'string') out.contentType = h['content-type'];
  if (Object.keys(headers).length > 0) out.headers = headers;
  if (Object.keys(user).length > 0) out.user = user;
  return out;
}

export function encodeMeta(m: ObjectMeta): Buffer {
  return Buffer.from(JSON.stringify(m));
}

/**
 * The stored metadata, or undefined when there is none or it is not ours. Anyone who may write the
 * file may set the attribute (setfattr through a mount), so what goes back out as headers is
 * checked here: an ETag of S3's form, the stored headers S3 has (not Set-Cookie or
 * Transfer-Encoding), names and values a header may carry; anything else is left out.
 */
export function decodeMeta(value: Uint8Array | undefined): ObjectMeta | undefined {
  if (value === undefined) return undefined;
  let m: Partial<Record<keyof ObjectMeta, unknown>>;
  try {
    m = JSON.parse(Buffer.from(value).toString('utf8')) as typeof m;
  } catch {
    return undefined;
  }
  if (typeof m !== 'object' || m === null || typeof m.etag !== 'string' || !/^[0-9a-f]{32}(-\d{1,5})?$/.test(m.etag)) return undefined;
  const out: ObjectMeta = { etag: m.etag };
  if (typeof m.contentType === 'string' && headerValueOk('content-type', m.contentType)) out.contentType = m.contentType;
  const headers = stringEntries(m.headers).filter(([k, v]) => (storedHeaders as readonly string[]).includes(k) && headerValueOk(k, v));
  if (headers.length > 0) out.headers = Object.fromEntries(headers);
  const user = stringEntries(m.user).filter(([k, v]) => userMetaNamePattern.test(k) && headerValueOk(`x-amz-meta-${k}`, v));
  if (user.length > 0) out.user = Object.fromEntries(user);
  if (m.marker === true) out.marker = true;
  return out;
}

/** A user metadata name (after x-amz-meta-) as Node gives header names: lower-case token characters. */
const userMetaNamePattern = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;

function stringEntries(o: unknown): [string, string][] {
  if (typeof o !== 'object' || o === null) return [];
  return Object.entries(o).filter((e): e is [string, string] => typeof e[1] === 'string');
}

function headerValueOk(name: string, value: string): boolean {
  try {
    validateHeaderValue(name, value);
    return true;
  } catch {
    return false;
  }
}

/** The ETag header's value (quoted). */
export function etagOf(meta: ObjectMeta | undefined, file: { inodeId: number; sizeBytes: number; mtimeMs: number }): string {
  if (meta !== undefined) return `"${meta.etag}"`;
  return `"${createHash('md5').update(`${file.inodeId}:${file.sizeBytes}:${file.mtimeMs}`).digest('hex')}"`;
}

export function contentTypeOf(meta: ObjectMeta | undefined): string {
  return meta?.contentType ?? defaultContentType;
}
