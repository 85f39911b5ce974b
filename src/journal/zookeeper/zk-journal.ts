// The ZooKeeper journal: the masters' log kept in a ZooKeeper ensemble, fenced, so that it needs
// no shared file system and a deposed leader can never append. See docs/journal.md.
//
// Under the cluster's root (/cairn/<cluster-id>):
//   /config              { version, bucketEntriesMax }, written once when the cluster is made
//   /epoch               { id, address } of the leader; its znode version is the epoch
//   /election/m-NNN      one ephemeral sequential znode per running master; the lowest leads
//   /members/<id>        ephemeral: { id, address, session } of each running master
//   /masters/<id>        persistent: every master that ever joined (the count a majority is taken of)
//   /log/bNNN/e-NNN      the log: batches of entries (batch.ts), bucketEntriesMax per bucket
//   /checkpoints/<id>    { index, bucket, seq, address } of each master's newest local checkpoint
//
// The leader bumps /epoch when it takes over, then appends each batch with a multi that checks
// the epoch's version: once another master has taken over, no append of the old leader succeeds.
// Standby masters tail the log (watches plus reads) and apply it as it grows. Each master
// checkpoints its state machine locally (checkpoints.ts); the leader deletes the buckets below the
// newest checkpoint a majority of masters holds (and a retention margin), and a master that finds
// the log it needs deleted fetches a peer's checkpoint.

import { CairnError, ErrorCode } from '../../errors.ts';
import type { Connection, Disk, Transport } from '../../io/index.ts';
import type { Journal, JournalStatus, MemberStatus, NodeInfo, StateMachine } from '../journal.ts';
import type { SnapshotFile } from '../raft/snapshot-file.ts';
import { fetchCheckpoint, loadCheckpoint, serveCheckpoints, writeCheckpoint, type CheckpointInfo } from './checkpoints.ts';
import { batchOverheadBytes, decodeBatch, encodeBatch, entryOverheadBytes } from './batch.ts';
import { noJournalMetrics, type JournalMetrics } from '../metrics.ts';
import { isZk, ZkError, ZkSession, type Op } from './zk-session.ts';

export interface ZkJournalOptions {
  id: number;
  /** This master's RPC address, as clients and peers reach it. */
  address: string;
  /** host:port,host:port,... of the ZooKeeper ensemble. */
  connect: string;
  /** Names the cluster's root, /cairn/<clusterId>. */
  clusterId: string;
  /** The cluster secret: the cluster's znodes are readable and writable only with it. */
  secret?: string;
  /** Where this master keeps its checkpoints (snap/ below it). */
  dir: string;
  disk: Disk;
  /** Serves this master's checkpoint to peers and reaches theirs. */
  transport: Transport;
  /** Checkpoint after this many entries are applied since the last one. */
  checkpointEveryEntries?: number;
  /** Entries kept in ZooKeeper behind the newest checkpoint a majority holds, so briefly lagging masters need no checkpoint. */
  retainEntries?: number;
  sessionTimeoutMs?: number;
  /** One ZooKeeper operation's deadline. */
  opTimeoutMs?: number;
  /** Largest batch (znode) written; ZooKeeper refuses requests above jute.maxbuffer (1 MiB by default). */
  batchBytesMax?: number;
  /** Batches per bucket znode, fixed when the cluster is made (getChildren replies must stay well under 1 MiB). */
  bucketEntriesMax?: number;
  /** Appends in flight at once (pipelined on the one session, which ZooKeeper keeps in order). */
  inflightBatchesMax?: number;
  /** Proposals waiting for a batch, and reads waiting for a barrier, at most: beyond, CAIRN_BUSY (retry). */
  proposalsQueuedMax?: number;
  barrierWaitersMax?: number;
  proposalTimeoutMs?: number;
  log?: (level: 'info' | 'warn' | 'error', msg: string, ctx?: object) => void;
  /** Called when the journal can no longer go on (a damaged log). */
  onFatal?: (err: unknown) => void;
  /** Counts proposals, appends to ZooKeeper (entries, duration), leader changes and checkpoints (/metrics). */
  metrics?: JournalMetrics;
}

export const zkJournalDefaults = {
  // Failover waits for the old leader's session to expire: this bounds it (see docs/journal.md).
  sessionTimeoutMs: 2_000,
  opTimeoutMs: 5_000,
  batchBytesMax: 1_000_000,
  bucketEntriesMax: 10_000,
  inflightBatchesMax: 8,
  proposalsQueuedMax: 16_384,
  barrierWaitersMax: 4_096,
  proposalTimeoutMs: 10_000,
  checkpointEveryEntries: 50_000,
  retainEntries: 20_000,
  /** How often the leader looks for log buckets it may delete. */
  compactEveryMs: 10_000,
};

type Role = 'leader' | 'follower' | 'candidate';

interface Proposal {
  entry: Uint8Array;
  resolve(v: unknown): void;
  reject(e: unknown): void;
  timer: NodeJS.Timeout;
}

interface InflightBatch {
  firstIndex: number;
  /** When its append was sent: its success confirms the epoch as of then. */
  sentAt: number;
  proposals: Proposal[];
  done: boolean;
  error?: unknown;
}

/** A position in the log: bucket number and sequence number within it. */
interface Cursor {
  bucket: number;
  seq: number;
}

const logConfigVersion = 1;
/** Tries at opening a first session when ZooKeeper loses the connection or the session meanwhile. */
const startAttemptsMax = 5;
/** Longest a stepped checkpoint install runs between turns of the event loop. */
const installStepMs = 20;
/** Batches fetched and applied per turn of the event loop while reading the log. */
const readWindowBatches = 256;
/** Removes per transaction when deleting a bucket: about 70 bytes each, far below ZooKeeper's 1 MiB request limit. */
const deletesPerMulti = 1_000;


