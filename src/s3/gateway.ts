// The S3 gateway's HTTP server: each request authenticated (Signature V4, keys from the masters),
// checked against the key's buckets, routed to its operation (objects.ts, buckets.ts,
// multipart.ts), and answered with S3's headers, XML and errors. Path-style addressing only
// (http://host:port/bucket/key). The namespace checks permissions as the key's uid and gid.

import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { DataClient, MasterClient } from '../client/index.ts';
import type { Caller } from '../meta/commands.ts';
import type { S3User } from '../meta/namespace-state.ts';
import { ErrorCode } from '../errors.ts';
import { JournalErrorCode } from '../journal/raft/errors.ts';
import { RpcErrorCode } from '../rpc/errors.ts';
import { WorkerErrorCode } from '../worker/errors.ts';
import { S3Error, S3ErrorCode } from './errors.ts';
import { accessKeyIdOf, parseQuery, verifyRequest, type Verified } from './sigv4.ts';
import { xmlDocument, type XmlElement } from './xml.ts';
import { checkBucketName, printableKey } from './keys.ts';
import type { S3Metrics } from './metrics.ts';

export interface GatewayOptions {
  meta: MasterClient;
  data: DataClient;
  log: (level: 'info' | 'warn' | 'error', message: string) => void;
  /** The region answered by GetBucketLocation and accepted in signatures (any region signs). */
  region?: string;
  /** How long a key's secret is trusted before the masters are asked again (a removed key stops working within it). */
  credentialTtlMs?: number;
  /** Bytes one request keeps in flight to or from the workers at most. */
  streamBytesMax?: number;
  /** While a multipart upload completes, a space is sent this often (completeUpload); default completeKeepAliveMsDefault. */
  completeKeepAliveMs?: number;
  /** How long a completed multipart upload answers a retried completion with its result; default completedUploadKeepMsDefault. */
  completedUploadKeepMs?: number;
  /** A connection that has not sent a whole request's headers this long after it opened (or its last answer) gets 408 and is closed. */
  headersTimeoutMs?: number;
  now?: () => number;
  /** Counts and times requests (/metrics). */
  metrics?: S3Metrics;
}

/** What an operation gets: the request, who asks, and the parsed address. */
export interface S3Request {
  req: IncomingMessage;
  res: ServerResponse;
  id: string;
  user: S3User;
  caller: Caller;
  verified: Verified;
  bucket: string;
  key: string;
  query: Map<string, string>;
}

export interface S3Context {
  meta: MasterClient;
  data: DataClient;
  region: string;
  streamBytesMax: number;
  completeKeepAliveMs: number;
  completedUploadKeepMs: number;
  /** When this gateway last removed a bucket's old completed uploads, by bucket (pruneCompletedUploads). */
  uploadsPrunedMs: Map<string, number>;
  log: GatewayOptions['log'];
}

type Operation = (ctx: S3Context, r: S3Request) => Promise<void>;
export interface Routes {
  listBuckets: Operation;
  bucket: Record<string, Operation | undefined>;
  object: Record<string, Operation | undefined>;
  /** The query parameters each operation takes besides the subresource that selects it, by the operation's name. */
  params: Readonly<Record<string, readonly string[] | undefined>>;
}

export const credentialTtlMsDefault = 10_000;
/** Well inside the AWS CLI's and SDKs' 60 s read timeout. */
export const completeKeepAliveMsDefault = 5_000;
/** An SDK retries a completion whose answer it lost (a dropped connection); S3 answers such a retry for hours. */
export const completedUploadKeepMsDefault = 60 * 60_000;
/** Connections the gateway holds at most (each may hold streamBytesMax in flight); Node closes more at once. */
export const connectionsMax = 256;
/** A connection that sends or reads nothing this long is closed (a request may take as long as its bytes need). */
const idleMs = 120_000;
/**
 * Headers come at once from any real client; a connection that holds one of the connectionsMax
 * places without sending them is cut (unauthenticated, it could otherwise keep all of them for
 * idleMs each, and so the gateway from everyone).
 */
