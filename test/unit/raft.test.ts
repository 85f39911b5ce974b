// Tests of the Raft core's contract with its driver and of its limits: each refusal carries its
// error code, each bounded queue drops what exceeds it, and a restart recovers what was persisted.
// Regression tests for bugs found in review are kept at the end.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CairnError, ErrorCode } from '../../src/errors.ts';
import { decodeConfChange, encodeConfChange } from '../../src/raft/confchange.ts';
import { nextConf } from '../../src/raft/membership.ts';
import { ProgressState } from '../../src/raft/progress.ts';
import { readAllSnapshotData, snapshotBytes } from '../../src/raft/snapshot-data.ts';
import { Raft, leaseWindowTicks, type RaftConfig, type RestoredState } from '../../src/raft/raft.ts';
import {
  ConfChangeType,
  EntryType,
  MessageType,
  Role,
  type Entry,
  type Message,
  type ReadState,
  type SnapshotSink,
} from '../../src/raft/types.ts';
import { Prng } from '../../src/sim/prng.ts';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Rounds of ready + delivery before `stabilize` gives up: more means the nodes never settle. */
const stabilizeRoundsMax = 100;

type Options = Partial<Omit<RaftConfig, 'id' | 'voters' | 'rand'>>;

/**
 * A small driver: nodes persist into memory, messages are delivered in rounds, links can be cut;
 * messages to nodes outside the cluster (members yet to be started) are dropped.
 */
class Cluster {
  readonly nodes = new Map<number, Raft>();
  private readonly configs = new Map<number, RaftConfig>();
  readonly stored = new Map<number, RestoredState>();
  readonly readStates = new Map<number, ReadState[]>();
  readonly applied = new Map<number, Entry[]>();
  private inbox: Message[] = [];
  /** Nodes whose messages, both ways, are dropped. */
  readonly isolated = new Set<number>();

  /** Nodes start as if they had run a while (no vote hold), so a test can elect a leader at once. */
  private readonly options: Options;
  private readonly seed: number;

  constructor(count: number, options: Options = {}, seed = 1) {
    this.options = options;
    this.seed = seed;
    const voters = Array.from({ length: count }, (_, i) => i + 1);
    for (const id of voters) this.start(id, voters);
  }

  private start(id: number, voters: number[]): void {
    const prng = new Prng(this.seed * 100 + id);
    const config: RaftConfig = { electionTicks: 10, heartbeatTicks: 1, voteHoldTicks: 0, ...this.options, id, voters, rand: (n) => prng.int(n) };
    this.configs.set(id, config);
    this.nodes.set(id, new Raft(config));
    this.stored.set(id, { hardState: { term: 0, vote: 0, commit: 0 }, entries: [] });
    this.readStates.set(id, []);
    this.applied.set(id, []);
  }

  /** Starts nodes with no log and has leader 1 add them as learners; they catch up. */
  addLearners(...ids: number[]): void {
    for (const id of ids) {
      this.start(id, []);
      this.node(1).proposeConfChange({ type: ConfChangeType.AddLearner, node: id });
      this.stabilize();
    }
  }

  /** Restarts `id` from what it persisted, as a fresh process: it holds its votes for an election timeout. */
  restart(id: number): void {
    const st = this.stored.get(id)!;
    this.nodes.set(id, new Raft({ ...this.configs.get(id)!, voteHoldTicks: undefined }, { hardState: st.hardState, entries: st.entries.slice() }));
  }

  node(id: number): Raft {
    const r = this.nodes.get(id);
    assert.ok(r !== undefined, `no node ${id}`);
    return r;
  }

  /** Handles one Ready of `id` as the driver contract says; returns whether there was one. */
  processReady(id: number): boolean {
    const r = this.node(id);
    if (!r.hasReady()) return false;
    const rd = r.ready();
    const st = this.stored.get(id)!;
    if (rd.hardState !== undefined) st.hardState = rd.hardState;
    if (rd.entries.length > 0) {
      const first = rd.entries[0].index;
      st.entries = st.entries.filter((e) => e.index < first).concat(rd.entries);
    }
    for (const m of rd.messages) {
      if (this.nodes.has(m.to) && !this.isolated.has(m.from) && !this.isolated.has(m.to)) this.inbox.push(m);
    }
    this.applied.get(id)!.push(...rd.committed);
    this.readStates.get(id)!.push(...rd.readStates);
    r.advance();
    return true;
  }

  /** Drops waiting messages that pass `filter`, as a lossy network would. */
  drop(filter: (m: Message) => boolean): void {
    this.inbox = this.inbox.filter((m) => !filter(m));
  }

  deliver(filter: (m: Message) => boolean = () => true): boolean {
    const take = this.inbox.filter(filter);
    this.inbox = this.inbox.filter((m) => !filter(m));
    for (const m of take) this.node(m.to).step(m);
    return take.length > 0;
  }

  stabilize(): void {
    for (let round = 0; round < stabilizeRoundsMax; round++) {
      let moved = false;
      for (const id of this.nodes.keys()) if (this.processReady(id)) moved = true;
      if (this.deliver()) moved = true;
      if (!moved) return;
    }
    assert.fail(`cluster did not settle in ${stabilizeRoundsMax} rounds`);
  }

  /** One tick on every node (clocks advance together), then all traffic settles. */
  tickAll(): void {
    for (const r of this.nodes.values()) r.tick();
    this.stabilize();
  }

  elect(id: number): void {
    this.node(id).campaign();
    this.stabilize();
    assert.equal(this.node(id).role, Role.Leader);
  }
}

