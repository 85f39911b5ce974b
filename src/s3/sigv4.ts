// AWS Signature Version 4, as an S3 server checks it: the Authorization header, presigned query
// parameters, and the per-chunk signatures of streamed (aws-chunked) payloads. Pure: the caller
// passes the request's parts, a lookup of secrets and the time.
//
// The signature covers a canonical form of the request (method, path, query, the signed headers,
// the payload's hash); the server rebuilds it from what it received and compares, in constant time.

import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { S3Error, S3ErrorCode } from './errors.ts';

export const algorithm = 'AWS4-HMAC-SHA256';
/** How far a request's time may be from the server's (S3's own bound). */
export const clockSkewMaxMs = 15 * 60 * 1000;
/** The longest a presigned URL may be valid (seven days, as S3). */
export const presignExpiresMaxSeconds = 7 * 24 * 3600;
export const emptySha256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
export const unsignedPayload = 'UNSIGNED-PAYLOAD';
export const streamingPayload = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD';
export const streamingUnsignedTrailer = 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';

export interface SigningRequest {
  method: string;
  /** The path as received, still percent-encoded, without the query. */
  path: string;
  /** The query string as received, without the '?'. */
  rawQuery: string;
  /** Header names in lower case (as Node gives them). */
  headers: Readonly<Record<string, string | string[] | undefined>>;
}

/** What the body must still prove once it arrives. */
export type PayloadCheck =
  | { kind: 'unsigned' }
  | { kind: 'sha256'; hex: string }
  /** aws-chunked, each chunk signed in a chain that starts at the request's signature. */
  | { kind: 'chunked'; chain: ChunkSigner }
  /** aws-chunked without signatures, with trailing checksums. */
  | { kind: 'chunked-unsigned' };

export interface Verified {
  accessKeyId: string;
  payload: PayloadCheck;
}

/** Signs the chunks of a streamed payload: each signature covers the one before. */
export class ChunkSigner {
  private previous: string;
  private readonly signingKey: Buffer;
  private readonly amzDate: string;
  private readonly scope: string;

  constructor(signingKey: Buffer, amzDate: string, scope: string, seedSignature: string) {
    this.signingKey = signingKey;
    this.amzDate = amzDate;
    this.scope = scope;
    this.previous = seedSignature;
  }

  /** Checks the signature a chunk came with against its data's hash, and moves the chain on. */
  check(chunkSha256Hex: string, signature: string): boolean {
    const expected = hmacHex(this.signingKey, ['AWS4-HMAC-SHA256-PAYLOAD', this.amzDate, this.scope, this.previous, emptySha256, chunkSha256Hex].join('\n'));
    if (!sameHex(expected, signature)) return false;
    this.previous = expected;
    return true;
  }
}

/**
 * Checks a request's signature (header or presigned). Returns undefined for an anonymous request
 * (neither), which the caller refuses; throws S3Error for one that is malformed, unknown, expired
 * or wrongly signed.
 */
export function verifyRequest(req: SigningRequest, secretOf: (accessKeyId: string) => string | undefined, nowMs: number): Verified | undefined {
  const auth = header(req.headers, 'authorization');
  const query = parseQuery(req.rawQuery);
  const presigned = query.some(([k]) => k === 'X-Amz-Signature' || k === 'X-Amz-Credential');
  if (auth !== undefined && presigned) throw new S3Error(S3ErrorCode.InvalidArgument, 'only one auth mechanism allowed: the Authorization header or presigned query parameters, not both');
  if (auth !== undefined) return verifyHeader(req, auth, query, secretOf, nowMs);
  if (presigned) return verifyPresigned(req, query, secretOf, nowMs);
  return undefined;
}

