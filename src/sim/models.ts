// Sequential models for the linearizability checker: a key-value register, and a per-key append-only string that
// exposes lost and duplicated writes. Both split histories by key, so a model state covers a single key.

import type { Model, Operation } from './linearizability.ts';

export type KvInput = { kind: 'put'; key: string; value: string } | { kind: 'get'; key: string };
/** `{ ok: true }` answers a put; `{ value }` answers a get, with undefined for an absent key. */
export type KvOutput = { ok: true } | { value: string | undefined };
/** The value of the one key of a partition; undefined while absent. */
export type KvState = string | undefined;
type KvOp = Operation<KvInput, KvOutput>;

/**
 * A register per key. Its partition also simplifies each key's history (see tightenPuts), so operations in a
 * result may be copies of puts with an earlier ret; values that are unique per key give the search most help.
 */
export const kvModel: Model<KvState, KvInput, KvOutput> = {
  init: () => undefined,
  step(state, input, output) {
    if (input.kind === 'put') return { ok: output === undefined || 'ok' in output, state: input.value };
    return { ok: output === undefined || ('value' in output && output.value === state), state };
  },
  partition: (history) => partitionByKey(history).map(tightenPuts),
  readOnly: (input) => input.kind === 'get',
  equal: (a, b) => a === b,
  // '' for absent, '=' + value otherwise, so absent and the empty string differ.
  key: (state) => (state === undefined ? '' : `=${state}`),
  describeOp(op) {
    const { input, output } = op;
    const call = input.kind === 'put' ? `put(${input.key}, ${quote(input.value)})` : `get(${input.key})`;
    const result = output === undefined ? '?' : 'ok' in output ? 'ok' : describeValue(output.value);
    return `client ${op.clientId} ${call} -> ${result} ${interval(op)}`;
  },
  describeState: describeValue,
};

export type AppendInput =
  | {
      kind: 'append';
      key: string;
      value: string;
      /**
       * The longest text any read of the key returned. Workloads leave it out; appendModel.partition sets it on
       * copies of the appends so that step refuses an append that cannot fit that read (see pinAppends).
       */
      longestRead?: string;
    }
  | { kind: 'get'; key: string };
/** `{ ok: true }` answers an append; `{ value }` answers a get with the whole string (undefined or '' if absent). */
export type AppendOutput = { ok: true } | { value: string | undefined };
/** The text so far and its FNV-1a hash, extended per append so that key() does not rehash long strings. */
export interface AppendState {
  readonly text: string;
  readonly hash: number;
  /**
   * Set once a pinned append made the text longer than any read returned. From then on no read fits, whatever
   * the text is, so all such states of one partition are equal (equal() and key()): the search then remembers
   * the set of appends placed after the reads, not each of their orders.
   */
  readonly pastReads?: true;
}
type AppendOp = Operation<AppendInput, AppendOutput>;

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * An append-only string per key; give each append a distinct value so a lost or repeated one shows. Its partition
 * pins each append to the longest read of its key (see pinAppends), so operations in a result may be copies.
 */
export const appendModel: Model<AppendState, AppendInput, AppendOutput> = {
  init: () => ({ text: '', hash: FNV_OFFSET }),
  step(state, input, output) {
    if (input.kind === 'append') {
      const read = input.longestRead;
      const text = state.text + input.value;
      const hash = fnvExtend(state.hash, input.value);
      const pastReads = read !== undefined && text.length > read.length;
      const next: AppendState = pastReads ? { text, hash, pastReads } : { text, hash };
      const fits = read === undefined || fitsRead(state.text, input.value, read);
      return { ok: fits && (output === undefined || 'ok' in output), state: next };
    }
    return { ok: output === undefined || ('value' in output && (output.value ?? '') === state.text), state };
  },
  partition: (history) => partitionByKey(history).map((ops) => pinAppends(dropUnseenAppends(ops))),
  readOnly: (input) => input.kind === 'get',
  equal: (a, b) => a.pastReads === b.pastReads && (a.pastReads === true || (a.hash === b.hash && a.text === b.text)),
  key: (state) => (state.pastReads === true ? 'past reads' : `${state.text.length}:${state.hash}`),
  describeOp(op) {
    const { input, output } = op;
    const call = input.kind === 'append' ? `append(${input.key}, ${quote(input.value)})` : `get(${input.key})`;
    const result = output === undefined ? '?' : 'ok' in output ? 'ok' : quote(output.value ?? '');
    return `client ${op.clientId} ${call} -> ${result} ${interval(op)}`;
  },
  describeState: (state) => quote(state.text),
};

/**
 * One sub-history per key, in order of first appearance. Reads with an unknown outcome are dropped: they accept
 * any state and change nothing, so they only add work.
 */
function partitionByKey<I extends { kind: string; key: string }, O>(history: Operation<I, O>[]): Operation<I, O>[][] {
  const byKey = new Map<string, Operation<I, O>[]>();
  for (const op of history) {
    if (op.output === undefined && op.input.kind === 'get') continue;
    const ops = byKey.get(op.input.key);
    if (ops === undefined) byKey.set(op.input.key, [op]);
    else ops.push(op);
  }
  return [...byKey.values()];
}

