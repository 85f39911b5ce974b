// Decides whether a recorded history of client operations is linearizable against a small sequential model.
// Wing-Gong search with Porcupine's improvements (split by key, memoized (linearized set, state)), plus reads placed
// without branching and candidates tried by deadline; pure, so the simulator, the process tests and the chaos
// harness can all share it.

import { LinearizabilityError, LinearizabilityErrorCode } from './errors.ts';

/**
 * One client operation. `call` and `ret` are the times the client sent it and got the answer.
 * `ret = Infinity` with `output = undefined`: no answer ever came, the operation may or may not have taken effect.
 * A finite `ret` with `output = undefined`: answered, but the output was not recorded, so any output fits.
 * Operations that definitely failed (the server refused them before acting) must be left out of the history.
 */
export interface Operation<I, O> {
  clientId: number;
  input: I;
  call: number;
  ret: number;
  output: O | undefined;
}

/** A sequential specification. States are values: `step` must return a new state, never mutate the old one. */
export interface Model<S, I, O> {
  init(): S;
  /** `output` undefined means the outcome is unknown, so any output is acceptable. */
  step(state: S, input: I, output: O | undefined): { ok: boolean; state: S };
  /** P-compositionality: independent sub-histories (e.g. one per key) that are checked separately. */
  partition?(history: Operation<I, O>[]): Operation<I, O>[][];
  equal(a: S, b: S): boolean;
  /** Memoization key; may collide (equal() decides), but equal states must have equal keys. */
  key(state: S): string;
  /**
   * True if the operation never changes any state (a read). Optional; it lets the search place such an operation
   * as soon as the model accepts it instead of branching on it. Claiming it for a writing operation breaks the check.
   */
  readOnly?(input: I): boolean;
  describeOp?(op: Operation<I, O>): string;
  /** For explanations; key() is used when absent. */
  describeState?(state: S): string;
}

export type CheckResult<I = unknown, O = unknown> =
  | { result: 'ok' }
  | {
      result: 'illegal';
      partitionIndex: number;
      longestPrefix: Operation<I, O>[];
      stuckOps: Operation<I, O>[];
      explanation: string;
    }
  | { result: 'unknown'; reason: string };

export interface CheckOptions {
  /** Model steps and backtracks over all partitions before giving up with 'unknown'. */
  stepBudget?: number;
  /**
   * Configurations memoized per partition (about 30 bytes each plus the state); beyond it the search stays
   * correct but may revisit configurations, so it spends the step budget faster.
   */
  memoEntriesMax?: number;
}

export const stepBudgetDefault = 5_000_000;
export const memoEntriesMaxDefault = 16_000_000;
/** How many operations of the longest prefix the explanation lists (the result carries all of them). */
export const explainPrefixTailMax = 10;

export function checkLinearizable<S, I, O>(
  model: Model<S, I, O>,
  history: Operation<I, O>[],
  opts: CheckOptions = {},
): CheckResult<I, O> {
  const stepBudget = countOption('stepBudget', opts.stepBudget ?? stepBudgetDefault);
  const memoEntriesMax = countOption('memoEntriesMax', opts.memoEntriesMax ?? memoEntriesMaxDefault);
  history.forEach(validateOperation);
  const partitions = model.partition ? model.partition(history) : [history];
  const budget = { stepsLeft: stepBudget, memoEntriesMax };
  // Smallest partitions first: a violation in a small one is found even if a big one would eat the budget.
  const order = partitions.map((_, i) => i).sort((a, b) => partitions[a].length - partitions[b].length || a - b);
  for (const index of order) {
    const ops = sortByCall(partitions[index]);
    const outcome = searchPartition(model, ops, budget);
    if (outcome.kind === 'illegal') return illegalResult(model, index, ops.length, outcome.deepest);
    if (outcome.kind === 'unknown') {
      return {
        result: 'unknown',
        reason: `step budget of ${stepBudget} exhausted in partition ${index} (${ops.length} operations); ` +
          'raise stepBudget or check a shorter history',
      };
    }
  }
  return { result: 'ok' };
}