export const headersTimeoutMsDefault = 10_000;
/** How long a connection refused before its request was parsed stays open for its answer to be read. */
const refusedLingerMs = 1_000;
/** How often Node looks for connections past headersTimeoutMs. */
const headersCheckMs = 1_000;
/** A gateway request's headers together (Node's parser refuses more with 431, answered as S3 does). */
export const headerBytesMax = 16 * 1024;
const credentialsCachedMax = 10_000;

export class S3Gateway {
  private readonly opts: Required<Omit<GatewayOptions, 'now' | 'metrics'>> & { now: () => number; metrics?: S3Metrics };
  private readonly server: Server;
  private readonly credentials = new Map<string, { user: S3User | undefined; fetchedMs: number }>();
  private readonly routes: Routes;
  private readonly sockets = new Set<Socket>();
  private readonly uploadsPrunedMs = new Map<string, number>();

  constructor(opts: GatewayOptions, routes: Routes) {
    this.opts = { region: 'us-east-1', credentialTtlMs: credentialTtlMsDefault, streamBytesMax: 16 * 1024 * 1024, completeKeepAliveMs: completeKeepAliveMsDefault, completedUploadKeepMs: completedUploadKeepMsDefault, headersTimeoutMs: headersTimeoutMsDefault, now: Date.now, ...opts };
    this.routes = routes;
    const checkMs = Math.min(headersCheckMs, this.opts.headersTimeoutMs);
    this.server = createServer({ maxHeaderSize: headerBytesMax, headersTimeout: this.opts.headersTimeoutMs, connectionsCheckingInterval: checkMs }, (req, res) => void this.serve(req, res, false));
    // "Expect: 100-continue": the body is asked for only once the request is known to be allowed.
    this.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => void this.serve(req, res, true));
    this.server.maxConnections = connectionsMax;
    this.server.requestTimeout = 0;
    this.server.setTimeout(idleMs, (s: Socket) => s.destroy());
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    // A request Node's parser refuses (headers too large, malformed) still gets S3's XML.
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      if (!socket.writable) return socket.destroy();
      const e =
        err.code === 'HPE_HEADER_OVERFLOW'
          ? new S3Error(S3ErrorCode.RequestHeaderSectionTooLarge, `your request's headers exceed ${headerBytesMax} bytes`)
          : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
            ? new S3Error(S3ErrorCode.RequestTimeout, `your request's headers did not come within ${this.opts.headersTimeoutMs} ms; the connection is closed`)
            : new S3Error(S3ErrorCode.InvalidRequest, `the request could not be parsed: ${err.code ?? err.message}`);
      const body = errorXml(e, '', 'unparsed');
      socket.end(`HTTP/1.1 ${e.status} Bad Request\r\ncontent-type: application/xml\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
      // A client that never closes its side would hold the half-closed connection, and one of the
      // connectionsMax places, until idleMs: it gets a moment to read the answer, then is cut.
      setTimeout(() => socket.destroy(), refusedLingerMs).unref();
    });
  }

  async listen(host: string, port: number): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    return this.server.address() as AddressInfo;
  }

  /** Client connections open now. */
  get connections(): number {
    return this.sockets.size;
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  private async serve(req: IncomingMessage, res: ServerResponse, expectsContinue: boolean): Promise<void> {
    const measured = this.opts.metrics === undefined ? undefined : this.measure(req, res, this.opts.metrics);
    const id = randomBytes(8).toString('hex').toUpperCase();
    res.setHeader('x-amz-request-id', id);
    res.setHeader('server', 'cairn');
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const rawPath = q === -1 ? url : url.slice(0, q);
    const rawQuery = q === -1 ? '' : url.slice(q + 1);
    let resource = rawPath;
    try {
      const { bucket, key } = addressOf(rawPath);
      resource = key === '' ? `/${bucket}` : `/${bucket}/${key}`;
      const verified = await this.authenticate(req, rawPath, rawQuery);
      const user = this.credentials.get(verified.accessKeyId)!.user!;
      if (bucket !== '') {
        checkBucketName(bucket);
        if (!mayUseBucket(user, bucket)) throw new S3Error(S3ErrorCode.AccessDenied, `access key ${user.accessKeyId} may not use bucket ${bucket}`);
      }
      const versionId = parseQuery(rawQuery).find(([k]) => k === 'versionId')?.[1];
      if (versionId !== undefined && versionId !== 'null') throw new S3Error(S3ErrorCode.InvalidArgument, 'cairn keeps one version of each object: the only version id is "null"');
      const r: S3Request = { req, res, id, user, caller: { uid: user.uid, gid: user.gid, groups: [] }, verified, bucket, key, query: new Map(parseQuery(rawQuery)) };
      if (expectsContinue) res.writeContinue();
      await this.route(r, measured);
    } catch (err) {
      this.fail(req, res, err, resource, id);
    }
  }

  /** Reports the request to `metrics` once its answer is out or its connection closed; the route names its operation. */
  private measure(req: IncomingMessage, res: ServerResponse, metrics: S3Metrics): { op: string } {
    const startedAt = performance.now();
    const socket = req.socket;
    const readBefore = socket.bytesRead;
    const writtenBefore = socket.bytesWritten;
    const seen = { op: 'unknown' };
    res.once('close', () => {
      const status = res.headersSent ? res.statusCode : 499;
      metrics.request(seen.op, status, (performance.now() - startedAt) / 1000, socket.bytesRead - readBefore, socket.bytesWritten - writtenBefore);
    });
    return seen;
  }

  private async route(r: S3Request, measured?: { op: string }): Promise<void> {
    const ctx: S3Context = { meta: this.opts.meta, data: this.opts.data, region: this.opts.region, streamBytesMax: this.opts.streamBytesMax, completeKeepAliveMs: this.opts.completeKeepAliveMs, completedUploadKeepMs: this.opts.completedUploadKeepMs, uploadsPrunedMs: this.uploadsPrunedMs, log: this.opts.log };
    const method = r.req.method ?? 'GET';
    if (r.bucket === '') {
      if (method !== 'GET') throw new S3Error(S3ErrorCode.MethodNotAllowed, `${method} on the service is not allowed`);
      // ListBuckets with a prefix or paging (max-buckets) would answer more than was asked for.
      const foreign = [...r.query.keys()].find((k) => !isCommonParam(k));
      if (foreign !== undefined) throw new S3Error(S3ErrorCode.NotImplemented, `the ${foreign.slice(0, 64)} parameter of ListBuckets is not implemented by cairn's gateway`);
      if (measured !== undefined) measured.op = 'listBuckets';
      return this.routes.listBuckets(ctx, r);
    }
    const table = r.key === '' ? this.routes.bucket : this.routes.object;
    // The operation: the method, with the first subresource that selects one (?uploads, ?delete, ...).
    const sub = [...r.query.keys()].find((k) => table[`${method} ?${k}`] !== undefined);
    const op = (sub === undefined ? undefined : table[`${method} ?${sub}`]) ?? table[method];
    // A parameter the operation does not take may select another operation S3 has and cairn does not
    // (?tagging, ?annotation, ?renameObject...): served as the plain PUT or DELETE, it would
    // overwrite or remove the object. So every parameter must be one the operation knows.
    const foreign = [...r.query.keys()].find((k) => k !== sub && !isCommonParam(k) && !(op !== undefined && this.routes.params[op.name]?.includes(k) === true));
    if (foreign !== undefined) throw new S3Error(S3ErrorCode.NotImplemented, `the ${foreign.slice(0, 64)} parameter (or subresource) is not implemented by cairn's gateway for ${method} on ${r.key === '' ? 'a bucket' : 'an object'}`);
    if (op === undefined) throw new S3Error(S3ErrorCode.MethodNotAllowed, `${method} is not allowed on ${r.key === '' ? 'a bucket' : 'an object'}`);
    // The operation's function name (getObject, uploadPart...): a fixed set, from the routing table.
    if (measured !== undefined) measured.op = method === 'HEAD' && op.name === 'getObject' ? 'headObject' : op.name || 'unknown';
    await op(ctx, r);
  }

  /** The request's key, checked; the key's user is in the credential cache afterwards. */
  private async authenticate(req: IncomingMessage, rawPath: string, rawQuery: string): Promise<Verified> {
    const keyId = accessKeyIdOf({ headers: req.headers, rawQuery });
    if (keyId !== undefined) await this.user(keyId);
    // Only the key just looked up (or found fresh in the cache) is trusted: a removed key stops within credentialTtlMs.
    const v = verifyRequest({ method: req.method ?? 'GET', path: rawPath, rawQuery, headers: req.headers }, (k) => (k === keyId ? this.credentials.get(k)?.user?.secretKey : undefined), this.opts.now());
    if (v === undefined) throw new S3Error(S3ErrorCode.AccessDenied, 'anonymous requests are not allowed: sign requests with an access key (cairn admin s3 user add)');
    return v;
  }

  /** A key's user from the cache, or from the masters (a missing key is cached too, briefly). */
  private async user(accessKeyId: string): Promise<S3User | undefined> {
    const now = this.opts.now();
    const cached = this.credentials.get(accessKeyId);
    if (cached !== undefined && now - cached.fetchedMs < this.opts.credentialTtlMs) return cached.user;
    const user = await this.opts.meta.query<S3User>('meta.query', { op: 's3Credential', accessKeyId }).catch((err: unknown) => {
      if ((err as { code?: string }).code === 'ENOENT' || (err as { code?: string }).code === 'EINVAL') return undefined;
      throw err;
    });
    if (this.credentials.size >= credentialsCachedMax) this.credentials.clear();
    this.credentials.set(accessKeyId, { user, fetchedMs: now });
    return user;
  }

  private fail(req: IncomingMessage, res: ServerResponse, err: unknown, resource: string, id: string): void {
    // The client went away mid-request (its body cut short): nobody is left to answer, and it is not the gateway's fault.
    if (req.socket.destroyed && (err as { code?: string }).code === 'ECONNRESET') {
      this.opts.log('info', `${req.method} ${printableKey(resource)}: the client closed the connection before the request ended`);
      res.destroy();
      return;
    }
    const e = toS3Error(err);
    if (e.code === S3ErrorCode.InternalError) this.opts.log('error', `${req.method} ${printableKey(resource)}: ${(err as Error).stack ?? String(err)}`);
    if (res.headersSent) {
      // The status is out: all that is left is to cut the body short, so the client sees it fail.
      res.destroy();
      return;
    }
    const body = req.method === 'HEAD' ? '' : errorXml(e, resource, id);
    const unread = !req.complete;
    res.writeHead(e.status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body), ...(unread ? { connection: 'close' } : {}) });
    res.end(body);
    if (unread) discardRest(req);
  }
}

