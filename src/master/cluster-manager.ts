// The leading master as cluster manager (3FS's mgmtd): it takes workers' registrations and
// heartbeats, decides target states every heartbeat interval (src/meta/chain-states.ts) and journals
// what changed, and builds chains from targets that are in none (src/placement/). Heartbeats stay
// in the leader's memory; only decisions go through the journal. Chains that lost a member for good
// (its worker decommissioned, or offline past replaceAfterMs) get a free target in its place
// (replacements.ts). Members of healthy chains move onto idle workers' free targets, a few at a
// time, each filled by resync before its source leaves (rebalance.ts).
//
// Timing (docs/data-path.md): heartbeats every heartbeatMs; a worker not heard from for
// offlineTimeoutMs is offline. A new leader knows nothing of the heartbeats its predecessor saw,
// so it waits one full offlineTimeoutMs of fresh heartbeats before it decides anything. A worker
// that hears from no master for half the timeout stops serving, so it is silent before anyone
// counts it out.

import type { Clock, Connection, Timer } from '../io/index.ts';
import { collectChunks } from './chunk-gc.ts';
import type { Journal } from '../journal/index.ts';
import { expireDirLeasesMax, expireSessionsMax, resizeTargetsMax, validateCommand, type Caller, type ChainUpdate, type MetaCommand } from '../meta/commands.ts';
import { LocalState, nextChainMembers, restoredSource, sameMembers, type ChainMember, type RestoredReport } from '../meta/chain-states.ts';
import { TargetState } from '../meta/commands.ts';
import { FsErrorCode, MetaError, MetaErrorCode } from '../meta/errors.ts';
import { defaultChainTableId, type LeaseDirValue, type MetaResult, type RoutingInfo, type Session, type TargetInfo, type WorkerInfo } from '../meta/namespace-state.ts';
import type { MetaState } from '../meta/namespace.ts';
import { encodeCommandEntry, encodeInodeFloor } from '../meta/state-machine.ts';
import { heldInodeIdMax } from '../meta/restore-floor.ts';
import { auditQuarantine, emptyQuarantine, purgeable, type QuarantineReport } from './quarantine.ts';
import { reclaimTarget } from './reclaim.ts';
import { extendChains, type PlacementTarget } from '../placement/index.ts';
import { CairnError, ErrorCode } from '../errors.ts';
import { validateDecommissionRequest, validateHeartbeat, validatePurgeQuarantine, validateQuarantineRequest, validateRecoverChainRequest, WorkerMethod, type ScrubReport, type TargetReport, type WorkerHealth } from '../worker/protocol.ts';
import { WorkerError, WorkerErrorCode } from '../worker/errors.ts';
import { decommissionImpact, planReplacements, type DecommissionImpact, type StuckChain } from './replacements.ts';
import { planRebalance } from './rebalance.ts';
import { SessionLeases, sessionLeaseMsDefault, validateRenewSessions } from './session-leases.ts';
import { DirLeaseRenewals, dirLeaseMsDefault, validateRenewDirLeases, type RenewDirLeasesReply } from './dir-lease-renewals.ts';

export interface ClusterTiming {
  heartbeatMs: number;
  offlineTimeoutMs: number;
}

/** Heartbeats every second; offline after 5 s, well past a master failover (about 1 s). */
export const clusterTimingDefault: ClusterTiming = { heartbeatMs: 1_000, offlineTimeoutMs: 5_000 };
/** A worker stops serving at half the offline timeout: a shorter one would make a healthy worker flap. */
export const offlineTimeoutPerHeartbeatMin = 4;
export const replicationDefault = 3;
/**
 * How long a deleted file's chunks stay after its last session closed: a reader still streaming it
 * (another mount, an S3 GET of an object a PUT replaced) finishes instead of failing with EIO.
 */
export const gcDelayMsDefault = 60_000;
/** Chain members moving onto idle workers at once, cluster-wide; each is resynced at the source worker's --resync-mib-per-s. */
export const rebalanceMovesDefault = 2;
/**
 * How long a chain restored from a backup waits for every member's worker before it takes the
 * member with the newest record among those heard from (restoredSource): a worker that never
 * comes back must not keep the chain unavailable for good, but one slow to restart may hold the
 * only copy of the latest writes.
 */
export const restoreWaitMsDefault = 5 * 60_000;

export interface ClusterManagerOptions {
  masterId: number;
  journal: Journal;
  /** The applied metadata (read without a barrier: the leader's own state). */
  state: () => MetaState;
  clock: Clock;
  replication: number;
  timing: ClusterTiming;
  /** Connections to workers, for garbage collection; none: chunks of deleted files are not collected. */
  connect?: (address: string) => Connection;
  /**
   * A chain member offline this long (as this leader saw it) is replaced by a free target, as one
   * of a decommissioned worker is; undefined (the default): only decommissioned workers' are.
   */
  replaceAfterMs?: number;
  /** Chain members moving onto idle workers at once (rebalance.ts); 0 turns rebalancing off. Default rebalanceMovesDefault. */
  rebalanceMoves?: number;
  /** Deleted files' chunks are collected this long after the deletion at the earliest (see collectGarbage); default gcDelayMsDefault. */
  gcDelayMs?: number;
  /** How often the leader empties free targets that still hold chunks (reclaim.ts); default reclaimEveryMsDefault. */
  reclaimEveryMs?: number;
  /** How often the leader audits the workers for chunks of unknown inodes (quarantine.ts); default an hour. */
  quarantineAuditEveryMs?: number;
  /** See restoreWaitMsDefault. */
  restoreWaitMs?: number;
  /** A write session not renewed for this long ends (session-leases.ts); default sessionLeaseMsDefault. */
  sessionLeaseMs?: number;
  /** A directory lease whose holder did not renew for this long ends (dir-lease-renewals.ts); default dirLeaseMsDefault. */
  dirLeaseMs?: number;
  log?: (level: 'info' | 'warn' | 'error', msg: string, ctx?: object) => void;
}

export interface RegisterReply {
  clusterId: string;
  routing: RoutingInfo;
  timing: ClusterTiming;
}

/** admin.quarantine.purge: what went, and the audit after the last pass (what is left). */
export interface PurgeReply {
  chunks: number;
  inodes: number;
  passes: number;
  left: QuarantineReport;
}

export interface HeartbeatReply {
  /** Present when the worker's routing version is not the current one. */
  routing?: RoutingInfo;
}

export interface DecommissionReply {
  worker: WorkerInfo;
  impact: DecommissionImpact;
}

/** meta.renewSessions: the lease, and the sessions named that are no longer open. */
export interface RenewSessionsReply {
  leaseMs: number;
  ended: string[];
}