function countOption(name: string, value: number): number {
  if (Number.isSafeInteger(value) && value >= 0) return value;
  throw new LinearizabilityError(LinearizabilityErrorCode.BadOption, `${name} must be a non-negative integer, got ${value}`);
}

function validateOperation<I, O>(op: Operation<I, O>, index: number): void {
  const bad = (why: string): never => {
    throw new LinearizabilityError(LinearizabilityErrorCode.BadOperation, `history[${index}] (client ${op.clientId}): ${why}`);
  };
  if (!Number.isFinite(op.call)) bad(`call time must be finite, got ${op.call}`);
  if (op.ret !== Infinity && !(Number.isFinite(op.ret) && op.ret >= op.call)) {
    bad(`ret must be >= call (${op.call}) or Infinity, got ${op.ret}`);
  }
  if (op.ret === Infinity && op.output !== undefined) bad('an operation that never returned cannot have an output');
}

// Bit i of the linearized set is the i-th operation by call time, so the set is mostly a run of full words and
// then a short window, which keeps memo entries small (see Bitset).
function sortByCall<I, O>(ops: Operation<I, O>[]): Operation<I, O>[] {
  return ops.slice().sort((a, b) => a.call - b.call);
}

// ---- Entry list ----
// Entry 0 is the list head; entries 1..2m are the call and return events of the m operations in time order.

const HEAD = 0;
const NONE = -1;

interface EntryList {
  next: Int32Array;
  prev: Int32Array;
  /** Operation index of each entry. */
  op: Int32Array;
  /** For a call entry, its return entry; NONE for return entries. */
  match: Int32Array;
}

// At equal times a return sorts before a call, so an operation that returned at t precedes one invoked at t (the
// simulator's clock orders them). An instantaneous operation (call = ret) sits between the two groups: after the
// returns and before the calls at that time, and two instantaneous ones at the same time are concurrent.
const RANK_RETURN = 0;
const RANK_INSTANT_CALL = 1;
const RANK_INSTANT_RETURN = 2;
const RANK_CALL = 3;

function buildEntries<I, O>(ops: Operation<I, O>[]): EntryList {
  const m = ops.length;
  // Event e: 2i is the call of op i, 2i+1 its return.
  const time = new Float64Array(2 * m);
  const rank = new Uint8Array(2 * m);
  for (let i = 0; i < m; i++) {
    const instant = ops[i].call === ops[i].ret;
    time[2 * i] = ops[i].call;
    time[2 * i + 1] = ops[i].ret;
    rank[2 * i] = instant ? RANK_INSTANT_CALL : RANK_CALL;
    rank[2 * i + 1] = instant ? RANK_INSTANT_RETURN : RANK_RETURN;
  }
  const events = Array.from({ length: 2 * m }, (_, e) => e);
  events.sort((a, b) => (time[a] < time[b] ? -1 : time[a] > time[b] ? 1 : rank[a] - rank[b] || a - b));
  return linkEntries(events);
}

function linkEntries(events: number[]): EntryList {
  const n = events.length + 1;
  const list: EntryList = {
    next: new Int32Array(n),
    prev: new Int32Array(n),
    op: new Int32Array(n).fill(NONE),
    match: new Int32Array(n).fill(NONE),
  };
  const returnEntryOf = new Int32Array(events.length >> 1);
  events.forEach((event, k) => {
    list.op[k + 1] = event >> 1;
    if ((event & 1) === 1) returnEntryOf[event >> 1] = k + 1;
  });
  events.forEach((event, k) => {
    if ((event & 1) === 0) list.match[k + 1] = returnEntryOf[event >> 1];
  });
  for (let e = 0; e < n; e++) {
    list.next[e] = e + 1 < n ? e + 1 : NONE;
    list.prev[e] = e - 1;
  }
  return list;
}

// Dancing links: a call entry and its return leave the list together and come back in reverse order. A call's
// next is never NONE because its return follows it.
function lift(list: EntryList, e: number): void {
  const { next, prev } = list;
  next[prev[e]] = next[e];
  prev[next[e]] = prev[e];
  const r = list.match[e];
  next[prev[r]] = next[r];
  if (next[r] !== NONE) prev[next[r]] = prev[r];
}

