// A request's payload as it streams in: aws-chunked framing taken off (each chunk's signature
// checked as it arrives, the trailer parsed), and at the end its length, SHA-256, Content-MD5 and
// S3 additional checksum (x-amz-checksum-*, as a header or in the trailer) checked against what the
// request declared. A check that fails throws from the stream, so that a put consuming it stores
// nothing. The MD5 (S3's ETag) is computed on the way.

import { createHash, type Hash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { crc32 } from 'node:zlib';
import { crc32c } from '@node-rs/crc32';
import { S3Error, S3ErrorCode } from './errors.ts';
import type { PayloadCheck } from './sigv4.ts';

/** A chunk header line ("hex-size;chunk-signature=...") longer than this is not one. */
const chunkHeaderBytesMax = 4096;
/** aws-chunked chunks larger than this are refused (the SDKs send 64 KiB to 8 MiB). */
const chunkBytesMax = 64 * 1024 * 1024;
/** Trailing headers (checksums) of a STREAMING-*-TRAILER payload, all together. */
const trailerBytesMax = 16 * 1024;

/** The additional checksums cairn computes (S3 also has CRC64NVME), each its digest's length in bytes. */
const checksumBytes = { crc32: 4, crc32c: 4, sha1: 20, sha256: 32 } as const;
type ChecksumAlgorithm = keyof typeof checksumBytes;
const checksumPrefix = 'x-amz-checksum-';
/** x-amz-checksum-* headers that carry no checksum (multipart uploads' and GET's settings). */
const notChecksumHeaders: ReadonlySet<string> = new Set(['x-amz-checksum-algorithm', 'x-amz-checksum-type', 'x-amz-checksum-mode']);

/** Header names in lower case, as Node gives them. */
export type RequestHeaders = Readonly<Record<string, string | string[] | undefined>>;

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
  /** The request's headers, for its x-amz-checksum-*, x-amz-trailer and x-amz-sdk-checksum-algorithm: without them no such checksum is checked. */
  headers?: RequestHeaders;
}

export interface PayloadResult {
  sizeBytes: number;
  /** Hex MD5 of the payload, once it has all arrived. */
  md5Hex?: string;
}

/** The payload's bytes; throws S3Error from the iteration when a check fails. */
export async function* payload(source: AsyncIterable<Buffer>, spec: PayloadSpec, result: PayloadResult): AsyncGenerator<Buffer> {
  const declaredTrailer = spec.headers === undefined ? undefined : trailerNamesOf(spec.headers);
  const wanted = spec.headers === undefined ? undefined : checksumWanted(spec.headers, spec.check);
  const sum = wanted === undefined ? undefined : runningChecksum(wanted.algorithm);
  const md5 = createHash('md5');
  const sha256 = spec.check.kind === 'sha256' ? createHash('sha256') : undefined;
  const chunked = spec.check.kind === 'chunked' || spec.check.kind === 'chunked-unsigned';
  const trailers = new Map<string, string>();
  let n = 0;
  for await (const part of chunked ? dechunk(source, spec.check, trailers) : source) {
    n += part.length;
    if (n > spec.declaredBytes) throw spec.exact === false ? new S3Error(S3ErrorCode.EntityTooLarge, `the payload is longer than the ${spec.declaredBytes} bytes a request may hold`) : new S3Error(S3ErrorCode.InvalidRequest, `the payload is longer than the ${spec.declaredBytes} bytes declared`);
    md5.update(part);
    sha256?.update(part);
    sum?.update(part);
    yield part;
  }
  if (n < spec.declaredBytes && spec.exact !== false) throw new S3Error(S3ErrorCode.IncompleteBody, `the request body ended after ${n} of the ${spec.declaredBytes} bytes declared`);
  const digest = md5.digest();
  checkDigests(digest, sha256, spec);
  if (declaredTrailer !== undefined) checkTrailerNames(declaredTrailer, trailers);
  if (wanted !== undefined && sum !== undefined) checkChecksum(wanted, sum.base64(), trailers);
  result.sizeBytes = n;
  result.md5Hex = digest.toString('hex');
}

function checkDigests(digest: Buffer, sha256: Hash | undefined, spec: PayloadSpec): void {
  if (sha256 !== undefined && spec.check.kind === 'sha256' && sha256.digest('hex') !== spec.check.hex) {
    throw new S3Error(S3ErrorCode.XAmzContentSHA256Mismatch, 'the provided x-amz-content-sha256 does not match what was computed');
  }
  if (spec.contentMd5 !== undefined && digest.toString('base64') !== spec.contentMd5) {
    throw new S3Error(S3ErrorCode.BadDigest, 'the Content-MD5 you specified did not match what we received');
  }
}

/** The additional checksum a request asks for (none: undefined), and where its value is. */
interface ChecksumWanted {
  algorithm: ChecksumAlgorithm;
  /** The x-amz-checksum-* header's value, if the request sent one (checked for form already). */
  headerValue?: string;
  /** x-amz-trailer names it: the trailer must carry it. */
  inTrailer: boolean;
}

