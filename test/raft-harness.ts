// An in-memory network of Raft nodes driven step by step by the scenario scripts in
// test/testdata/raft/: each node persists its Ready into a memory storage, messages wait in the
// recipient's inbox until a script delivers them, and every step prints a deterministic trace.
//
// Commands (ID is a node id; [ID...] defaults to every node):
//   add-nodes N [voters=(1,2,3)] [aged=B] [pre-vote=B] [check-quorum=B] [lease-read=B] [election-ticks=N] ...
//   campaign ID | tick-election ID | tick-heartbeat ID | tick ID N
//   propose ID DATA | propose-conf-change ID add-learner|add-voter|remove NODE
//   read-index ID CTX | transfer-leader FROM TO | compact ID INDEX [keep=N]
//   process-ready [ID...] | deliver-msgs [ID...] [drop=true] [type=T] [from=ID] | stabilize [ID...]
//   status ID | raft-log ID | crash ID... | restart ID... | partition ID... | heal
// `partition` cuts the listed nodes off from the rest (messages across are dropped on delivery);
// a crash loses the node's inbox and anything not yet persisted; a restart rebuilds it from storage.
// A node that starts holds its votes for an election timeout (`voteHoldTicks`); `add-nodes` starts
// nodes aged, as if they had been running for longer (so a script can elect a leader at once),
// unless `aged=false`. A restarted node is always fresh.

import { CairnError } from '../src/errors.ts';
import { decodeConfChange } from '../src/raft/confchange.ts';
import { Raft, type RaftConfig } from '../src/raft/raft.ts';
import { readAllSnapshotData, snapshotBytes } from '../src/raft/snapshot-data.ts';
import {
  ConfChangeType,
  EntryType,
  MessageType,
  Role,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type Ready,
  type Snapshot,
} from '../src/raft/types.ts';
import { Prng } from '../src/sim/prng.ts';

/** One argument of a command line: `key=value`, `key=(1,2)` or a bare word (key only). */
export interface Arg {
  key: string;
  values: string[];
}

/** Rounds of process-ready + deliver-msgs in one `stabilize`; more means the cluster never settles. */
const stabilizeRoundsMax = 200;
/** Seeds each node's PRNG, so that a script replays the same randomized election timeouts. */
const seedBase = 0x5eed;

type Config = Omit<RaftConfig, 'id' | 'voters' | 'rand'>;

/** What a node has made durable: what a restart recovers from. */
interface Storage {
  hardState: HardState;
  snapshot: Snapshot | undefined;
  entries: Entry[];
}

interface Node {
  id: number;
  config: RaftConfig;
  /** Starts the first time without the vote hold, as a node that has been running a while. */
  aged: boolean;
  raft: Raft | undefined; // undefined while crashed
  storage: Storage;
  /** The state machine: the data of applied normal entries, joined by commas. */
  sm: string;
  inbox: Message[];
  /** The last randomized election timeout the node drew, in ticks (the core draws `rand` only for it). */
  electionTimeoutTicks: number;
  /** Role, term and membership as last printed, to report changes. */
  seen: { role: Role; term: number; conf: string } | undefined;
}

const configKeys: Record<string, keyof Config> = {
  'vote-hold-ticks': 'voteHoldTicks',
  'pre-vote': 'preVote',
  'check-quorum': 'checkQuorum',
  'lease-read': 'leaseRead',
  'election-ticks': 'electionTicks',
  'heartbeat-ticks': 'heartbeatTicks',
  'entry-bytes-max': 'entryBytesMax',
  'append-bytes-max': 'appendBytesMax',
  'inflight-msgs-max': 'inflightMsgsMax',
  'inflight-bytes-max': 'inflightBytesMax',
  'uncommitted-bytes-max': 'uncommittedBytesMax',
  'snapshot-chunk-bytes': 'snapshotChunkBytes',
  'snapshot-bytes-max': 'snapshotBytesMax',
  'apply-bytes-max': 'applyBytesMax',
  'read-queue-max': 'readQueueMax',
};

/** Small timeouts keep traces short; scripts override any of them in `add-nodes`. */
const harnessDefaults: Config = { electionTicks: 3, heartbeatTicks: 1 };

export class Harness {
  private readonly nodes = new Map<number, Node>();
  private out: string[] = [];
  /** Lines printed while a node handles a Ready or receives messages are indented under it. */
  private indent = '';
  /** Nodes cut off from the others, or undefined when the network is whole. */
  private partitioned: Set<number> | undefined;
  /** What was applied at each index anywhere, to catch two nodes applying different entries. */
  private readonly appliedAt = new Map<number, string>();