function unlift(list: EntryList, e: number): void {
  const { next, prev } = list;
  const r = list.match[e];
  next[prev[r]] = r;
  if (next[r] !== NONE) prev[next[r]] = r;
  next[prev[e]] = e;
  prev[next[e]] = e;
}

// ---- Linearized set ----

const WORD_FULL = 0xffffffff;

/**
 * A bitset that tracks its first non-full word (lo) and one past its last non-zero word (hi), so that a copy of
 * words lo..hi identifies it, and keeps two Zobrist hashes (XOR of per-bit random words) up to date in O(1).
 */
class Bitset {
  readonly words: Uint32Array;
  lo = 0;
  hi = 0;
  hashA = 0;
  hashB = 0;

  constructor(size: number) {
    this.words = new Uint32Array((size + 31) >>> 5);
  }

  set(i: number): void {
    const w = i >>> 5;
    this.words[w] |= 1 << (i & 31);
    this.toggleHash(i);
    if (w >= this.hi) this.hi = w + 1;
    while (this.lo < this.words.length && this.words[this.lo] === WORD_FULL) this.lo++;
  }

  clear(i: number): void {
    const w = i >>> 5;
    this.words[w] &= ~(1 << (i & 31));
    this.toggleHash(i);
    if (w < this.lo) this.lo = w;
    while (this.hi > 0 && this.words[this.hi - 1] === 0) this.hi--;
  }

  private toggleHash(i: number): void {
    this.hashA ^= mix32(2 * i + 1);
    this.hashB ^= mix32(2 * i + 2);
  }
}

/** murmur3's finalizer: a fixed, well-spread 32-bit value per input, so hashes are the same on every run. */
function mix32(x: number): number {
  let h = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}

/** FNV-1a of a string, for model.key. */
function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h | 0;
}

// ---- Memo ----

// Small, since a history split by key makes many small partitions; the table doubles as it fills.
const MEMO_SLOTS_INITIAL = 1 << 6;

/**
 * The configurations explored so far, each known to fail unless the search is still inside it (a configuration is
 * never reached again from within itself, since the linearized set only grows). An open-addressing table over
 * typed arrays: V8 Maps with string keys measured ~1.4 us per insert at millions of entries, this ~0.1 us.
 * Entries are exact (a copy of the bitset's words lo..hi plus model.equal); hashes only find candidates.
 */
class Memo<S, I, O> {
  private readonly model: Model<S, I, O>;
  private readonly entriesMax: number;
  private slots = new Int32Array(MEMO_SLOTS_INITIAL); // entry + 1; 0 = empty
  private hashA = new Int32Array(MEMO_SLOTS_INITIAL >> 1);
  private hashB = new Int32Array(MEMO_SLOTS_INITIAL >> 1);
  private bitsLo = new Int32Array(MEMO_SLOTS_INITIAL >> 1);
  private bitsStart = new Int32Array(MEMO_SLOTS_INITIAL >> 1); // into pool; the entry's words end where the next start
  private pool = new Uint32Array(MEMO_SLOTS_INITIAL);
  private poolUsed = 0;
  private readonly states: S[] = [];

  constructor(model: Model<S, I, O>, entriesMax: number) {
    this.model = model;
    this.entriesMax = entriesMax;
  }

  /** False if (bits, state) was explored before. Past entriesMax it still answers but stops remembering. */
  add(bits: Bitset, state: S): boolean {
    const stateHash = hashString(this.model.key(state));
    const a = bits.hashA ^ stateHash;
    const b = bits.hashB ^ mix32(stateHash);
    const mask = this.slots.length - 1;
    let slot = a & mask;
    for (; this.slots[slot] !== 0; slot = (slot + 1) & mask) {
      const entry = this.slots[slot] - 1;
      if (this.hashA[entry] === a && this.hashB[entry] === b && this.sameBits(entry, bits)) {
        if (this.model.equal(this.states[entry], state)) return false;
      }
    }
    if (this.states.length >= this.entriesMax) return true;
    this.insert(slot, a, b, bits, state);
    return true;
  }