function verifyHeader(req: SigningRequest, auth: string, query: [string, string][], secretOf: (k: string) => string | undefined, nowMs: number): Verified {
  const malformed = (why: string): S3Error => new S3Error(S3ErrorCode.AuthorizationHeaderMalformed, `the authorization header is malformed: ${why}`);
  if (!auth.startsWith(`${algorithm} `)) {
    if (auth.startsWith('AWS ')) throw new S3Error(S3ErrorCode.InvalidRequest, 'signature version 2 is not supported: sign requests with AWS4-HMAC-SHA256');
    throw malformed(`the algorithm must be ${algorithm}`);
  }
  const parts = authorizationParts(auth, malformed);
  const credential = parts.get('Credential');
  const signedHeaders = parts.get('SignedHeaders');
  const signature = parts.get('Signature');
  if (credential === undefined || signedHeaders === undefined || signature === undefined) throw malformed('it needs Credential, SignedHeaders and Signature');
  const amzDate = header(req.headers, 'x-amz-date') ?? fromHttpDate(header(req.headers, 'date'));
  if (amzDate === undefined) throw new S3Error(S3ErrorCode.AccessDenied, 'the request has no valid X-Amz-Date or Date header');
  const scope = parseScope(credential, amzDate, malformed);
  checkSkew(amzDate, nowMs);
  const contentSha = header(req.headers, 'x-amz-content-sha256');
  if (contentSha === undefined) throw new S3Error(S3ErrorCode.InvalidRequest, 'missing required header for this request: x-amz-content-sha256');
  const payloadHash = contentSha.toLowerCase();
  if (![unsignedPayload.toLowerCase(), streamingPayload.toLowerCase(), streamingUnsignedTrailer.toLowerCase()].includes(payloadHash) && !/^[0-9a-f]{64}$/.test(payloadHash)) {
    throw new S3Error(S3ErrorCode.InvalidArgument, 'x-amz-content-sha256 must be the payload\'s SHA-256 in hex, UNSIGNED-PAYLOAD, or a STREAMING- value');
  }
  const secret = secretFor(scope.accessKeyId, secretOf);
  const names = signedHeaderNames(signedHeaders, malformed);
  const canonical = canonicalRequest(req.method, req.path, query, names, req.headers, contentSha);
  const key = signingKey(secret, scope.date, scope.region, scope.service);
  const expected = hmacHex(key, stringToSign(amzDate, scope.scope, canonical));
  if (!sameHex(expected, signature)) throw signatureMismatch();
  allAmzHeadersSigned(req.headers, names);
  let payload: PayloadCheck;
  if (contentSha === streamingPayload) payload = { kind: 'chunked', chain: new ChunkSigner(key, amzDate, scope.scope, expected) };
  else if (contentSha === streamingUnsignedTrailer) payload = { kind: 'chunked-unsigned' };
  else if (contentSha === unsignedPayload) payload = { kind: 'unsigned' };
  else payload = { kind: 'sha256', hex: payloadHash };
  return { accessKeyId: scope.accessKeyId, payload };
}

/**
 * The access key a request names (header or presigned), read as verifyRequest reads it, so that
 * the key whose secret is looked up is the one the signature is checked with; undefined when it
 * names none or its authorization is malformed (verifyRequest then says why).
 */
export function accessKeyIdOf(req: Pick<SigningRequest, 'headers' | 'rawQuery'>): string | undefined {
  const auth = header(req.headers, 'authorization');
  try {
    const credential = auth !== undefined ? authorizationParts(auth, (why) => new S3Error(S3ErrorCode.AuthorizationHeaderMalformed, why)).get('Credential') : parseQuery(req.rawQuery).find(([k]) => k === 'X-Amz-Credential')?.[1];
    return credential?.split('/')[0];
  } catch {
    return undefined;
  }
}

/** The name=value parts of an Authorization header after its algorithm; a name given twice, or one S3 does not define, is malformed. */
function authorizationParts(auth: string, malformed: (why: string) => S3Error): Map<string, string> {
  const parts = new Map<string, string>();
  if (!auth.startsWith(`${algorithm} `)) return parts;
  for (const p of auth.slice(algorithm.length + 1).split(',')) {
    const eq = p.indexOf('=');
    if (eq <= 0) continue;
    const name = p.slice(0, eq).trim();
    if (!authorizationPartNames.has(name)) throw malformed(`it has an unknown part '${name.slice(0, 40)}'`);
    if (parts.has(name)) throw malformed(`${name} is given twice`);
    parts.set(name, p.slice(eq + 1).trim());
  }
  return parts;
}

const authorizationPartNames = new Set(['Credential', 'SignedHeaders', 'Signature']);

/**
 * Every x-amz-* header the request carries is among those its signature covers, as S3 requires: an
 * unsigned one (x-amz-copy-source, x-amz-meta-*) could otherwise be added to a signed request, or
 * to a presigned URL, by anyone who holds it.
 */