/** admin.chain.recover: the member chosen, the one given up, each member's record, and whether it was done (not a dry run). */
export interface RecoverChainReply {
  chainId: number;
  source: number;
  given: number | null;
  members: ChainMember[];
  records: ({ targetId: number; state: string } & RestoredReport)[];
  done: boolean;
}

/** cluster.replacements: the chains waiting for a replacement member, as of the leader's last round. */
export interface ReplacementsReply {
  stuck: StuckChain[];
  replaceAfterMs: number | null;
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

interface Seen {
  instance: string;
  atMs: number;
  reports: Map<number, TargetReport>;
  scrub?: ScrubReport;
  /** Cumulative bytes the worker read and wrote, as its last heartbeat said (validated there). */
  bytesRead?: number;
  bytesWritten?: number;
}

/** The workers not decommissioned: an audit and a reclaim talk to their targets only. */
function inServiceWorkers(state: MetaState): Set<number> {
  return new Set(state.workers().filter((w) => w.decommissionedMs === undefined).map((w) => w.workerId));
}

/** This master's current leadership: since when (on the monotonic clock and the wall clock), and in which term. */
interface Leadership {
  sinceMs: number;
  sinceWallMs: number;
  term: number;
}

/** Deleted files whose chunks one round collects. */
const gcFilesPerRound = 64;
export const quarantineAuditEveryMsDefault = 60 * 60 * 1000;
/** How often the leader looks for free targets that still hold chunks, and empties them (reclaim.ts). */
export const reclaimEveryMsDefault = 10_000;
/** How often an audit or purge looks again whether garbage collection is done with the workers. */
const dataWorkPollMs = 50;
/** Audit-and-purge passes one purge request makes at most (each covers quarantineListedMax inodes per target). */
const purgePassesMax = 16;

/** A target's capacity is journaled anew at most this often (resizeTargets). */
const resizeEveryMsMin = 60_000;

/** Unassigned targets must stay the same this long before chains are made of them. */
const settleHeartbeats = 2;

export class ClusterManager {
  private readonly opts: ClusterManagerOptions;
  private readonly seen = new Map<number, Seen>();
  private leading: Leadership | undefined;
  /**
   * The numbering of this master's proposals, under client id cluster-manager/ID/TERM. Kept when
   * leadership pauses and resumes within one term (a ZooKeeper master that stops serving until it
   * confirms its epoch again): starting over there would make every proposal stale.
   */
  private proposalSeq = { term: -1, seq: 0 };
  private timer: Timer | undefined;
  private busy = false;
  /** Proposals go one at a time: they share a client id, whose seq must not arrive out of order. */
  private proposals: Promise<unknown> = Promise.resolve();
  private freeTargets = { key: '', sinceMs: 0 };
  private lastPlacementNote = '';
  private readonly workerConns = new Map<string, Connection>();
  /** Since when this leader has seen each chain member dead (for replaceAfterMs). */
  private readonly deadSinceMs = new Map<number, number>();
  private stuck: StuckChain[] = [];
  private lastStuckNote = '';
  /** Restored chains waiting for their members' workers (restoredSource): since when, as this leader saw it, and what it last said. */
  private readonly restoredWaits = new Map<number, { sinceMs: number; note: string }>();
  /** This leadership's latest quarantine audit, and when the next is due. */
  private quarantine: QuarantineReport = emptyQuarantine;
  private lastAuditMs = -Infinity;
  private lastReclaimMs = -Infinity;
  private reclaiming: Promise<void> | undefined;
  private auditing: Promise<QuarantineReport> | undefined;
  /**
   * Set while garbage collection, an audit or a purge talks to the workers: an audit must not see
   * a chunk listed just before a collection ends (its inode would look unknown), nor a purge race one.
   */
  private dataBusy = false;
  private readonly leases: SessionLeases;
  private readonly dirLeases: DirLeaseRenewals;
  private lastDirExpiryMs = -Infinity;
  /** When this leader last journaled each target's capacity (resizeTargets). */
  private readonly resizedMs = new Map<number, number>();
  private lastExpiryMs = -Infinity;

  constructor(opts: ClusterManagerOptions) {
    this.opts = opts;
    this.leases = new SessionLeases(opts.sessionLeaseMs ?? sessionLeaseMsDefault);
    this.dirLeases = new DirLeaseRenewals(opts.dirLeaseMs ?? dirLeaseMsDefault);
  }

  start(): void {
    this.timer = this.opts.clock.every(this.opts.timing.heartbeatMs, () => {
      this.round().catch((err: unknown) => this.opts.log?.('warn', 'cluster manager round failed', { err: String(err) }));
    });
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
    for (const c of this.workerConns.values()) c.close();
    this.workerConns.clear();
  }

  /** worker.register: journals the worker and its targets; refuses a second process with the same id. */
  async register(body: unknown): Promise<RegisterReply> {
    this.requireLeader();
    const cmd = validateCommand({ ...(body as object), op: 'registerWorker', clientId: 'unstamped', seq: 1, nowMs: 0 });
    if (cmd.op !== 'registerWorker') throw new CairnError(ErrorCode.InvalidArgument, 'not a registration');
    if (this.opts.state().workers().find((w) => w.workerId === cmd.workerId)?.decommissionedMs !== undefined) {
      throw new WorkerError(WorkerErrorCode.WorkerDecommissioned, `worker ${cmd.workerId} was decommissioned and never registers again: start this machine as a new worker, with a new --id and empty target directories`);
    }
    const now = this.opts.clock.now();
    const other = this.seen.get(cmd.workerId);
    if (other !== undefined && other.instance !== cmd.instance && now - other.atMs < this.opts.timing.offlineTimeoutMs) {
      throw new WorkerError(
        WorkerErrorCode.WorkerDuplicate,
        `worker ${cmd.workerId} is already running (heard from ${Math.round(now - other.atMs)} ms ago); a second process with the same --id is refused, and a restarted one is let in once the old one has been silent for ${this.opts.timing.offlineTimeoutMs} ms`,
        { offlineTimeoutMs: this.opts.timing.offlineTimeoutMs },
      );
    }
    const { clientId: _c, seq: _s, nowMs: _n, ...registration } = cmd;
    await this.propose(registration);
    this.seen.set(cmd.workerId, { instance: cmd.instance, atMs: this.opts.clock.now(), reports: new Map() });
    const state = this.opts.state();
    return { clusterId: state.routing().clusterId, routing: state.routing(), timing: this.opts.timing };
  }

  /** meta.renewDirLeases: a mount still holds these directories; which to give back, which it lost. */
  renewDirLeases(body: unknown): RenewDirLeasesReply {
    this.requireLeader();
    const { holder, dirs } = validateRenewDirLeases(body);
    return this.dirLeases.renewHolder(holder, dirs, this.opts.state().dirLeases(), this.opts.clock.now());
  }