  private sameBits(entry: number, bits: Bitset): boolean {
    const start = this.bitsStart[entry];
    const end = entry + 1 < this.states.length ? this.bitsStart[entry + 1] : this.poolUsed;
    if (this.bitsLo[entry] !== bits.lo || end - start !== bits.hi - bits.lo) return false;
    for (let i = start, w = bits.lo; i < end; i++, w++) if (this.pool[i] !== bits.words[w]) return false;
    return true;
  }

  private insert(slot: number, a: number, b: number, bits: Bitset, state: S): void {
    const entry = this.states.length;
    if (entry === this.hashA.length) this.growEntries();
    const words = bits.hi - bits.lo;
    if (this.poolUsed + words > this.pool.length) this.pool = grown(this.pool, this.poolUsed + words);
    this.pool.set(bits.words.subarray(bits.lo, bits.hi), this.poolUsed);
    this.hashA[entry] = a;
    this.hashB[entry] = b;
    this.bitsLo[entry] = bits.lo;
    this.bitsStart[entry] = this.poolUsed;
    this.poolUsed += words;
    this.states.push(state);
    this.slots[slot] = entry + 1;
    // Keep the table at most half full so probes stay short.
    if (2 * this.states.length > this.slots.length) this.rehash(2 * this.slots.length);
  }

  private growEntries(): void {
    const size = 2 * this.hashA.length;
    this.hashA = grown(this.hashA, size);
    this.hashB = grown(this.hashB, size);
    this.bitsLo = grown(this.bitsLo, size);
    this.bitsStart = grown(this.bitsStart, size);
  }

  private rehash(size: number): void {
    this.slots = new Int32Array(size);
    const mask = size - 1;
    for (let entry = 0; entry < this.states.length; entry++) {
      let slot = this.hashA[entry] & mask;
      while (this.slots[slot] !== 0) slot = (slot + 1) & mask;
      this.slots[slot] = entry + 1;
    }
  }
}

/** A copy of `array` at least `size` long (doubling, so appends stay amortized O(1)). */
function grown<T extends Int32Array | Uint32Array>(array: T, size: number): T {
  const copy = new (array.constructor as new (n: number) => T)(Math.max(size, 2 * array.length));
  copy.set(array);
  return copy;
}

// ---- Search ----

interface Frontier<S, I, O> {
  prefix: Operation<I, O>[];
  candidates: Operation<I, O>[];
  state: S;
}

type PartitionOutcome<S, I, O> =
  | { kind: 'ok' }
  | { kind: 'illegal'; deepest: Frontier<S, I, O> }
  | { kind: 'unknown' };

/** stepsLeft is shared by all partitions of one check. */
interface Budget {
  stepsLeft: number;
  readonly memoEntriesMax: number;
}

// What a search move leads to.
const FRESH = 0; // a new configuration was entered: place a read or list the candidates
const NEXT = 1; // try the next candidate of the current configuration
const FAILED = 2; // the current configuration has no linearization
const EXHAUSTED = 3; // the step budget ran out
const REFUTED = 4; // the empty configuration failed: the partition is not linearizable

function searchPartition<S, I, O>(
  model: Model<S, I, O>,
  ops: Operation<I, O>[],
  budget: Budget,
): PartitionOutcome<S, I, O> {
  const search = new Search(model, ops, budget);
  const verdict = search.run();
  if (verdict === 'illegal') return { kind: 'illegal', deepest: search.deepest! };
  return { kind: verdict };
}

/**
 * Depth-first search for an order of `ops` that the model accepts and that respects real time. A configuration is
 * (linearized set, state); the list holds the entries of operations not yet linearized, and only calls before the
 * first return in it (the candidates) may go next. `budget` counts model steps and backtracks, shared across
 * partitions.
 */