/** Reads the checksum headers, refusing (before the body is read) what cannot be checked. */
function checksumWanted(headers: RequestHeaders, check: PayloadCheck): ChecksumWanted | undefined {
  const invalid = (why: string): S3Error => new S3Error(S3ErrorCode.InvalidRequest, why);
  const named = new Set<ChecksumAlgorithm>();
  let headerValue: string | undefined;
  for (const [name, value] of Object.entries(headers)) {
    if (!name.startsWith(checksumPrefix) || notChecksumHeaders.has(name) || value === undefined) continue;
    const algorithm = algorithmOf(name.slice(checksumPrefix.length), name);
    headerValue = Array.isArray(value) ? value.join(',') : value;
    if (!isDigestBase64(headerValue, algorithm)) throw invalid(`the value of the ${name} header is not the base64 of a ${checksumBytes[algorithm]}-byte ${algorithm.toUpperCase()}`);
    named.add(algorithm);
  }
  const trailerNames = trailerNamesOf(headers);
  if (trailerNames.size > 0 && check.kind !== 'chunked-unsigned') throw invalid('x-amz-trailer needs a STREAMING-UNSIGNED-PAYLOAD-TRAILER payload: this one has no trailer');
  let inTrailer: ChecksumAlgorithm | undefined;
  for (const t of trailerNames) {
    if (!t.startsWith(checksumPrefix) || notChecksumHeaders.has(t)) throw invalid(`x-amz-trailer names ${t}: a trailer carries only an x-amz-checksum-* header`);
    inTrailer = algorithmOf(t.slice(checksumPrefix.length), 'x-amz-trailer');
    named.add(inTrailer);
  }
  if (named.size > 1) throw invalid(`a request may carry one checksum, not ${[...named].map((a) => checksumPrefix + a).join(' and ')}`);
  const sdk = headerText(headers['x-amz-sdk-checksum-algorithm']);
  if (sdk !== '') {
    const algorithm = algorithmOf(sdk.toLowerCase(), 'x-amz-sdk-checksum-algorithm');
    if (named.size === 0) throw invalid('x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or x-amz-trailer headers were found');
    if (!named.has(algorithm)) throw invalid(`x-amz-sdk-checksum-algorithm is ${sdk}, but the checksum sent is ${checksumPrefix}${[...named][0]}`);
  }
  const [algorithm] = named;
  if (algorithm === undefined) return undefined;
  return { algorithm, inTrailer: inTrailer !== undefined, ...(headerValue === undefined ? {} : { headerValue }) };
}

/** The header names x-amz-trailer declares (lower case). */
function trailerNamesOf(headers: RequestHeaders): ReadonlySet<string> {
  return new Set(headerText(headers['x-amz-trailer']).split(',').map((t) => t.trim().toLowerCase()).filter((t) => t !== ''));
}

/** A trailer carries what x-amz-trailer declares, and nothing else. */
function checkTrailerNames(declared: ReadonlySet<string>, trailers: ReadonlyMap<string, string>): void {
  for (const t of trailers.keys()) {
    if (!declared.has(t)) throw new S3Error(S3ErrorCode.MalformedTrailerError, `the trailer carries ${t}, which x-amz-trailer does not declare`);
  }
}

/** An algorithm's name (a header's suffix, lower case) as one cairn computes; else InvalidRequest naming it. */
function algorithmOf(name: string, where: string): ChecksumAlgorithm {
  if (Object.hasOwn(checksumBytes, name)) return name as ChecksumAlgorithm;
  throw new S3Error(S3ErrorCode.InvalidRequest, `cairn cannot check a ${name.toUpperCase()} checksum (${where}): send CRC32, CRC32C, SHA1 or SHA256, or none`);
}

function headerText(value: string | string[] | undefined): string {
  return Array.isArray(value) ? value.join(',') : (value ?? '');
}

/** Whether `value` is the base64 of a digest of the algorithm's length (exactly as it encodes, padding and all). */
function isDigestBase64(value: string, algorithm: ChecksumAlgorithm): boolean {
  const bytes = Buffer.from(value, 'base64');
  return bytes.length === checksumBytes[algorithm] && bytes.toString('base64') === value;
}

interface RunningChecksum {
  update(data: Buffer): void;
  /** The digest, big-endian, in base64 (S3's form); once, at the end. */
  base64(): string;
}

function runningChecksum(algorithm: ChecksumAlgorithm): RunningChecksum {
  if (algorithm === 'sha1' || algorithm === 'sha256') {
    const hash = createHash(algorithm);
    return { update: (data) => void hash.update(data), base64: () => hash.digest('base64') };
  }
  const step = algorithm === 'crc32' ? crc32 : crc32c;
  let crc = 0;
  return {
    update: (data) => {
      crc = step(data, crc);
    },
    base64: () => {
      const out = Buffer.alloc(4);
      out.writeUInt32BE(crc >>> 0);
      return out.toString('base64');
    },
  };
}