  /** Runs one command line and returns its trace (never empty, so blocks stay separated). */
  run(command: string, args: Arg[]): string {
    this.out = [];
    this.indent = '';
    try {
      this.dispatch(command, args);
    } catch (err) {
      if (!(err instanceof CairnError)) throw err;
      this.print(`error ${err.code}: ${err.message}${leaderDetail(err)}`);
    }
    return this.out.length === 0 ? 'ok' : this.out.join('\n');
  }

  private dispatch(command: string, args: Arg[]): void {
    switch (command) {
      case 'add-nodes':
        return this.addNodes(args);
      case 'campaign':
        return this.withNode(args, (_n, r) => r.campaign());
      case 'tick-election':
        return this.tickElection(args);
      case 'tick-heartbeat':
        return this.withNode(args, (n, r) => this.tick(n, r, n.config.heartbeatTicks ?? 1));
      case 'tick':
        return this.withNode(args, (n, r) => this.tick(n, r, Number(args[1]?.key ?? 1)));
      case 'propose':
        return this.propose(args);
      case 'propose-conf-change':
        return this.proposeConfChange(args);
      case 'deliver-msgs':
        return this.deliverCommand(args);
      case 'process-ready':
        return this.processReadyCommand(args);
      case 'stabilize':
        return this.stabilize(args);
      case 'status':
        return this.withNode(args, (_n, r) => this.printStatus(r));
      case 'raft-log':
        return this.withNode(args, (_n, r) => this.printLog(r));
      case 'read-index':
        return this.withNode(args, (_n, r) => r.readIndex(utf8(args[1]?.key ?? '')));
      case 'transfer-leader':
        return this.withNode(args, (_n, r) => r.transferLeader(Number(args[1]?.key)));
      case 'compact':
        return this.compact(args);
      case 'crash':
        return this.crash(args);
      case 'restart':
        return this.restart(args);
      case 'partition':
        this.partitioned = new Set(args.map((a) => Number(a.key)));
        return;
      case 'heal':
        this.partitioned = undefined;
        return;
      default:
        throw new Error(`unknown command ${command}`);
    }
  }

  // ---- nodes -----------------------------------------------------------------------------------

  /**
   * `add-nodes N [voters=(..)] [option=value...]`: the first call founds the cluster with the new
   * nodes as voters (unless `voters` says otherwise); later calls add nodes that join with no log.
   * The bootstrap Ready (persist and apply the founding AddVoter entries) is handled silently.
   */
  private addNodes(args: Arg[]): void {
    const count = Number(args[0].key);
    const first = this.nodes.size + 1;
    const ids = Array.from({ length: count }, (_, i) => first + i);
    const votersArg = args.find((a) => a.key === 'voters');
    const voters = votersArg !== undefined ? votersArg.values.map(Number) : first === 1 ? ids : [];
    const options: Config = { ...harnessDefaults };
    const aged = args.find((a) => a.key === 'aged')?.values[0] !== 'false';
    for (const a of args.slice(1)) {
      if (a.key === 'voters' || a.key === 'aged') continue;
      const key = configKeys[a.key];
      if (key === undefined) throw new Error(`unknown add-nodes option ${a.key}`);
      const v = a.values[0];
      (options as Record<string, unknown>)[key] = v === 'true' ? true : v === 'false' ? false : Number(v);
    }
    for (const id of ids) {
      const prng = new Prng(seedBase + id);
      const rand = (n: number): number => {
        const v = prng.int(n);
        node.electionTimeoutTicks = (options.electionTicks ?? 10) + v;
        return v;
      };
      const node: Node = {
        id,
        config: { ...options, id, voters, rand },
        aged,
        raft: undefined,
        storage: { hardState: { term: 0, vote: 0, commit: 0 }, snapshot: undefined, entries: [] },
        sm: '',
        inbox: [],
        electionTimeoutTicks: 0,
        seen: undefined,
      };
      this.nodes.set(id, node);
      this.start(node);
      // The founding Ready only persists and applies the bootstrap entries: keep it out of traces.
      const printed = this.out.length;
      this.processReady(node, node.raft!, false);
      this.out.length = printed;
    }
  }