  /**
   * Before a leaseDir is proposed: refused (EAGAIN, nothing journaled) while others were waiting
   * for the directory a moment ago, so that they get their turn.
   */
  mayLeaseDir(path: string, caller: Caller): void {
    const dir = this.opts.state().stat(path, caller);
    if (dir.ok && this.dirLeases.coolingDown(dir.value.inodeId, this.opts.clock.now())) {
      throw new MetaError(FsErrorCode.EAGAIN, `'${path}' was given back a moment ago for others waiting for it: not held again yet`);
    }
  }

  /** What a namespace request's result says of directory leases: a holder heard from, a directory to recall. */
  dirLeaseResult(cmd: { op: string; caller?: Caller }, result: MetaResult<unknown>): void {
    const now = this.opts.clock.now();
    if (!result.ok) {
      if (result.leasedDirId !== undefined) this.dirLeases.recall(result.leasedDirId, now);
      return;
    }
    if (cmd.op === 'leaseDir') this.dirLeases.granted((result.value as LeaseDirValue).dir.inodeId, now);
  }

  /** A write session was opened through this leader: its first renewal. */
  sessionOpened(sessionId: string): void {
    this.leases.renew(sessionId, this.opts.clock.now());
  }

  /**
   * meta.renewSessions: a client still holds these write sessions. Answers the lease, and which of
   * them are no longer open (ended by an operator or expired): the client stops renewing those.
   */
  renewSessions(body: unknown): RenewSessionsReply {
    this.requireLeader();
    const sessionIds = validateRenewSessions(body);
    const now = this.opts.clock.now();
    const state = this.opts.state();
    const ended: string[] = [];
    for (const id of sessionIds) {
      if (state.session(id).ok) this.leases.renew(id, now);
      else ended.push(id);
    }
    return { leaseMs: this.leases.leaseMs, ended };
  }

  /**
   * A `sessions` listing with what this leader knows of each session's lease: how long ago it was
   * renewed (null: not within the lease, so it ends at the next look once this master has led a
   * lease), the lease, and how long this master has led.
   */
  withRenewals(reply: { sessions: Session[] }): object {
    const now = this.opts.clock.now();
    const ledMs = this.opts.journal.isLeader() && this.leading !== undefined ? now - this.leading.sinceMs : null;
    return {
      ...reply,
      sessions: reply.sessions.map((s) => ({ ...s, renewedAgoMs: this.leases.renewedAgoMs(s.sessionId, now) ?? null })),
      leaseMs: this.leases.leaseMs,
      ledMs,
    };
  }

  /** worker.heartbeat: recorded in memory; answers with newer routing when there is some. */
  heartbeat(body: unknown): HeartbeatReply {
    this.requireLeader();
    const hb = validateHeartbeat(body);
    const state = this.opts.state();
    const worker = state.workers().find((w) => w.workerId === hb.workerId);
    if (worker === undefined || worker.instance !== hb.instance) {
      throw new WorkerError(WorkerErrorCode.WorkerNotRegistered, `worker ${hb.workerId} (instance ${hb.instance}) is not the registered one: register again`);
    }
    this.seen.set(hb.workerId, { instance: hb.instance, atMs: this.opts.clock.now(), reports: new Map(hb.targets.map((t) => [t.targetId, t])), scrub: hb.scrub, bytesRead: hb.bytesRead ?? 0, bytesWritten: hb.bytesWritten ?? 0 });
    return hb.routingVersion === state.routingVersion ? {} : { routing: state.routing() };
  }

  /** cluster.health: the workers as their last heartbeats to this leader described them (in memory only). */
  health(): WorkerHealth[] {
    this.requireLeader();
    const now = this.opts.clock.now();
    return [...this.seen]
      .sort((a, b) => a[0] - b[0])
      .map(([workerId, s]) => ({
        workerId,
        heartbeatAgeMs: Math.max(0, now - s.atMs),
        targets: [...s.reports.values()].map((t) => ({
          targetId: t.targetId,
          chunks: t.chunks,
          chunksCorrupt: t.chunksCorrupt ?? 0,
          usedBytes: t.usedBytes,
          capacityBytes: t.capacityBytes,
          ...(t.freeBytes === undefined ? {} : { freeBytes: t.freeBytes }),
          ...(t.device === undefined ? {} : { device: t.device }),
        })),
        scrub: s.scrub,
        bytesRead: s.bytesRead ?? 0,
        bytesWritten: s.bytesWritten ?? 0,
      }));
  }

  /**
   * admin.worker.decommission: marks a worker lost for good; its members are then replaced, round
   * by round. Refused (CAIRN_DECOMMISSION_UNSAFE) when a chain would keep no serving replica on a
   * worker in service, unless forced: that chain's only up-to-date copy is on this worker.
   */
  async decommission(body: unknown): Promise<DecommissionReply> {
    this.requireLeader();
    const req = validateDecommissionRequest(body);
    const state = this.opts.state();
    const workers = state.workers();
    if (!workers.some((w) => w.workerId === req.workerId)) {
      throw new MetaError(MetaErrorCode.ENOENT, `no worker ${req.workerId}; the workers are ${workers.map((w) => w.workerId).join(', ') || 'none'}`);
    }
    const impact = decommissionImpact(req.workerId, workers, state.targets(), state.chains());
    if (impact.unsafeChainIds.length > 0 && !req.force) {
      throw new WorkerError(
        WorkerErrorCode.DecommissionUnsafe,
        `worker ${req.workerId} holds the only up-to-date replica of chain(s) ${impact.unsafeChainIds.join(', ')}: decommissioning it gives their data up. Bring another member of those chains back first, or force it`,
        { chainIds: impact.unsafeChainIds },
      );
    }
    await this.propose({ op: 'decommissionWorker', workerId: req.workerId });
    this.opts.log?.('warn', 'worker decommissioned', { worker: req.workerId, chains: impact.chains.map((c) => c.chainId), forced: impact.unsafeChainIds.length > 0 });
    const worker = this.opts.state().workers().find((w) => w.workerId === req.workerId)!;
    return { worker, impact };
  }

