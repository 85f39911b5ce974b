// One simulated master: the Raft core driven the way the real journal drives it (persist, sync,
// send, apply, advance), a simulated disk, and the key-value state machine clients talk to.

import { CairnError } from '../errors.ts';
import { Raft, type RaftBug, type RaftConfig } from '../raft/raft.ts';
import { EntryType, Role, type Entry, type Message, type Ready } from '../raft/types.ts';
import { SimDisk } from './disk.ts';
import { KvMachine, decodeCommand, encodeCommand, type KvCommand } from './kv-machine.ts';
import type { Prng } from './prng.ts';

/** Ready cycles without a disk wait in a row; more means the core never settles. */
const readyCyclesMax = 100;

/** Rules of the driver that tests can switch off, beside the Raft core's own. */
export type DriverBug = 'no-fsync';

export interface ClientRequest {
  opId: number;
  attempt: number;
  client: number;
  kind: 'append' | 'get';
  key: string;
  value: string;
  seq: number;
}

export type ClientReply =
  | { opId: number; attempt: number; ok: true; value?: string }
  | { opId: number; attempt: number; ok: false; leader: number; code: string };

/** What the simulation observes of a node, for its checkers. */
export interface NodeObserver {
  onReady(node: SimNode, rd: Ready): void;
  onApply(node: SimNode, e: Entry): void;
  onRestart(node: SimNode, tornBytes: number): void;
}

export interface SimNodeEnv {
  prng: Prng;
  now(): number;
  after(delayMs: number, run: () => void): void;
  send(m: Message): void;
  reply(client: number, r: ClientReply): void;
  diskLatencyMs(node: SimNode): number;
  observer: NodeObserver;
  raftConfig(id: number): Omit<RaftConfig, 'id' | 'rand'>;
  bugs: ReadonlySet<RaftBug | DriverBug>;
  /** Take a snapshot once this many entries were applied since the last one. */
  snapshotEveryEntries: number;
  trace?: (line: string) => void;
}

export class SimNode {
  readonly id: number;
  readonly disk = new SimDisk();
  raft!: Raft;
  sm = new KvMachine();
  alive = false;
  /** Bumped on every crash, so that events scheduled before it are ignored after it. */
  incarnation = 0;
  private busy = false;
  private readonly env: SimNodeEnv;
  private proposals = new Map<number, { term: number; req: ClientRequest }[]>();
  private reads = new Map<number, ClientRequest>();
  private readsWaiting: { index: number; req: ClientRequest }[] = [];
  private nextReadId = 1;

  constructor(id: number, env: SimNodeEnv) {
    this.id = id;
    this.env = env;
  }

  start(): void {
    const { restored, tornBytes } = this.disk.load();
    const cfg: RaftConfig = {
      ...this.env.raftConfig(this.id),
      id: this.id,
      rand: (n) => this.env.prng.int(n),
      bugs: new Set([...this.env.bugs].filter((b): b is RaftBug => b !== 'no-fsync')),
    };
    this.raft = new Raft(cfg, restored);
    this.sm = new KvMachine();
    if (restored.snapshot !== undefined) this.sm.restore(restored.snapshot.data);
    this.alive = true;
    this.busy = false;
    this.proposals.clear();
    this.reads.clear();
    this.readsWaiting = [];
    this.env.observer.onRestart(this, tornBytes);
    this.scheduleTick();
  }

  crash(tear: boolean): void {
    this.alive = false;
    this.incarnation++;
    this.disk.crash(this.env.prng, tear);
  }

  receive(m: Message): void {
    if (!this.alive) return;
    this.raft.step(m);
    this.pump();
  }

  handleClient(req: ClientRequest): void {
    if (!this.alive) return;
    try {
      if (req.kind === 'append') this.proposeAppend(req);
      else this.startRead(req);
    } catch (err) {
      if (!(err instanceof CairnError)) throw err;
      this.env.reply(req.client, { opId: req.opId, attempt: req.attempt, ok: false, leader: this.raft.leader, code: err.code });
    }
    this.pump();
  }

  private proposeAppend(req: ClientRequest): void {
    const cmd: KvCommand = { client: req.client, seq: req.seq, key: req.key, value: req.value };
    const { index, term } = this.raft.propose(encodeCommand(cmd));
    const list = this.proposals.get(index) ?? [];
    list.push({ term, req });
    this.proposals.set(index, list);
  }