  private start(node: Node): void {
    const st = node.storage;
    const restored = { hardState: st.hardState, snapshot: st.snapshot, entries: st.entries.slice() };
    const config = node.aged ? { ...node.config, voteHoldTicks: 0 } : node.config;
    node.aged = false; // a restart is a fresh start
    node.raft = new Raft(config, restored);
    node.sm = st.snapshot !== undefined ? latin1(readAllSnapshotData(st.snapshot.data)) : '';
    node.seen = undefined;
    this.noteChanges(node);
    const s = node.raft.status();
    this.print(`INFO ${node.id} started: term=${s.term} vote=${s.vote} commit=${s.commit} log=[${s.firstIndex},${s.lastIndex}] ${fmtConf(s.conf)}`);
  }

  /** `crash N [lose=K]`: with lose, the disk had not made its last K entries durable though it said so (a lying fsync). */
  private crash(args: Arg[]): void {
    const lose = Number(args.find((a) => a.key === 'lose')?.values[0] ?? 0);
    for (const node of this.pick(args, false)) {
      node.raft = undefined;
      node.inbox = [];
      const st = node.storage;
      if (lose > 0) {
        st.entries = st.entries.slice(0, Math.max(0, st.entries.length - lose));
        const last = st.entries.at(-1)?.index ?? st.snapshot?.meta.index ?? 0;
        st.hardState = { ...st.hardState, commit: Math.min(st.hardState.commit, last) };
      }
      this.print(`INFO ${node.id} crashed${lose > 0 ? `, losing its last ${lose} entries` : ''}`);
    }
  }

  private restart(args: Arg[]): void {
    for (const node of this.pick(args, false)) {
      if (node.raft !== undefined) throw new Error(`node ${node.id} is running`);
      this.start(node);
    }
  }

  /** The nodes named by the leading numeric arguments, or all nodes when none is named. */
  private pick(args: Arg[], allIfNone = true): Node[] {
    const ids = args.filter((a) => /^\d+$/.test(a.key) && a.values.length === 0).map((a) => Number(a.key));
    if (ids.length === 0 && !allIfNone) throw new Error('no node named');
    const list = ids.length === 0 ? [...this.nodes.keys()].sort((a, b) => a - b) : ids;
    return list.map((id) => {
      const node = this.nodes.get(id);
      if (node === undefined) throw new Error(`no node ${id}`);
      return node;
    });
  }

  private withNode(args: Arg[], body: (node: Node, raft: Raft) => void): void {
    const node = this.nodes.get(Number(args[0]?.key));
    if (node === undefined) throw new Error(`no node ${args[0]?.key}`);
    if (node.raft === undefined) {
      this.print(`node ${node.id} is down`);
      return;
    }
    const raft = node.raft;
    try {
      body(node, raft);
    } finally {
      this.noteChanges(node);
    }
  }

  /** Prints a line when a node's role, term or membership changed since it was last looked at. */
  private noteChanges(node: Node): void {
    if (node.raft === undefined) return;
    const s = node.raft.status();
    const now = { role: s.role, term: s.term, conf: fmtConf(s.conf) };
    const was = node.seen;
    node.seen = now;
    if (was === undefined) return;
    const parts: string[] = [];
    if (was.role !== now.role || was.term !== now.term) parts.push(`is ${now.role} at term ${now.term}`);
    if (was.conf !== now.conf) parts.push(`has ${now.conf}`);
    if (parts.length > 0) this.print(`INFO ${node.id} ${parts.join(', ')}`);
  }

  // ---- time ------------------------------------------------------------------------------------

  /**
   * `tick-election ID`: a leader ticks one election timeout (a check-quorum round); any other
   * node ticks until its randomized election timeout fires, at most that timeout.
   */
  private tickElection(args: Arg[]): void {
    this.withNode(args, (node, raft) => {
      const electionTicks = node.config.electionTicks ?? 10;
      const before = raft.status();
      if (before.role === Role.Leader) return this.tick(node, raft, electionTicks);
      const ticksMax = node.electionTimeoutTicks;
      for (let i = 0; i < ticksMax; i++) {
        raft.tick();
        const s = raft.status();
        if (s.role !== before.role || s.term !== before.term) return;
      }
    });
  }

  private tick(node: Node, raft: Raft, ticks: number): void {
    for (let i = 0; i < ticks; i++) {
      raft.tick();
      this.noteChanges(node);
    }
  }

  // ---- proposals -------------------------------------------------------------------------------