function assertCode(fn: () => unknown, code: ErrorCode): CairnError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof CairnError, `expected a CairnError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code);
  return caught;
}

// ---- proposals -----------------------------------------------------------------------------------

test('propose on a follower fails with CAIRN_NOT_LEADER naming the leader', () => {
  const c = new Cluster(3);
  c.elect(1);
  const err = assertCode(() => c.node(2).propose(bytes('x')), ErrorCode.NotLeader);
  assert.equal(err.details.leader, 1);
  const unknown = new Cluster(3);
  assert.equal(assertCode(() => unknown.node(2).propose(bytes('x')), ErrorCode.NotLeader).details.leader, 0);
});

test('an entry larger than entryBytesMax fails with CAIRN_ENTRY_TOO_LARGE; one at the limit is accepted', () => {
  const c = new Cluster(3, { entryBytesMax: 16 });
  c.elect(1);
  assertCode(() => c.node(1).propose(new Uint8Array(17)), ErrorCode.EntryTooLarge);
  assert.deepEqual(c.node(1).propose(new Uint8Array(16)), { index: 5, term: 2 });
  const cc = { type: ConfChangeType.AddLearner, node: 4 };
  assertCode(() => c.node(1).proposeConfChange(cc, new Uint8Array(12)), ErrorCode.EntryTooLarge);
});

test('uncommitted bytes beyond uncommittedBytesMax fail with CAIRN_BUSY until they commit', () => {
  const c = new Cluster(3, { uncommittedBytesMax: 10 });
  c.elect(1);
  c.isolated.add(2).add(3);
  c.node(1).propose(new Uint8Array(6));
  c.stabilize();
  assertCode(() => c.node(1).propose(new Uint8Array(5)), ErrorCode.Busy);
  c.node(1).propose(new Uint8Array(4)); // exactly at the limit
  assertCode(() => c.node(1).propose(new Uint8Array(1)), ErrorCode.Busy);
  c.isolated.clear();
  c.tickAll(); // a heartbeat round: the followers catch up and the entries commit
  assert.equal(c.node(1).status().commit, 6);
  c.node(1).propose(new Uint8Array(10));
});

test('a second membership change while one is pending fails with CAIRN_CONF_CHANGE_PENDING', () => {
  const c = new Cluster(3);
  c.elect(1);
  c.node(1).proposeConfChange({ type: ConfChangeType.AddLearner, node: 4 });
  assertCode(() => c.node(1).proposeConfChange({ type: ConfChangeType.Remove, node: 3 }), ErrorCode.ConfChangePending);
  c.stabilize();
  assert.deepEqual(c.node(1).status().conf, { voters: [1, 2, 3], learners: [4] });
  c.node(1).proposeConfChange({ type: ConfChangeType.Remove, node: 4 });
});

test('a new leader accepts no membership change before its first entry applies', () => {
  const c = new Cluster(3);
  c.node(1).campaign();
  for (let i = 0; i < 20 && c.node(1).role !== Role.Leader; i++) {
    for (const id of [1, 2, 3]) c.processReady(id);
    c.deliver();
  }
  assert.equal(c.node(1).role, Role.Leader);
  assertCode(() => c.node(1).proposeConfChange({ type: ConfChangeType.AddLearner, node: 4 }), ErrorCode.ConfChangePending);
});

test('propose during a leadership transfer fails with CAIRN_TRANSFER_IN_PROGRESS', () => {
  const c = new Cluster(3);
  c.elect(1);
  c.isolated.add(2); // the transfer cannot finish
  c.node(1).transferLeader(2);
  assertCode(() => c.node(1).propose(bytes('x')), ErrorCode.TransferInProgress);
  assertCode(() => c.node(1).proposeConfChange({ type: ConfChangeType.AddLearner, node: 4 }), ErrorCode.TransferInProgress);
  for (let i = 0; i < 10; i++) c.tickAll(); // an election timeout abandons it
  assert.equal(c.node(1).status().transferee, 0);
  c.node(1).propose(bytes('x'));
});

test('membership changes that make no sense fail with CAIRN_INVALID_ARGUMENT', () => {
  const single = new Cluster(1);
  single.elect(1);
  single.stabilize();
  assertCode(() => single.node(1).proposeConfChange({ type: ConfChangeType.Remove, node: 1 }), ErrorCode.InvalidArgument);
  const c = new Cluster(3);
  c.elect(1);
  assertCode(() => c.node(1).proposeConfChange({ type: ConfChangeType.Remove, node: 9 }), ErrorCode.InvalidArgument);
  assertCode(() => c.node(1).proposeConfChange({ type: ConfChangeType.AddLearner, node: 2 }), ErrorCode.InvalidArgument);
  assertCode(() => c.node(1).proposeConfChange({ type: ConfChangeType.AddVoter, node: 0 }), ErrorCode.InvalidArgument);
  assertCode(() => c.node(1).transferLeader(9), ErrorCode.InvalidArgument);
  assertCode(() => c.node(2).transferLeader(3), ErrorCode.NotLeader);
});

// ---- reads ---------------------------------------------------------------------------------------

test('reads beyond readQueueMax are dropped, the others are answered after a heartbeat quorum', () => {
  const c = new Cluster(3, { readQueueMax: 2 });
  c.elect(1);
  for (const ctx of ['a', 'b', 'c']) c.node(1).readIndex(bytes(ctx));
  c.processReady(1);
  assert.deepEqual(c.readStates.get(1), [], 'no answer before the heartbeat round');
  c.stabilize();
  assert.deepEqual(c.readStates.get(1)!.map((r) => [r.index, text(r.context)]), [[4, 'a'], [4, 'b']]);
  c.node(1).readIndex(bytes('d')); // the queue drained, so there is room again
  c.stabilize();
  assert.deepEqual(c.readStates.get(1)!.map((r) => text(r.context)), ['a', 'b', 'd']);
});

test('reads deferred until the leader commits in its term count against readQueueMax', () => {
  const c = new Cluster(3, { readQueueMax: 1 });
  c.node(1).campaign();
  for (let i = 0; i < 20 && c.node(1).role !== Role.Leader; i++) {
    for (const id of [1, 2, 3]) c.processReady(id);
    c.deliver();
  }
  c.node(1).readIndex(bytes('a'));
  c.node(1).readIndex(bytes('b'));
  c.stabilize();
  assert.deepEqual(c.readStates.get(1)!.map((r) => [r.index, text(r.context)]), [[4, 'a']]);
});

test('a leader of five answers a read once two followers acknowledged its heartbeat, not one', () => {
  const c = new Cluster(5);
  c.elect(1);
  c.node(1).readIndex(bytes('r'));
  c.processReady(1); // the heartbeat round goes out
  const ackFrom = (id: number): void => {
    c.deliver((m) => m.to === id && m.type === MessageType.Heartbeat);
    c.processReady(id);
    c.deliver((m) => m.from === id && m.to === 1);
    c.processReady(1);
  };
  ackFrom(2);
  assert.deepEqual(c.readStates.get(1), [], 'the leader and one follower are 2 of 5, no quorum');
  ackFrom(3);
  assert.deepEqual(c.readStates.get(1)!.map((r) => [r.index, text(r.context)]), [[6, 'r']]);
});

test('a heartbeat round confirms only the reads that arrived before it was sent', () => {
  const c = new Cluster(3);
  c.elect(1);
  c.node(1).readIndex(bytes('a'));
  c.processReady(1); // the round for 'a' goes out
  c.node(1).readIndex(bytes('b')); // waits for the next round
  c.processReady(1);
  c.deliver();
  c.processReady(2);
  c.processReady(3);
  c.deliver();
  c.processReady(1);
  assert.deepEqual(c.readStates.get(1)!.map((r) => text(r.context)), ['a']);
  c.stabilize();
  assert.deepEqual(c.readStates.get(1)!.map((r) => text(r.context)), ['a', 'b']);
});

test('a learner\'s heartbeat acknowledgement does not count toward a read quorum', () => {
  const c = new Cluster(3);
  c.elect(1);
  c.addLearners(4);
  c.isolated.add(2).add(3);
  c.node(1).readIndex(bytes('r'));
  c.stabilize();
  assert.deepEqual(c.readStates.get(1), [], 'the leader and a learner are no quorum of voters');
  c.isolated.clear();
  c.tickAll(); // the periodic heartbeat carries the read again
  assert.deepEqual(c.readStates.get(1)!.map((r) => text(r.context)), ['r']);
});

test('a lease runs electionTicks - 2 ticks from the sending of the heartbeat a majority answered, not from the answers', () => {
  const c = new Cluster(3, { leaseRead: true, checkQuorum: true });
  c.elect(1);
  const r = c.node(1);
  const tickLeader = (ticks: number): void => {
    for (let i = 0; i < ticks; i++) {
      r.tick();
      c.processReady(1);
    }
    c.drop((m) => m.type === MessageType.Heartbeat && m.hbTick !== 1); // only the first round gets through
  };
  const servedAtOnce = (ctx: string): boolean => {
    r.readIndex(bytes(ctx));
    c.processReady(1);
    return c.readStates.get(1)!.some((rs) => text(rs.context) === ctx);
  };
  tickLeader(4); // rounds at leader ticks 1..4
  c.deliver();
  c.processReady(2);
  c.processReady(3);
  c.deliver(); // the answers to the round of tick 1 arrive at tick 4
  tickLeader(4);
  assert.ok(servedAtOnce('at 8'), 'tick 8: 7 ticks after the round');
  tickLeader(1);
  assert.equal(servedAtOnce('at 9'), false, 'tick 9: 8 ticks after the round, the lease is over');
});

test('the lease window shrinks with the clock drift bound, so the slowest leader clock stops before the fastest follower may vote', () => {
  // A follower's promise lasts more than electionTicks - 1 of its periods after the heartbeat came.
  for (const electionTicks of [5, 10, 12, 30]) {
    for (const drift of [0, 0.01, 0.04, 0.05, 0.2, 0.5]) {
      const w = leaseWindowTicks(electionTicks, drift);
      assert.ok(w / (1 - drift) <= (electionTicks - 1) / (1 + drift), `${w} ticks at ${electionTicks} election ticks, drift ${drift}`);
      assert.ok((w + 1) / (1 - drift) > (electionTicks - 1) / (1 + drift), `${w} ticks is not the longest safe window`);
    }
  }
  // The defaults keep electionTicks - 2 for the simulator's 10 ticks and the masters' 12.
  assert.equal(leaseWindowTicks(10, 0.04), 8);
  assert.equal(leaseWindowTicks(12, 0.04), 10);
  assert.equal(leaseWindowTicks(10, 0.5), 3);
  assert.equal(leaseWindowTicks(10, 0), 9, 'a lease that ignores drift runs to the edge of the promise');
});

test('a lease sized for a wider clock drift bound ends sooner', () => {
  const c = new Cluster(3, { leaseRead: true, checkQuorum: true, clockDriftMax: 0.5 });
  c.elect(1);
  const r = c.node(1);
  r.tick();
  c.stabilize(); // a heartbeat round at tick 1, answered
  const servedAtOnce = (ctx: string): boolean => {
    r.readIndex(bytes(ctx));
    c.processReady(1);
    return c.readStates.get(1)!.some((rs) => text(rs.context) === ctx);
  };
  c.isolated.add(1);
  for (let i = 0; i < 2; i++) {
    r.tick();
    c.processReady(1);
  }
  assert.ok(servedAtOnce('at 3'), 'tick 3: 2 ticks after the round');
  r.tick();
  c.processReady(1);
  assert.equal(servedAtOnce('at 4'), false, 'tick 4: 3 ticks after the round, a lease of 3 ticks is over');
});

test(
  'a leader that sent TimeoutNow serves no lease read after it abandoned the transfer, while acknowledgements from before still count',
  () => {
    const c = new Cluster(3, { leaseRead: true, checkQuorum: true });
    c.elect(1);
    c.isolated.add(2);
    c.node(1).propose(bytes('x')); // node 2 lags: the transfer must first catch it up
    c.stabilize();
    c.node(1).transferLeader(2);
    for (let i = 0; i < 4; i++) c.tickAll();
    c.isolated.clear();
    // Tick 5: node 3 answers the heartbeat (a fresh lease), node 2 catches up and gets TimeoutNow.
    c.node(1).tick();
    for (let i = 0; i < 10 && c.node(2).role === Role.Follower; i++) {
      for (const id of [1, 2, 3]) c.processReady(id);
      c.deliver();
    }
    assert.equal(c.node(2).role, Role.Candidate);
    c.isolated.add(1);
    c.stabilize(); // node 2 campaigns with a forced vote, which node 3 grants despite its lease
    assert.equal(c.node(2).role, Role.Leader);
    const written = c.node(2).propose(bytes('w')).index;
    c.stabilize();
    assert.equal(c.node(2).status().commit, written);
    for (let i = 0; i < 5; i++) c.node(1).tick(); // tick 10: the transfer is abandoned, node 3's answer of tick 5 is recent
    assert.equal(c.node(1).role, Role.Leader);
    assert.equal(c.node(1).status().transferee, 0);
    c.node(1).readIndex(bytes('r'));
    c.processReady(1);
    const read = c.readStates.get(1)!.at(-1);
    if (read !== undefined) assert.ok(read.index >= written, `read at ${read.index} misses write ${written}`);
  },
);

test('a read on a node that knows no leader fails with CAIRN_NOT_LEADER', () => {
  const c = new Cluster(3);
  assertCode(() => c.node(2).readIndex(bytes('x')), ErrorCode.NotLeader);
});

// ---- membership ---------------------------------------------------------------------------------

test('membership entries: a removed learner leaves the learners, and an entry keeps its context and rejects garbage', () => {
  assert.deepEqual(nextConf({ voters: [1, 2, 3], learners: [4] }, { type: ConfChangeType.Remove, node: 4 }), { voters: [1, 2, 3], learners: [] });
  const cc = decodeConfChange(encodeConfChange({ type: ConfChangeType.AddVoter, node: 7 }, bytes('10.0.0.7:7000')));
  assert.deepEqual([cc.type, cc.node, text(cc.context)], [ConfChangeType.AddVoter, 7, '10.0.0.7:7000']);
  assertCode(() => decodeConfChange(new Uint8Array(4)), ErrorCode.InvalidArgument);
  assertCode(() => decodeConfChange(Uint8Array.of(9, 0, 0, 0, 7)), ErrorCode.InvalidArgument);
});

test('learners count toward neither a commit nor check-quorum', () => {
  const c = new Cluster(3, { checkQuorum: true });
  c.elect(1);
  c.addLearners(4, 5);
  c.isolated.add(2).add(3);
  const { index } = c.node(1).propose(bytes('x'));
  c.stabilize();
  assert.equal(c.node(4).status().lastIndex, index, 'the learners hold the entry');
  assert.ok(c.node(1).status().commit < index, 'the leader and two learners are no majority of voters');
  // The first check, one election timeout on, still counts what the voters sent before the cut.
  for (let i = 0; i < 10; i++) c.tickAll();
  assert.equal(c.node(1).role, Role.Leader);
  for (let i = 0; i < 10; i++) c.tickAll();
  assert.equal(c.node(1).role, Role.Follower, 'heard from no voter in an election timeout: steps down');
});

test('a leader that removes itself leads until the removal commits, not when an earlier entry commits', () => {
  const c = new Cluster(3, { appendBytesMax: 1 });
  c.elect(1);
  const x = c.node(1).propose(bytes('x')).index;
  c.node(1).proposeConfChange({ type: ConfChangeType.Remove, node: 1 });
  c.processReady(1);
  c.deliver((m) => m.type === MessageType.App && m.entries?.[0]?.index === x);
  c.drop((m) => m.type === MessageType.App);
  c.processReady(2);
  c.processReady(3);
  c.deliver();
  assert.equal(c.node(1).status().commit, x);
  assert.equal(c.node(1).role, Role.Leader);
  c.tickAll(); // the removal goes out again with the heartbeat round and commits
  assert.equal(c.node(1).role, Role.Follower);
  assert.deepEqual(c.node(2).status().conf.voters, [2, 3]);
});

test('a node with a received snapshot not yet persisted does not campaign', () => {
  const r = new Raft({ id: 3, voters: [], rand: () => 0, voteHoldTicks: 0 }, { hardState: { term: 2, vote: 1, commit: 3 }, entries: founders });
  const meta = { index: 10, term: 2, conf: { voters: [1, 2, 3], learners: [] } };
  r.step({ type: MessageType.Snap, from: 1, to: 3, term: 2, snapshot: meta, snapOffset: 0, snapData: bytes('s'), snapDone: true, snapTotalBytes: 1 });
  r.campaign();
  assert.equal(r.role, Role.Follower);
  r.ready();
  r.advance();
  r.campaign();
  assert.equal(r.role, Role.PreCandidate);
});

// ---- the driver contract -------------------------------------------------------------------------

test('ready() twice without advance() throws, and so does advance() without ready()', () => {
  const c = new Cluster(3);
  const r = c.node(1);
  r.campaign();
  assert.ok(r.hasReady());
  r.ready();
  assert.equal(r.hasReady(), false, 'nothing is ready while a Ready is in flight');
  assert.throws(() => r.ready(), /ready\(\) called again before advance\(\)/);
  r.advance();
  assert.throws(() => r.advance(), /advance\(\) without ready\(\)/);
});

test('a bootstrapped node hands out its founding entries as committed in its first Ready', () => {
  const r = new Raft({ id: 1, voters: [1, 2, 3], rand: () => 0 });
  const rd = r.ready();
  assert.deepEqual(rd.entries.map((e) => [e.index, e.term, e.type]), [[1, 1, EntryType.ConfChange], [2, 1, EntryType.ConfChange], [3, 1, EntryType.ConfChange]]);
  assert.deepEqual(rd.committed.map((e) => e.index), [1, 2, 3]);
  assert.deepEqual(rd.messages, []);
  r.advance();
  assert.equal(r.hasReady(), false);
});

test('a restart from the persisted state keeps term, vote, log, commit and membership', () => {
  const c = new Cluster(3);
  c.elect(1);
  c.node(1).propose(bytes('x'));
  c.node(1).proposeConfChange({ type: ConfChangeType.AddLearner, node: 4 });
  c.stabilize();
  c.isolated.add(1);
  c.node(1).propose(bytes('not committed'));
  c.stabilize();

  const st = c.stored.get(1)!;
  const before = c.node(1).status();
  // No vote hold, so that the vote below is refused for the vote already given, not for the hold.
  const r = new Raft({ id: 1, voters: [1, 2, 3], rand: () => 0, voteHoldTicks: 0 }, { hardState: st.hardState, entries: st.entries.slice() });
  const after = r.status();
  assert.equal(after.role, Role.Follower);
  assert.deepEqual([after.term, after.vote, after.commit, after.lastIndex], [before.term, before.vote, before.commit, before.lastIndex]);
  assert.deepEqual([after.term, after.vote, after.commit, after.lastIndex], [2, 1, 6, 7]);
  assert.deepEqual(after.conf, { voters: [1, 2, 3], learners: [4] });
  assert.deepEqual(r.log.entries.map((e) => e.index), [1, 2, 3, 4, 5, 6, 7]);
  // Committed entries are applied again after a restart (the state machine is not persisted here).
  assert.deepEqual(r.ready().committed.map((e) => e.index), [1, 2, 3, 4, 5, 6]);
  r.advance();
  // A vote given in this term is kept: another candidate of the same term is refused.
  r.step({ type: MessageType.Vote, from: 3, to: 1, term: 2, index: 7, logTerm: 2 });
  assert.deepEqual(r.ready().messages.map((m) => [m.type, m.reject]), [[MessageType.VoteResp, true]]);
  r.advance();
});

test('a node votes at most once per term, and only for a log at least as up to date as its own', () => {
  const c = new Cluster(3, { preVote: false, checkQuorum: false });
  const r = c.node(3);
  r.step({ type: MessageType.Vote, from: 1, to: 3, term: 2, index: 3, logTerm: 1 });
  r.step({ type: MessageType.Vote, from: 2, to: 3, term: 2, index: 3, logTerm: 1 });
  r.step({ type: MessageType.Vote, from: 2, to: 3, term: 3, index: 2, logTerm: 1 });
  const rd = r.ready();
  assert.deepEqual(rd.messages.map((m) => [m.to, m.term, m.reject]), [[1, 2, false], [2, 2, true], [2, 3, true]]);
  assert.deepEqual(rd.hardState, { term: 3, vote: 0, commit: 3 });
});

// ---- log and snapshot rules on a follower ------------------------------------------------------------

const emptyEntry = (index: number, term: number): Entry => ({ index, term, type: EntryType.Normal, data: new Uint8Array(0) });
const confEntry = (index: number, term: number, type: ConfChangeType, node: number): Entry => ({ index, term, type: EntryType.ConfChange, data: encodeConfChange({ type, node }) });
const founders = [1, 2, 3].map((node) => confEntry(node, 1, ConfChangeType.AddVoter, node));

test('a follower whose uncommitted membership entry is overwritten by a new leader goes back to the membership before it', () => {
  const r = new Raft({ id: 3, voters: [], rand: () => 0 }, { hardState: { term: 2, vote: 1, commit: 3 }, entries: founders });
  const app = (from: number, term: number, prev: Entry, entries: Entry[]): void =>
    r.step({ type: MessageType.App, from, to: 3, term, index: prev.index, logTerm: prev.term, commit: 3, entries });
  app(1, 2, founders[2], [emptyEntry(4, 2), confEntry(5, 2, ConfChangeType.AddLearner, 4), confEntry(6, 2, ConfChangeType.Remove, 2)]);
  assert.deepEqual(r.confState(), { voters: [1, 3], learners: [4] }, 'a node uses membership entries as soon as they are appended');
  // Leader 2 of term 3 never had entries 5 and 6: its own entry 5 replaces them.
  app(2, 3, emptyEntry(4, 2), [emptyEntry(5, 3)]);
  assert.deepEqual(r.log.entries.map((e) => `${e.term}/${e.index}`), ['1/1', '1/2', '1/3', '2/4', '3/5']);
  assert.deepEqual(r.confState(), { voters: [1, 2, 3], learners: [] });
  assert.deepEqual(r.confAt(6), { voters: [1, 2, 3], learners: [] }, 'no trace of the overwritten changes in the history');
});

test('entries replaced while their Ready is in flight are persisted again, not marked durable by advance()', () => {
  const r = new Raft({ id: 3, voters: [], rand: () => 0 }, { hardState: { term: 2, vote: 1, commit: 3 }, entries: founders });
  r.step({ type: MessageType.App, from: 1, to: 3, term: 2, index: 3, logTerm: 1, commit: 3, entries: [emptyEntry(4, 2), emptyEntry(5, 2)] });
  assert.deepEqual(r.ready().entries.map((e) => `${e.term}/${e.index}`), ['2/4', '2/5']);
  // Before the driver finishes that Ready, leader 2 of term 3 replaces entry 5.
  r.step({ type: MessageType.App, from: 2, to: 3, term: 3, index: 4, logTerm: 2, commit: 3, entries: [emptyEntry(5, 3)] });
  r.advance();
  // Entry 4 comes again too: advance() only marks durable a Ready whose last entry is still in the log.
  assert.deepEqual(r.ready().entries.map((e) => `${e.term}/${e.index}`), ['2/4', '3/5']);
});

test('a follower refuses an append from a deposed leader of an older term and tells it the newer term', () => {
  const r = new Raft({ id: 3, voters: [], rand: () => 0 }, { hardState: { term: 3, vote: 2, commit: 3 }, entries: [...founders, emptyEntry(4, 3)] });
  r.step({ type: MessageType.App, from: 1, to: 3, term: 2, index: 3, logTerm: 1, commit: 3, entries: [emptyEntry(4, 2), emptyEntry(5, 2)] });
  const rd = r.ready();
  r.advance();
  assert.deepEqual(rd.messages.map((m) => [m.type, m.to, m.term, m.index]), [[MessageType.AppResp, 1, 3, undefined]]);
  assert.deepEqual(r.log.entries.map((e) => `${e.term}/${e.index}`), ['1/1', '1/2', '1/3', '3/4']);
  assert.deepEqual([r.term, r.leader], [3, 0]);
});

test('a follower commits only what the leader vouched for: up to the last entry of the append, or its match in a heartbeat', () => {
  // Node 3 holds 2/4 and 2/5 from leader 1 of term 2; leader 2 of term 3 shares 2/4 but not 2/5.
  const r = new Raft({ id: 3, voters: [], rand: () => 0 }, { hardState: { term: 3, vote: 2, commit: 3 }, entries: [...founders, emptyEntry(4, 2), emptyEntry(5, 2)] });
  r.step({ type: MessageType.App, from: 2, to: 3, term: 3, index: 3, logTerm: 1, commit: 3, entries: [emptyEntry(4, 2)] });
  assert.equal(r.status().commit, 3);
  r.step({ type: MessageType.Heartbeat, from: 2, to: 3, term: 3, commit: 4 });
  assert.equal(r.status().commit, 4, 'the heartbeat carries the commit index');
  // The leader committed 6, but this append vouches for entries up to 4 only: 2/5 is not the leader's.
  r.step({ type: MessageType.App, from: 2, to: 3, term: 3, index: 4, logTerm: 2, commit: 6, entries: [] });
  assert.equal(r.status().commit, 4);
});

test('a follower ignores a snapshot at or below its commit index: it neither rolls back nor fetches it', () => {
  const conf = { voters: [1, 2, 3], learners: [] };
  const own = { meta: { index: 9, term: 2, conf }, data: snapshotBytes(bytes('state at 9')) };
  const r = new Raft({ id: 3, voters: [], rand: () => 0 }, { hardState: { term: 2, vote: 1, commit: 10 }, snapshot: own, entries: [emptyEntry(10, 2)] });
  r.ready();
  r.advance();
  const snap = (index: number, done: boolean): Message => ({
    type: MessageType.Snap, from: 1, to: 3, term: 2, snapshot: { index, term: 2, conf }, snapOffset: 0, snapData: bytes('s'), snapDone: done, snapTotalBytes: done ? 1 : 2,
  });
  // A delayed snapshot older than the one this node compacted to: restoring it would move the
  // commit index and the state machine back.
  r.step(snap(8, true));
  let rd = r.ready();
  r.advance();
  assert.equal(rd.snapshot, undefined);
  assert.deepEqual(rd.messages.map((m) => [m.type, m.index]), [[MessageType.AppResp, 10]]);
  assert.deepEqual([r.status().commit, r.status().firstIndex, r.status().lastIndex], [10, 10, 10]);
  // One at the commit index: answered at its first chunk, so the leader does not send the rest.
  r.step(snap(10, false));
  rd = r.ready();
  r.advance();
  assert.deepEqual(rd.messages.map((m) => [m.type, m.index]), [[MessageType.AppResp, 10]]);
});

test('a follower that holds the snapshot\'s last entry keeps the entries after it instead of restoring', () => {
  const entries = [...founders, ...[4, 5, 6, 7, 8].map((i) => emptyEntry(i, 2))];
  const r = new Raft({ id: 3, voters: [], rand: () => 0 }, { hardState: { term: 2, vote: 1, commit: 4 }, entries });
  const meta = { index: 6, term: 2, conf: { voters: [1, 2, 3], learners: [] } };
  r.step({ type: MessageType.Snap, from: 1, to: 3, term: 2, snapshot: meta, snapOffset: 0, snapData: bytes('s'), snapDone: true, snapTotalBytes: 1 });
  const rd = r.ready();
  assert.equal(rd.snapshot, undefined, 'entries 7 and 8 may count toward a commit on the leader: they must stay');
  assert.deepEqual([r.status().commit, r.status().lastIndex], [6, 8]);
});

test('a follower installs a snapshot only from contiguous chunks of one transfer, once all bytes arrived', () => {
  const r = new Raft({ id: 3, voters: [], rand: () => 0, snapshotBytesMax: 9 }, { hardState: { term: 2, vote: 1, commit: 3 }, entries: founders });
  const meta = { index: 10, term: 2, conf: { voters: [1, 2, 3], learners: [] } };
  const chunk = (offset: number, data: string, done: boolean, total = 9): void =>
    r.step({ type: MessageType.Snap, from: 1, to: 3, term: 2, snapshot: meta, snapOffset: offset, snapData: bytes(data), snapDone: done, snapTotalBytes: total });
  const replies = (): [string, number | undefined, boolean][] => {
    const rd = r.ready();
    r.advance();
    assert.equal(rd.snapshot, undefined);
    return rd.messages.map((m) => [m.type, m.snapOffset ?? m.index, m.reject ?? false]);
  };
  chunk(0, 'aaaa', false, 10);
  assert.deepEqual(replies(), [[MessageType.SnapResp, 0, true]], 'larger than snapshotBytesMax: refused');
  chunk(0, 'aaaa', false);
  chunk(8, 'c', true); // out of order: the follower says where to resume
  assert.deepEqual(replies(), [[MessageType.SnapResp, 4, false], [MessageType.SnapResp, 4, false]]);
  chunk(4, 'bb', true); // marked done, but 3 bytes short
  assert.deepEqual(replies(), [[MessageType.SnapResp, 0, false]]);
  chunk(0, 'aaaa', false);
  chunk(4, 'bbbb', false);
  chunk(8, 'c', true);
  const rd = r.ready();
  assert.equal(rd.snapshot?.meta.index, 10);
  assert.equal(text(readAllSnapshotData(rd.snapshot!.data)), 'aaaabbbbc');
});

test('a follower hands each snapshot chunk to its sink as it arrives, keeps none itself, and refuses a snapshot its sink fails', () => {
  const events: string[] = [];
  let failWrites = false;
  const sink: SnapshotSink = {
    begin: (m, total) => {
      events.push(`begin ${m.index} ${total}`);
      const chunks: string[] = [];
      return {
        write: (c) => {
          if (failWrites) throw new Error('ENOSPC');
          events.push(`write ${text(c)}`);
          chunks.push(text(c));
        },
        complete: () => snapshotBytes(bytes(chunks.join(''))),
        abort: () => void events.push('abort'),
      };
    },
  };
  const r = new Raft({ id: 3, voters: [], rand: () => 0, snapshotSink: sink }, { hardState: { term: 2, vote: 1, commit: 3 }, entries: founders });
  const meta = { index: 10, term: 2, conf: { voters: [1, 2, 3], learners: [] } };
  const chunk = (offset: number, data: string, done: boolean): void =>
    r.step({ type: MessageType.Snap, from: 1, to: 3, term: 2, snapshot: meta, snapOffset: offset, snapData: bytes(data), snapDone: done, snapTotalBytes: 6 });
  chunk(0, 'aa', false);
  assert.deepEqual(events, ['begin 10 6', 'write aa'], 'the first chunk reaches the sink at once');
  chunk(2, 'bb', false);
  chunk(0, 'aa', false); // the leader starts over: the half-received one is dropped
  assert.deepEqual(events.slice(2), ['write bb', 'abort', 'begin 10 6', 'write aa']);
  r.ready();
  r.advance();
  failWrites = true;
  chunk(2, 'bb', false);
  const refused = r.ready();
  r.advance();
  assert.deepEqual(refused.messages.map((m) => [m.type, m.snapOffset, m.reject]), [[MessageType.SnapResp, 0, true]], 'a failing sink refuses the snapshot');
  assert.equal(events[events.length - 1], 'abort');
  failWrites = false;
  chunk(0, 'aa', false);
  chunk(2, 'bb', false);
  chunk(4, 'cc', true);
  const rd = r.ready();
  assert.equal(text(readAllSnapshotData(rd.snapshot!.data)), 'aabbcc');
});

test('compact keeps keepEntries entries before the snapshot index, and refuses to snapshot beyond applied', () => {
  const c = new Cluster(3);
  c.elect(1);
  for (const x of ['x', 'y', 'z']) c.node(1).propose(bytes(x));
  c.stabilize();
  const r = c.node(1);
  assert.equal(r.status().applied, 7);
  assert.throws(() => r.compact(8, snapshotBytes(bytes('s'))), /snapshot at 8 beyond applied 7/);
  r.compact(7, snapshotBytes(bytes('s')), 2);
  assert.deepEqual([r.status().firstIndex, r.log.snapshot?.meta.index], [6, 7]);
});

// ---- the vote hold after a start --------------------------------------------------------------------

/** Node 3 of (1 2 3) restarted at term 2 with the bootstrap log; its election timeout is 19 ticks. */
function restartedNode(): Raft {
  return new Raft({ id: 3, voters: [], electionTicks: 10, rand: (n) => n - 1 }, { hardState: { term: 2, vote: 1, commit: 3 }, entries: founders });
}

function answers(r: Raft): [string, number, boolean][] {
  const rd = r.ready();
  r.advance();
  return rd.messages.map((m) => [m.type, m.term, m.reject ?? false]);
}

test('a node that starts holds its votes, pre-votes and own campaign for an election timeout', () => {
  const r = restartedNode();
  const ask = (type: MessageType): void => r.step({ type, from: 2, to: 3, term: 3, index: 3, logTerm: 1 });
  r.campaign();
  assert.equal(r.role, Role.Follower, 'no campaign, which would be a vote for itself');
  for (let i = 0; i < 9; i++) r.tick();
  ask(MessageType.PreVote);
  ask(MessageType.Vote);
  assert.deepEqual(answers(r), [[MessageType.PreVoteResp, 2, true]], 'the pre-vote is refused, the vote ignored');
  assert.equal(r.term, 2, 'a held vote request does not raise the term');
  r.tick(); // the tenth: one election timeout since the start
  ask(MessageType.PreVote);
  ask(MessageType.Vote);
  assert.deepEqual(answers(r), [[MessageType.PreVoteResp, 3, false], [MessageType.VoteResp, 3, false]]);
  assert.equal(r.vote, 2);
});

test('a leadership transfer is not held: a started node grants a forced vote and campaigns on TimeoutNow', () => {
  const r = restartedNode();
  r.step({ type: MessageType.Vote, from: 2, to: 3, term: 3, index: 3, logTerm: 1, force: true });
  assert.deepEqual(answers(r), [[MessageType.VoteResp, 3, false]]);
  const t = restartedNode();
  t.step({ type: MessageType.TimeoutNow, from: 1, to: 3, term: 2 });
  assert.equal(t.role, Role.Candidate);
});

test('a follower that restarts does not elect a new leader while the old leader reads on a lease that counted it', () => {
  const c = new Cluster(3, { leaseRead: true, checkQuorum: true, preVote: true });
  c.elect(1);
  c.isolated.add(3); // node 1's lease rests on node 2's acknowledgements alone
  for (let i = 0; i < 12; i++) c.tickAll();
  assert.equal(c.node(1).role, Role.Leader);
  c.restart(2);
  c.isolated.clear();
  c.isolated.add(1);
  c.node(3).campaign(); // node 3 has not heard from a leader for long: as if its timeout fired now
  c.stabilize();
  let written = 0;
  for (let ticks = 0; ticks <= 40 && written === 0; ticks++) {
    const leader = [2, 3].find((id) => c.node(id).role === Role.Leader);
    if (leader !== undefined) {
      written = c.node(leader).propose(bytes('w')).index;
      c.stabilize();
      assert.equal(c.node(leader).status().commit, written);
      if (c.node(1).role !== Role.Leader) break;
      c.node(1).readIndex(bytes('r'));
      c.processReady(1);
      const read = c.readStates.get(1)!.at(-1);
      if (read !== undefined) assert.ok(read.index >= written, `node 1 read at ${read.index} on its lease, missing write ${written} (after ${ticks} ticks)`);
    }
    c.tickAll();
  }
  assert.ok(written > 0, 'nodes 2 and 3 elected a leader once node 2 stopped holding its vote');
});

// ---- votes ------------------------------------------------------------------------------------------

test('a vote goes only to a log with a newer last term, or the same last term and at least our length', () => {
  // Node 3's log ends at 2/5.
  const r = new Raft({ id: 3, voters: [], rand: () => 0, preVote: false, checkQuorum: false, voteHoldTicks: 0 }, { hardState: { term: 2, vote: 0, commit: 3 }, entries: [...founders, emptyEntry(4, 2), emptyEntry(5, 2)] });
  const ask = (term: number, logTerm: number, index: number): void => r.step({ type: MessageType.Vote, from: 1, to: 3, term, index, logTerm });
  ask(3, 1, 9); // longer, but of an older term
  ask(4, 2, 4); // same last term, shorter
  ask(5, 2, 5); // same last term and length
  ask(6, 3, 4); // newer last term, shorter
  assert.deepEqual(answers(r), [
    [MessageType.VoteResp, 3, true],
    [MessageType.VoteResp, 4, true],
    [MessageType.VoteResp, 5, false],
    [MessageType.VoteResp, 6, false],
  ]);
});

test('a follower that knows the leader of its term grants no vote or pre-vote in that term, though it never voted', () => {
  const r = new Raft({ id: 3, voters: [], rand: () => 0, checkQuorum: false, voteHoldTicks: 0 }, { hardState: { term: 1, vote: 0, commit: 3 }, entries: founders });
  r.step({ type: MessageType.App, from: 1, to: 3, term: 2, index: 3, logTerm: 1, commit: 3, entries: [] });
  answers(r);
  assert.deepEqual([r.term, r.vote, r.leader], [2, 0, 1]);
  r.step({ type: MessageType.Vote, from: 2, to: 3, term: 2, index: 3, logTerm: 1 });
  r.step({ type: MessageType.PreVote, from: 2, to: 3, term: 2, index: 3, logTerm: 1 });
  assert.deepEqual(answers(r), [[MessageType.VoteResp, 2, true], [MessageType.PreVoteResp, 2, true]]);
});

// ---- regressions: bugs found in review ----------------------------------------------------------------------

test(
  'a follower that already holds the snapshot entry acknowledges only the snapshot index',
  () => {
    // Node 3 at term 3: entries 1..5 match the leader; 6..8 come from a deposed leader of term 2.
    const entries: Entry[] = [];
    for (let i = 1; i <= 8; i++) entries.push({ index: i, term: i <= 3 ? 1 : 2, type: EntryType.Normal, data: new Uint8Array(0) });
    const r = new Raft({ id: 3, voters: [], rand: () => 0 }, { hardState: { term: 3, vote: 0, commit: 4 }, entries });
    const meta = { index: 5, term: 2, conf: { voters: [1, 2, 3], learners: [] } };
    r.step({ type: MessageType.Snap, from: 1, to: 3, term: 3, snapshot: meta, snapOffset: 0, snapData: bytes('s'), snapDone: true, snapTotalBytes: 1 });
    const resp = r.ready().messages.find((m) => m.type === MessageType.AppResp);
    assert.ok(resp !== undefined);
    assert.equal(r.status().commit, 5);
    assert.equal(resp.index, 5, 'entries 6..8 were never checked against the leader: they must not be acknowledged');
  },
);

test(
  'campaign() on a leader is a no-op',
  () => {
    const c = new Cluster(3);
    c.elect(1);
    c.node(1).campaign();
    assert.equal(c.node(1).role, Role.Leader);
  },
);

/**
 * Runs the lease-read race: node 1 leads and is cut off; the others elect a leader and commit
 * `w`; node 1, still a leader, serves a lease read. Returns the read and the index of `w`.
 */
function leaseReadAfterPartition(seed: number): { read: ReadState | undefined; written: number; ticks: number } {
  const c = new Cluster(3, { leaseRead: true, checkQuorum: true, preVote: true }, seed);
  c.elect(1);
  c.isolated.add(1);
  let written = 0;
  for (let ticks = 1; ticks <= 40; ticks++) {
    c.tickAll();
    const leader = [2, 3].find((id) => c.node(id).role === Role.Leader);
    if (written === 0 && leader !== undefined && c.node(leader).status().commit > 4) {
      written = c.node(leader).propose(bytes('w')).index;
      c.stabilize();
      assert.equal(c.node(leader).status().commit, written);
    }
    if (written > 0) {
      if (c.node(1).role !== Role.Leader) return { read: undefined, written, ticks };
      c.node(1).readIndex(bytes('r'));
      c.processReady(1);
      return { read: c.readStates.get(1)!.at(-1), written, ticks };
    }
  }
  assert.fail('no new leader was elected');
}

test(
  'a lease read never misses a write that committed before it started',
  () => {
    for (let seed = 1; seed <= 5; seed++) {
      const { read, written, ticks } = leaseReadAfterPartition(seed);
      if (read !== undefined) assert.ok(read.index >= written, `seed ${seed}: read at ${read.index} misses write ${written} committed by tick ${ticks}`);
    }
  },
);

test(
  'a leader serves no lease read once it handed leadership over',
  () => {
    const c = new Cluster(3, { leaseRead: true, checkQuorum: true });
    c.elect(1);
    c.node(1).transferLeader(2);
    c.processReady(1); // TimeoutNow goes out
    c.isolated.add(1); // then node 1 hears nothing more
    c.stabilize();
    assert.equal(c.node(2).role, Role.Leader);
    const written = c.node(2).propose(bytes('w')).index;
    c.stabilize();
    assert.equal(c.node(2).status().commit, written);
    assert.equal(c.node(1).role, Role.Leader);
    c.node(1).readIndex(bytes('r'));
    c.processReady(1);
    const read = c.readStates.get(1)!.at(-1);
    if (read !== undefined) assert.ok(read.index >= written, `read at ${read.index} misses write ${written}`);
  },
);

test(
  'a leader whose ticks stopped (a stalled process) serves no lease read once real time says the lease is over',
  () => {
    for (const realTimeCheck of [false, true]) {
      let stalled = false;
      // The driver's real-time check: it fails once node 1's process has stalled past its lease.
      const leaseHolds = (): boolean => !(realTimeCheck && stalled);
      const c = new Cluster(3, { leaseRead: true, checkQuorum: true, preVote: true, leaseHolds }, 1);
      c.elect(1);
      c.node(1).tick(); // a heartbeat round that a majority answers starts node 1's lease
      c.stabilize();
      c.isolated.add(1);
      stalled = true; // node 1 gets no ticks from here on; the others' clocks run
      let written = 0;
      for (let i = 0; i < 100 && written === 0; i++) {
        c.node(2).tick();
        c.node(3).tick();
        c.stabilize();
        const leader = [2, 3].find((id) => c.node(id).role === Role.Leader);
        if (leader !== undefined && c.node(leader).status().commit > 4) {
          written = c.node(leader).propose(bytes('w')).index;
          c.stabilize();
        }
      }
      assert.ok(written > 0, 'nodes 2 and 3 elected a leader and committed a write');
      assert.equal(c.node(1).role, Role.Leader, 'node 1 still believes it leads');
      c.node(1).readIndex(bytes('r'));
      c.processReady(1);
      const read = c.readStates.get(1)!.at(-1);
      if (realTimeCheck) assert.equal(read, undefined, 'the read waits for a heartbeat round, which an isolated leader never completes');
      else assert.ok(read !== undefined && read.index < written, 'without the real-time check, ticks alone let the stalled leader read stale state');
    }
  },
);

// ---- mutation testing of raft.ts: tests that kill surviving mutants -------------------------------------

test('a leader that steps down drops its pending reads: led again in a later term, it answers none of them', () => {
  const c = new Cluster(3, { preVote: false, checkQuorum: false });
  c.elect(1);
  c.isolated.add(1);
  c.node(1).readIndex(bytes('old')); // its heartbeat round is lost: node 1 no longer leads
  c.processReady(1);
  c.elect(2);
  const written = c.node(2).propose(bytes('w')).index;
  c.stabilize();
  assert.equal(c.node(2).status().commit, written);
  c.isolated.clear();
  c.tickAll(); // node 2's heartbeat deposes node 1, which catches up
  assert.equal(c.node(1).role, Role.Follower);
  c.elect(1); // a new term: its heartbeat rounds must not confirm the read of the old one
  c.tickAll();
  const old = c.readStates.get(1)!.filter((r) => text(r.context) === 'old');
  assert.deepEqual(old.map((r) => r.index).filter((i) => i < written), [], `a read of the old term answered below write ${written}`);
});

test('check-quorum: a leader of three that hears from one follower keeps leading, timeout after timeout', () => {
  const c = new Cluster(3, { checkQuorum: true });
  c.elect(1);
  c.isolated.add(3);
  for (let i = 0; i < 3 * 10; i++) c.tickAll();
  assert.equal(c.node(1).role, Role.Leader, 'itself and node 2 are a quorum');
  c.isolated.add(2);
  for (let i = 0; i < 2 * 10; i++) c.tickAll();
  assert.equal(c.node(1).role, Role.Follower, 'alone it steps down');
});

test('a follower appends no chunk of another snapshot to the one it receives, and says where each transfer starts over', () => {
  const r = new Raft({ id: 3, voters: [], rand: () => 0 }, { hardState: { term: 2, vote: 1, commit: 3 }, entries: founders });
  const conf = { voters: [1, 2, 3], learners: [] };
  const chunk = (index: number, offset: number, data: string, done: boolean): void =>
    r.step({ type: MessageType.Snap, from: 1, to: 3, term: 2, snapshot: { index, term: 2, conf }, snapOffset: offset, snapData: bytes(data), snapDone: done, snapTotalBytes: 4 });
  const replies = (): [string, number | undefined, number | undefined, boolean][] => {
    const rd = r.ready();
    r.advance();
    assert.equal(rd.snapshot, undefined);
    return rd.messages.map((m) => [m.type, m.index, m.snapOffset, m.reject ?? false]);
  };
  chunk(12, 2, 'XY', true); // no transfer under way: start over, it is no refusal
  assert.deepEqual(replies(), [[MessageType.SnapResp, 12, 0, false]]);
  chunk(10, 0, 'ab', false);
  chunk(12, 2, 'XY', true); // a delayed chunk of snapshot 12, at the offset snapshot 10 reached
  assert.deepEqual(replies(), [[MessageType.SnapResp, 10, 2, false], [MessageType.SnapResp, 12, 0, false]]);
  chunk(10, 2, 'cd', true);
  const rd = r.ready();
  assert.equal(rd.snapshot?.meta.index, 10);
  assert.equal(text(readAllSnapshotData(rd.snapshot!.data)), 'abcd');
});

test('a snapshot records the membership at its index after earlier compactions, and compact never goes back', () => {
  // Entries 1-3 found (1 2 3); 5 adds learner 4, 10 adds learner 5; all committed.
  const entries = [...founders];
  for (let i = 4; i <= 10; i++) entries.push(i === 5 ? confEntry(5, 2, ConfChangeType.AddLearner, 4) : i === 10 ? confEntry(10, 2, ConfChangeType.AddLearner, 5) : emptyEntry(i, 2));
  const r = new Raft({ id: 1, voters: [], rand: () => 0 }, { hardState: { term: 2, vote: 1, commit: 10 }, entries });
  r.ready();
  r.advance();
  assert.equal(r.status().applied, 10);
  r.compact(7, snapshotBytes(bytes('s7')));
  r.compact(8, snapshotBytes(bytes('s8')));
  assert.deepEqual(r.log.snapshot?.meta, { index: 8, term: 2, conf: { voters: [1, 2, 3], learners: [4] } });
  r.compact(9, snapshotBytes(bytes('s9')), 3); // keeps entries 7..9
  r.compact(8, snapshotBytes(bytes('s8 again')));
  assert.equal(r.log.snapshot?.meta.index, 9, 'an older snapshot does not replace a newer one');
  assert.deepEqual(r.confAt(9), { voters: [1, 2, 3], learners: [4] });
});

test('a learner that gets TimeoutNow does not campaign', () => {
  const r = new Raft({ id: 4, voters: [], rand: () => 0 }, { hardState: { term: 2, vote: 0, commit: 4 }, entries: [...founders, confEntry(4, 2, ConfChangeType.AddLearner, 4)] });
  r.step({ type: MessageType.TimeoutNow, from: 1, to: 4, term: 2 });
  assert.deepEqual([r.role, r.term], [Role.Follower, 2]);
});

test('a follower answers a delayed append below its commit index with its commit index', () => {
  const r = new Raft({ id: 3, voters: [], rand: () => 0 }, { hardState: { term: 2, vote: 1, commit: 5 }, entries: [...founders, emptyEntry(4, 2), emptyEntry(5, 2)] });
  r.step({ type: MessageType.App, from: 1, to: 3, term: 2, index: 3, logTerm: 1, commit: 4, entries: [emptyEntry(4, 2)] });
  assert.deepEqual(r.ready().messages.map((m) => [m.type, m.index, m.reject ?? false]), [[MessageType.AppResp, 5, false]]);
});

test('a leader sends TimeoutNow only once the transferee holds its whole log', () => {
  const c = new Cluster(3, { appendBytesMax: 30 }); // one entry per append
  c.elect(1);
  c.isolated.add(3);
  for (const x of ['x', 'y', 'z']) c.node(1).propose(bytes(x));
  c.stabilize();
  c.isolated.clear();
  c.node(1).transferLeader(3);
  c.stabilize();
  assert.equal(c.node(3).role, Role.Leader);
  assert.equal(c.node(3).status().term, 3, 'one election, won at once');
});

test('a follower aborts the sink of a snapshot it drops: one that came short, or one its commit index passed', () => {
  const events: string[] = [];
  const sink: SnapshotSink = {
    begin: (m, total) => {
      events.push(`begin ${m.index} ${total}`);
      return { write: (c) => void events.push(`write ${text(c)}`), complete: () => snapshotBytes(bytes('')), abort: () => void events.push('abort') };
    },
  };
  const r = new Raft({ id: 3, voters: [], rand: () => 0, snapshotSink: sink }, { hardState: { term: 2, vote: 1, commit: 3 }, entries: founders });
  const meta = { index: 5, term: 2, conf: { voters: [1, 2, 3], learners: [] } };
  const chunk = (offset: number, data: string, done: boolean): void =>
    r.step({ type: MessageType.Snap, from: 1, to: 3, term: 2, snapshot: meta, snapOffset: offset, snapData: bytes(data), snapDone: done, snapTotalBytes: 4 });
  chunk(0, 'aa', false);
  chunk(2, 'b', true); // one byte short
  assert.deepEqual(events, ['begin 5 4', 'write aa', 'write b', 'abort']);
  chunk(0, 'aa', false);
  // Meanwhile the log reaches and commits index 5: the snapshot is of no use any more.
  r.step({ type: MessageType.App, from: 1, to: 3, term: 2, index: 3, logTerm: 1, commit: 5, entries: [emptyEntry(4, 2), emptyEntry(5, 2)] });
  chunk(2, 'bb', true);
  assert.deepEqual(events.slice(4), ['begin 5 4', 'write aa', 'abort']);
  assert.equal(r.ready().snapshot, undefined);
});

test('a lease needs heartbeat answers from a majority whichever node leads, in a group of three or five', () => {
  // Group size, leader, followers that keep answering after the first round; the rest are cut off.
  for (const [size, leader, answering] of [[3, 2, []], [3, 3, []], [5, 1, [3]], [5, 4, [2]]] as [number, number, number[]][]) {
    const c = new Cluster(size, { leaseRead: true, checkQuorum: true });
    c.elect(leader);
    const r = c.node(leader);
    c.tickAll(); // every follower answers the round of leader tick 1
    for (let id = 1; id <= size; id++) if (id !== leader && !answering.includes(id)) c.isolated.add(id);
    const servedAtOnce = (ctx: string): boolean => {
      r.readIndex(bytes(ctx));
      c.processReady(leader);
      return c.readStates.get(leader)!.some((rs) => text(rs.context) === ctx);
    };
    for (let i = 0; i < 7; i++) {
      r.tick();
      c.stabilize();
    }
    assert.ok(servedAtOnce('at 8'), `${size}/${leader}: 7 ticks after the round a majority answered`);
    r.tick();
    c.stabilize();
    assert.equal(servedAtOnce('at 9'), false, `${size}/${leader}: answers since then came from a minority: no lease`);
  }
});

test('a follower whose newest membership entry is the first entry a new leader replaces goes back to the membership before it', () => {
  const r = new Raft({ id: 3, voters: [], rand: () => 0 }, { hardState: { term: 2, vote: 1, commit: 3 }, entries: founders });
  r.step({ type: MessageType.App, from: 1, to: 3, term: 2, index: 3, logTerm: 1, commit: 3, entries: [emptyEntry(4, 2), confEntry(5, 2, ConfChangeType.AddLearner, 4)] });
  assert.deepEqual(r.confState(), { voters: [1, 2, 3], learners: [4] });
  r.step({ type: MessageType.App, from: 2, to: 3, term: 3, index: 4, logTerm: 2, commit: 3, entries: [emptyEntry(5, 3)] });
  assert.deepEqual(r.confState(), { voters: [1, 2, 3], learners: [] });
});

test('a snapshot taken between membership changes records the membership at its index, on the leader and a follower', () => {
  const c = new Cluster(3);
  c.elect(1);
  c.addLearners(4, 5); // entries 5 and 6
  c.node(1).proposeConfChange({ type: ConfChangeType.Remove, node: 5 }); // entry 7
  c.stabilize();
  const learnersAt = [[], [4], [4, 5], [4], [4]]; // at indexes 4 to 8
  for (const id of [1, 2]) {
    assert.deepEqual([4, 5, 6, 7, 8].map((i) => c.node(id).confAt(i).learners), learnersAt);
    c.node(id).compact(5, snapshotBytes(bytes('s')));
    assert.deepEqual(c.node(id).log.snapshot?.meta.conf, { voters: [1, 2, 3], learners: [4] });
    assert.deepEqual(c.node(id).confState(), { voters: [1, 2, 3], learners: [4] });
  }
});

test('a leader ignores answers from a node outside its membership', () => {
  const c = new Cluster(3);
  c.elect(1);
  const r = c.node(1);
  for (const type of [MessageType.AppResp, MessageType.HeartbeatResp, MessageType.SnapResp]) r.step({ type, from: 9, to: 1, term: r.term, index: 4 });
  assert.equal(r.role, Role.Leader);
});

test('the only voter answers a read at once', () => {
  const c = new Cluster(1);
  c.elect(1);
  c.node(1).readIndex(bytes('r'));
  c.processReady(1);
  assert.deepEqual(c.readStates.get(1)!.map((rs) => [rs.index, text(rs.context)]), [[c.node(1).status().commit, 'r']]);
});

test('a vote granted in the current term is synced before its answer goes out', () => {
  const r = new Raft({ id: 3, voters: [], rand: () => 0, preVote: false, checkQuorum: false, voteHoldTicks: 0 }, { hardState: { term: 2, vote: 0, commit: 3 }, entries: founders });
  r.step({ type: MessageType.Vote, from: 1, to: 3, term: 2, index: 3, logTerm: 1 });
  const rd = r.ready();
  assert.deepEqual(rd.messages.map((m) => [m.type, m.reject ?? false]), [[MessageType.VoteResp, false]]);
  assert.deepEqual([rd.hardState?.vote, rd.mustSync, rd.sendBeforePersist], [1, true, false]);
});

test('a node that leads as soon as it campaigns (the only voter) persists its new term before it sends', () => {
  const r = new Raft({ id: 1, voters: [1], rand: () => 0, voteHoldTicks: 0 });
  r.ready();
  r.advance();
  r.campaign();
  assert.equal(r.role, Role.Leader);
  const rd = r.ready();
  assert.deepEqual([rd.hardState?.term, rd.hardState?.vote, rd.mustSync, rd.sendBeforePersist], [2, 1, true, false]);
});

test('a snapshot that arrives while a Ready is in flight comes out in the next Ready, not lost by advance()', () => {
  const r = new Raft({ id: 3, voters: [], rand: () => 0 }, { hardState: { term: 2, vote: 1, commit: 3 }, entries: founders });
  r.step({ type: MessageType.App, from: 1, to: 3, term: 2, index: 3, logTerm: 1, commit: 3, entries: [emptyEntry(4, 2)] });
  const first = r.ready();
  assert.equal(first.snapshot, undefined);
  const meta = { index: 10, term: 2, conf: { voters: [1, 2, 3], learners: [] } };
  r.step({ type: MessageType.Snap, from: 1, to: 3, term: 2, snapshot: meta, snapOffset: 0, snapData: bytes('s'), snapDone: true, snapTotalBytes: 1 });
  r.advance();
  const rd = r.ready();
  assert.equal(rd.snapshot?.meta.index, 10, 'the driver must persist and restore it');
  r.advance();
  assert.equal(r.status().applied, 10);
});

// ---- mutation testing, run E: the constructor, snapshot bytes, the snapshot sender --------------------

/** A node that applied founders and entries 4..10 (term 2), so it may snapshot anywhere up to 10. */
function appliedTo10(): Raft {
  const entries = [...founders];
  for (let i = 4; i <= 10; i++) entries.push(emptyEntry(i, 2));
  const r = new Raft({ id: 1, voters: [], rand: () => 0 }, { hardState: { term: 2, vote: 1, commit: 10 }, entries });
  r.ready();
  r.advance();
  return r;
}

const snapshotText = (r: Raft): string => text(readAllSnapshotData(r.log.snapshot!.data));

test('replaceSnapshotData swaps the bytes of the current snapshot only for a copy of its index and size', () => {
  const r = appliedTo10();
  assert.equal(r.replaceSnapshotData(7, snapshotBytes(bytes('state 7'))), false, 'no snapshot yet');
  assert.equal(r.log.snapshot, undefined);
  r.compact(7, snapshotBytes(bytes('state 7')));
  // The driver writes snapshot 7 to a file while the node moves on to snapshot 9, of the same size:
  // the file of 7 must not become the bytes of 9, or a follower would install state 7 as index 9.
  r.compact(9, snapshotBytes(bytes('state 9')));
  const meta = r.log.snapshot!.meta;
  assert.equal(r.replaceSnapshotData(7, snapshotBytes(bytes('state 7'))), false, 'the snapshot moved on');
  assert.equal(r.replaceSnapshotData(9, snapshotBytes(bytes('state 9 and more'))), false, 'not a copy: another size');
  assert.equal(snapshotText(r), 'state 9');
  assert.equal(r.replaceSnapshotData(9, snapshotBytes(bytes('STATE 9'))), true);
  assert.equal(snapshotText(r), 'STATE 9');
  assert.deepEqual(r.log.snapshot!.meta, meta);
  assert.deepEqual(meta, { index: 9, term: 2, conf: { voters: [1, 2, 3], learners: [] } });
});

test('snapshotMeta refuses an index compacted away', () => {
  const r = appliedTo10();
  r.compact(7, snapshotBytes(bytes('s')));
  assert.throws(() => r.snapshotMeta(6), /snapshot at compacted index 6/);
  assert.deepEqual(r.snapshotMeta(7), { index: 7, term: 2, conf: { voters: [1, 2, 3], learners: [] } });
});

test('a configuration that breaks a rule the core relies on is refused when the node is made', () => {
  const make = (c: Partial<RaftConfig>): Raft => new Raft({ id: 1, voters: [1, 2, 3], rand: () => 0, ...c });
  assert.throws(() => make({ id: 0 }), /node id must be positive/);
  assert.throws(() => make({ heartbeatTicks: 0 }), /electionTicks must exceed heartbeatTicks/);
  assert.throws(() => make({ heartbeatTicks: 3, electionTicks: 3 }), /electionTicks must exceed heartbeatTicks/);
  // A lease is safe only because a leader that stops hearing from a majority steps down.
  assert.throws(() => make({ leaseRead: true, checkQuorum: false }), /leaseRead needs checkQuorum/);
  assert.throws(() => make({ voteHoldTicks: -1 }), /voteHoldTicks must not be negative/);
  for (const ok of [{ heartbeatTicks: 2, electionTicks: 3 }, { leaseRead: true, checkQuorum: true }, { voteHoldTicks: 0 }]) make(ok);
});

test('the log a node is restored from must be contiguous from its snapshot and hold the commit index', () => {
  const conf = { voters: [1, 2, 3], learners: [] };
  const snapshot = { meta: { index: 10, term: 2, conf }, data: snapshotBytes(bytes('s')) };
  const restore = (st: RestoredState): Raft => new Raft({ id: 1, voters: [], rand: () => 0 }, st);
  assert.throws(() => restore({ hardState: { term: 2, vote: 1, commit: 4 }, entries: founders }), /commit 4 is beyond the last index 3/);
  assert.throws(() => restore({ hardState: { term: 2, vote: 1, commit: 10 }, snapshot, entries: [emptyEntry(12, 2)] }), /restored log is not contiguous at 12/);
  assert.throws(() => restore({ hardState: { term: 2, vote: 1, commit: 10 }, snapshot, entries: [emptyEntry(10, 2), emptyEntry(11, 2)] }), /restored log is not contiguous at 10/);
  assert.throws(() => restore({ hardState: { term: 2, vote: 1, commit: 0 }, entries: founders.slice(1) }), /restored log is not contiguous at 2/);
  const r = restore({ hardState: { term: 2, vote: 1, commit: 10 }, snapshot, entries: [emptyEntry(11, 2)] });
  assert.deepEqual([r.status().firstIndex, r.status().lastIndex, r.status().commit, r.status().applied], [11, 11, 10, 10]);
});

test('a node restored from a snapshot never bootstraps, even with no durable term; a node with no log has no members', () => {
  const conf = { voters: [1, 2, 3], learners: [4] };
  const snapshot = { meta: { index: 10, term: 2, conf }, data: snapshotBytes(bytes('s')) };
  const r = new Raft({ id: 1, voters: [1, 2, 3], rand: () => 0 }, { hardState: { term: 0, vote: 0, commit: 0 }, snapshot, entries: [] });
  assert.deepEqual([r.status().firstIndex, r.status().lastIndex, r.status().commit, r.term], [11, 10, 10, 0]);
  assert.deepEqual(r.confState(), conf);
  const joiner = new Raft({ id: 4, voters: [], rand: () => 0 });
  assert.deepEqual([joiner.status().lastIndex, joiner.term], [0, 0]);
  assert.deepEqual(joiner.confAt(0), { voters: [], learners: [] });
});

test('a leader that compacts again while it streams a snapshot starts the newer one over, and the follower installs that one', () => {
  const c = new Cluster(3, { snapshotChunkBytes: 4 });
  c.elect(1);
  const leader = c.node(1);
  c.isolated.add(3);
  for (const x of ['x', 'y']) leader.propose(bytes(x));
  c.stabilize();
  leader.compact(6, snapshotBytes(bytes('aaaabbbbcccc')));
  c.isolated.clear();
  leader.tick(); // node 3 answers the heartbeat, refuses the append and is sent snapshot 6
  for (let round = 0; round < 10; round++) {
    for (const id of [1, 2, 3]) c.processReady(id);
    c.drop((m) => m.type === MessageType.Snap && (m.snapOffset ?? 0) > 0); // it gets the first chunk only
    c.deliver();
  }
  assert.equal(leader.status().progress.get(3)?.state, ProgressState.Snapshot);
  c.isolated.add(3);
  for (const x of ['z', 'w']) leader.propose(bytes(x));
  c.stabilize();
  leader.compact(8, snapshotBytes(bytes('AAAABBBB')));
  c.isolated.clear();
  for (let i = 0; i < 2 * 10; i++) c.tickAll();
  const follower = c.node(3);
  assert.equal(follower.log.snapshot?.meta.index, 8, 'the transfer of snapshot 6 went on with the bytes of 8, or stalled');
  assert.equal(snapshotText(follower), 'AAAABBBB');
  assert.equal(follower.status().lastIndex, leader.status().lastIndex);
});

test('an empty snapshot is streamed too: one chunk of no bytes', () => {
  const c = new Cluster(3);
  c.elect(1);
  const leader = c.node(1);
  c.isolated.add(3);
  for (const x of ['x', 'y']) leader.propose(bytes(x));
  c.stabilize();
  leader.compact(6, snapshotBytes(new Uint8Array(0)));
  c.isolated.clear();
  for (let i = 0; i < 2 * 10; i++) c.tickAll();
  assert.equal(c.node(3).log.snapshot?.meta.index, 6);
  assert.equal(c.node(3).log.snapshot?.data.byteLength, 0);
  assert.equal(c.node(3).status().applied, 6);
});

test('a follower answers a heartbeat at once while its Ready is being written, unless its term is not yet durable', () => {
  const r = new Raft({ id: 3, voters: [], rand: () => 0 }, { hardState: { term: 2, vote: 1, commit: 3 }, entries: founders });
  r.step({ type: MessageType.App, from: 1, to: 3, term: 2, index: 3, logTerm: 1, commit: 3, entries: [emptyEntry(4, 2)] });
  const writing = r.ready();
  assert.equal(writing.entries.length, 1, 'entry 4 is being written');
  r.step({ type: MessageType.Heartbeat, from: 1, to: 3, term: 2, commit: 3, readSeq: 7, hbTick: 5 });
  assert.deepEqual(r.takeReadPath().messages.map((m) => [m.type, m.to, m.term, m.readSeq]), [[MessageType.HeartbeatResp, 1, 2, 7]]);
  assert.deepEqual(r.takeReadPath().messages, [], 'taken once');
  r.advance();
  assert.ok(!r.ready().messages.some((m) => m.type === MessageType.HeartbeatResp), 'not sent again after the write');
  r.advance();
  // A heartbeat of a new term: the term must be written before the answer that vouches for it.
  r.step({ type: MessageType.Heartbeat, from: 2, to: 3, term: 3, commit: 3, readSeq: 1, hbTick: 9 });
  assert.deepEqual(r.takeReadPath().messages, []);
  const next = r.ready();
  assert.ok(next.mustSync && next.hardState?.term === 3);
  assert.deepEqual(next.messages.map((m) => m.type), [MessageType.HeartbeatResp], 'it goes after the write');
  r.step({ type: MessageType.Heartbeat, from: 2, to: 3, term: 3, commit: 3, readSeq: 2, hbTick: 10 });
  assert.deepEqual(r.takeReadPath().messages, [], 'nor while the Ready with the new term is being written');
  r.advance();
  assert.equal(r.takeReadPath().messages.length, 1, 'once it is written');
});

test('a leader sends the heartbeats of a read at once while its Ready is being written, and confirms the read on their answers', () => {
  const c = new Cluster(3);
  c.elect(1);
  const leader = c.node(1);
  leader.propose(bytes('x'));
  const writing = leader.ready();
  assert.equal(writing.entries.length, 1);
  leader.readIndex(bytes('r'));
  const heartbeats = leader.takeReadPath().messages;
  assert.deepEqual(heartbeats.map((m) => [m.type, m.to]).sort(), [[MessageType.Heartbeat, 2], [MessageType.Heartbeat, 3]]);
  for (const m of heartbeats) {
    const follower = c.node(m.to);
    follower.step(m);
    for (const answer of follower.takeReadPath().messages) leader.step(answer);
  }
  assert.deepEqual(leader.takeReadPath().readStates.map((s) => text(s.context)), ['r'], 'confirmed by the answers, before the write ends');
  leader.advance();
  const rd = leader.ready();
  assert.deepEqual(rd.readStates, [], 'not handed out twice');
  assert.ok(!rd.messages.some((m) => m.type === MessageType.Heartbeat), 'nor its heartbeats sent twice');
});