  /**
   * admin.chain.recover: a chain with no serving member whose up-to-date member (its lastsrv, or
   * for a restored chain the one that would be chosen) is gone for good, a dead disk or a worker
   * decommissioned with --force, stays unavailable, never wrong. This gives up the writes that only
   * that member held: among the members whose workers run, the one whose record says it served the
   * chain last becomes its lastsrv (so it serves), the others resync from it, and the lost one is
   * offline (should it come back, it resyncs too, and what only it had is gone). Refused while the
   * lastsrv's worker runs (it serves again by itself) or no other member's does.
   */
  async recoverChain(body: unknown): Promise<RecoverChainReply> {
    this.requireLeader();
    const req = validateRecoverChainRequest(body);
    const now = this.opts.clock.now();
    const state = this.opts.state();
    const chain = state.chains().find((c) => c.chainId === req.chainId);
    if (chain === undefined) throw new MetaError(MetaErrorCode.ENOENT, `no chain ${req.chainId}; the chains are ${state.chains().map((c) => c.chainId).join(', ') || 'none'}`);
    const targets = new Map(state.targets().map((t) => [t.targetId, t]));
    const workerOf = (id: number): number => targets.get(id)!.workerId;
    const members = chain.targetIds.map((id) => ({ targetId: id, state: targets.get(id)!.state }));
    if (members.some((m) => m.state === TargetState.Serving)) throw new MetaError(MetaErrorCode.EINVAL, `chain ${chain.chainId} serves: nothing to recover`);
    const leading = this.leading;
    if (leading === undefined || now - leading.sinceMs < this.opts.timing.offlineTimeoutMs) {
      throw new MetaError(MetaErrorCode.EAGAIN, `this master leads for less than the workers' offline timeout (${this.opts.timing.offlineTimeoutMs} ms): it cannot tell yet which workers run; try again in a few seconds`);
    }
    const lastServing = members.find((m) => m.state === TargetState.LastServing);
    if (lastServing !== undefined && this.localState(lastServing.targetId, workerOf(lastServing.targetId), now, chain.version) !== LocalState.Offline) {
      throw new MetaError(MetaErrorCode.EAGAIN, `chain ${chain.chainId}'s last serving member, target ${lastServing.targetId}, runs: it serves again by itself, losing nothing`);
    }
    // The lost member leaves service; the best of the others is chosen as after a restore, forced.
    const without = members.map((m) => (m.state === TargetState.LastServing ? { targetId: m.targetId, state: TargetState.Offline } : m));
    const report = this.servedReport(chain.chainId, workerOf, now);
    const choice = restoredSource(without, report, true);
    if (choice === undefined || 'wait' in choice) {
      throw new MetaError(MetaErrorCode.EAGAIN, `no other member of chain ${chain.chainId} runs (targets ${members.filter((m) => m !== lastServing).map((m) => m.targetId).join(', ') || 'none'}): start the worker of one of them first`);
    }
    const records = members.map((m) => ({ targetId: m.targetId, state: m.state, ...report(m.targetId) }));
    const reply = { chainId: chain.chainId, source: choice.source, given: lastServing?.targetId ?? null, members: choice.members, records, done: false };
    if (req.dryRun) return reply;
    await this.propose({ op: 'updateChains', chains: [{ chainId: chain.chainId, version: chain.version, targets: choice.members }] });
    this.opts.log?.('warn', 'chain recovered by an operator: it serves from the best member left, giving up writes only the lost one held', { chain: chain.chainId, source: choice.source, given: lastServing?.targetId, records: JSON.stringify(records) });
    return { ...reply, done: true };
  }

  /** What each member's worker last reported of where it served (served-record.ts), for choosing a chain's source. */
  private servedReport(chainId: number, workerOf: (targetId: number) => number, now: number): (targetId: number) => RestoredReport {
    const decommissioned = new Set(this.opts.state().workers().filter((w) => w.decommissionedMs !== undefined).map((w) => w.workerId));
    return (targetId) => {
      const r = this.report(targetId, workerOf(targetId), now);
      if (r === undefined) return decommissioned.has(workerOf(targetId)) ? { heard: false, lost: true } : { heard: false };
      if (r.servedChainId === undefined) return { heard: true };
      return { heard: true, servedAt: r.servedChainId === chainId ? r.servedRoutingVersion : -1 };
    };
  }

  /** cluster.replacements: chains that wait for a replacement member, and why. */
  replacements(): ReplacementsReply {
    this.requireLeader();
    return { stuck: this.stuck, replaceAfterMs: this.opts.replaceAfterMs ?? null };
  }

  /** One decision round; exported for tests, which drive it with a hand-moved clock. */
  async round(): Promise<void> {
    if (!this.opts.journal.isLeader()) {
      this.leading = undefined;
      this.seen.clear();
      this.deadSinceMs.clear();
      this.restoredWaits.clear();
      this.stuck = [];
      this.quarantine = emptyQuarantine;
      this.lastAuditMs = -Infinity;
      this.lastReclaimMs = -Infinity;
      return;
    }
    const term = this.opts.journal.status().term;
    const now = this.opts.clock.now();
    const leading = this.noteLeading(term);
    if (this.busy) return;
    this.busy = true;
    try {
      if (this.opts.state().routing().clusterId === '') await this.propose({ op: 'initCluster', clusterId: this.newClusterId() });
      await this.expireSessions(now, leading);
      await this.expireDirLeases(now, leading);
      // A new leader has not seen a full timeout of heartbeats: silence proves nothing yet.
      if (now - leading.sinceMs < this.opts.timing.offlineTimeoutMs) return;
      await this.raiseInodeCounter(now);
      await this.updateStates(now);
      await this.resizeTargets(now);
      await this.replaceLost(now);
      const freeSettled = await this.makeChains(now);
      await this.rebalance(now, freeSettled);
      await this.collectGarbage(now);
      this.reclaimFree(now);
      if (this.opts.connect !== undefined && now - this.lastAuditMs >= (this.opts.quarantineAuditEveryMs ?? quarantineAuditEveryMsDefault)) {
        this.lastAuditMs = now;
        this.audit().catch((err: unknown) => this.opts.log?.('warn', 'quarantine audit failed', { err: String(err) }));
      }
    } finally {
      this.busy = false;
    }
  }

  /** The target's worker was heard from within the timeout and reported it running. */
  private alive(targetId: number, workerId: number, now: number): boolean {
    const report = this.report(targetId, workerId, now);
    return report !== undefined && report.localState !== LocalState.Offline;
  }

  private report(targetId: number, workerId: number, now: number): TargetReport | undefined {
    const seen = this.seen.get(workerId);
    if (seen === undefined || now - seen.atMs > this.opts.timing.offlineTimeoutMs) return undefined;
    return seen.reports.get(targetId);
  }

  private localState(targetId: number, workerId: number, now: number, chainVersion: number): LocalState {
    const report = this.report(targetId, workerId, now);
    if (report === undefined) return LocalState.Offline;
    // Up to date as of an older chain version proves nothing about this one.
    if (report.localState === LocalState.UpToDate && report.chainVersion !== chainVersion) return LocalState.Online;
    return report.localState;
  }

