// A request's payload as it streams in: aws-chunked framing taken off (each chunk's signature
// checked as it arrives), and at the end its length, SHA-256 and Content-MD5 checked against what
// the request declared. A check that fails throws from the stream, so that a put consuming it
// stores nothing. The MD5 (S3's ETag) is computed on the way.

import { createHash, type Hash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { S3Error, S3ErrorCode } from './errors.ts';
import type { PayloadCheck } from './sigv4.ts';

/** A chunk header line ("hex-size;chunk-signature=...") longer than this is not one. */
const chunkHeaderBytesMax = 4096;
/** aws-chunked chunks larger than this are refused (the SDKs send 64 KiB to 8 MiB). */
const chunkBytesMax = 64 * 1024 * 1024;
/** Trailing headers (checksums) of a STREAMING-*-TRAILER payload, all together. */
const trailerBytesMax = 16 * 1024;

/**
 * The request's bytes, read without destroying the request when the reader stops early (a check
 * failed): the gateway still answers with S3's error, then closes the connection itself.
 */
export function requestBytes(req: IncomingMessage): AsyncIterable<Buffer> {
  return req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>;
}

export interface PayloadSpec {
  check: PayloadCheck;
  /** The payload's length as declared (Content-Length, or x-amz-decoded-content-length when chunked). */
  declaredBytes: number;
  /** false: declaredBytes is only a bound (an HTTP chunked body declares no length). */
  exact?: boolean;
  /** Content-MD5, base64, if the request sent one. */
  contentMd5?: string;
}

export interface PayloadResult {
  sizeBytes: number;
  /** Hex MD5 of the payload, once it has all arrived. */
  md5Hex?: string;
}

/** The payload's bytes; throws S3Error from the iteration when a check fails. */
export async function* payload(source: AsyncIterable<Buffer>, spec: PayloadSpec, result: PayloadResult): AsyncGenerator<Buffer> {
  const md5 = createHash('md5');
  const sha256 = spec.check.kind === 'sha256' ? createHash('sha256') : undefined;
  const chunked = spec.check.kind === 'chunked' || spec.check.kind === 'chunked-unsigned';
  let n = 0;
  for await (const part of chunked ? dechunk(source, spec.check) : source) {
    n += part.length;
    if (n > spec.declaredBytes) throw spec.exact === false ? new S3Error(S3ErrorCode.EntityTooLarge, `the payload is longer than the ${spec.declaredBytes} bytes a request may hold`) : new S3Error(S3ErrorCode.InvalidRequest, `the payload is longer than the ${spec.declaredBytes} bytes declared`);
    md5.update(part);
    sha256?.update(part);
    yield part;
  }
  if (n < spec.declaredBytes && spec.exact !== false) throw new S3Error(S3ErrorCode.IncompleteBody, `the request body ended after ${n} of the ${spec.declaredBytes} bytes declared`);
  finish(md5, sha256, spec, result, n);
}

function finish(md5: Hash, sha256: Hash | undefined, spec: PayloadSpec, result: PayloadResult, n: number): void {
  const digest = md5.digest();
  if (sha256 !== undefined && spec.check.kind === 'sha256' && sha256.digest('hex') !== spec.check.hex) {
    throw new S3Error(S3ErrorCode.XAmzContentSHA256Mismatch, 'the provided x-amz-content-sha256 does not match what was computed');
  }
  if (spec.contentMd5 !== undefined && digest.toString('base64') !== spec.contentMd5) {
    throw new S3Error(S3ErrorCode.BadDigest, 'the Content-MD5 you specified did not match what we received');
  }
  result.sizeBytes = n;
  result.md5Hex = digest.toString('hex');
}

/** Checks a Content-MD5 header's form (S3 refuses a malformed one before reading the body). */
export function contentMd5Of(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (!/^[A-Za-z0-9+/]{22}==$/.test(header)) throw new S3Error(S3ErrorCode.InvalidDigest, 'the Content-MD5 you specified is not valid');
  return header;
}

/**
 * aws-chunked: "hex-size[;chunk-signature=sig]\r\n" + data + "\r\n", ending with a chunk of size 0,
 * then (for trailer payloads) trailing headers and "\r\n".
 */
async function* dechunk(source: AsyncIterable<Buffer>, check: PayloadCheck): AsyncGenerator<Buffer> {
  const bad = (why: string): S3Error => new S3Error(S3ErrorCode.IncompleteBody, `the aws-chunked body is malformed: ${why}`);
  let buf: Buffer = Buffer.alloc(0);
  let need: number | undefined; // bytes of the current chunk's data still to come
  let signature = '';
  let chunkHash: Hash | undefined;
  let ended = false;
  for await (const part of source) {
    buf = buf.length === 0 ? part : Buffer.concat([buf, part]);
    for (;;) {
      if (ended) {
        if (buf.length > trailerBytesMax) throw bad('the trailer is too long');
        break;
      }
      if (need === undefined) {
        const eol = buf.indexOf('\r\n');
        if (eol === -1) {
          if (buf.length > chunkHeaderBytesMax) throw bad('a chunk header line is too long');
          break;
        }
        const line = buf.subarray(0, eol).toString('latin1');
        buf = buf.subarray(eol + 2);
        const m = /^([0-9a-fA-F]{1,16})(?:;chunk-signature=([0-9a-f]{64}))?$/.exec(line);
        if (m === null) throw bad(`a chunk header is '${line.slice(0, 80)}'`);
        const size = parseInt(m[1], 16);
        if (size > chunkBytesMax) throw bad(`a chunk of ${size} bytes is larger than ${chunkBytesMax}`);
        if (check.kind === 'chunked' && m[2] === undefined) throw new S3Error(S3ErrorCode.SignatureDoesNotMatch, 'a chunk of a signed streaming payload has no signature');
        signature = m[2] ?? '';
        need = size;
        chunkHash = check.kind === 'chunked' ? createHash('sha256') : undefined;
        if (size === 0) {
          verifyChunk(check, chunkHash, signature);
          ended = true;
          continue;
        }
      }
      if (need > 0) {
        if (buf.length === 0) break;
        const take = Math.min(need, buf.length);
        const data = buf.subarray(0, take);
        buf = buf.subarray(take);
        need -= take;
        chunkHash?.update(data);
        yield data;
        if (need > 0) break;
      }
      // The chunk's data is all here: its CRLF, then its signature.
      if (buf.length < 2) break;
      if (buf[0] !== 0x0d || buf[1] !== 0x0a) throw bad('a chunk does not end with CRLF');
      buf = buf.subarray(2);
      verifyChunk(check, chunkHash, signature);
      need = undefined;
    }
  }
  if (!ended) throw new S3Error(S3ErrorCode.IncompleteBody, 'the aws-chunked body ended before its last (empty) chunk');
}

function verifyChunk(check: PayloadCheck, hash: Hash | undefined, signature: string): void {
  if (check.kind !== 'chunked') return;
  if (!check.chain.check(hash!.digest('hex'), signature)) throw new S3Error(S3ErrorCode.SignatureDoesNotMatch, 'a chunk\'s signature does not match: the payload was changed, or signed with another key');
}
