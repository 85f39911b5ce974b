// The client side of the masters over any transport: finds the leader among a list of addresses,
// follows NOT_LEADER redirects, retries with backoff, and numbers mutations (client id, seq) so that
// a retried one is applied once, and tells the masters who its namespace requests act as (the
// caller they check permissions against). Pure of I/O (the caller passes how to connect and the clock), so
// the simulator runs it; master-client.ts adds the TCP and system-clock defaults.

import { CairnError, ErrorCode } from '../errors.ts';
import type { Clock, Connection, Timer } from '../io/index.ts';
import { RpcErrorCode } from '../rpc/errors.ts';
import { namespaceCommandOps, namespaceQueryOps, renewSessionsMax, type Caller } from '../meta/commands.ts';
import { ResultErrorCode } from '../meta/errors.ts';

export interface MasterCallsOptions {
  masters: string[];
  secret?: string;
  /** How long one operation may keep retrying before it fails. */
  deadlineMs?: number;
  callTimeoutMs?: number;
  /** How to reach an address: TCP RPC, or a simulated network in the simulator. */
  connect: (address: string) => Connection;
  clock: Clock;
  /** Names this client's mutations (exactly-once). */
  clientId: string;
  /**
   * Who this client's namespace requests (meta.mutate and meta.query on files and directories) act
   * as, added to each that does not name its own; without it the masters refuse them. Workers,
   * which make none, have none.
   */
  caller?: Caller;
}

const retryBackoffMs = { min: 10, max: 200 };
const bulkCallTimeoutMs = 120_000;
/** How long a master that could not be reached is passed over. */
const unreachableMs = 1_000;
/** Codes after which another master (or the same one, later) may succeed. */
const retryable = new Set<string>([ErrorCode.NotLeader, ErrorCode.Unavailable, ErrorCode.Timeout, ErrorCode.ProposalDropped, RpcErrorCode.Overloaded, ErrorCode.TransferInProgress, ErrorCode.Busy, ResultErrorCode.DirLeased]);
/** Retryable answers that come from a leader which is up: busy, overloaded, or a directory another mount holds. */
const leaderRefusals = new Set<string>([RpcErrorCode.Overloaded, ErrorCode.Busy, ResultErrorCode.DirLeased]);

/** A client renews its write sessions every quarter lease; this often until the leader has said the lease (a quarter of the shortest). */
const renewFirstMs = 2_500;

export class MasterCalls {
  readonly clientId: string;
  readonly caller: Caller | undefined;
  private lanes = 0;
  private readonly freeLanes: { id: string; seq: number }[] = [];
  private readonly masters: string[];
  private readonly conns = new Map<string, Connection>();
  private leaderGuess: string | undefined;
  private nextMaster = 0;
  /** Masters that just failed to answer, skipped for a moment when others are left. */
  private readonly unreachableUntil = new Map<string, number>();
  private readonly opts: { deadlineMs: number; callTimeoutMs: number };
  private readonly clock: Clock;
  private readonly connect: (address: string) => Connection;
  /** Write sessions this client opened and has not closed, renewed with the leader (src/master/session-leases.ts). */
  private readonly sessions = new Set<string>();
  private renewTimer: Timer | undefined;
  private renewEveryMs = renewFirstMs;
  /** A renewal is in flight: it schedules the next one itself. */
  private renewing = false;
  private closed = false;

  constructor(opts: MasterCallsOptions) {
    if (opts.masters.length === 0) throw new CairnError(ErrorCode.BadOption, 'no master addresses given (use --masters host:port,... or CAIRN_MASTERS)');
    this.masters = [...opts.masters];
    this.opts = { deadlineMs: opts.deadlineMs ?? 15_000, callTimeoutMs: opts.callTimeoutMs ?? 5_000 };
    this.clock = opts.clock;
    this.clientId = opts.clientId;
    this.caller = opts.caller;
    this.connect = opts.connect;
  }

