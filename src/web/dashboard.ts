// The masters' web dashboard: static pages (plain ES modules, Preact + htm + uPlot from their npm
// packages' prebuilt files, no build step) and a small JSON API with a live stream (server-sent
// events). The leader answers the API; a follower forwards /api/ requests to it (but logins,
// which any master can check), so a browser may use any master. Every API call but login needs a
// session (src/web/sessions.ts).

import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Registry } from 'prom-client';
import { DataClient, FileReader, MasterClient, fileRef } from '../client/index.ts';
import { formatAddress, parseAddress } from '../address.ts';
import { CairnError, ErrorCode } from '../errors.ts';
import { systemClock } from '../io/system-clock.ts';
import type { Journal, JournalStatus } from '../journal/index.ts';
import type { Logger } from '../log.ts';
import { clusterSummary, type ClusterSummary } from '../master/cluster-summary.ts';
import { FsErrorCode, MetaError, validateQuery, type Caller, type InodeAttr, type MetaResult, type ReaddirPage, type RoutingInfo, type WorkerInfo } from '../meta/index.ts';
import type { MetaStateMachine } from '../meta/state-machine.ts';
import type { ExtraRoutes } from '../ops-http.ts';
import { RpcClient } from '../rpc/index.ts';
import { workerFrameBytesMax } from '../worker/process.ts';
import type { WorkerHealth } from '../worker/protocol.ts';
import { EventLog, eventsBetween, type ClusterEvent, type Picture } from './events.ts';
import { verifyPassword } from './passwords.ts';
import { Sampler, type Buckets, type Sample } from './samples.ts';
import { LoginLimiter, SessionKeys, sessionCookie, sessionLifetimeMs } from './sessions.ts';
import { StaticFiles } from './static-files.ts';

export interface DashboardOptions {
  journal: Journal;
  sm: MetaStateMachine;
  secret: string | undefined;
  /** This master's RPC address. */
  rpcAddress: string;
  /** The leader's view of workers' heartbeats (throws on a follower). */
  health(): WorkerHealth[];
  /** This master's metrics, for the metadata latency histogram. */
  registry: Registry;
  log: Logger;
}

export interface Dashboard {
  routes: ExtraRoutes;
  stop(): void;
}

/** The histogram of metadata operations' latency (src/master/server.ts). */
const metaLatencyMetric = 'cairn_meta_operation_seconds';
const tickMs = 1000;
const streamsMax = 64;
/** A stream whose client does not read is dropped past this much unsent data. */
const streamBacklogBytesMax = 1024 * 1024;
const requestBodyBytesMax = 4096;
const readdirPageEntries = 200;
/** Downloads one master streams at once, and the chunks each reads ahead of the browser. */
const downloadsMax = 8;
const downloadChunksAhead = 2;
/** The proxy marks what it forwards, so two masters that each think the other leads cannot loop. */
const hopHeader = 'x-cairn-dashboard-hop';

export interface MasterView {
  id: number;
  address: string;
  role: string;
  term: number | null;
  commitIndex: number | null;
  appliedIndex: number | null;
  /** Entries it trails the leader's commit index by (null: not reached). */
  lagEntries: number | null;
  reachable: boolean;
  isLeader: boolean;
}

export interface Overview {
  atMs: number;
  servedBy: number;
  journal: Pick<JournalStatus, 'backend' | 'term' | 'commitIndex' | 'appliedIndex' | 'snapshotIndex' | 'firstIndex' | 'lastIndex'> & { leaderId: number | null };
  masters: MasterView[];
  summary: ClusterSummary & { usedBytes: number };
  workers: { workerId: number; address: string; domain: string; online: boolean; heartbeatAgeMs: number | null; decommissioned: boolean; targetIds: number[] }[];
  targets: { targetId: number; workerId: number; path: string; state: string; chainId: number; capacityBytes: number; usedBytes: number | null; chunks: number | null; chunksCorrupt: number | null }[];
  chains: { chainId: number; version: number; members: { targetId: number; state: string }[]; moving: boolean }[];
}

interface Look {
  st: JournalStatus;
  routing: RoutingInfo;
  workers: WorkerInfo[];
  /** Undefined on a follower. */
  health: WorkerHealth[] | undefined;
}