class Search<S, I, O> {
  private readonly model: Model<S, I, O>;
  private readonly ops: Operation<I, O>[];
  private readonly budget: Budget;
  private readonly list: EntryList;
  private readonly readOnly: Uint8Array;
  private readonly linearized: Bitset;
  private readonly memo: Memo<S, I, O>;
  /** The ret of each entry's operation. */
  private readonly deadline: Float64Array;
  // Per depth: the entry linearized to go deeper, whether it was forced, the state before it, and the slice of
  // `candidates` still to try in that configuration.
  private readonly stackEntry: Int32Array;
  private readonly stackForced: Uint8Array;
  private readonly stackState: S[] = [];
  private readonly frameNext: Int32Array;
  private readonly frameEnd: Int32Array;
  private readonly candidates: number[] = [];
  private depth = 0;
  private state: S;
  deepest: Frontier<S, I, O> | undefined;

  constructor(model: Model<S, I, O>, ops: Operation<I, O>[], budget: Budget) {
    this.model = model;
    this.ops = ops;
    this.budget = budget;
    this.list = buildEntries(ops);
    this.readOnly = Uint8Array.from(ops, (op) => (model.readOnly?.(op.input) ? 1 : 0));
    this.linearized = new Bitset(ops.length);
    this.memo = new Memo(model, budget.memoEntriesMax);
    this.deadline = Float64Array.from(this.list.op, (o) => (o === NONE ? 0 : ops[o].ret));
    this.stackEntry = new Int32Array(ops.length);
    this.stackForced = new Uint8Array(ops.length);
    this.frameNext = new Int32Array(ops.length + 1);
    this.frameEnd = new Int32Array(ops.length + 1);
    this.state = model.init();
  }

  run(): 'ok' | 'illegal' | 'unknown' {
    let move = FRESH;
    while (this.list.next[HEAD] !== NONE) {
      if (move === FRESH) move = this.enter();
      else if (move === NEXT) move = this.tryNext();
      else if (move === FAILED) move = this.backtrack();
      else return move === EXHAUSTED ? 'unknown' : 'illegal';
    }
    return 'ok';
  }

  /** Places a read-only candidate if the model accepts one, else lists the other candidates to branch on. */
  private enter(): number {
    const { next, match, op } = this.list;
    const start = this.candidates.length;
    for (let e = next[HEAD]; match[e] !== NONE; e = next[e]) {
      if (this.readOnly[op[e]] === 0) {
        this.candidates.push(e);
        continue;
      }
      // A read accepted now can go first in any linearization of the rest: no pending operation must precede it,
      // and it changes nothing for those it overtakes. Placing it without branching keeps reads from
      // multiplying the orders tried.
      if (--this.budget.stepsLeft < 0) return EXHAUSTED;
      const stepped = this.model.step(this.state, this.ops[op[e]].input, this.ops[op[e]].output);
      if (stepped.ok) {
        this.candidates.length = start;
        return this.push(e, stepped.state, true) ? FRESH : FAILED;
      }
    }
    sortByDeadline(this.candidates, start, this.deadline);
    this.frameNext[this.depth] = start;
    this.frameEnd[this.depth] = this.candidates.length;
    return NEXT;
  }

  private tryNext(): number {
    const d = this.depth;
    if (this.frameNext[d] === this.frameEnd[d]) return FAILED;
    const e = this.candidates[this.frameNext[d]++];
    const o = this.list.op[e];
    if (--this.budget.stepsLeft < 0) return EXHAUSTED;
    const stepped = this.model.step(this.state, this.ops[o].input, this.ops[o].output);
    return stepped.ok && this.push(e, stepped.state, false) ? FRESH : NEXT;
  }

  /** Enters the configuration after linearizing entry e, unless it was explored before (and so failed). */
  private push(e: number, nextState: S, forced: boolean): boolean {
    const o = this.list.op[e];
    this.linearized.set(o);
    if (!this.memo.add(this.linearized, nextState)) {
      this.linearized.clear(o);
      return false;
    }
    this.stackEntry[this.depth] = e;
    this.stackForced[this.depth] = forced ? 1 : 0;
    this.stackState[this.depth] = this.state;
    this.depth++;
    this.state = nextState;
    lift(this.list, e);
    return true;
  }