  /** A read-only call, answered by the leader after a ReadIndex barrier. */
  query<T>(method: string, body: object): Promise<T> {
    return this.call<T>(method, method === 'meta.query' ? this.withCaller(body, namespaceQueryOps) : body);
  }

  /** The body with this client's caller, if it is a namespace request without one. */
  private withCaller(body: object, ops: ReadonlySet<string>): object {
    if (this.caller === undefined || 'caller' in body || !ops.has(String((body as { op?: unknown }).op))) return body;
    return { ...body, caller: this.caller };
  }

  /** A mutation: numbered once, retried with the same number until the leader answers. */
  mutate<T>(method: string, body: object): Promise<T> {
    // The masters keep one answer per client id, for its newest seq: concurrent mutations each
    // take their own id (a lane), so one never makes another's retry look stale.
    const lane = this.freeLanes.pop() ?? { id: `${this.clientId}/${this.lanes++}`, seq: 0 };
    lane.seq++;
    const stamped = { ...(method === 'meta.mutate' ? this.withCaller(body, namespaceCommandOps) : body), clientId: lane.id, seq: lane.seq };
    const done = this.call<T>(method, stamped).finally(() => this.freeLanes.push(lane));
    return method === 'meta.mutate' ? this.trackSessions(body, done) : done;
  }

  /**
   * Follows the write sessions a mutation opens or closes. A close forgets its session whatever
   * the outcome: one that failed is left to expire, as a dead client's would.
   */
  private async trackSessions<T>(body: object, done: Promise<T>): Promise<T> {
    const { op, sessionId } = body as { op?: unknown; sessionId?: unknown };
    if (op === 'closeSession' || op === 'publish') {
      try {
        return await done;
      } finally {
        if (typeof sessionId === 'string') this.forgetSession(sessionId);
      }
    }
    const value = await done;
    const opened = (value as { sessionId?: unknown } | null)?.sessionId;
    if ((op === 'openSession' || op === 'create') && typeof opened === 'string') this.holdSession(opened);
    return value;
  }

  private holdSession(sessionId: string): void {
    this.sessions.add(sessionId);
    if (this.renewTimer === undefined && !this.renewing && !this.closed) this.scheduleRenewal();
  }

  private forgetSession(sessionId: string): void {
    this.sessions.delete(sessionId);
    if (this.sessions.size > 0) return;
    this.renewTimer?.cancel();
    this.renewTimer = undefined;
  }

  private scheduleRenewal(): void {
    this.renewTimer = this.clock.after(this.renewEveryMs, () => void this.renewSessions());
    // A process that forgot to close its sessions still exits; the masters then end them.
    this.renewTimer.unref?.();
  }

  /** Tells the leader this client still holds its sessions; those it says ended are forgotten. */
  private async renewSessions(): Promise<void> {
    this.renewTimer = undefined;
    this.renewing = true;
    const ids = [...this.sessions];
    try {
      for (let i = 0; i < ids.length; i += renewSessionsMax) {
        const r = await this.call<{ leaseMs: number; ended: string[] }>('meta.renewSessions', { sessionIds: ids.slice(i, i + renewSessionsMax) });
        if (Number.isFinite(r.leaseMs) && r.leaseMs > 0) this.renewEveryMs = Math.max(100, Math.floor(r.leaseMs / 4));
        for (const id of r.ended ?? []) this.sessions.delete(id);
      }
    } catch {
      // No leader within the call's deadline: the next renewal tries again, well within the lease.
    } finally {
      this.renewing = false;
    }
    if (this.sessions.size > 0 && !this.closed) this.scheduleRenewal();
  }

  /** Write sessions this client holds and renews. */
  get openSessions(): number {
    return this.sessions.size;
  }

  /** Calls one specific master (admin views of a single node). */
  async callAt<T>(address: string, method: string, body: object): Promise<T> {
    const r = await this.conn(address).call<T>(method, body, { timeoutMs: this.opts.callTimeoutMs });
    return r.body;
  }