  private propose(args: Arg[]): void {
    this.withNode(args, (_node, raft) => {
      const { index, term } = raft.propose(utf8(args[1]?.key ?? ''));
      this.print(`proposed ${term}/${index}`);
    });
  }

  /** `propose-conf-change ID add-learner|add-voter|remove NODE` */
  private proposeConfChange(args: Arg[]): void {
    const types: Record<string, ConfChangeType> = {
      'add-learner': ConfChangeType.AddLearner,
      'add-voter': ConfChangeType.AddVoter,
      remove: ConfChangeType.Remove,
    };
    const type = types[args[1]?.key ?? ''];
    if (type === undefined) throw new Error(`unknown conf change ${args[1]?.key}`);
    this.withNode(args, (_node, raft) => {
      const { index, term } = raft.proposeConfChange({ type, node: Number(args[2]?.key) });
      this.print(`proposed ${term}/${index}`);
    });
  }

  /** `compact ID INDEX [keep=N]`: snapshots the state machine at INDEX and drops the log up to it. */
  private compact(args: Arg[]): void {
    this.withNode(args, (node, raft) => {
      const index = Number(args[1]?.key);
      const keep = Number(args.find((a) => a.key === 'keep')?.values[0] ?? 0);
      raft.compact(index, snapshotBytes(latin1Bytes(this.smAt(node, index))), keep);
      const snap = raft.log.snapshot!;
      node.storage.snapshot = snap;
      node.storage.entries = node.storage.entries.filter((e) => e.index > raft.log.offsetIndex);
      this.print(`snapshot ${snap.meta.term}/${snap.meta.index} ${fmtConf(snap.meta.conf)} data=${quote(readAllSnapshotData(snap.data))}; log=[${raft.log.firstIndex()},${raft.log.lastIndex()}]`);
    });
  }

  /** The state machine as of `index`: the snapshot's data plus the normal entries up to there. */
  private smAt(node: Node, index: number): string {
    const raft = node.raft!;
    let sm = node.storage.snapshot !== undefined ? latin1(readAllSnapshotData(node.storage.snapshot.data)) : '';
    const from = node.storage.snapshot?.meta.index ?? 0;
    for (let i = from + 1; i <= index; i++) {
      const e = raft.log.entry(i);
      if (e === undefined) throw new Error(`entry ${i} is not in the log of node ${node.id}`);
      sm = applyTo(sm, e);
    }
    return sm;
  }

  // ---- ready -----------------------------------------------------------------------------------

  private processReadyCommand(args: Arg[]): void {
    for (const node of this.pick(args)) {
      if (node.raft === undefined) continue;
      this.processReady(node, node.raft, true);
    }
  }

  /** Persists, sends, applies and advances one Ready, as the driver contract says. */
  private processReady(node: Node, raft: Raft, printEmpty: boolean): boolean {
    if (!raft.hasReady()) {
      if (printEmpty) this.print(`> ${node.id} handling Ready`, '  <empty Ready>');
      return false;
    }
    const rd = raft.ready();
    this.print(`> ${node.id} handling Ready`);
    this.indent = '  ';
    for (const line of fmtReady(rd)) this.print(line);
    this.persist(node.storage, rd);
    for (const m of rd.messages) {
      const to = this.nodes.get(m.to);
      if (to === undefined) throw new Error(`message to unknown node ${m.to}`);
      to.inbox.push(m);
    }
    this.apply(node, rd);
    raft.advance();
    this.noteChanges(node);
    this.indent = '';
    return true;
  }

  private persist(st: Storage, rd: Ready): void {
    if (rd.snapshot !== undefined) {
      st.snapshot = rd.snapshot;
      st.entries = [];
    }
    if (rd.entries.length > 0) {
      const first = rd.entries[0].index;
      st.entries = st.entries.filter((e) => e.index < first).concat(rd.entries);
    }
    if (rd.hardState !== undefined) st.hardState = rd.hardState;
  }

  private apply(node: Node, rd: Ready): void {
    if (rd.snapshot !== undefined) node.sm = latin1(readAllSnapshotData(rd.snapshot.data));
    for (const e of rd.committed) {
      const what = `${e.term}/${fmtEntryData(e)}`;
      const before = this.appliedAt.get(e.index);
      if (before !== undefined && before !== what) {
        throw new Error(`invariant violated: node ${node.id} applied ${what} at ${e.index}, another node applied ${before}`);
      }
      this.appliedAt.set(e.index, what);
      node.sm = applyTo(node.sm, e);
    }
  }

