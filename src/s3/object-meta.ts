// What S3 keeps with an object besides its bytes (ETag, Content-Type, user metadata, a few stored
// headers), as one JSON extended attribute on the file, set before the object takes its name. A
// file written another way (FUSE, the CLI) has none: it is served as binary, with an ETag made from
// its inode, size and mtime (stable while the file does not change, but not its MD5).

import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
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
  const user: Record<string, string> = {};
  let bytes = 0;
  for (const [name, value] of Object.entries(h)) {
    if (!name.startsWith('x-amz-meta-') || value === undefined) continue;
    const key = name.slice('x-amz-meta-'.length);
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

/** The stored metadata, or undefined when there is none or it is not ours. */
export function decodeMeta(value: Uint8Array | undefined): ObjectMeta | undefined {
  if (value === undefined) return undefined;
  try {
    const m = JSON.parse(Buffer.from(value).toString('utf8')) as ObjectMeta;
    return typeof m === 'object' && m !== null && typeof m.etag === 'string' ? m : undefined;
  } catch {
    return undefined;
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