function allAmzHeadersSigned(headers: SigningRequest['headers'], signed: readonly string[]): void {
  const unsigned = Object.keys(headers).filter((n) => n.startsWith('x-amz-') && headers[n] !== undefined && !signed.includes(n));
  if (unsigned.length > 0) throw new S3Error(S3ErrorCode.AccessDenied, 'there were headers present in the request which were not signed', { HeadersNotSigned: unsigned.join(', ').slice(0, 200) });
}

function verifyPresigned(req: SigningRequest, query: [string, string][], secretOf: (k: string) => string | undefined, nowMs: number): Verified {
  const bad = (why: string): S3Error => new S3Error(S3ErrorCode.AuthorizationQueryParametersError, why);
  const get = (k: string): string | undefined => {
    const found = query.filter(([n]) => n === k);
    // Two values of one: which one a signer meant is unknowable (and a dropped extra signature would let another pass).
    if (found.length > 1) throw bad(`${k} is given ${found.length} times`);
    return found[0]?.[1];
  };
  if (get('X-Amz-Algorithm') !== algorithm) throw bad(`X-Amz-Algorithm must be ${algorithm}`);
  const credential = get('X-Amz-Credential');
  const amzDate = get('X-Amz-Date');
  const expires = get('X-Amz-Expires');
  const signedHeaders = get('X-Amz-SignedHeaders');
  const signature = get('X-Amz-Signature');
  if (credential === undefined || amzDate === undefined || expires === undefined || signedHeaders === undefined || signature === undefined) {
    throw bad('a presigned request needs X-Amz-Credential, X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders and X-Amz-Signature');
  }
  if (!/^\d{1,7}$/.test(expires) || Number(expires) < 1 || Number(expires) > presignExpiresMaxSeconds) throw bad(`X-Amz-Expires must be 1 to ${presignExpiresMaxSeconds} seconds`);
  const scope = parseScope(credential, amzDate, bad);
  const signedAt = amzDateMs(amzDate);
  if (signedAt - nowMs > clockSkewMaxMs) throw new S3Error(S3ErrorCode.AccessDenied, 'request is not valid yet: X-Amz-Date is in the future');
  if (nowMs > signedAt + Number(expires) * 1000) throw new S3Error(S3ErrorCode.AccessDenied, 'request has expired');
  const secret = secretFor(scope.accessKeyId, secretOf);
  const names = signedHeaderNames(signedHeaders, bad);
  const unsigned = query.filter(([k]) => k !== 'X-Amz-Signature');
  const contentSha = header(req.headers, 'x-amz-content-sha256');
  const canonical = canonicalRequest(req.method, req.path, unsigned, names, req.headers, contentSha ?? unsignedPayload);
  const expected = hmacHex(signingKey(secret, scope.date, scope.region, scope.service), stringToSign(amzDate, scope.scope, canonical));
  if (!sameHex(expected, signature)) throw signatureMismatch();
  allAmzHeadersSigned(req.headers, names);
  // A signed x-amz-content-sha256 names the body the URL is for: the body must be that one.
  if (contentSha === undefined || contentSha === unsignedPayload) return { accessKeyId: scope.accessKeyId, payload: { kind: 'unsigned' } };
  if (!/^[0-9a-f]{64}$/.test(contentSha.toLowerCase())) throw new S3Error(S3ErrorCode.InvalidArgument, 'a presigned request\'s x-amz-content-sha256 must be the payload\'s SHA-256 in hex, or UNSIGNED-PAYLOAD');
  return { accessKeyId: scope.accessKeyId, payload: { kind: 'sha256', hex: contentSha.toLowerCase() } };
}

interface Scope {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
  /** date/region/service/aws4_request */
  scope: string;
}

function parseScope(credential: string, amzDate: string, bad: (why: string) => S3Error): Scope {
  const parts = credential.split('/');
  if (parts.length !== 5 || parts[4] !== 'aws4_request') throw bad('the credential must be ACCESS_KEY/YYYYMMDD/REGION/s3/aws4_request');
  const [accessKeyId, date, region, service] = parts;
  if (!/^\d{8}$/.test(date)) throw bad(`the credential's date '${date}' is not YYYYMMDD`);
  if (service !== 's3') throw bad(`the credential's service must be s3, not '${service}'`);
  if (!/^\d{8}T\d{6}Z$/.test(amzDate)) throw bad('X-Amz-Date must be YYYYMMDDTHHMMSSZ');
  if (amzDate.slice(0, 8) !== date) throw bad(`the credential's date ${date} is not the request's (${amzDate.slice(0, 8)})`);
  return { accessKeyId, date, region, service, scope: parts.slice(1).join('/') };
}