  // ---- network ---------------------------------------------------------------------------------

  /** `deliver-msgs [ID...] [drop=true] [type=T] [from=ID]` */
  private deliverCommand(args: Arg[]): void {
    const drop = args.some((a) => a.key === 'drop' && a.values[0] === 'true');
    const type = args.find((a) => a.key === 'type')?.values[0];
    const from = args.find((a) => a.key === 'from')?.values[0];
    const filter = (m: Message): boolean => (type === undefined || m.type === type) && (from === undefined || m.from === Number(from));
    for (const node of this.pick(args)) this.deliver(node, filter, drop);
  }

  /** Steps every waiting message that passes `filter` into `node`; returns whether any was taken. */
  private deliver(node: Node, filter: (m: Message) => boolean, drop: boolean): boolean {
    const take = node.inbox.filter(filter);
    if (take.length === 0) return false;
    node.inbox = node.inbox.filter((m) => !filter(m));
    this.print(`> ${node.id} receiving messages`);
    this.indent = '  ';
    for (const m of take) {
      const line = fmtMessage(m);
      if (drop) this.print(`dropped: ${line}`);
      else if (node.raft === undefined) this.print(`dropped (down): ${line}`);
      else if (this.cut(m.from, m.to)) this.print(`dropped (partition): ${line}`);
      else {
        this.print(line);
        node.raft.step(m);
        this.noteChanges(node);
      }
    }
    this.indent = '';
    return true;
  }

  private cut(a: number, b: number): boolean {
    const p = this.partitioned;
    return p !== undefined && p.has(a) !== p.has(b);
  }

  /** `stabilize [ID...]`: handles Readies and delivers messages until nothing moves. */
  private stabilize(args: Arg[]): void {
    const nodes = this.pick(args);
    for (let round = 0; ; round++) {
      if (round >= stabilizeRoundsMax) throw new Error(`stabilize did not settle in ${stabilizeRoundsMax} rounds`);
      let moved = false;
      for (const node of nodes) if (node.raft !== undefined && this.processReady(node, node.raft, false)) moved = true;
      for (const node of nodes) if (this.deliver(node, () => true, false)) moved = true;
      if (!moved) return;
    }
  }

  // ---- inspection ------------------------------------------------------------------------------

  private printStatus(raft: Raft): void {
    const s = raft.status();
    const transfer = s.transferee !== 0 ? ` transferee=${s.transferee}` : '';
    this.print(
      `term=${s.term} vote=${s.vote} ${s.role} leader=${s.leader} commit=${s.commit} applied=${s.applied} ` +
        `log=[${s.firstIndex},${s.lastIndex}] ${fmtConf(s.conf)}${transfer}`,
    );
    for (const [id, p] of [...s.progress].sort((a, b) => a[0] - b[0])) {
      const extra = `${p.learner ? ' learner' : ''}${p.inflight > 0 ? ` inflight=${p.inflight}` : ''}`;
      this.print(`${id}: ${p.state} match=${p.match} next=${p.next}${extra}`);
    }
  }

  private printLog(raft: Raft): void {
    const log = raft.log;
    if (log.offsetIndex > 0) this.print(`compacted up to ${log.offsetTerm}/${log.offsetIndex}`);
    if (log.entries.length === 0) this.print(`log is empty: first index=${log.firstIndex()}, last index=${log.lastIndex()}`);
    for (const e of log.entries) this.print(fmtEntry(e));
  }

  private print(...lines: string[]): void {
    for (const line of lines) this.out.push(line.startsWith('>') ? line : this.indent + line);
  }
}

function leaderDetail(err: CairnError): string {
  return 'leader' in err.details ? ` (leader ${String(err.details.leader)})` : '';
}

// ---- the state machine -------------------------------------------------------------------------

function applyTo(sm: string, e: Entry): string {
  if (e.type !== EntryType.Normal || e.data.length === 0) return sm;
  const v = latin1(e.data);
  return sm === '' ? v : `${sm},${v}`;
}

// ---- formatting --------------------------------------------------------------------------------