export function startDashboard(opts: DashboardOptions): Dashboard {
  const files = new StaticFiles();
  const keys = new SessionKeys(opts.secret);
  const limiter = new LoginLimiter();
  const events = new EventLog();
  const sampler = new Sampler();
  /** Live streams, with the request that opened each (its session is checked again every tick). */
  const streams = new Map<ServerResponse, IncomingMessage>();
  const peers = new Map<string, RpcClient>();
  let clients: { meta: MasterClient; data: DataClient } | undefined;
  let picture: Picture | undefined;
  let latest: Overview | undefined;
  let leaderHttp: { leaderId: number; address: string; atMs: number } | undefined;
  /** Set by stop(): no client is made after it (nothing would close it). */
  let stopped = false;
  let wasLeader = false;

  const peer = (address: string): RpcClient => {
    if (stopped) throw new CairnError(ErrorCode.Unavailable, 'this master is stopping');
    let c = peers.get(address);
    if (c === undefined) {
      c = new RpcClient(address, { secret: opts.secret, connectTimeoutMs: 1000 });
      peers.set(address, c);
    }
    return c;
  };

  const userOf = (req: IncomingMessage): { name: string; caller: Caller } | undefined => {
    const token = cookie(req, sessionCookie);
    if (token === undefined) return undefined;
    const name = keys.check(token, (u) => opts.sm.state.dashboardUser(u)?.passwordHash, Date.now());
    const user = name === undefined ? undefined : opts.sm.state.dashboardUser(name);
    return user === undefined ? undefined : { name: user.name, caller: { uid: user.uid, gid: user.gid, groups: [] } };
  };

  // ---- what the leader sees, once a second --------------------------------------------------

  const masters = async (st: JournalStatus): Promise<MasterView[]> => {
    const leaderId = st.leader?.id;
    return Promise.all(
      st.members.map(async (m): Promise<MasterView> => {
        const base = { id: m.id, address: m.address, isLeader: m.id === leaderId };
        if (m.id === st.id) return { ...base, role: st.role, term: st.term, commitIndex: st.commitIndex, appliedIndex: st.appliedIndex, lagEntries: Math.max(0, st.commitIndex - st.appliedIndex), reachable: true };
        try {
          const { body } = await peer(m.address).call<JournalStatus>('admin.journal.info', {}, { timeoutMs: 800 });
          return { ...base, role: body.role, term: body.term, commitIndex: body.commitIndex, appliedIndex: body.appliedIndex, lagEntries: Math.max(0, st.commitIndex - body.appliedIndex), reachable: true };
        } catch {
          return { ...base, role: 'unreachable', term: null, commitIndex: null, appliedIndex: null, lagEntries: m.lagEntries ?? null, reachable: false };
        }
      }),
    );
  };

  /** One look at the journal, the replicated state and (on the leader) the workers' heartbeats. */
  const look = (): Look => {
    let health: WorkerHealth[] | undefined;
    try {
      if (opts.journal.isLeader()) health = opts.health();
    } catch {
      // Not the leader any more: no heartbeats.
    }
    return { st: opts.journal.status(), routing: opts.sm.state.routing(), workers: opts.sm.state.workers(), health };
  };

  const overview = async ({ st, routing, workers, health = [] }: Look): Promise<Overview> => {
    const seen = new Map(health.map((h) => [h.workerId, h]));
    const reports = new Map(health.flatMap((h) => h.targets.map((t) => [t.targetId, t] as const)));
    const targets = routing.targets.map((t) => {
      const r = reports.get(t.targetId);
      return { targetId: t.targetId, workerId: t.workerId, path: t.path, state: t.state, chainId: t.chainId, capacityBytes: t.capacityBytes, usedBytes: r?.usedBytes ?? null, chunks: r?.chunks ?? null, chunksCorrupt: r?.chunksCorrupt ?? null };
    });
    const stateOf = new Map(routing.targets.map((t) => [t.targetId, t.state as string]));
    return {
      atMs: Date.now(),
      servedBy: st.id,
      journal: { backend: st.backend, term: st.term, commitIndex: st.commitIndex, appliedIndex: st.appliedIndex, snapshotIndex: st.snapshotIndex, firstIndex: st.firstIndex, lastIndex: st.lastIndex, leaderId: st.leader?.id ?? null },
      masters: await masters(st),
      summary: { ...clusterSummary(routing), usedBytes: targets.reduce((n, t) => n + (t.usedBytes ?? 0), 0) },
      workers: workers.map((w: WorkerInfo) => {
        const h = seen.get(w.workerId);
        return { workerId: w.workerId, address: w.address, domain: w.domain, online: w.targets.some((t) => t.state !== 'offline'), heartbeatAgeMs: h?.heartbeatAgeMs ?? null, decommissioned: w.decommissionedMs !== undefined, targetIds: w.targets.map((t) => t.targetId) };
      }),
      targets,
      chains: routing.chains.map((c) => ({ chainId: c.chainId, version: c.version, members: c.targetIds.map((id) => ({ targetId: id, state: stateOf.get(id) ?? 'unknown' })), moving: c.moving !== undefined })),
    };
  };

  const broadcast = (event: string, data: unknown): void => {
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    // A few frames behind is a slow moment; more is a browser that stopped reading.
    const backlogMax = Math.max(streamBacklogBytesMax, 4 * frame.length);
    for (const res of streams.keys()) {
      if (res.writableLength > backlogMax) {
        res.destroy();
        streams.delete(res);
      } else {
        res.write(frame);
      }
    }
  };

  let ticking = false;
  const tick = async (): Promise<void> => {
    if (ticking) return; // a slow peer call: skip a beat rather than pile up
    ticking = true;
    try {
      const view = look();
      const { st, health } = view;
      const now: Picture = { leaderId: st.leader?.id, term: st.term, snapshotIndex: st.snapshotIndex, routing: view.routing, workers: view.workers };
      // The first look records who leads, so the leader history starts with this master's start.
      const found = picture !== undefined ? eventsBetween(picture, now, Date.now()) : now.leaderId === undefined ? [] : [{ atMs: Date.now(), kind: 'leader' as const, text: `master ${now.leaderId} leads (term ${now.term}; seen when master ${st.id} started)` }];
      picture = now;
      events.add(found);
      if (!opts.journal.isLeader()) {
        wasLeader = false;
        latest = undefined;
        // Streams opened while this master led end, so that browsers reconnect (through this
        // master, which now forwards them) to whoever leads now.
        for (const res of streams.keys()) res.end();
        streams.clear();
        return;
      }
      // A stream whose user was removed, or whose session expired, ends: the session was checked when it opened.
      for (const [res, req] of streams) {
        if (userOf(req) !== undefined) continue;
        res.end();
        streams.delete(res);
      }
      if (health === undefined) return;
      // Leading again after a while: rates start afresh rather than averaged over the gap.
      if (!wasLeader) sampler.restart();
      wasLeader = true;
      // Monotonic (the process's start plus elapsed time): a wall clock stepped back by NTP
      // would stall the charts.
      const sample = sampler.observe(performance.timeOrigin + performance.now(), {
        workers: new Map(health.map((h) => [h.workerId, { bytesRead: h.bytesRead ?? 0, bytesWritten: h.bytesWritten ?? 0 }])),
        appliedIndex: st.appliedIndex,
        metaLatency: await histogramBuckets(opts.registry, metaLatencyMetric),
      });
      if (streams.size === 0) return;
      latest = await overview(view);
      broadcast('overview', latest);
      for (const e of found) broadcast('event', e);
      if (sample !== undefined) broadcast('sample', sample);
    } catch (err) {
      opts.log.warn({ err }, 'dashboard: a look at the cluster failed');
    } finally {
      ticking = false;
    }
  };
  const timer = setInterval(() => void tick(), tickMs);
  timer.unref();

  // ---- the API (leader) ----------------------------------------------------------------------

  const login = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.method !== 'POST') return sendError(res, 405, 'POST a JSON body {"user", "password"}');
    if (!(req.headers['content-type'] ?? '').startsWith('application/json')) return sendError(res, 415, 'the login is a JSON body');
    const body = await readBody(req, requestBodyBytesMax);
    let user: unknown;
    let password: unknown;
    try {
      ({ user, password } = JSON.parse(body.toString('utf8')) as { user?: unknown; password?: unknown });
    } catch {
      return sendError(res, 400, 'the login is not JSON');
    }
    if (typeof user !== 'string' || typeof password !== 'string' || user.length === 0 || user.length > 64 || password.length > 1024) return sendError(res, 400, 'give a user name and a password');
    const address = unmapped(req.socket.remoteAddress ?? '');
    const gate = await limiter.enter(address, user, Date.now());
    if (!gate.ok) {
      res.setHeader('retry-after', String(gate.retryAfterS));
      return sendError(res, 429, gate.reason);
    }
    try {
      const stored = opts.sm.state.dashboardUser(user);
      // A check for an unknown user costs the same, so timing does not tell which names exist.
      const ok = await verifyPassword(password, stored?.passwordHash ?? decoyHash);
      if (!ok || stored === undefined) {
        limiter.failed(address, user, Date.now());
        opts.log.warn({ user, address }, 'dashboard: a failed login');
        return sendError(res, 401, 'wrong user name or password');
      }
      res.setHeader('set-cookie', `${sessionCookie}=${keys.issue(user, stored.passwordHash, Date.now())}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${sessionLifetimeMs / 1000}`);
      sendJson(res, 200, { user });
    } finally {
      gate.release();
    }
  };

  const stream = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (streams.size >= streamsMax) return sendError(res, 503, `${streamsMax} dashboards are watching this master, its most`);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    streams.set(res, req);
    res.on('close', () => {
      streams.delete(res);
      // Nobody watches: what was last seen goes stale, and the next stream starts from a fresh look.
      if (streams.size === 0) latest = undefined;
    });
    res.write(`retry: 2000\n\n`);
    const first = latest ?? (await overview(look()));
    res.write(`event: history\ndata: ${JSON.stringify({ samples: sampler.recent(), events: events.recent() })}\n\n`);
    res.write(`event: overview\ndata: ${JSON.stringify(first)}\n\n`);
  };

  const fsQuery = async <T>(body: Record<string, unknown>): Promise<T> => {
    const q = validateQuery(body);
    await opts.journal.readBarrier();
    const r = opts.sm.query(q) as MetaResult<T>;
    if (!r.ok) throw new MetaError(r.code, r.message);
    return r.value;
  };

  let downloads = 0;
  const download = async (res: ServerResponse, path: string, caller: Caller): Promise<void> => {
    if (downloads >= downloadsMax) return sendError(res, 503, `${downloadsMax} downloads are running on this master, its most: retry when one ends`);
    downloads++;
    try {
      const attr = await fsQuery<InodeAttr>({ op: 'open', path, caller });
      clients ??= dataClients(opts);
      if (stopped) throw new CairnError(ErrorCode.Unavailable, 'this master is stopping');
      const file = fileRef(attr, path);
      // Two chunks ahead at most, and taken only as the browser reads: a download's memory is
      // bounded whatever the file's size or the browser's pace.
      const reader = new FileReader(clients.data, file, attr.sizeBytes, { streamBytesMax: downloadChunksAhead * file.layout.chunkSizeBytes });
      const name = path.split('/').pop() || 'file';
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-length': String(attr.sizeBytes),
        'content-disposition': `attachment; filename="${name.replace(/[^\x20-\x7e]|["\\]/g, '_')}"; filename*=UTF-8''${rfc8187(name)}`,
      });
      await pipeline(Readable.from(reader.stream(), { highWaterMark: 1 }), res);
    } finally {
      downloads--;
    }
  };

  const api = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    if (url.pathname === '/api/login') return login(req, res);
    if (url.pathname === '/api/logout') {
      // Not on a GET: a link or a redirect from another site could log the user out.
      if (req.method !== 'POST') return sendError(res, 405, 'log out with a POST');
      res.setHeader('set-cookie', `${sessionCookie}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`);
      return sendJson(res, 200, {});
    }
    const user = userOf(req);
    // Who is logged in, if anyone: 200 either way, so a page that is not logged in yet logs no error.
    if (url.pathname === '/api/whoami') return sendJson(res, 200, user === undefined ? { user: null } : { user: user.name, uid: user.caller.uid, gid: user.caller.gid });
    if (user === undefined) return sendError(res, 401, 'log in first');
    if (req.method !== 'GET') return sendError(res, 405, 'the dashboard is read-only');
    const path = url.searchParams.get('path') ?? '/';
    switch (url.pathname) {
      case '/api/overview':
        return sendJson(res, 200, await overview(look()));
      case '/api/history':
        return sendJson(res, 200, { samples: sampler.recent(), events: events.recent() });
      case '/api/stream':
        return stream(req, res);
      case '/api/fs/list': {
        const after = url.searchParams.get('after');
        const page = await fsQuery<ReaddirPage>({ op: 'readdir', path, limit: readdirPageEntries, plus: true, ...(after === null ? {} : { after }), caller: user.caller });
        return sendJson(res, 200, { path, entries: page.entries.map(({ xattr: _, ...e }) => e), next: page.next ?? null });
      }
      case '/api/fs/stat': {
        const { layout: _, chunks: __, ...attr } = await fsQuery<InodeAttr>({ op: 'stat', path, caller: user.caller });
        return sendJson(res, 200, attr);
      }
      case '/api/fs/download':
        return download(res, path, user.caller);
      default:
        return sendError(res, 404, `no API ${url.pathname}`);
    }
  };

  // ---- a follower forwards the API to the leader ---------------------------------------------

  const leaderAddress = async (): Promise<string | undefined> => {
    const leader = opts.journal.leader();
    if (leader === undefined) return undefined;
    if (leaderHttp !== undefined && leaderHttp.leaderId === leader.id && Date.now() - leaderHttp.atMs < 10_000) return leaderHttp.address;
    const { body } = await peer(leader.address).call<{ isLeader: boolean; httpAddress?: string }>('master.ping', {}, { timeoutMs: 1000 });
    if (!body.isLeader || body.httpAddress === undefined) return undefined;
    const http = parseAddress(body.httpAddress);
    const rpc = parseAddress(leader.address);
    if ('problem' in http || 'problem' in rpc) return undefined;
    // A leader's loopback address is this master's own loopback, unless both share a machine.
    if (isLoopback(http.host) && !isLoopback(rpc.host)) throw new CairnError(ErrorCode.Unavailable, `the leader (master ${leader.id}) serves its dashboard on loopback only (${body.httpAddress}): open it there, or give the masters --http on an address the others reach`);
    // A leader serving HTTP on every interface is reached at the host of its RPC address.
    const host = http.host === '0.0.0.0' || http.host === '::' ? rpc.host : http.host;
    leaderHttp = { leaderId: leader.id, address: formatAddress(host, http.port), atMs: Date.now() };
    return leaderHttp.address;
  };

  const forward = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    const isStream = req.url?.startsWith('/api/stream') === true;
    // A live stream that cannot reach a leader asks the browser to retry in a second, rather than
    // failing with an error status (which makes an EventSource give up).
    const unavailable = (message: string): void => (isStream ? void res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' }).end('retry: 1000\n\n') : sendError(res, 503, message));
    if (req.headers[hopHeader] !== undefined) return unavailable('the masters disagree on who leads: retry in a moment');
    // What is forwarded is a bodiless GET, or a login (only without a cluster secret): any other
    // body could only be a second request smuggled onto the connection to the leader.
    const login = req.method === 'POST' && (url.pathname === '/api/login' || url.pathname === '/api/logout');
    if (!login && req.method !== 'GET') return sendError(res, 405, 'the dashboard is read-only');
    if (!login && (req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0')) return sendError(res, 400, 'the dashboard\'s API takes GET requests without a body');
    let body: Buffer | undefined;
    if (login) {
      try {
        body = await readBody(req, requestBodyBytesMax);
      } catch (err) {
        return sendError(res, 400, err instanceof Error ? err.message : String(err));
      }
    }
    let address: string | undefined;
    try {
      address = await leaderAddress();
    } catch (err) {
      return unavailable(err instanceof CairnError ? err.message : 'the leader did not answer: retry in a moment');
    }
    if (address === undefined) return unavailable('no leader right now (an election is under way): retry in a moment');
    const at = parseAddress(address);
    if ('problem' in at) return sendError(res, 502, `the leader's HTTP address '${address}' is not host:port`);
    const { host, port } = at;
    const out = httpRequest({ host, port, method: req.method, path: req.url, headers: { ...endToEnd(req.headers, true), [hopHeader]: String(opts.journal.status().id) } }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, endToEnd(answer.headers));
      answer.pipe(res);
      // A leader that dies mid-answer aborts it without an end: end ours, so a live stream reconnects.
      answer.on('close', () => {
        if (!res.writableEnded) {
          if (isStream) res.end();
          else res.destroy();
        }
      });
    });
    out.on('error', () => {
      leaderHttp = undefined;
      if (!res.headersSent) unavailable('the leader did not answer: retry');
      else if (isStream) res.end();
      else res.destroy();
    });
    res.on('close', () => out.destroy());
    // A body read whole here is sent with its length: nothing more can ride along.
    if (body !== undefined) out.setHeader('content-length', String(body.length));
    out.end(body);
  };

  const routes: ExtraRoutes = (req, res) => {
    const url = URL.parse(req.url ?? '/', 'http://dashboard');
    if (url === null) {
      sendError(res, 400, 'the request target is not a valid URL path');
      return true;
    }
    if (!url.pathname.startsWith('/api/')) return files.serve(req, res, url.pathname);
    // Logins and sessions need only the replicated user table and the key every master derives
    // from the cluster secret: any master answers them, also while there is no leader. Without a
    // secret (--insecure) each master's key is its own, so the leader's is used. The rest is the
    // leader's.
    const anyMaster = opts.secret !== undefined && opts.secret !== '' && (url.pathname === '/api/login' || url.pathname === '/api/logout' || url.pathname === '/api/whoami');
    const handle = anyMaster || opts.journal.isLeader() ? api(req, res, url) : forward(req, res, url);
    handle.catch((err: unknown) => {
      if (res.headersSent) return void res.destroy();
      const status = errorStatus((err as { code?: unknown }).code);
      if (status === 500) opts.log.warn({ err, url: req.url }, 'dashboard: a request failed');
      sendError(res, status, err instanceof Error ? err.message : String(err));
    });
    return true;
  };

  return {
    routes,
    stop: () => {
      stopped = true;
      clearInterval(timer);
      for (const res of streams.keys()) res.destroy();
      streams.clear();
      for (const c of peers.values()) c.close();
      clients?.meta.close();
      clients?.data.close();
    },
  };
}