  /**
   * Journals the capacity of targets whose file system was resized while their worker ran (the
   * journal's is the one read at registration; placement, `admin targets` and the cluster's size
   * read it). A change under 1% is not one (some file systems' totals move with their use), and a
   * target is resized at most once a minute.
   */
  private async resizeTargets(now: number): Promise<void> {
    const resized: { targetId: number; capacityBytes: number }[] = [];
    for (const t of this.opts.state().targets()) {
      const reported = this.report(t.targetId, t.workerId, now)?.capacityBytes ?? 0;
      if (reported <= 0 || Math.abs(reported - t.capacityBytes) * 100 < Math.max(reported, t.capacityBytes)) continue;
      if (now - (this.resizedMs.get(t.targetId) ?? -Infinity) < resizeEveryMsMin) continue;
      this.resizedMs.set(t.targetId, now);
      resized.push({ targetId: t.targetId, capacityBytes: reported });
      if (resized.length === resizeTargetsMax) break;
    }
    if (resized.length === 0) return;
    const before = new Map(this.opts.state().targets().map((t) => [t.targetId, t.capacityBytes]));
    this.opts.log?.('info', 'targets resized: their file systems\' size changed', { targets: resized.map((r) => `${r.targetId}: ${before.get(r.targetId)} -> ${r.capacityBytes} bytes`) });
    await this.propose({ op: 'resizeTargets', targets: resized });
  }

  private async updateStates(now: number): Promise<void> {
    const state = this.opts.state();
    const targets = new Map(state.targets().map((t) => [t.targetId, t]));
    const decommissioned = new Set(state.workers().filter((w) => w.decommissionedMs !== undefined).map((w) => w.workerId));
    const updates: ChainUpdate[] = [];
    for (const chain of state.chains()) {
      const members = chain.targetIds.map((id) => ({ targetId: id, state: targets.get(id)!.state }));
      const source = this.restoredSource(chain.chainId, members, (id) => targets.get(id)!.workerId, now);
      const next = nextChainMembers(
        source ?? members,
        (id) => this.localState(id, targets.get(id)!.workerId, now, chain.version),
        (id) => decommissioned.has(targets.get(id)!.workerId),
      );
      if (!sameMembers(members, next)) updates.push({ chainId: chain.chainId, version: chain.version, targets: next });
    }
    if (updates.length === 0) return;
    this.opts.log?.('info', 'chain states change', { chains: updates.map((u) => ({ chain: u.chainId, members: u.targets.map((m) => `${m.targetId}:${m.state}`).join(' ') })) });
    // EAGAIN (a chain moved on meanwhile) is fine: the next round recomputes from the new state.
    await this.propose({ op: 'updateChains', chains: updates }, true);
  }

  /**
   * A chain restored from a backup: its members with the source chosen by the workers' records as
   * lastsrv, once every member's worker was heard from or the wait is over; undefined meanwhile,
   * and for any other chain. What it waits for and what it chose are logged.
   */
  private restoredSource(chainId: number, members: ChainMember[], workerOf: (targetId: number) => number, now: number): ChainMember[] | undefined {
    if (members.some((m) => m.state === TargetState.Serving || m.state === TargetState.LastServing)) {
      this.restoredWaits.delete(chainId);
      return undefined;
    }
    const report = this.servedReport(chainId, workerOf, now);
    const waiting = this.restoredWaits.get(chainId) ?? { sinceMs: now, note: '' };
    this.restoredWaits.set(chainId, waiting);
    const waitedMs = now - waiting.sinceMs;
    const leftMs = (this.opts.restoreWaitMs ?? restoreWaitMsDefault) - waitedMs;
    const forced = leftMs <= 0;
    const choice = restoredSource(members, report, forced);
    if (choice === undefined || 'wait' in choice) {
      this.noteRestoredWait(chainId, waiting, leftMs, choice === undefined ? 'no member heard from yet' : `targets ${choice.wait.join(', ')} not heard from yet`);
      return undefined;
    }
    const records = members.map((m) => `${m.targetId}: ${JSON.stringify(report(m.targetId))}`).join('; ');
    this.opts.log?.(forced ? 'warn' : 'info', 'a restored chain takes as its source the member that served it last', { chain: chainId, source: choice.source, records, waitedMs });
    return choice.members;
  }

  private noteRestoredWait(chainId: number, waiting: { note: string }, leftMs: number, why: string): void {
    if (waiting.note === why) return;
    waiting.note = why;
    this.opts.log?.('warn', "a restored chain waits for its members' workers to choose its source", { chain: chainId, why, chooseAmongHeardInMs: Math.max(0, leftMs) });
  }

  /**
   * Puts free targets into chains in place of lost members (replacements.ts), one journaled
   * command per chain; logs the chains that must wait, and why, when that changes.
   */
  private async replaceLost(now: number): Promise<void> {
    const state = this.opts.state();
    const targets = state.targets();
    this.trackDead(targets, now);
    const replaceAfterMs = this.opts.replaceAfterMs;
    const plan = planReplacements({
      workers: state.workers(),
      targets,
      chains: state.chains(),
      alive: (t) => this.alive(t.targetId, t.workerId, now),
      offlineTooLong: (t) => replaceAfterMs !== undefined && now - (this.deadSinceMs.get(t.targetId) ?? now) >= replaceAfterMs,
      usedBytes: (t) => this.report(t.targetId, t.workerId, now)?.usedBytes ?? 0,
    });
    this.stuck = plan.stuck;
    const note = plan.stuck.map((s) => `chain ${s.chainId} (lost target ${s.lostTargetId} of worker ${s.lostWorkerId}, ${s.reason}): ${s.why}`).join('; ');
    if (note !== this.lastStuckNote && note !== '') this.opts.log?.('warn', `chains stay degraded: ${note}`, { chains: plan.stuck.map((s) => s.chainId) });
    this.lastStuckNote = note;
    for (const r of plan.replacements) {
      const ctx = { chain: r.chainId, version: r.version, lost: r.lostTargetId, reason: r.reason, replacement: r.newTargetId, distinctDomain: r.distinctDomain };
      try {
        // EAGAIN: the chain moved on since this round read it; the next round chooses again.
        await this.propose({ op: 'replaceChainMember', chainId: r.chainId, version: r.version, lostTargetId: r.lostTargetId, newTargetId: r.newTargetId }, true);
      } catch (err) {
        // The plan and the command's checks agree by design; should they not, one refused
        // replacement must not hold up the rest of the round (chains, garbage collection).
        if (!(err instanceof MetaError)) throw err;
        this.opts.log?.('error', 'replacement refused', { ...ctx, code: err.code, err: err.message });
        continue;
      }
      const done = this.opts.state().chains().find((c) => c.chainId === r.chainId)?.targetIds.includes(r.newTargetId) === true;
      this.opts.log?.('info', done ? 'chain member replaced' : 'chain moved on before its replacement; choosing again next round', ctx);
    }
  }