/** What a refused request may still send, and for how long, before its connection is cut. */
const discardBytesMax = 8 * 1024 * 1024;
const discardMs = 2_000;

/**
 * Reads and drops the rest of a refused request's body, so that closing the connection does not
 * reset it before the client has read the error; a client that goes on sending too much or too
 * long is cut off.
 */
function discardRest(req: IncomingMessage): void {
  let n = 0;
  const cut = (): void => void req.socket.destroy();
  const timer = setTimeout(cut, discardMs);
  timer.unref();
  req.on('data', (d: Buffer) => {
    n += d.length;
    if (n > discardBytesMax) cut();
  });
  req.once('end', () => clearTimeout(timer));
  req.resume();
}

/**
 * Query parameters any operation takes: x-id (the AWS SDKs name the operation with it), versionId
 * (checked in serve: only "null"), and those of presigned URLs (X-Amz-Signature..., and headers a
 * presigner moved into the query, such as x-amz-checksum-mode), which the signature covers.
 */
function isCommonParam(name: string): boolean {
  return name === 'x-id' || name === 'versionId' || /^x-amz-/i.test(name);
}

/** Whether a key's bucket list allows `bucket`. */
export function mayUseBucket(user: S3User, bucket: string): boolean {
  return user.buckets.includes('*') || user.buckets.includes(bucket);
}