function pad10(n: number): string {
  return String(n).padStart(10, '0');
}

function bucketPath(bucket: number): string {
  return `/log/b${pad10(bucket)}`;
}

function seqOf(name: string): number {
  return Number(name.slice(name.lastIndexOf('-') + 1));
}

function json(v: unknown): Buffer {
  return Buffer.from(JSON.stringify(v));
}

function parseInfo(data: Buffer): NodeInfo | undefined {
  try {
    const v = JSON.parse(data.toString('utf8')) as { id?: unknown; address?: unknown };
    if (typeof v.id === 'number' && typeof v.address === 'string') return { id: v.id, address: v.address };
  } catch {
    // an empty or foreign znode: no leader named
  }
  return undefined;
}

export class ZkJournal implements Journal {
  private readonly opts: ZkJournalOptions & typeof zkJournalDefaults;
  private zk: ZkSession | undefined;
  private sm: StateMachine | undefined;
  private role: Role = 'follower';
  private stopped = false;
  /** The epoch this master holds as leader, or the newest one seen. */
  private epoch = 0;
  private leaderInfo: NodeInfo | undefined;
  private bucketEntriesMax = 0;
  private applied = 0;
  /** The next log position to read (everything before it is applied). */
  private readCursor: Cursor = { bucket: 0, seq: 0 };
  /** A batch known to exist (an exists() saw it or its watch fired), so reading it needs no count of its bucket. */
  private readHint: Cursor | undefined;
  /** The leader's next position to write, ahead of readCursor by the batches in flight. */
  private writeCursor: Cursor = { bucket: 0, seq: 0 };
  /** Whether the bucket at writeCursor still has to be created (by the append that opens it). */
  private writeBucketMissing = false;
  private nextIndex = 1;
  private readonly queue: Proposal[] = [];
  private readonly inflight: InflightBatch[] = [];
  private flushScheduled = false;
  private catchingUp: Promise<void> | undefined;
  private catchUpAgain = false;
  private electionNode: string | undefined;
  private members: NodeInfo[] = [];
  /** How many masters ever joined the cluster (/masters): the count a majority is taken of. */
  private mastersEver = 1;
  private barrierWaiters: { resolve(): void; reject(e: unknown): void }[] = [];
  private barrierRunning = false;
  /** When a check of the epoch last succeeded (leader only): a leader out of touch longer stops serving. */
  private lastConfirmedAt = 0;
  private heartbeat: NodeJS.Timeout | undefined;
  private sessionState = 'DISCONNECTED';
  private restarting: Promise<void> | undefined;
  /** start() has opened its first session: from then on an expired session is replaced by restartSession. */
  private sessionStarted = false;
  private checkpointFile: SnapshotFile | undefined;
  private appliedSinceCheckpoint = 0;
  private checkpointing: Promise<number> | undefined;
  /** Set while a standby writes a checkpoint in steps: its frames are read from the live state, so nothing is applied until it resolves. */
  private applyGate: Promise<void> | undefined;
  private compactTimer: NodeJS.Timeout | undefined;
  private compacting = false;
  /** The oldest log index still in ZooKeeper, as far as this master knows. */
  private firstIndex = 1;
  private readonly metrics: JournalMetrics;
  /** The newest epoch counted as a leader change. */
  private epochCounted = 0;