  /** Remembers since when each chain member has been dead; a live one is forgotten. */
  private trackDead(targets: readonly TargetInfo[], now: number): void {
    if (this.opts.replaceAfterMs === undefined) return;
    for (const t of targets) {
      const dead = t.chainId !== 0 && t.state === TargetState.Offline && !this.alive(t.targetId, t.workerId, now);
      if (!dead) this.deadSinceMs.delete(t.targetId);
      else if (!this.deadSinceMs.has(t.targetId)) this.deadSinceMs.set(t.targetId, now);
    }
  }

  /**
   * Chains from live targets in none, once that set has stayed the same for a couple of heartbeats.
   * True when the free targets have settled and no chain was made of them (they may be moved onto).
   */
  private async makeChains(now: number): Promise<boolean> {
    const state = this.opts.state();
    const workers = new Map(state.workers().map((w) => [w.workerId, w]));
    const live = state.targets().filter((t) => this.alive(t.targetId, t.workerId, now) && workers.get(t.workerId)?.decommissionedMs === undefined);
    // A target that left a chain (replaced after --replace-after-ms, then back) still holds that
    // chain's chunks: a new chain's members must start out equal (empty), so it may only be a
    // replacement, whose resync clears what it should not hold.
    const free = live.filter((t) => t.chainId === 0 && (this.report(t.targetId, t.workerId, now)?.chunks ?? 0) === 0);
    const key = free.map((t) => t.targetId).join(',');
    if (key !== this.freeTargets.key) this.freeTargets = { key, sinceMs: now };
    const settled = now - this.freeTargets.sinceMs >= settleHeartbeats * this.opts.timing.heartbeatMs;
    if (free.length === 0 || !settled) return settled;
    const chains = state.chains();
    const existing = chains.map((c) => c.targetIds);
    const inChains = state.targets().filter((t) => t.chainId !== 0);
    const asPlaced = (t: { targetId: number; workerId: number; capacityBytes: number }): PlacementTarget => ({
      targetId: t.targetId,
      workerId: t.workerId,
      domain: workers.get(t.workerId)?.domain || undefined,
      capacityBytes: t.capacityBytes,
    });
    const plan = extendChains(existing, [...inChains, ...free].map(asPlaced), this.opts.replication);
    const added = plan.chains.slice(existing.length);
    if (added.length === 0) {
      const note = `${free.length} free targets make no chain of ${this.opts.replication}: ${plan.unused.map((u) => `${u.targetId} (${u.reason})`).join(', ')}`;
      if (note !== this.lastPlacementNote) this.opts.log?.('info', note);
      this.lastPlacementNote = note;
      return true;
    }
    let nextId = chains.reduce((m, c) => Math.max(m, c.chainId), 0) + 1;
    const newChains = added.map((targetIds) => ({ chainId: nextId++, targetIds }));
    this.opts.log?.('info', 'new chains', { chains: newChains.map((c) => `${c.chainId}: ${c.targetIds.join(' ')}`) });
    await this.propose({ op: 'addChains', tableId: defaultChainTableId, chains: newChains });
    return false;
  }

  /**
   * Ends the moves whose newcomer caught up (or was lost), and starts new ones onto idle workers'
   * free targets while fewer than rebalanceMoves are under way (rebalance.ts). New moves wait while
   * free targets are still arriving, so that new chains are made of them first when they can be.
   */
  private async rebalance(now: number, freeSettled: boolean): Promise<void> {
    const state = this.opts.state();
    const plan = planRebalance({
      workers: state.workers(),
      targets: state.targets(),
      chains: state.chains(),
      alive: (t) => this.alive(t.targetId, t.workerId, now),
      usedBytes: (t) => this.report(t.targetId, t.workerId, now)?.usedBytes ?? 0,
      chunks: (t) => this.report(t.targetId, t.workerId, now)?.chunks,
      movesMax: freeSettled ? (this.opts.rebalanceMoves ?? rebalanceMovesDefault) : 0,
    });
    // EAGAIN: the chain moved on since this round read it; the next round decides again.
    for (const e of plan.end) {
      const ctx = { chain: e.chainId, from: e.fromTargetId, to: e.toTargetId, why: e.why };
      try {
        await this.propose({ op: 'endChainMove', chainId: e.chainId, version: e.version, outcome: e.outcome }, true);
      } catch (err) {
        if (!(err instanceof MetaError)) throw err;
        this.opts.log?.('error', 'end of chain member move refused', { ...ctx, code: err.code, err: err.message });
        continue;
      }
      const ended = this.opts.state().chains().find((c) => c.chainId === e.chainId)?.moving === undefined;
      if (!ended) continue; // the chain moved on meanwhile: the next round decides again
      this.opts.log?.(e.outcome === 'done' ? 'info' : 'warn', e.outcome === 'done' ? 'chain member moved' : 'chain member move cancelled', ctx);
    }
    for (const m of plan.start) {
      try {
        await this.propose({ op: 'moveChainMember', chainId: m.chainId, version: m.version, fromTargetId: m.fromTargetId, toTargetId: m.toTargetId }, true);
      } catch (err) {
        // As with replacements: one refused move must not hold up the rest of the round.
        if (!(err instanceof MetaError)) throw err;
        this.opts.log?.('error', 'chain member move refused', { chain: m.chainId, from: m.fromTargetId, to: m.toTargetId, code: err.code, err: err.message });
        continue;
      }
      this.opts.log?.('info', 'chain member moves to an idle worker: the newcomer resyncs, then the source leaves', { chain: m.chainId, from: `${m.fromTargetId} (worker ${m.fromWorkerId})`, to: `${m.toTargetId} (worker ${m.toWorkerId})` });
    }
  }

  /** Ends, through the journal, the directory leases no renewal named for a lease or kept after a recall (dir-lease-renewals.ts). Looks every quarter lease. */
  private async expireDirLeases(now: number, leading: Leadership): Promise<void> {
    if (now - this.lastDirExpiryMs < this.dirLeases.leaseMs / 4) return;
    this.lastDirExpiryMs = now;
    const leases = this.dirLeases.expired(this.opts.state().dirLeases(), now, leading.sinceMs).map((l) => ({ dirInodeId: l.dirInodeId, holder: l.holder }));
    for (let i = 0; i < leases.length; i += expireDirLeasesMax) {
      await this.propose({ op: 'expireDirLeases', leases: leases.slice(i, i + expireDirLeasesMax) });
    }
    if (leases.length > 0) this.opts.log?.('warn', 'ended directory leases not renewed for a lease (their mounts are gone or cut off) or not given back when recalled (their mounts are stuck): what those mounts answered there since is lost', { leases: leases.length, holders: new Set(leases.map((l) => l.holder)).size, leaseMs: this.dirLeases.leaseMs });
  }