/**
 * Facts about a register that the generic search cannot see, used to cut its work without changing the verdict:
 * - an unanswered put whose value nobody read is dropped: a valid order without it stays valid with it placed
 *   last, and in a valid order with it nothing reads between it and the next put. Otherwise it would stay a
 *   candidate to the end of the history and double the configurations explored;
 * - the only put of a value must take effect before the first read of that value returns, so that ret becomes the
 *   put's ret when it is earlier. The search tries operations by ret, so this also steers it to the right put.
 *   Instantaneous reads are left out: two instantaneous operations at one time are concurrent, which the earlier
 *   ret would not preserve.
 */
function tightenPuts(ops: KvOp[]): KvOp[] {
  const writers = new Map<string, number>();
  const readValues = new Set<string>();
  const firstReadRet = new Map<string, number>();
  for (const op of ops) {
    const { input, output } = op;
    if (input.kind === 'put') writers.set(input.value, (writers.get(input.value) ?? 0) + 1);
    if (input.kind !== 'get' || output === undefined || !('value' in output) || output.value === undefined) continue;
    readValues.add(output.value);
    if (op.call < op.ret) firstReadRet.set(output.value, Math.min(firstReadRet.get(output.value) ?? Infinity, op.ret));
  }
  const tightened: KvOp[] = [];
  for (const op of ops) {
    if (op.input.kind === 'get') {
      tightened.push(op);
      continue;
    }
    if (op.ret === Infinity && !readValues.has(op.input.value)) continue;
    const readRet = firstReadRet.get(op.input.value) ?? Infinity;
    // A read that returned before the put was sent makes the history illegal anyway: leave the put as it is.
    const earlier = writers.get(op.input.value) === 1 && readRet > op.call && readRet < op.ret;
    tightened.push(earlier ? { ...op, ret: readRet } : op);
  }
  return tightened;
}

/**
 * An unanswered append whose value no read contains is dropped: any read after it would contain its value, so in
 * a valid order nothing reads after it and it may as well go last.
 */
function dropUnseenAppends(ops: AppendOp[]): AppendOp[] {
  const seen: string[] = [];
  for (const { input, output } of ops) {
    if (input.kind === 'get' && output !== undefined && 'value' in output) seen.push(output.value ?? '');
  }
  return ops.filter(({ input, ret }) => ret !== Infinity || input.kind !== 'append' || seen.some((text) => text.includes(input.value)));
}

/**
 * Pins each append to the longest text a read returned, L: step then accepts an append only where it leaves a
 * prefix of L, or once the text already extends L. Sound: in any order the model accepts, the text only grows
 * and the read of L sees exactly L, so an append before that read leaves a prefix of L and one after it starts
 * from a text that extends L; the rule removes no accepted order, and as an extra condition it adds none.
 * Without it the search tries every order of the appends between two reads and learns which was right only at
 * the next read: exponential in the appends between reads (seed 9649, one key: over 2,000,000 steps). With it,
 * at most one append fits next when values are distinct and none is a prefix of another.
 * Up to L the text is then a function of the set of appends placed (the prefix of L of their total length).
 * Past L every read of the partition (none longer than L) is refused whatever the text, and every pinned append
 * accepted, so states past L differ in nothing the rest of the search can see: step marks them pastReads, which
 * makes them equal. Appends nobody read (lost writes at the end of a history) then cost one configuration per
 * set instead of one per order.
 */
function pinAppends(ops: AppendOp[]): AppendOp[] {
  let longestRead: string | undefined;
  for (const { input, output } of ops) {
    if (input.kind !== 'get' || output === undefined || !('value' in output)) continue;
    const text = output.value ?? '';
    if (longestRead === undefined || text.length > longestRead.length) longestRead = text;
  }
  if (longestRead === undefined) return ops;
  const pinned = longestRead;
  return ops.map((op) => (op.input.kind === 'append' ? { ...op, input: { ...op.input, longestRead: pinned } } : op));
}

/**
 * Whether appending `value` to `text` leaves a prefix of `read`, or `text` already extends `read`. On the search's
 * path the text is always one or the other, but step answers for any state.
 */
function fitsRead(text: string, value: string, read: string): boolean {
  if (text.length >= read.length) return text.startsWith(read);
  return text.length + value.length <= read.length && read.startsWith(text) && read.startsWith(value, text.length);
}

function fnvExtend(hash: number, s: string): number {
  let h = hash;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), FNV_PRIME) >>> 0;
  return h;
}

const quoteCharsMax = 60;

/** Long values (appended strings grow) show their tail, where the latest writes are. */
function quote(s: string): string {
  return JSON.stringify(s.length <= quoteCharsMax ? s : `…${s.slice(-quoteCharsMax)}`);
}

function describeValue(value: string | undefined): string {
  return value === undefined ? 'absent' : quote(value);
}

function interval<I, O>(op: Operation<I, O>): string {
  return `[${op.call}, ${op.ret === Infinity ? 'never' : op.ret}]`;
}