  private startRead(req: ClientRequest): void {
    const id = this.nextReadId++;
    const ctx = new Uint8Array(4);
    new DataView(ctx.buffer).setUint32(0, id);
    this.raft.readIndex(ctx);
    this.reads.set(id, req);
  }

  private scheduleTick(): void {
    const inc = this.incarnation;
    this.env.after(10, () => {
      if (!this.alive || this.incarnation !== inc) return;
      this.raft.tick();
      this.pump();
      this.scheduleTick();
    });
  }

  /** Runs ready cycles while they are due: those that must sync wait for the disk, others run now. */
  pump(): void {
    for (let cycles = 0; this.alive && !this.busy && this.raft.hasReady(); cycles++) {
      if (cycles >= readyCyclesMax) throw new Error(`invariant violated: n${this.id} ready loop did not settle`);
      const rd = this.raft.ready();
      this.env.observer.onReady(this, rd);
      if (rd.snapshot !== undefined) this.disk.saveSnapshot(rd.snapshot);
      this.disk.write(rd.hardState, rd.entries);
      const noFsync = this.env.bugs.has('no-fsync');
      if (noFsync) this.sendAll(rd.messages);
      if (!rd.mustSync) {
        this.finishReady(rd, noFsync);
        continue;
      }
      this.busy = true;
      const inc = this.incarnation;
      this.env.after(this.env.diskLatencyMs(this), () => {
        if (!this.alive || this.incarnation !== inc) return;
        this.finishReady(rd, noFsync);
        this.pump();
      });
    }
  }

  private finishReady(rd: Ready, noFsync: boolean): void {
    // With the bug, the page cache reaches the disk only now and then.
    if (!noFsync || this.env.prng.chance(0.3)) this.disk.sync();
    if (!noFsync) this.sendAll(rd.messages);
    this.apply(rd);
    this.raft.advance();
    this.busy = false;
    this.maybeSnapshot();
  }

  private sendAll(messages: Message[]): void {
    for (const m of messages) this.env.send(m);
  }

  private apply(rd: Ready): void {
    if (rd.snapshot !== undefined) {
      this.sm.restore(rd.snapshot.data);
      this.env.trace?.(`n${this.id} restored snapshot at ${rd.snapshot.meta.index}`);
    }
    for (const e of rd.committed) {
      this.env.observer.onApply(this, e);
      if (e.type === EntryType.Normal && e.data.length > 0) this.sm.apply(decodeCommand(e.data));
      this.answerProposals(e);
    }
    for (const rs of rd.readStates) {
      const id = new DataView(rs.context.buffer, rs.context.byteOffset, rs.context.byteLength).getUint32(0);
      const req = this.reads.get(id);
      if (req === undefined) continue;
      this.reads.delete(id);
      this.readsWaiting.push({ index: rs.index, req });
    }
    const applied = rd.committed.length > 0 ? rd.committed[rd.committed.length - 1].index : this.raft.log.applied;
    this.answerReads(Math.max(applied, rd.snapshot?.meta.index ?? 0));
  }

  private answerProposals(e: Entry): void {
    const list = this.proposals.get(e.index);
    if (list === undefined) return;
    this.proposals.delete(e.index);
    for (const p of list) {
      // Another leader's entry took this index: the proposal is lost, the client times out and retries.
      if (p.term !== e.term) continue;
      this.env.reply(p.req.client, { opId: p.req.opId, attempt: p.req.attempt, ok: true });
    }
  }

  private answerReads(applied: number): void {
    const still: { index: number; req: ClientRequest }[] = [];
    for (const w of this.readsWaiting) {
      if (w.index > applied) {
        still.push(w);
        continue;
      }
      const value = this.sm.get(w.req.key);
      const reply: ClientReply = { opId: w.req.opId, attempt: w.req.attempt, ok: true };
      if (value !== undefined) reply.value = value;
      this.env.reply(w.req.client, reply);
    }
    this.readsWaiting = still;
  }

  private maybeSnapshot(): void {
    const log = this.raft.log;
    const last = log.snapshot?.meta.index ?? 0;
    if (log.applied - last < this.env.snapshotEveryEntries) return;
    const keep = this.env.prng.int(8);
    this.raft.compact(log.applied, this.sm.snapshot(), keep);
    this.disk.saveSnapshot(log.snapshot!);
    if (this.env.bugs.has('no-fsync')) return;
    this.disk.sync();
    this.disk.compact(this.raft.hardState());
  }

  isLeader(): boolean {
    return this.alive && this.raft.role === Role.Leader;
  }
}