  /** Leaves the failed configuration; a forced placement has no alternative, so its parent failed too. */
  private backtrack(): number {
    if (--this.budget.stepsLeft < 0) return EXHAUSTED;
    if (this.deepest === undefined || this.depth > this.deepest.prefix.length) this.deepest = this.snapshot();
    for (;;) {
      if (this.depth === 0) return REFUTED;
      this.depth--;
      const e = this.stackEntry[this.depth];
      this.state = this.stackState[this.depth];
      this.linearized.clear(this.list.op[e]);
      unlift(this.list, e);
      if (this.stackForced[this.depth] === 0) {
        this.candidates.length = this.frameEnd[this.depth];
        return NEXT;
      }
    }
  }

  private snapshot(): Frontier<S, I, O> {
    const { next, match, op } = this.list;
    const prefix: Operation<I, O>[] = [];
    for (let d = 0; d < this.depth; d++) prefix.push(this.ops[op[this.stackEntry[d]]]);
    const candidates: Operation<I, O>[] = [];
    for (let e = next[HEAD]; match[e] !== NONE; e = next[e]) candidates.push(this.ops[op[e]]);
    return { prefix, candidates, state: this.state };
  }
}

// Earliest deadline first: the operation that must take effect soonest is the likeliest to go next. Insertion
// sort, since candidates are few (the operations concurrent at one point) and arrive mostly in order.
function sortByDeadline(entries: number[], start: number, deadline: Float64Array): void {
  for (let i = start + 1; i < entries.length; i++) {
    const e = entries[i];
    let j = i - 1;
    for (; j >= start && (deadline[entries[j]] > deadline[e] || (deadline[entries[j]] === deadline[e] && entries[j] > e)); j--) {
      entries[j + 1] = entries[j];
    }
    entries[j + 1] = e;
  }
}

// ---- Explanation ----

function illegalResult<S, I, O>(
  model: Model<S, I, O>,
  partitionIndex: number,
  opCount: number,
  deepest: Frontier<S, I, O>,
): CheckResult<I, O> {
  return {
    result: 'illegal',
    partitionIndex,
    longestPrefix: deepest.prefix,
    stuckOps: deepest.candidates,
    explanation: explain(model, partitionIndex, opCount, deepest),
  };
}

function explain<S, I, O>(model: Model<S, I, O>, partitionIndex: number, opCount: number, deepest: Frontier<S, I, O>): string {
  const describe = (op: Operation<I, O>): string => (model.describeOp ? model.describeOp(op) : describeOpDefault(op));
  const { prefix, candidates, state } = deepest;
  const stateText = model.describeState ? model.describeState(state) : JSON.stringify(model.key(state));
  const lines = [
    `not linearizable: partition ${partitionIndex} (${opCount} operations)`,
    `longest linearizable prefix: ${prefix.length} of ${opCount} operations, ending in model state ${stateText}`,
  ];
  const tailStart = Math.max(0, prefix.length - explainPrefixTailMax);
  if (tailStart > 0) lines.push(`  ... ${tailStart} earlier operations`);
  for (let i = tailStart; i < prefix.length; i++) lines.push(`  ${i + 1}. ${describe(prefix[i])}`);
  lines.push('none of these can take effect next:');
  for (const op of candidates) {
    const why = model.step(state, op.input, op.output).ok
      ? 'allowed here, but no order of the remaining operations follows from it'
      : 'the model rejects it in this state';
    lines.push(`  - ${describe(op)}: ${why}`);
  }
  return lines.join('\n');
}

function describeOpDefault<I, O>(op: Operation<I, O>): string {
  const output = op.output === undefined ? '?' : JSON.stringify(op.output);
  const ret = op.ret === Infinity ? 'never' : String(op.ret);
  return `client ${op.clientId} ${JSON.stringify(op.input)} -> ${output} [${op.call}, ${ret}]`;
}