function checkSkew(amzDate: string, nowMs: number): void {
  const at = amzDateMs(amzDate);
  if (Math.abs(at - nowMs) > clockSkewMaxMs) {
    throw new S3Error(S3ErrorCode.RequestTimeTooSkewed, 'the difference between the request time and the server\'s time is too large (15 minutes at most)', { RequestTime: amzDate, ServerTime: new Date(nowMs).toISOString() });
  }
}

function amzDateMs(amzDate: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate);
  if (m === null) throw new S3Error(S3ErrorCode.AccessDenied, 'X-Amz-Date must be YYYYMMDDTHHMMSSZ');
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
}

/** An HTTP Date header as an X-Amz-Date, when the client sent no X-Amz-Date. */
function fromHttpDate(date: string | undefined): string | undefined {
  if (date === undefined) return undefined;
  const ms = Date.parse(date);
  if (Number.isNaN(ms)) return undefined;
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

function secretFor(accessKeyId: string, secretOf: (k: string) => string | undefined): string {
  const secret = secretOf(accessKeyId);
  if (secret === undefined) throw new S3Error(S3ErrorCode.InvalidAccessKeyId, 'the access key id you provided does not exist in our records');
  return secret;
}

function signedHeaderNames(list: string, bad: (why: string) => S3Error): string[] {
  const names = list.split(';');
  if (!names.includes('host')) throw bad('SignedHeaders must include host');
  if (names.some((n) => n === '' || n !== n.toLowerCase())) throw bad('SignedHeaders must be lower-case names separated by ;');
  return names;
}

function signatureMismatch(): S3Error {
  return new S3Error(S3ErrorCode.SignatureDoesNotMatch, 'the request signature we calculated does not match the signature you provided: check your key and signing method');
}

export function canonicalRequest(method: string, path: string, query: [string, string][], signedHeaders: string[], headers: SigningRequest['headers'], payloadHash: string): string {
  const lines = signedHeaders.map((n) => `${n}:${canonicalHeaderValue(headers[n])}\n`).join('');
  return [method, canonicalUri(path), canonicalQuery(query), lines, signedHeaders.join(';'), payloadHash].join('\n');
}

export function stringToSign(amzDate: string, scope: string, canonical: string): string {
  return [algorithm, amzDate, scope, sha256Hex(canonical)].join('\n');
}

export function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  const kDate = hmac(`AWS4${secret}`, date);
  const kRegion = hmac(kDate, region);
  const kService = hmac(kRegion, service);
  return hmac(kService, 'aws4_request');
}

/** S3 encodes the path once: each segment's bytes, decoded, then encoded as AWS's UriEncode does. */
function canonicalUri(path: string): string {
  return path
    .split('/')
    .map((seg) => uriEncode(decodePart(seg)))
    .join('/');
}

function canonicalQuery(query: [string, string][]): string {
  return query
    .map(([k, v]) => [uriEncode(k), uriEncode(v)])
    .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

function canonicalHeaderValue(v: string | string[] | undefined): string {
  const values = v === undefined ? [] : Array.isArray(v) ? v : [v];
  return values.map((x) => x.trim().replace(/\s+/g, ' ')).join(',');
}

/** The query string's pairs, decoded; a name without '=' has an empty value. */
export function parseQuery(raw: string): [string, string][] {
  if (raw === '') return [];
  return raw
    .split('&')
    .filter((p) => p !== '')
    .map((p) => {
      const eq = p.indexOf('=');
      return eq === -1 ? [decodePart(p), ''] : [decodePart(p.slice(0, eq)), decodePart(p.slice(eq + 1))];
    });
}

function decodePart(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new S3Error(S3ErrorCode.InvalidArgument, `malformed percent-encoding in '${s.slice(0, 100)}'`);
  }
}

/** AWS's UriEncode: every byte but A-Z a-z 0-9 - . _ ~ as %XX (upper-case hex). */
export function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function header(headers: SigningRequest['headers'], name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

function hmacHex(key: Buffer, data: string): string {
  return createHmac('sha256', key).update(data, 'utf8').digest('hex');
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

function sameHex(expected: string, got: string): boolean {
  const a = Buffer.from(expected, 'utf8');
  const b = Buffer.from(got.toLowerCase(), 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}