/** Compares the computed checksum with the header's value and the trailer's. */
function checkChecksum(wanted: ChecksumWanted, computed: string, trailers: ReadonlyMap<string, string>): void {
  const name = checksumPrefix + wanted.algorithm;
  const mismatch = (): S3Error => new S3Error(S3ErrorCode.BadDigest, `the ${wanted.algorithm.toUpperCase()} you specified did not match the calculated checksum`);
  if (wanted.headerValue !== undefined && wanted.headerValue !== computed) throw mismatch();
  if (!wanted.inTrailer) return;
  const value = trailers.get(name);
  if (value === undefined) throw new S3Error(S3ErrorCode.MalformedTrailerError, `the trailer lacks the ${name} that x-amz-trailer declares`);
  if (!isDigestBase64(value, wanted.algorithm)) throw new S3Error(S3ErrorCode.InvalidRequest, `the value of the ${name} trailing header is not the base64 of a ${checksumBytes[wanted.algorithm]}-byte ${wanted.algorithm.toUpperCase()}`);
  if (value !== computed) throw mismatch();
}

/** Checks a Content-MD5 header's form (S3 refuses a malformed one before reading the body). */
export function contentMd5Of(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (!/^[A-Za-z0-9+/]{22}==$/.test(header)) throw new S3Error(S3ErrorCode.InvalidDigest, 'the Content-MD5 you specified is not valid');
  return header;
}

/**
 * aws-chunked: "hex-size[;chunk-signature=sig]\r\n" + data + "\r\n", ending with a chunk of size 0,
 * then (for trailer payloads) trailing headers "name:value\r\n", put in `trailers`, and "\r\n"; nothing
 * may follow. A body may also end right after the final chunk's header, or a trailer's last line.
 */
async function* dechunk(source: AsyncIterable<Buffer>, check: PayloadCheck, trailers: Map<string, string>): AsyncGenerator<Buffer> {
  const bad = (why: string): S3Error => new S3Error(S3ErrorCode.IncompleteBody, `the aws-chunked body is malformed: ${why}`);
  const badTrailer = (why: string): S3Error => new S3Error(S3ErrorCode.MalformedTrailerError, `the aws-chunked body's trailer is malformed: ${why}`);
  let buf: Buffer = Buffer.alloc(0);
  let need: number | undefined; // bytes of the current chunk's data still to come
  let signature = '';
  let chunkHash: Hash | undefined;
  let stage: 'chunks' | 'trailer' | 'done' = 'chunks';
  let trailerBytes = 0;
  for await (const part of source) {
    buf = buf.length === 0 ? part : Buffer.concat([buf, part]);
    for (;;) {
      if (stage === 'done') {
        if (buf.length > 0) throw badTrailer('bytes follow the end of the body');
        break;
      }
      if (stage === 'trailer') {
        const eol = buf.indexOf('\r\n');
        if (trailerBytes + (eol === -1 ? buf.length : eol + 2) > trailerBytesMax) throw badTrailer(`it is longer than ${trailerBytesMax} bytes`);
        if (eol === -1) break;
        trailerBytes += eol + 2;
        const line = buf.subarray(0, eol).toString('latin1');
        buf = buf.subarray(eol + 2);
        if (line === '') stage = 'done';
        else trailerLine(check, line, trailers, badTrailer);
        continue;
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
          stage = 'trailer';
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
  if (stage === 'chunks') throw new S3Error(S3ErrorCode.IncompleteBody, 'the aws-chunked body ended before its last (empty) chunk');
  if (buf.length > 0) throw badTrailer('it ends inside a line');
}

/** One "name:value" line of a trailer, into `trailers`; only trailer payloads have one. */
function trailerLine(check: PayloadCheck, line: string, trailers: Map<string, string>, badTrailer: (why: string) => S3Error): void {
  if (check.kind !== 'chunked-unsigned') throw badTrailer('a STREAMING-AWS4-HMAC-SHA256-PAYLOAD body has none, but bytes follow its final chunk');
  const colon = line.indexOf(':');
  if (colon <= 0) throw badTrailer(`a line is '${line.slice(0, 80)}', not name:value`);
  const name = line.slice(0, colon).trim().toLowerCase();
  if (trailers.has(name)) throw badTrailer(`it carries ${name} twice`);
  trailers.set(name, line.slice(colon + 1).trim());
}

function verifyChunk(check: PayloadCheck, hash: Hash | undefined, signature: string): void {
  if (check.kind !== 'chunked') return;
  if (!check.chain.check(hash!.digest('hex'), signature)) throw new S3Error(S3ErrorCode.SignatureDoesNotMatch, 'a chunk\'s signature does not match: the payload was changed, or signed with another key');
}