  /**
   * Ends, through the journal, the write sessions not renewed for a lease (session-leases.ts):
   * their clients are gone. Looks every eighth of a lease.
   */
  private async expireSessions(now: number, leading: Leadership): Promise<void> {
    if (now - this.lastExpiryMs < this.leases.leaseMs / 8) return;
    this.lastExpiryMs = now;
    const expired = this.leases.expired(this.opts.state().openSessions(), now, leading.sinceMs);
    for (let i = 0; i < expired.length; i += expireSessionsMax) {
      await this.propose({ op: 'expireSessions', sessionIds: expired.slice(i, i + expireSessionsMax).map((s) => s.sessionId) });
    }
    const byClient = new Map<string, number>();
    for (const s of expired) byClient.set(s.clientId, (byClient.get(s.clientId) ?? 0) + 1);
    for (const [client, sessions] of byClient) {
      this.opts.log?.('warn', 'ended write sessions not renewed for a lease: their client is gone or cut off', { client, sessions, leaseMs: this.leases.leaseMs });
    }
  }

  /** Removes the chunks of a batch of deleted files from the workers, then journals which are gone. */
  private async collectGarbage(now: number): Promise<void> {
    // An audit or purge in progress goes first: the files wait a round (a round never waits for one).
    if (this.opts.connect === undefined || this.dataBusy || this.leading === undefined) return;
    const state = this.opts.state();
    const delayMs = this.opts.gcDelayMs ?? gcDelayMsDefault;
    const cutoffMs = this.opts.clock.wallNow() - delayMs;
    // A deletion's time is the wall clock of the leader that journaled it. One from before this
    // leadership may be on another master's clock, behind this one's: it also waits until this
    // master has led for the delay, so that a skewed clock never collects a file early.
    const ledTheDelay = now - this.leading.sinceMs >= delayMs;
    const since = this.leading.sinceWallMs;
    // The list is in the order of deletion: the files old enough come first.
    const entries = state.pendingGc(gcFilesPerRound).filter((e) => e.deletedMs <= cutoffMs && (ledTheDelay || e.deletedMs >= since));
    if (entries.length === 0) return;
    this.dataBusy = true;
    try {
      const pass = await collectChunks(entries, state.routing(), (a) => this.worker(a), this.opts.timing.offlineTimeoutMs);
      if (pass.done.length > 0) await this.propose({ op: 'gcDone', inodeIds: pass.done });
      if (pass.left > 0) this.opts.log?.('info', 'garbage collection left files for a later round', { left: pass.left });
    } finally {
      this.dataBusy = false;
    }
  }

  /**
   * Empties, in the background, the targets that left a chain and are free (in no chain) on live
   * workers in service: the chunks of files the namespace knows go (reclaim.ts), then the leader
   * journals that the target is reclaimed; it may then join a new chain or take a move. Only a
   * target that left a chain in this cluster's journal is touched: after a restore a free target
   * may hold the only copies of a chain that moved after the backup. One pass at a time, and not
   * with other data work.
   */
  private reclaimFree(now: number): void {
    if (this.opts.connect === undefined || this.reclaiming !== undefined || now - this.lastReclaimMs < (this.opts.reclaimEveryMs ?? reclaimEveryMsDefault)) return;
    const state = this.opts.state();
    const inService = inServiceWorkers(state);
    const held = state.targets().filter((t) => t.chainId === 0 && t.leftChainAt !== undefined && inService.has(t.workerId) && this.alive(t.targetId, t.workerId, now));
    if (held.length === 0) return;
    this.lastReclaimMs = now;
    const pass = this.withDataWork(async () => {
      for (const t of held) {
        const address = this.workerAddress(t.workerId);
        if (address === undefined) continue;
        try {
          const r = await reclaimTarget({ inodeStatus: (id) => this.opts.state().inodeStatus(id), callTimeoutMs: this.opts.timing.offlineTimeoutMs }, this.worker(address), t.targetId);
          if (r.chunks > 0 || r.stopped) this.opts.log?.('info', 'free target reclaimed', { target: t.targetId, worker: t.workerId, chunks: r.chunks, inodes: r.inodes, left: r.left, ...(r.stopped ? { stopped: 'it joined a chain meanwhile' } : {}) });
          if (!r.stopped) await this.propose({ op: 'targetReclaimed', targetId: t.targetId, leftChainAt: t.leftChainAt! });
        } catch (err) {
          // Refused by a worker whose routing does not show the target free yet: usual, and brief.
          const usual = (err as { code?: string }).code === WorkerErrorCode.TargetUnavailable;
          this.opts.log?.(usual ? 'info' : 'warn', 'free target not reclaimed; tried again later', { target: t.targetId, worker: t.workerId, err: String((err as Error).message ?? err) });
        }
      }
    });
    this.reclaiming = pass.catch((err: unknown) => this.opts.log?.('warn', 'free target reclaim failed', { err: String(err) })).finally(() => (this.reclaiming = undefined));
  }

  /**
   * A worker holds chunks of an inode the counter has not reached: a create would find them under
   * its new file (a restore from an older backup whose floor fell short, as when the clock was
   * wrong). The counter moves past it, through the journal.
   */
  private async raiseInodeCounter(now: number): Promise<void> {
    let held = 0;
    let where = '';
    for (const [workerId, seen] of this.seen) {
      if (now - seen.atMs > this.opts.timing.offlineTimeoutMs) continue;
      for (const r of seen.reports.values()) {
        if ((r.inodeIdMax ?? 0) > held) [held, where] = [r.inodeIdMax!, `worker ${workerId} target ${r.targetId}`];
      }
    }
    const next = this.opts.state().nextInodeId;
    if (held < next || held > heldInodeIdMax) return;
    const result = (await this.opts.journal.propose(encodeInodeFloor(held))) as MetaResult<{ raised: boolean; nextInodeId: number }>;
    if (result.ok && result.value.raised) {
      this.opts.log?.('error', `${where} holds chunks of inode ${held}, which the inode counter (${next}) had not reached: the counter now starts past it, so no new file finds those chunks. Were the masters restored from a backup with a wrong clock? See cairn admin quarantine list`, { held, next: result.value.nextInodeId });
    }
  }

  /** The latest audit of this leadership (empty on a follower), for /metrics. */
  quarantineLatest(): QuarantineReport {
    return this.quarantine;
  }