  /** One call to one master with a payload both ways (backups), and a long deadline. */
  callRaw(method: string, body: object, address: string, payload?: Uint8Array): Promise<{ body: unknown; payload: Buffer | undefined }> {
    return this.conn(address).call(method, body, { payload, timeoutMs: Math.max(this.opts.callTimeoutMs, bulkCallTimeoutMs) });
  }

  async call<T>(method: string, body: object): Promise<T> {
    const deadline = this.clock.now() + this.opts.deadlineMs;
    let backoff = retryBackoffMs.min;
    let lastError: unknown;
    const tried = new Set<string>();
    while (this.clock.now() < deadline) {
      const address = this.pickAddress();
      tried.add(address);
      const timeoutMs = Math.max(1, Math.min(this.opts.callTimeoutMs, deadline - this.clock.now()));
      try {
        const r = await this.conn(address).call<T>(method, body, { timeoutMs });
        this.leaderGuess = address;
        this.unreachableUntil.delete(address);
        return r.body;
      } catch (err) {
        const code = (err as { code?: string }).code ?? '';
        if (!retryable.has(code)) throw err;
        // A last try cut short by the deadline says nothing new: the answer before it is the reason.
        if (!(code === ErrorCode.Timeout && timeoutMs < this.opts.callTimeoutMs && lastError !== undefined)) lastError = err;
        if (code === ErrorCode.Unavailable) this.unreachableUntil.set(address, this.clock.now() + unreachableMs);
        const redirect = leaderAddress(err);
        // A follower may still name a leader that just died: do not go back to one we could not reach.
        this.leaderGuess = redirect !== undefined && !this.isUnreachable(redirect) ? redirect : undefined;
        if (this.leaderGuess !== undefined && code === ErrorCode.NotLeader) continue; // a redirect costs no wait
        await this.clock.sleep(Math.min(backoff, Math.max(0, deadline - this.clock.now())));
        backoff = Math.min(backoff * 2, retryBackoffMs.max);
      }
    }
    const why = lastError instanceof Error ? lastError.message : 'no answer';
    const lastCode = (lastError as { code?: string } | undefined)?.code ?? '';
    // A leader that answered but kept refusing is not a missing majority: say what it answered.
    if (leaderRefusals.has(lastCode)) throw new CairnError(ErrorCode.Unavailable, `the leading master still refused after ${this.opts.deadlineMs} ms of retries (${lastCode}: ${why})`);
    throw new CairnError(
      ErrorCode.Unavailable,
      `no leading master answered within ${this.opts.deadlineMs} ms (tried ${[...tried].join(', ')}; last: ${why}); is a majority of the masters running?`,
    );
  }

  /** The known leader, else the next master in turn that did not just fail to answer. */
  private pickAddress(): string {
    if (this.leaderGuess !== undefined) return this.leaderGuess;
    for (let i = 0; i < this.masters.length; i++) {
      const a = this.masters[this.nextMaster++ % this.masters.length];
      if (!this.isUnreachable(a)) return a;
    }
    return this.masters[this.nextMaster++ % this.masters.length];
  }

  private isUnreachable(address: string): boolean {
    return (this.unreachableUntil.get(address) ?? 0) > this.clock.now();
  }

  close(): void {
    this.closed = true;
    this.renewTimer?.cancel();
    this.renewTimer = undefined;
    for (const c of this.conns.values()) c.close();
    this.conns.clear();
  }

  private conn(address: string): Connection {
    let c = this.conns.get(address);
    if (c === undefined) {
      c = this.connect(address);
      this.conns.set(address, c);
    }
    return c;
  }
}

function leaderAddress(err: unknown): string | undefined {
  const details = (err as { details?: { leader?: { address?: unknown } } }).details;
  const a = details?.leader?.address;
  return typeof a === 'string' && a.length > 0 ? a : undefined;
}