function utf8(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

function latin1(b: Uint8Array): string {
  return String.fromCharCode(...b);
}

function latin1Bytes(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

/** Printable ASCII as a quoted string, anything else as hex. */
function quote(b: Uint8Array): string {
  return b.every((c) => c >= 0x20 && c < 0x7f && c !== 0x22) ? `"${latin1(b)}"` : `0x${Buffer.from(b).toString('hex')}`;
}

function fmtIds(ids: readonly number[]): string {
  return `(${ids.join(' ')})`;
}

function fmtConf(c: ConfState): string {
  return `voters=${fmtIds(c.voters)} learners=${fmtIds(c.learners)}`;
}

function fmtEntryData(e: Entry): string {
  if (e.type === EntryType.ConfChange) {
    const cc = decodeConfChange(e.data);
    const name = cc.type === ConfChangeType.AddLearner ? 'add-learner' : cc.type === ConfChangeType.AddVoter ? 'add-voter' : 'remove';
    return `${e.index} conf ${name} ${cc.node}`;
  }
  return `${e.index} ${quote(e.data)}`;
}

function fmtEntry(e: Entry): string {
  return `${e.term}/${fmtEntryData(e)}`;
}

export function fmtMessage(m: Message): string {
  const parts = [`${m.from}->${m.to} ${m.type} Term:${m.term}`];
  switch (m.type) {
    case MessageType.PreVote:
    case MessageType.Vote:
      parts.push(`Log:${m.logTerm}/${m.index}`);
      if (m.force === true) parts.push('Force');
      break;
    case MessageType.PreVoteResp:
    case MessageType.VoteResp:
      if (m.reject === true) parts.push('Rejected');
      break;
    case MessageType.App:
      parts.push(`Log:${m.logTerm}/${m.index} Commit:${m.commit}`);
      if ((m.entries ?? []).length > 0) parts.push(`Entries:[${(m.entries ?? []).map(fmtEntry).join(', ')}]`);
      break;
    case MessageType.AppResp:
      if (m.index !== undefined) parts.push(`Index:${m.index}`);
      if (m.reject === true) parts.push(`Rejected (Hint: ${m.logTerm}/${m.rejectHint})`);
      break;
    case MessageType.Heartbeat:
      parts.push(`Commit:${m.commit}`);
      if (m.readSeq !== undefined) parts.push(`ReadSeq:${m.readSeq}`);
      break;
    case MessageType.HeartbeatResp:
      if (m.readSeq !== undefined) parts.push(`ReadSeq:${m.readSeq}`);
      break;
    case MessageType.Snap: {
      const s = m.snapshot!;
      const data = m.snapData ?? new Uint8Array(0);
      parts.push(`Snapshot:${s.term}/${s.index} ${fmtConf(s.conf)}`);
      parts.push(`Chunk:${m.snapOffset}+${data.length}/${m.snapTotalBytes} ${quote(data)}${m.snapDone === true ? ' Done' : ''}`);
      break;
    }
    case MessageType.SnapResp:
      parts.push(`Index:${m.index} Offset:${m.snapOffset}`);
      break;
    case MessageType.ReadIndex:
      parts.push(`Context:${quote(m.context ?? new Uint8Array(0))}`);
      break;
    case MessageType.ReadIndexResp:
      parts.push(`Index:${m.index} Context:${quote(m.context ?? new Uint8Array(0))}`);
      break;
    case MessageType.TimeoutNow:
      break;
  }
  return parts.join(' ');
}

function fmtReady(rd: Ready): string[] {
  const out = [`Ready MustSync=${rd.mustSync}:`];
  if (rd.softState !== undefined) out.push(`Lead:${rd.softState.leader} State:${rd.softState.role}`);
  if (rd.hardState !== undefined) out.push(`HardState Term:${rd.hardState.term} Vote:${rd.hardState.vote} Commit:${rd.hardState.commit}`);
  if (rd.snapshot !== undefined) {
    const s = rd.snapshot;
    out.push(`Snapshot ${s.meta.term}/${s.meta.index} ${fmtConf(s.meta.conf)} data=${quote(readAllSnapshotData(s.data))}`);
  }
  if (rd.entries.length > 0) out.push('Entries:', ...rd.entries.map(fmtEntry));
  if (rd.committed.length > 0) out.push('Committed:', ...rd.committed.map(fmtEntry));
  if (rd.messages.length > 0) out.push('Messages:', ...rd.messages.map(fmtMessage));
  if (rd.readStates.length > 0) out.push('ReadStates:', ...rd.readStates.map((r) => `Index:${r.index} Context:${quote(r.context)}`));
  return out;
}