/** The file browser's clients: metadata through the masters, bytes from the workers. */
function dataClients(opts: DashboardOptions): { meta: MasterClient; data: DataClient } {
  const masters = [opts.rpcAddress, ...opts.journal.status().members.map((m) => m.address).filter((a) => a !== opts.rpcAddress)];
  const meta = new MasterClient({ masters, secret: opts.secret, caller: { uid: 65534, gid: 65534, groups: [] } });
  const data = new DataClient({ master: meta, connect: (a) => new RpcClient(a, { secret: opts.secret, frameBytesMax: workerFrameBytesMax }), clock: systemClock });
  return { meta, data };
}

/** A hash no password matches, checked for unknown users so a failed login costs the same either way. */
const decoyHash = `scrypt$32768$8$1$${'A'.repeat(22)}$${'A'.repeat(43)}`;

/** The HTTP status of a failed API call: the namespace's refusals are the caller's (4xx), a leader's absence is temporary (503). */
function errorStatus(code: unknown): number {
  if (code === FsErrorCode.ENOENT) return 404;
  if (code === FsErrorCode.EACCES || code === FsErrorCode.EPERM) return 403;
  if (code === ErrorCode.NotLeader || code === ErrorCode.Unavailable || code === ErrorCode.Timeout || code === ErrorCode.Busy) return 503;
  if (code === ErrorCode.InvalidArgument || (typeof code === 'string' && fsCodes.has(code))) return 400;
  return 500;
}