/** Bucket and key of a path-style address (the key decoded). */
function addressOf(rawPath: string): { bucket: string; key: string } {
  const path = rawPath.startsWith('/') ? rawPath.slice(1) : rawPath;
  const slash = path.indexOf('/');
  const bucketRaw = slash === -1 ? path : path.slice(0, slash);
  const keyRaw = slash === -1 ? '' : path.slice(slash + 1);
  try {
    return { bucket: decodeURIComponent(bucketRaw), key: decodeURIComponent(keyRaw) };
  } catch {
    throw new S3Error(S3ErrorCode.InvalidURI, 'the request path has malformed percent-encoding');
  }
}

export function errorXml(e: S3Error, resource: string, id: string, declaration = true): string {
  return xmlDocument('Error', { Code: e.code, Message: e.message, ...e.fields, Resource: resource, RequestId: id }, false, declaration);
}

/** Failures of the client library as S3 errors: the namespace's POSIX codes, the cluster's. */
export function toS3Error(err: unknown): S3Error {
  if (err instanceof S3Error) return err;
  const code = String((err as { code?: unknown }).code ?? '');
  const message = (err as Error).message ?? String(err);
  switch (code) {
    case 'ENOENT':
      return new S3Error(S3ErrorCode.NoSuchKey, 'the specified key does not exist');
    case 'EACCES':
    case 'EPERM':
      return new S3Error(S3ErrorCode.AccessDenied, `access denied: ${message}`);
    case 'ENAMETOOLONG':
      return new S3Error(S3ErrorCode.KeyTooLongError, message);
    case 'ENOTDIR':
    case 'EISDIR':
    case 'EEXIST':
      return pathConflict(message);
    case 'ENOTEMPTY':
      return new S3Error(S3ErrorCode.BucketNotEmpty, 'the bucket you tried to delete is not empty');
    case 'E2BIG':
      return new S3Error(S3ErrorCode.MetadataTooLarge, message);
    case WorkerErrorCode.TargetFull:
      return new S3Error(S3ErrorCode.ServiceUnavailable, `no space on a target: ${message}`);
    case JournalErrorCode.DiskFull:
      return new S3Error(S3ErrorCode.ServiceUnavailable, `the masters' disk is full (deletes still go through): ${message}`);
    case WorkerErrorCode.ChunkLost:
      return new S3Error(S3ErrorCode.InternalError, `the object's data is damaged on every replica of a chunk: ${message}`);
    case 'EMFILE':
    case ErrorCode.Unavailable:
    case ErrorCode.NotLeader:
    case ErrorCode.Timeout:
    case RpcErrorCode.Overloaded:
    case ErrorCode.Busy:
      return new S3Error(S3ErrorCode.ServiceUnavailable, `the cluster cannot serve this now, retry: ${message}`);
    default:
      return new S3Error(S3ErrorCode.InternalError, 'we encountered an internal error; please try again');
  }
}

/** A key that would make one path both a file and a directory ('a/b' beside 'a/b/c'). */
export function pathConflict(detail: string): S3Error {
  return new S3Error(S3ErrorCode.ObjectPathConflict, `a key may not be both an object and a prefix of other keys in cairn (its namespace is a file system): ${detail}`);
}

/**
 * A count a listing asks for (max-keys, max-uploads, max-parts), at most `cap`: S3 takes any
 * integer up to 2^31-1 and lists at most its own limit (Java tools send Integer.MAX_VALUE); a
 * sign, fraction, exponent or larger number is InvalidArgument.
 */
export function countParam(r: S3Request, name: string, cap: number): number {
  const raw = r.query.get(name);
  if (raw === undefined) return cap;
  if (!/^\d{1,10}$/.test(raw) || Number(raw) > 0x7fff_ffff) {
    throw new S3Error(S3ErrorCode.InvalidArgument, `Provided ${name} not an integer or within integer range`, { ArgumentName: name, ArgumentValue: raw.slice(0, 64) });
  }
  return Math.min(cap, Number(raw));
}

/** Writes an XML answer. */
export function sendXml(res: ServerResponse, status: number, root: string, body: XmlElement): void {
  const text = xmlDocument(root, body);
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