  constructor(opts: ZkJournalOptions) {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(opts.clusterId)) {
      throw new CairnError(ErrorCode.BadOption, `ZooKeeper cluster id ${JSON.stringify(opts.clusterId)} must be 1-64 letters, digits, '-' or '_'`);
    }
    const defined = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
    this.opts = { ...zkJournalDefaults, ...defined } as ZkJournalOptions & typeof zkJournalDefaults;
    this.metrics = opts.metrics ?? noJournalMetrics;
  }

  /** Each epoch is one leadership: a newer one seen is a leader change. */
  private countEpoch(epoch: number): void {
    if (epoch <= this.epochCounted) return;
    this.epochCounted = epoch;
    this.metrics.leaderChanged();
  }

  private get root(): string {
    return `/cairn/${this.opts.clusterId}`;
  }

  async start(sm: StateMachine): Promise<void> {
    this.sm = sm;
    const loaded = await loadCheckpoint(this.opts.disk, this.opts.dir);
    for (const s of loaded.skipped) this.log('warn', `checkpoint skipped: ${s}`);
    if (loaded.file !== undefined) this.install(loaded.file, loaded.info!, loaded.frames!);
    serveCheckpoints(this.opts.transport, () => this.checkpointFile);
    for (let attempt = 1; ; attempt++) {
      try {
        await this.openSession();
        break;
      } catch (err) {
        // A session left open would reconnect forever behind a journal that never started.
        this.zk?.close();
        this.zk = undefined;
        // A connection lost, or a session expired, while starting (a ZooKeeper server went away,
        // this process was paused) is tried again; anything else, or the same again and again, stops.
        if (this.stopped || attempt >= startAttemptsMax || !(isZk(err, 'CONNECTION_LOSS') || isZk(err, 'SESSION_EXPIRED') || isZk(err, 'TIMEOUT'))) throw err;
        this.log('warn', `zookeeper journal: starting failed (${(err as Error).message}); trying again (${attempt} of ${startAttemptsMax})`);
        await sleep(1_000);
      }
    }
    this.sessionStarted = true;
    this.compactTimer = setInterval(() => void this.compactLog(), this.opts.compactEveryMs);
  }

  /** Replaces the state machine with a checkpoint's and resumes reading the log after it. */
  private install(file: SnapshotFile, info: CheckpointInfo, frames: Iterable<Uint8Array>): void {
    this.sm!.restore(frames);
    this.installed(file, info);
  }

  /**
   * As install(), with a turn of the event loop every few milliseconds when the state machine can
   * restore a frame at a time: a master catching up from a peer's checkpoint holds a ZooKeeper
   * session, which expires if it answers nothing for the session timeout.
   */
  private async installInSteps(file: SnapshotFile, info: CheckpointInfo, frames: Iterable<Uint8Array>): Promise<void> {
    const restorer = this.sm!.restorer?.();
    if (restorer === undefined) return this.install(file, info, frames);
    let since = performance.now();
    for (const frame of frames) {
      restorer.add(frame);
      if (performance.now() - since >= installStepMs) {
        await new Promise((resolve) => setImmediate(resolve));
        since = performance.now();
      }
    }
    restorer.finish();
    this.installed(file, info);
  }

  private installed(file: SnapshotFile, info: CheckpointInfo): void {
    this.applied = info.index;
    this.readCursor = { ...info.position };
    this.firstIndex = Math.max(this.firstIndex, info.index + 1);
    this.replaceCheckpointFile(file);
    this.log('info', `zookeeper journal: state restored from checkpoint ${info.index} (${file.path})`);
  }

  private replaceCheckpointFile(file: SnapshotFile): void {
    const old = this.checkpointFile;
    this.checkpointFile = file;
    if (old !== undefined && old !== file) old.close();
  }

  /** A new session: layout, membership, the log replayed, then the election. */
  private async openSession(): Promise<void> {
    const zk = await ZkSession.open(
      { connect: this.opts.connect, root: this.root, sessionTimeoutMs: this.opts.sessionTimeoutMs, opTimeoutMs: this.opts.opTimeoutMs, secret: this.opts.secret },
      Math.max(this.opts.opTimeoutMs, 2 * this.opts.sessionTimeoutMs),
      (state) => this.onSessionState(state),
    );
    if (this.stopped) {
      // stop() came while the session opened: nothing else would close it.
      zk.close();
      throw new CairnError(ErrorCode.Unavailable, `master ${this.opts.id} is stopping`);
    }
    this.zk = zk;
    this.sessionState = zk.state;
    try {
      await this.ensureLayout(zk);
    } catch (err) {
      if (!isZk(err, 'NO_AUTH')) throw err;
      zk.close();
      throw new CairnError(
        ErrorCode.BadOption,
        `ZooKeeper refused access to ${this.root}: its znodes are protected by a digest ACL derived from the cluster secret, and this master's secret (${this.opts.secret === undefined ? 'none' : 'the one given'}) is not that cluster's; give the cluster's --secret, or another --zk-cluster`,
      );
    }
    await this.register(zk);
    await this.watchEpoch();
    await this.watchMembers();
    await this.catchUp();
    this.electionNode = (await zk.create('/election/m-', json({ id: this.opts.id, address: this.opts.address }), 'ephemeral-sequential')).slice('/election/'.length);
    this.log('info', `zookeeper journal: session ${zk.sessionId} on ${this.opts.connect}, root ${this.root}, applied ${this.applied}`);
    void this.elect();
  }

  private async ensureLayout(zk: ZkSession): Promise<void> {
    // No bucket here: the append that opens a bucket creates it. Making bucket 0 at every session
    // start would bring it back empty after compaction deleted it, and a master reading from it
    // would take the empty bucket for the whole log.
    for (const p of ['/election', '/members', '/masters', '/checkpoints', '/log']) await zk.ensure(p, Buffer.alloc(0));
    await zk.ensure('/epoch', Buffer.alloc(0));
    await zk.ensure('/config', json({ version: logConfigVersion, bucketEntriesMax: this.opts.bucketEntriesMax }));
    const config = JSON.parse((await zk.getData('/config')).data.toString('utf8')) as { version?: unknown; bucketEntriesMax?: unknown };
    if (config.version !== logConfigVersion || typeof config.bucketEntriesMax !== 'number' || !(config.bucketEntriesMax > 0)) {
      throw new CairnError(ErrorCode.BadOption, `${this.root}/config holds ${JSON.stringify(config)}: not a cairn journal of version ${logConfigVersion}`);
    }
    this.bucketEntriesMax = config.bucketEntriesMax;
  }

  /**
   * Announces this master. A znode left by this id's previous process lives until that session
   * expires: wait it out; one that stays is another live master with the same id.
   */
  private async register(zk: ZkSession): Promise<void> {
    await zk.ensure(`/masters/${this.opts.id}`, json({ id: this.opts.id, address: this.opts.address }));
    const path = `/members/${this.opts.id}`;
    const deadline = performance.now() + 2 * this.opts.sessionTimeoutMs + 1_000;
    for (;;) {
      try {
        await zk.create(path, json({ id: this.opts.id, address: this.opts.address, session: zk.sessionId }), 'ephemeral');
        return;
      } catch (err) {
        if (!isZk(err, 'NODE_EXISTS')) throw err;
        const other = await zk.getData(path).catch(() => undefined);
        // Made by this very session: a create whose answer a lost connection swallowed, retried.
        if (other !== undefined && sessionOfMember(other.data) === zk.sessionId) return;
        if (performance.now() > deadline) {
          throw new CairnError(ErrorCode.BadOption, `another master with id ${this.opts.id} is connected to ${this.root} (${other?.data.toString('utf8') ?? 'unknown'}): give each master its own --id`);
        }
        await sleep(200);
      }
    }
  }

  private onSessionState(state: string): void {
    this.sessionState = state;
    if (state === 'EXPIRED') {
      // The session's ephemeral znodes are gone, so another master may lead already: stop at once.
      this.log('warn', 'zookeeper session expired: this master stops serving and rejoins');
      this.stepDown(new CairnError(ErrorCode.NotLeader, `master ${this.opts.id} lost its ZooKeeper session`));
      // While start() runs, its own loop opens the next session: two at once would each register
      // this id, and the second would take the first for another master with it (chaos schedule 118).
      if (this.sessionStarted) void this.restartSession();
    }
  }

  private restartSession(): Promise<void> {
    this.restarting ??= (async () => {
      this.zk?.close();
      this.zk = undefined;
      this.electionNode = undefined;
      while (!this.stopped) {
        try {
          await this.openSession();
          return;
        } catch (err) {
          this.log('warn', `zookeeper: cannot open a new session yet: ${(err as Error).message}`);
          (this.zk as ZkSession | undefined)?.close(); // openSession may have got as far as a session
          this.zk = undefined;
          await sleep(1_000);
        }
      }
    })().finally(() => {
      this.restarting = undefined;
    });
    return this.restarting;
  }

  // ---- leadership ----------------------------------------------------------------------------

  /** The election recipe: the lowest sequence number leads; each other master watches the one just below it. */
  private async elect(): Promise<void> {
    const zk = this.zk;
    if (this.stopped || zk === undefined || this.electionNode === undefined) return;
    try {
      const children = (await zk.getChildren('/election')).sort((a, b) => seqOf(a) - seqOf(b));
      const i = children.indexOf(this.electionNode);
      if (i < 0) return; // our node is gone: the session expired, and a new one is on its way
      if (i === 0) return await this.takeLead(zk);
      const before = `/election/${children[i - 1]}`;
      const present = await zk.exists(before, () => void this.elect());
      if (!present) return await this.elect();
    } catch (err) {
      if (this.role === 'candidate') this.role = 'follower';
      if (this.zk !== zk) return;
      this.log('warn', `zookeeper election: ${(err as Error).message}; retrying`);
      setTimeout(() => void this.elect(), 500);
    }
  }

  private async takeLead(zk: ZkSession): Promise<void> {
    this.role = 'candidate';
    const { version } = await zk.getData('/epoch');
    // Taking the next epoch fences every append of the masters that led before.
    this.epoch = await zk.setData('/epoch', json({ id: this.opts.id, address: this.opts.address }), version);
    this.countEpoch(this.epoch);
    await this.catchUp(); // the log cannot grow under us any more: read it to its end
    await this.applyGate; // a leader applies as it commits
    if (this.zk !== zk || this.role !== 'candidate') return;
    this.writeCursor = { ...this.readCursor };
    this.writeBucketMissing = !(await zk.exists(bucketPath(this.writeCursor.bucket)));
    this.nextIndex = this.applied + 1;
    this.leaderInfo = { id: this.opts.id, address: this.opts.address };
    this.lastConfirmedAt = performance.now();
    this.role = 'leader';
    this.heartbeat = setInterval(() => void this.confirmEpoch().catch(() => undefined), Math.max(100, Math.floor(this.opts.sessionTimeoutMs / 3)));
    this.log('info', `zookeeper journal: master ${this.opts.id} leads at epoch ${this.epoch}, log at index ${this.applied}`);
  }

  /** Leaves leadership: every proposal waiting fails with `reason`; the master goes on as a standby. */
  private stepDown(reason: unknown): void {
    const wasLeading = this.role !== 'follower';
    this.role = 'follower';
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    if (this.leaderInfo?.id === this.opts.id) this.leaderInfo = undefined;
    for (const b of this.inflight) for (const p of b.proposals) this.settle(p, undefined, reason);
    this.inflight.length = 0;
    for (const p of this.queue.splice(0)) this.settle(p, undefined, reason);
    for (const w of this.barrierWaiters.splice(0)) w.reject(reason);
    if (wasLeading) this.log('warn', `zookeeper journal: master ${this.opts.id} steps down: ${(reason as Error).message}`);
  }

  /** After a failed append: step down, read what did reach the log, and stand again (a new epoch). */
  private async recover(reason: unknown): Promise<void> {
    this.stepDown(reason);
    try {
      await this.catchUp();
    } catch {
      // the next election round reads it
    }
    void this.elect();
  }

  /** One multi that only checks the epoch: it succeeds only while this master still holds it. */
  private async confirmEpoch(): Promise<void> {
    const zk = this.zk;
    if (this.role !== 'leader' || zk === undefined) throw this.notLeader();
    const epoch = this.epoch;
    // The confirmation holds from when the check was sent, not from when its answer came back.
    const sentAt = performance.now();
    try {
      await zk.multi([{ op: 'check', path: '/epoch', version: epoch }]);
      if (this.epoch === epoch) this.lastConfirmedAt = Math.max(this.lastConfirmedAt, sentAt);
    } catch (err) {
      if (isZk(err, 'BAD_VERSION') && this.epoch === epoch && this.role === 'leader') {
        void this.recover(new CairnError(ErrorCode.NotLeader, `master ${this.opts.id} was deposed: another master took epoch ${epoch + 1}`));
      }
      throw err;
    }
  }

  isLeader(): boolean {
    // A leader that has not reached ZooKeeper for most of a session timeout may have lost its
    // session without hearing so yet: it stops serving until it confirms its epoch again.
    return this.role === 'leader' && performance.now() - this.lastConfirmedAt < (this.opts.sessionTimeoutMs * 2) / 3;
  }

  leader(): NodeInfo | undefined {
    return this.leaderInfo;
  }

  private async watchEpoch(): Promise<void> {
    const zk = this.zk;
    if (zk === undefined || this.stopped) return;
    try {
      const { data, version } = await zk.getData('/epoch', () => void this.watchEpoch());
      if (this.role !== 'leader') {
        this.epoch = Math.max(this.epoch, version);
        this.leaderInfo = parseInfo(data);
        if (this.leaderInfo !== undefined) this.countEpoch(version);
      } else if (version > this.epoch) {
        void this.recover(new CairnError(ErrorCode.NotLeader, `master ${this.opts.id} was deposed at epoch ${version}`));
      }
    } catch (err) {
      if (this.zk === zk && !this.stopped) setTimeout(() => void this.watchEpoch(), 500);
      else if (!(err instanceof ZkError)) throw err;
    }
  }

  private async watchMembers(): Promise<void> {
    const zk = this.zk;
    if (zk === undefined || this.stopped) return;
    try {
      const names = await zk.getChildren('/members', () => void this.watchMembers());
      const found: NodeInfo[] = [];
      for (const n of names) {
        const info = parseInfo((await zk.getData(`/members/${n}`).catch(() => ({ data: Buffer.alloc(0) }))).data);
        if (info !== undefined) found.push(info);
      }
      this.members = found.sort((a, b) => a.id - b.id);
      this.mastersEver = Math.max(1, (await zk.getChildren('/masters')).length);
    } catch {
      if (this.zk === zk && !this.stopped) setTimeout(() => void this.watchMembers(), 500);
    }
  }

  // ---- the log: reading --------------------------------------------------------------------------

  /** Reads and applies the log from readCursor to its end; concurrent calls share one pass. */
  private catchUp(): Promise<void> {
    if (this.catchingUp !== undefined) {
      this.catchUpAgain = true;
      return this.catchingUp;
    }
    this.catchingUp = (async () => {
      do {
        this.catchUpAgain = false;
        await this.readToEnd();
      } while (this.catchUpAgain && this.role !== 'leader');
    })().finally(() => {
      this.catchingUp = undefined;
    });
    return this.catchingUp;
  }

  /**
   * Reads batches by their names, which are known in advance (a bucket's sequence numbers run from
   * 0 without gaps): the bucket's child count says how far to read, and an exists watch on the next
   * name wakes a standby when the leader appends it. Listing the bucket instead would send every
   * name in it on each append (up to 10,000), which cost ZooKeeper more than the batches themselves.
   */
  private async readToEnd(): Promise<void> {
    const zk = this.zk;
    if (zk === undefined) return;
    // A leader writes and applies its own batches; reading them back would apply them twice.
    const watch = (): void => {
      if (this.role !== 'leader') void this.catchUp().catch((err: unknown) => this.readFailed(err));
    };
    read: for (;;) {
      const path = bucketPath(this.readCursor.bucket);
      // The batch the last exists() saw is there to read: no need to count the bucket for it.
      const count = this.readHint?.bucket === this.readCursor.bucket && this.readHint.seq === this.readCursor.seq ? this.readCursor.seq + 1 : await zk.childCount(path);
      this.readHint = undefined;
      if (count === undefined) {
        // Buckets are made in order: a later one existing means this one was deleted under us.
        const later = (await zk.getChildren('/log')).some((n) => Number(n.slice(1)) > this.readCursor.bucket);
        if (later) {
          await this.catchUpFromPeer(zk);
          continue;
        }
        // The bucket is not made yet: the exists watch fires when the leader opens it.
        if (await zk.exists(path, watch)) continue;
        return;
      }
      // Fetched in parallel windows (the session pipelines them) and applied in order, with a turn
      // of the event loop between windows: a master catching up a whole bucket must still answer
      // ZooKeeper's pings, or its session expires under it.
      const end = Math.min(count, this.bucketEntriesMax);
      while (this.readCursor.seq < end) {
        const first = this.readCursor.seq;
        const names = Array.from({ length: Math.min(readWindowBatches, end - first) }, (_, i) => `${path}/e-${pad10(first + i)}`);
        let datas: { data: Buffer }[];
        try {
          datas = await Promise.all(names.map((n) => zk.getData(n)));
        } catch (err) {
          if (!isZk(err, 'NO_NODE')) throw err;
          // A batch counted a moment ago is gone: compaction is deleting this bucket.
          await this.catchUpFromPeer(zk);
          continue read;
        }
        await this.applyGate;
        for (let i = 0; i < names.length; i++) {
          this.applyBatch(names[i], datas[i].data);
          this.readCursor.seq++;
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (this.readCursor.seq >= this.bucketEntriesMax) {
        this.readCursor = { bucket: this.readCursor.bucket + 1, seq: 0 };
        continue;
      }
      const next = { ...this.readCursor };
      // The watch fires when the leader appends the next batch (and its firing is what wakes a
      // standby); a wake-up for it then reads it without counting the bucket first.
      const nextWatch = (): void => {
        this.readHint = next;
        watch();
      };
      if (await zk.exists(`${path}/e-${pad10(next.seq)}`, nextWatch)) this.readHint = next;
      else return;
    }
  }

  private readFailed(err: unknown): void {
    if (this.stopped) return;
    if (err instanceof LogDamaged) {
      this.log('error', err.message);
      this.opts.onFatal?.(err);
      return;
    }
    this.log('warn', `zookeeper journal: reading the log failed: ${(err as Error).message}; retrying`);
    setTimeout(() => void this.catchUp().catch((e: unknown) => this.readFailed(e)), 500);
  }

  private damaged(where: string, problem: string): LogDamaged {
    return new LogDamaged(ErrorCode.Unavailable, `zookeeper journal damaged at ${this.root}${where}: ${problem}`, { znode: `${this.root}${where}` });
  }

  private applyBatch(where: string, data: Buffer): void {
    const b = decodeBatch(data);
    if (typeof b === 'string') throw this.damaged(where, b);
    if (b.firstIndex !== this.applied + 1) throw this.damaged(where, `batch starts at index ${b.firstIndex}, expected ${this.applied + 1}`);
    for (const e of b.entries) this.applyEntry(e);
  }

  private applyEntry(entry: Uint8Array): unknown {
    const index = this.applied + 1;
    const result = this.sm!.apply(index, entry);
    this.applied = index;
    if (++this.appliedSinceCheckpoint >= this.opts.checkpointEveryEntries && this.checkpointing === undefined && this.mayCheckpointNow()) {
      setImmediate(() => void this.checkpoint().catch((err: unknown) => this.log('warn', `checkpoint failed: ${(err as Error).message}`)));
    }
    return result;
  }

  // ---- the log: writing ----------------------------------------------------------------------

  propose(entry: Uint8Array): Promise<unknown> {
    if (!this.isLeader()) return Promise.reject(this.notLeader());
    const limit = this.opts.batchBytesMax - batchOverheadBytes - entryOverheadBytes;
    if (entry.byteLength > limit) {
      return Promise.reject(new CairnError(ErrorCode.EntryTooLarge, `entry of ${entry.byteLength} bytes exceeds the ZooKeeper journal's ${limit} (one znode, below ZooKeeper's jute.maxbuffer)`));
    }
    if (this.queue.length >= this.opts.proposalsQueuedMax) return Promise.reject(new CairnError(ErrorCode.Busy, `${this.queue.length} proposals are waiting for ZooKeeper; retry`));
    return new Promise((resolve, reject) => {
      const p: Proposal = { entry, resolve, reject, timer: undefined as unknown as NodeJS.Timeout };
      this.metrics.proposed();
      p.timer = setTimeout(() => this.settle(p, undefined, new CairnError(ErrorCode.Timeout, `proposal not committed within ${this.opts.proposalTimeoutMs} ms; it may still take effect`)), this.opts.proposalTimeoutMs);
      this.queue.push(p);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        // Proposals made in the same tick share a batch (group commit).
        setImmediate(() => {
          this.flushScheduled = false;
          this.flush();
        });
      }
    });
  }

  private settle(p: Proposal, value: unknown, err: unknown): void {
    clearTimeout(p.timer);
    if (err === undefined) p.resolve(value);
    else p.reject(err);
  }

  private flush(): void {
    const zk = this.zk;
    while (this.role === 'leader' && zk !== undefined && this.queue.length > 0 && this.inflight.length < this.opts.inflightBatchesMax) {
      const proposals: Proposal[] = [];
      let bytes = batchOverheadBytes;
      while (this.queue.length > 0 && (proposals.length === 0 || bytes + entryOverheadBytes + this.queue[0].entry.byteLength <= this.opts.batchBytesMax)) {
        const p = this.queue.shift()!;
        bytes += entryOverheadBytes + p.entry.byteLength;
        proposals.push(p);
      }
      const entries = proposals.map((p) => p.entry);
      const batch: InflightBatch = { firstIndex: this.nextIndex, sentAt: performance.now(), proposals, done: false };
      this.nextIndex += entries.length;
      const at = this.writeCursor;
      const ops: Op[] = [{ op: 'check', path: '/epoch', version: this.epoch }];
      if (this.writeBucketMissing) ops.push({ op: 'create', path: bucketPath(at.bucket), data: Buffer.alloc(0) });
      ops.push({ op: 'create', path: `${bucketPath(at.bucket)}/e-`, data: encodeBatch({ epoch: this.epoch, firstIndex: batch.firstIndex, entries }), sequential: true });
      this.writeBucketMissing = false;
      this.writeCursor = at.seq + 1 < this.bucketEntriesMax ? { bucket: at.bucket, seq: at.seq + 1 } : { bucket: at.bucket + 1, seq: 0 };
      if (this.writeCursor.seq === 0) this.writeBucketMissing = true;
      this.inflight.push(batch);
      zk.multi(ops).then(
        (created) => {
          const name = created[created.length - 1] ?? '';
          if (seqOf(name) !== at.seq) batch.error = this.damaged(name, `appended at sequence ${seqOf(name)}, expected ${at.seq}`);
          batch.done = true;
          this.completeBatches(zk);
        },
        (err: unknown) => {
          batch.done = true;
          batch.error = err;
          this.completeBatches(zk);
        },
      );
    }
  }

  /** Applies finished batches in log order; the first failure ends this leadership. */
  private completeBatches(zk: ZkSession): void {
    if (this.zk !== zk || this.role !== 'leader') return;
    while (this.inflight.length > 0 && this.inflight[0].done) {
      const b = this.inflight.shift()!;
      if (b.error !== undefined) {
        const deposed = isZk(b.error, 'BAD_VERSION');
        const reason = deposed
          ? new CairnError(ErrorCode.NotLeader, `master ${this.opts.id} was deposed: its epoch ${this.epoch} is over`)
          : new CairnError(ErrorCode.Unavailable, `append to ZooKeeper failed (${(b.error as Error).message}); the outcome is unknown: retry`);
        this.inflight.unshift(b);
        void this.recover(reason);
        return;
      }
      this.metrics.persisted(b.proposals.length, (performance.now() - b.sentAt) / 1000);
      this.readCursor = this.readCursor.seq + 1 < this.bucketEntriesMax ? { bucket: this.readCursor.bucket, seq: this.readCursor.seq + 1 } : { bucket: this.readCursor.bucket + 1, seq: 0 };
      this.lastConfirmedAt = Math.max(this.lastConfirmedAt, b.sentAt);
      for (const p of b.proposals) {
        let result: unknown;
        try {
          result = this.applyEntry(p.entry);
        } catch (err) {
          this.settle(p, undefined, err);
          this.opts.onFatal?.(err);
          return;
        }
        this.settle(p, result, undefined);
      }
    }
    this.flush();
  }

  // ---- reads ---------------------------------------------------------------------------------

  /**
   * ZooKeeper has no read of the leader's own state that is linearizable by itself (a server may
   * lag its leader), so a barrier is a multi that checks the epoch: it passes through the
   * ZooKeeper leader after every append this master made, and succeeds only while this master
   * still holds the epoch. Concurrent barriers share one check.
   */
  async readBarrier(): Promise<void> {
    if (this.role !== 'leader') throw this.notLeader();
    if (this.barrierWaiters.length >= this.opts.barrierWaitersMax) throw new CairnError(ErrorCode.Busy, `${this.barrierWaiters.length} reads are waiting for a barrier; retry`);
    const done = new Promise<void>((resolve, reject) => this.barrierWaiters.push({ resolve, reject }));
    if (!this.barrierRunning) void this.runBarriers();
    return done;
  }

  private async runBarriers(): Promise<void> {
    this.barrierRunning = true;
    try {
      while (this.barrierWaiters.length > 0) {
        const batch = this.barrierWaiters.splice(0);
        try {
          await this.confirmEpoch();
          for (const w of batch) w.resolve();
        } catch (err) {
          const e = err instanceof CairnError ? err : this.notLeader();
          for (const w of batch) w.reject(e);
        }
      }
    } finally {
      this.barrierRunning = false;
    }
  }

  private notLeader(): CairnError {
    const leader = this.leaderInfo?.id === this.opts.id ? undefined : this.leaderInfo;
    return new CairnError(ErrorCode.NotLeader, `master ${this.opts.id} is not the leader${leader === undefined ? '' : `; master ${leader.id} at ${leader.address} is`}`, { leader });
  }

  // ---- status and administration ---------------------------------------------------------------

  status(): JournalStatus {
    const members: MemberStatus[] = this.members.map((m) => ({ ...m, role: 'voter' }));
    return {
      backend: 'zookeeper',
      id: this.opts.id,
      role: this.role === 'leader' ? 'leader' : this.role === 'candidate' ? 'candidate' : 'follower',
      leader: this.leaderInfo,
      term: this.epoch,
      commitIndex: this.applied,
      appliedIndex: this.applied,
      firstIndex: this.firstIndex,
      lastIndex: this.applied,
      snapshotIndex: this.checkpointFile?.meta.index ?? 0,
      members,
      removedIds: [],
      zookeeper: { ensemble: this.opts.connect, root: this.root, session: this.sessionState, sessionId: this.zk?.sessionId },
    };
  }

  /**
   * A checkpoint serializes the state in one synchronous step, and a leader silent that long could
   * lose its session: so the leader leaves periodic checkpoints to its standbys while they are
   * enough for log retention (a majority of the masters that ever joined), and takes them itself
   * only when they are not (a master down for good, a master alone). `admin journal checkpoint`
   * asks any master, the leader included.
   */
  private mayCheckpointNow(): boolean {
    if (this.role !== 'leader') return true;
    const standbys = this.members.filter((m) => m.id !== this.opts.id).length;
    return standbys < majorityOf(this.mastersEver);
  }

  /** Snapshots the state machine at the applied index, and tells the other masters (for log retention). */
  checkpoint(): Promise<number> {
    this.checkpointing ??= (async () => {
      if (this.checkpointFile !== undefined && this.checkpointFile.meta.index === this.applied) return this.applied;
      const startedAt = performance.now();
      // A standby writes in steps and stops applying meanwhile (it only falls behind); a leader
      // cannot stop applying, and writes in one step (rarely: see mayCheckpointNow).
      const inSteps = this.role !== 'leader';
      let open: () => void = () => undefined;
      const written = writeCheckpoint(
        this.opts.disk,
        this.opts.dir,
        () => {
          this.appliedSinceCheckpoint = 0;
          if (inSteps) this.applyGate = new Promise((resolve) => (open = resolve));
          return { info: { index: this.applied, epoch: this.epoch, position: { ...this.readCursor } }, frames: this.sm!.snapshot() };
        },
        inSteps,
      ).finally(() => {
        this.applyGate = undefined;
        open();
      });
      const { file, info } = await written;
      this.metrics.checkpointed((performance.now() - startedAt) / 1000, file.byteLength);
      this.replaceCheckpointFile(file);
      await this.publishCheckpoint(info).catch((err: unknown) => this.log('warn', `checkpoint ${info.index} not announced: ${(err as Error).message}`));
      this.log('info', `zookeeper journal: checkpoint at index ${info.index}`);
      void this.compactLog();
      return info.index;
    })().finally(() => {
      this.checkpointing = undefined;
    });
    return this.checkpointing;
  }

  private async publishCheckpoint(info: CheckpointInfo): Promise<void> {
    const zk = this.zk;
    if (zk === undefined) return;
    const path = `/checkpoints/${this.opts.id}`;
    const data = json({ index: info.index, bucket: info.position.bucket, seq: info.position.seq, address: this.opts.address });
    try {
      await zk.setData(path, data, -1);
    } catch (err) {
      if (!isZk(err, 'NO_NODE')) throw err;
      await zk.create(path, data, 'persistent');
    }
  }

  /**
   * Deletes the log buckets every entry of which is at or below both the newest checkpoint a
   * majority of masters holds and the retention margin behind the log's end. Leader only; each
   * delete checks the epoch like an append.
   */
  private async compactLog(): Promise<void> {
    const zk = this.zk;
    if (!this.isLeader() || zk === undefined || this.compacting) return;
    this.compacting = true;
    try {
      const marks = await this.checkpointMarks(zk);
      // /masters read afresh: a majority of too few masters would delete log others still need.
      const quorum = majorityOf(Math.max(marks.length, this.members.length, (await zk.getChildren('/masters')).length));
      if (marks.length < quorum) return;
      marks.sort((a, b) => b.index - a.index);
      const majority = marks[quorum - 1];
      const cutoff = Math.min(majority.index, this.applied - this.opts.retainEntries);
      const buckets = (await zk.getChildren('/log')).map((n) => Number(n.slice(1))).sort((a, b) => a - b);
      for (let i = 0; i + 1 < buckets.length; i++) {
        const b = buckets[i];
        // A bucket the majority's checkpoints have not moved past yet may still be read from.
        if (b >= majority.bucket || b >= this.readCursor.bucket) break;
        const next = (await zk.getChildren(bucketPath(buckets[i + 1]))).sort((x, y) => seqOf(x) - seqOf(y))[0];
        if (next === undefined) break;
        const nextFirst = decodeBatch((await zk.getData(`${bucketPath(buckets[i + 1])}/${next}`)).data);
        if (typeof nextFirst === 'string' || nextFirst.firstIndex - 1 > cutoff) break;
        await this.deleteBucket(zk, b);
        this.firstIndex = Math.max(this.firstIndex, nextFirst.firstIndex);
        this.log('info', `zookeeper journal: deleted log bucket ${b} (entries below ${nextFirst.firstIndex})`);
      }
    } catch (err) {
      this.log('warn', `zookeeper journal: log compaction stopped: ${(err as Error).message}`);
    } finally {
      this.compacting = false;
    }
  }

  /** The checkpoints the masters announced in /checkpoints; an entry that does not parse is left out. */
  private async checkpointMarks(zk: ZkSession): Promise<{ id: number; index: number; bucket: number; address: string }[]> {
    const marks: { id: number; index: number; bucket: number; address: string }[] = [];
    for (const h of await zk.getChildren('/checkpoints')) {
      let v: { index?: unknown; bucket?: unknown; address?: unknown };
      try {
        v = JSON.parse((await zk.getData(`/checkpoints/${h}`)).data.toString('utf8')) as typeof v;
      } catch (err) {
        if (err instanceof ZkError) throw err;
        continue;
      }
      if (typeof v.index === 'number' && typeof v.bucket === 'number' && typeof v.address === 'string') marks.push({ id: Number(h), index: v.index, bucket: v.bucket, address: v.address });
    }
    return marks;
  }

  /** Removes a bucket's znodes in transactions well under ZooKeeper's request limit, each checking the epoch. */
  private async deleteBucket(zk: ZkSession, bucket: number): Promise<void> {
    const path = bucketPath(bucket);
    const names = (await zk.getChildren(path)).sort((a, b) => seqOf(a) - seqOf(b));
    for (let i = 0; i < names.length; i += deletesPerMulti) {
      const ops: Op[] = [{ op: 'check', path: '/epoch', version: this.epoch }];
      for (const n of names.slice(i, i + deletesPerMulti)) ops.push({ op: 'remove', path: `${path}/${n}` });
      await zk.multi(ops);
    }
    await zk.multi([{ op: 'check', path: '/epoch', version: this.epoch }, { op: 'remove', path }]);
  }

  /** The log this master needs next was deleted: take the newest checkpoint a peer holds, then read on from it. */
  private async catchUpFromPeer(zk: ZkSession): Promise<void> {
    const offers = (await this.checkpointMarks(zk)).filter((m) => m.id !== this.opts.id && m.index > this.applied).sort((a, b) => b.index - a.index);
    for (const o of offers) {
      let peer: Connection | undefined;
      try {
        peer = this.opts.transport.connect(o.address);
        this.log('info', `zookeeper journal: the log after index ${this.applied} is deleted; fetching master ${o.id}'s checkpoint ${o.index}`);
        const got = await fetchCheckpoint(this.opts.disk, this.opts.dir, peer, this.opts.opTimeoutMs * 4);
        if (got.info.index <= this.applied) continue;
        await this.applyGate;
        await this.installInSteps(got.file, got.info, got.frames);
        this.metrics.snapshotInstalled(got.file.byteLength);
        return;
      } catch (err) {
        this.log('warn', `zookeeper journal: fetching master ${o.id}'s checkpoint failed: ${(err as Error).message}`);
      } finally {
        peer?.close();
      }
    }
    throw new CairnError(ErrorCode.Unavailable, `the log after index ${this.applied} was deleted from ZooKeeper and no master could send a newer checkpoint; start another master, then retry`);
  }

  async addMember(): Promise<void> {
    throw this.noMembership('add');
  }

  async removeMember(): Promise<void> {
    throw this.noMembership('remove');
  }

  async transferLeader(): Promise<void> {
    throw new CairnError(ErrorCode.InvalidArgument, 'the ZooKeeper journal elects its leader through ZooKeeper: leadership cannot be handed to a chosen master (stop the leader to move it)');
  }

  private noMembership(what: string): CairnError {
    return new CairnError(ErrorCode.InvalidArgument, `cannot ${what} a member: the ZooKeeper journal has no membership list; a master joins by starting with the cluster's --zk and --zk-cluster, and leaves by stopping`);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.compactTimer);
    this.stepDown(new CairnError(ErrorCode.Unavailable, `master ${this.opts.id} is stopping`));
    await this.checkpointing?.catch(() => undefined);
    this.zk?.close();
    this.zk = undefined;
    this.checkpointFile?.close();
  }

  private log(level: 'info' | 'warn' | 'error', msg: string, ctx?: object): void {
    this.opts.log?.(level, msg, ctx);
  }
}

function majorityOf(masters: number): number {
  return Math.floor(masters / 2) + 1;
}

/** The log in ZooKeeper is not what this journal wrote: no master can go on from it by itself. */
class LogDamaged extends CairnError {}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The session a /members znode names (register writes it there), if it is readable. */
function sessionOfMember(data: Buffer): string | undefined {
  try {
    const v = (JSON.parse(data.toString('utf8')) as { session?: unknown }).session;
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}