const fsCodes: ReadonlySet<string> = new Set(Object.values(FsErrorCode));

/** The histogram's buckets summed over its labels; undefined when this process has none. */
async function histogramBuckets(registry: Registry, name: string): Promise<Buckets | undefined> {
  const metric = registry.getSingleMetric(name);
  if (metric === undefined) return undefined;
  const got = await metric.get();
  const out: Buckets = new Map();
  for (const v of got.values) {
    if ((v as { metricName?: string }).metricName !== `${name}_bucket`) continue;
    const le = v.labels.le === '+Inf' ? Infinity : Number(v.labels.le);
    out.set(le, (out.get(le) ?? 0) + v.value);
  }
  return out;
}

/** Headers that belong to one connection (RFC 9110, 7.6.1): not passed on by the forwarding follower. */
const hopByHop = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host']);

/** The headers to pass on; a forwarded request has no body, so no content-length either. */
function endToEnd(headers: IncomingHttpHeaders, request = false): IncomingHttpHeaders {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !hopByHop.has(name) && !(request && name === 'content-length')));
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** An IPv4 address as itself, not as the IPv6-mapped form a dual-stack socket reports. */
function unmapped(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

async function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const part of req as AsyncIterable<Buffer>) {
    n += part.length;
    if (n > max) throw new CairnError(ErrorCode.InvalidArgument, `the request body is over ${max} bytes`);
    parts.push(part);
  }
  return Buffer.concat(parts);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
}

function sendError(res: ServerResponse, status: number, message: string): void {
  sendJson(res, status, { error: message });
}

export type { ClusterEvent, Sample };

/** A header parameter's value as RFC 8187 writes it: encodeURIComponent leaves ' ( ) * as they are, which it does not allow. */
function rfc8187(value: string): string {
  return encodeURIComponent(value).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