  /** cluster.quarantine: the latest audit of this leadership, or a new one. */
  async quarantineReport(body: unknown): Promise<QuarantineReport> {
    this.requireLeader();
    const req = validateQuarantineRequest(body);
    return req.refresh ? this.audit() : this.quarantine;
  }

  /** Lists every worker's inodes and keeps the report; concurrent callers share one audit. */
  private audit(): Promise<QuarantineReport> {
    this.auditing ??= this.withDataWork(() => this.auditNow()).finally(() => (this.auditing = undefined));
    return this.auditing;
  }

  private async auditNow(): Promise<QuarantineReport> {
    if (this.opts.connect === undefined) throw new CairnError(ErrorCode.Unavailable, 'this master does not reach workers');
    const state = this.opts.state();
    const inService = inServiceWorkers(state);
    const routing = state.routing();
    const report = await auditQuarantine({
      routing: { ...routing, targets: routing.targets.filter((t) => inService.has(t.workerId)) },
      inodeStatus: (id) => this.opts.state().inodeStatus(id),
      nextInodeId: () => this.opts.state().nextInodeId,
      connect: (a) => this.worker(a),
      skip: (workerId) => this.silent(workerId),
      callTimeoutMs: this.opts.timing.offlineTimeoutMs,
      wallNowMs: this.opts.clock.wallNow(),
    });
    const before = this.quarantine;
    this.quarantine = report;
    if (report.chunks > 0 && (report.chunks !== before.chunks || report.bytes !== before.bytes)) {
      this.opts.log?.('warn', 'chunks of inodes the namespace does not know are quarantined (kept); see cairn admin quarantine list', { chunks: report.chunks, bytes: report.bytes, targets: report.targets.filter((t) => t.chunks > 0).map((t) => t.targetId) });
    }
    return report;
  }

  /**
   * admin.quarantine.purge: audits, then removes from each target the chunks of the unknown inodes
   * it listed that are below the inode counter; again while more remain, up to purgePassesMax passes.
   */
  async purgeQuarantine(body: unknown): Promise<PurgeReply> {
    this.requireLeader();
    validatePurgeQuarantine(body);
    return this.withDataWork(async () => {
      const reply: PurgeReply = { chunks: 0, inodes: 0, passes: 0, left: emptyQuarantine };
      for (;;) {
        const report = await this.auditNow();
        reply.left = report;
        const removable = report.targets.map((t) => ({ t, ids: purgeable(t, (id) => this.opts.state().inodeStatus(id), this.opts.state().nextInodeId) }));
        if (reply.passes >= purgePassesMax || removable.every((r) => r.ids.length === 0)) return reply;
        reply.passes++;
        for (const { t, ids } of removable) {
          const address = this.workerAddress(t.workerId);
          if (ids.length === 0 || address === undefined) continue;
          const r = await this.worker(address).call<{ removed: number }>(WorkerMethod.purge, { targetId: t.targetId, inodeIds: ids }, { timeoutMs: this.opts.timing.offlineTimeoutMs });
          reply.chunks += r.body.removed;
          reply.inodes += ids.length;
        }
        this.opts.log?.('warn', 'quarantined chunks purged', { chunks: reply.chunks, inodes: reply.inodes, pass: reply.passes });
      }
    });
  }

  /**
   * Why an audit does not ask this worker: silent for the offline timeout while this leader has
   * led that long (a new leader has heard from no one yet, so it asks everyone).
   */
  private silent(workerId: number): string | undefined {
    const now = this.opts.clock.now();
    const timeout = this.opts.timing.offlineTimeoutMs;
    if (this.leading === undefined || now - this.leading.sinceMs < timeout) return undefined;
    const seen = this.seen.get(workerId);
    if (seen !== undefined && now - seen.atMs <= timeout) return undefined;
    return `worker ${workerId} has not heartbeated for ${timeout} ms`;
  }

  /** Runs `fn` once no garbage collection, audit or purge talks to the workers, and holds them off meanwhile. */
  private async withDataWork<T>(fn: () => Promise<T>): Promise<T> {
    while (this.dataBusy) await this.opts.clock.sleep(dataWorkPollMs);
    this.dataBusy = true;
    try {
      return await fn();
    } finally {
      this.dataBusy = false;
    }
  }

  /** This leadership, counted from now unless this master already led in `term`. */
  private noteLeading(term: number): Leadership {
    if (this.leading?.term !== term) {
      this.leading = { sinceMs: this.opts.clock.now(), sinceWallMs: this.opts.clock.wallNow(), term };
      this.dirLeases.leadershipBegan();
    }
    return this.leading;
  }

  /** A worker's address in the applied routing, if it has one. */
  private workerAddress(workerId: number): string | undefined {
    return this.opts.state().routing().workers.find((w) => w.workerId === workerId)?.address;
  }

  private worker(address: string): Connection {
    let c = this.workerConns.get(address);
    if (c === undefined) {
      c = this.opts.connect!(address);
      this.workerConns.set(address, c);
    }
    return c;
  }

  /**
   * Proposes a command stamped by this leadership (one client id per term, seq in order), one at a
   * time; a refused one throws, unless `again` accepts EAGAIN (recomputed next round).
   */
  private propose(body: DistributiveOmit<MetaCommand, 'clientId' | 'seq' | 'nowMs'>, again = false): Promise<void> {
    const run = async (): Promise<void> => {
      const term = this.opts.journal.status().term;
      this.noteLeading(term);
      if (this.proposalSeq.term !== term) this.proposalSeq = { term, seq: 0 };
      const cmd = { ...body, clientId: `cluster-manager/${this.opts.masterId}/${term}`, seq: ++this.proposalSeq.seq, nowMs: this.opts.clock.wallNow() } as MetaCommand;
      // Taken on a full disk's reserve too: ending sessions and recording collected chunks free
      // space, and the rest (workers registering, chains changing) is what lets the cluster collect
      // it; these entries come with the cluster's events, few and small, not with clients' writes.
      const result = (await this.opts.journal.propose(encodeCommandEntry(cmd), { onReserve: true })) as MetaResult;
      if (result.ok || (again && result.code === 'EAGAIN')) return;
      throw new MetaError(result.code, result.message);
    };
    const done = this.proposals.then(run, run);
    this.proposals = done.catch(() => undefined);
    return done;
  }

  private requireLeader(): void {
    if (this.opts.journal.isLeader()) return;
    const leader = this.opts.journal.leader();
    throw new CairnError(ErrorCode.NotLeader, `master ${this.opts.masterId} is not the leader`, { leader });
  }

  private newClusterId(): string {
    let id = '';
    for (let i = 0; i < 4; i++) id += this.opts.clock.randomInt(0x1_0000_0000).toString(16).padStart(8, '0');
    return id;
  }
}
