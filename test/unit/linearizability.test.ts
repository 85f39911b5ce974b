// Tests for the linearizability checker (src/sim/linearizability.ts) and its models (src/sim/models.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import {
  checkLinearizable,
  type CheckResult,
  type Model,
  type Operation,
} from '../../src/sim/linearizability.ts';
import { LinearizabilityErrorCode } from '../../src/sim/errors.ts';
import {
  appendModel,
  kvModel,
  type AppendInput,
  type AppendOutput,
  type AppendState,
  type KvInput,
  type KvOutput,
} from '../../src/sim/models.ts';

type KvOp = Operation<KvInput, KvOutput>;
type AppendOp = Operation<AppendInput, AppendOutput>;

// ---- Builders ----

function put(clientId: number, key: string, value: string, call: number, ret: number): KvOp {
  return { clientId, input: { kind: 'put', key, value }, call, ret, output: ret === Infinity ? undefined : { ok: true } };
}

function get(clientId: number, key: string, value: string | undefined, call: number, ret: number): KvOp {
  return { clientId, input: { kind: 'get', key }, call, ret, output: { value } };
}

function append(clientId: number, key: string, value: string, call: number, ret: number): AppendOp {
  return { clientId, input: { kind: 'append', key, value }, call, ret, output: ret === Infinity ? undefined : { ok: true } };
}

function read(clientId: number, key: string, value: string, call: number, ret: number): AppendOp {
  return { clientId, input: { kind: 'get', key }, call, ret, output: { value } };
}

/** appendModel as it was before appends were pinned to the longest read: its partition's copies lose the pin. */
const appendUnpinnedModel: Model<AppendState, AppendInput, AppendOutput> = {
  ...appendModel,
  partition: (history) =>
    appendModel.partition!(history).map((ops) =>
      ops.map((op) => (op.input.kind === 'append' ? { ...op, input: { kind: 'append', key: op.input.key, value: op.input.value } } : op)),
    ),
};

function assertIllegal<I, O>(result: CheckResult<I, O>): Extract<CheckResult<I, O>, { result: 'illegal' }> {
  assert.equal(result.result, 'illegal', JSON.stringify(result));
  return result as Extract<CheckResult<I, O>, { result: 'illegal' }>;
}

// ---- Small histories ----

test('an empty history is linearizable, even with no budget', () => {
  assert.deepEqual(checkLinearizable(kvModel, [], { stepBudget: 0 }), { result: 'ok' });
});

test('a read after a completed put sees it', () => {
  const ok = [put(1, 'x', 'a', 0, 10), get(2, 'x', 'a', 11, 20)];
  assert.equal(checkLinearizable(kvModel, ok).result, 'ok');
});

test('a stale read after a completed put is illegal, and the explanation names the stuck read', () => {
  const history = [put(1, 'x', 'a', 0, 10), put(1, 'x', 'b', 11, 20), get(2, 'x', 'a', 21, 30)];
  const r = assertIllegal(checkLinearizable(kvModel, history));
  assert.equal(r.partitionIndex, 0);
  assert.deepEqual(r.longestPrefix, [history[0], history[1]]);
  assert.deepEqual(r.stuckOps, [history[2]]);
  assert.match(r.explanation, /longest linearizable prefix: 2 of 3 operations, ending in model state "b"/);
  assert.match(r.explanation, /1\. client 1 put\(x, "a"\) -> ok \[0, 10\]/);
  assert.match(r.explanation, /- client 2 get\(x\) -> "a" \[21, 30\]: the model rejects it in this state/);
});

test('a read of an absent key returns undefined, and a read of a never-written value is illegal', () => {
  assert.equal(checkLinearizable(kvModel, [get(1, 'x', undefined, 0, 1)]).result, 'ok');
  assertIllegal(checkLinearizable(kvModel, [get(1, 'x', 'ghost', 0, 1)]));
  assertIllegal(checkLinearizable(kvModel, [put(1, 'x', 'a', 0, 1), get(1, 'x', undefined, 2, 3)]));
});

test('a read concurrent with a put may see the old or the new value', () => {
  for (const seen of [undefined, 'a']) {
    const history = [put(1, 'x', 'a', 0, 10), get(2, 'x', seen, 5, 15)];
    assert.equal(checkLinearizable(kvModel, history).result, 'ok', `seen ${seen}`);
  }
});

test('a read that sees the new value followed by a read that sees the old one is illegal', () => {
  const history = [
    put(1, 'x', 'old', 0, 5),
    put(1, 'x', 'new', 10, 100), // still in flight for both reads
    get(2, 'x', 'new', 20, 30),
    get(3, 'x', 'old', 40, 50),
  ];
  const r = assertIllegal(checkLinearizable(kvModel, history));
  assert.deepEqual(r.stuckOps.map((op) => op.clientId).sort(), [3]);
  // The same reads overlapping each other are fine: the old-value read may take effect first.
  history[3] = get(3, 'x', 'old', 25, 50);
  assert.equal(checkLinearizable(kvModel, history).result, 'ok');
});

test('a put whose answer never came may take effect late, or never', () => {
  const lost = put(1, 'x', 'maybe', 5, Infinity);
  const visibleLater = [put(2, 'x', 'a', 0, 1), lost, get(3, 'x', 'a', 10, 20), get(3, 'x', 'maybe', 100, 110)];
  assert.equal(checkLinearizable(kvModel, visibleLater).result, 'ok');
  const neverSeen = [put(2, 'x', 'a', 0, 1), lost, get(3, 'x', 'a', 10, 20), get(3, 'x', 'a', 100, 110)];
  assert.equal(checkLinearizable(kvModel, neverSeen).result, 'ok');
  // It cannot take effect before it was sent.
  assertIllegal(checkLinearizable(kvModel, [get(3, 'x', 'maybe', 0, 4), lost]));
  // Nor take effect, be overwritten and come back.
  const flicker = [lost, get(3, 'x', 'maybe', 10, 11), put(2, 'x', 'b', 12, 13), get(3, 'x', 'maybe', 14, 15)];
  assertIllegal(checkLinearizable(kvModel, flicker));
});

test('equal timestamps: an op returning at t precedes one called at t; instantaneous ops at t are concurrent', () => {
  assertIllegal(checkLinearizable(kvModel, [put(1, 'x', 'a', 0, 5), get(2, 'x', undefined, 5, 6)]));
  assert.equal(checkLinearizable(kvModel, [put(1, 'x', 'a', 0, 5), get(2, 'x', undefined, 4, 6)]).result, 'ok');
  // Instantaneous operations: the put at 5 precedes a call at 5 and follows a return at 5.
  assertIllegal(checkLinearizable(kvModel, [put(1, 'x', 'a', 5, 5), get(2, 'x', undefined, 5, 6)]));
  assertIllegal(checkLinearizable(kvModel, [get(2, 'x', 'a', 4, 5), put(1, 'x', 'a', 5, 5)]));
  // Two instantaneous operations at the same time may go in either order.
  assert.equal(checkLinearizable(kvModel, [put(1, 'x', 'a', 5, 5), get(2, 'x', undefined, 5, 5)]).result, 'ok');
  assert.equal(checkLinearizable(kvModel, [get(2, 'x', 'a', 5, 5), put(1, 'x', 'a', 5, 5)]).result, 'ok');
});

test('keys are checked separately and the violating partition is reported', () => {
  const history = [
    put(1, 'x', 'a', 0, 1),
    put(1, 'y', 'b', 2, 3),
    get(2, 'x', 'a', 4, 5),
    get(2, 'y', 'stale', 6, 7),
    get(2, 'z', undefined, 8, 9),
  ];
  const r = assertIllegal(checkLinearizable(kvModel, history));
  assert.equal(r.partitionIndex, 1); // partitions in order of first appearance: x, y, z
  assert.deepEqual(r.stuckOps, [history[3]]);
});

test('kv: a put is not assumed to precede the first read of its value when another put wrote it too', () => {
  const history = [
    put(1, 'x', 'v', 0, 100), // takes effect late, after put w
    put(2, 'x', 'v', 50, 60),
    get(3, 'x', 'v', 55, 58),
    put(2, 'x', 'w', 61, 62),
    get(3, 'x', 'v', 70, 80),
  ];
  assert.equal(checkLinearizable(kvModel, history).result, 'ok');
});

test('kv: an instantaneous read does not move the put it reads before other instantaneous ops at that time', () => {
  const history = [put(1, 'x', 'v', 0, 10), get(2, 'x', undefined, 5, 5), get(3, 'x', 'v', 5, 5)];
  assert.equal(checkLinearizable(kvModel, history).result, 'ok');
});

test('a read with an unknown outcome constrains nothing', () => {
  const unanswered: KvOp = { clientId: 3, input: { kind: 'get', key: 'x' }, call: 0, ret: Infinity, output: undefined };
  assert.equal(checkLinearizable(kvModel, [put(1, 'x', 'a', 0, 1), unanswered]).result, 'ok');
});

test('append: concurrent appends in either order, a duplicated or lost append is illegal', () => {
  const base = [append(1, 'f', 'a', 0, 10), append(2, 'f', 'b', 0, 10)];
  assert.equal(checkLinearizable(appendModel, [...base, read(3, 'f', 'ab', 11, 12)]).result, 'ok');
  assert.equal(checkLinearizable(appendModel, [...base, read(3, 'f', 'ba', 11, 12)]).result, 'ok');
  const duplicated = assertIllegal(checkLinearizable(appendModel, [...base, read(3, 'f', 'abb', 11, 12)]));
  assert.match(duplicated.explanation, /get\(f\) -> "abb"/);
  assertIllegal(checkLinearizable(appendModel, [...base, read(3, 'f', 'a', 11, 12)]));
  // An append that never returned may show up, once.
  const maybe = append(4, 'f', 'c', 5, Infinity);
  assert.equal(checkLinearizable(appendModel, [...base, maybe, read(3, 'f', 'acb', 11, 12)]).result, 'ok');
  assertIllegal(checkLinearizable(appendModel, [...base, maybe, read(3, 'f', 'abcc', 11, 12)]));
  // An absent key reads as the empty string either way.
  assert.equal(checkLinearizable(appendModel, [{ ...read(3, 'g', '', 0, 1), output: { value: undefined } }]).result, 'ok');
});

test('append pin: step takes an append that leaves a prefix of the longest read or extends it, and merges states past it', () => {
  const pinned: AppendInput = { kind: 'append', key: 'f', value: '', longestRead: 'abc' };
  const stateOf = (text: string): AppendState => appendModel.step(appendModel.init(), { kind: 'append', key: 'f', value: text }, undefined).state;
  const fits = (text: string, value: string): boolean => appendModel.step(stateOf(text), { ...pinned, value }, { ok: true }).ok;
  for (const [text, value] of [['', 'a'], ['', 'abc'], ['a', 'bc'], ['ab', 'c'], ['abc', 'd'], ['abcd', 'xy'], ['a', '']]) {
    assert.ok(fits(text, value), `${text} + ${value}`);
  }
  // Not at the read's next position, running past its end, or on a text that neither is a prefix of it nor extends it.
  for (const [text, value] of [['', 'b'], ['a', 'c'], ['a', 'bcd'], ['x', 'b'], ['xb', 'c'], ['xyz', 'd'], ['abx', 'd']]) {
    assert.ok(!fits(text, value), `${text} + ${value}`);
  }
  // Only texts longer than the read are past it, and those are all equal to one another.
  const after = (text: string, value: string): AppendState => appendModel.step(stateOf(text), { ...pinned, value }, { ok: true }).state;
  assert.equal(after('ab', 'c').pastReads, undefined);
  const [p1, p2] = [after('abc', 'd'), after('abc', 'xyz')];
  assert.deepEqual([p1.text, p1.pastReads, p2.pastReads], ['abcd', true, true]);
  assert.ok(appendModel.equal(p1, p2));
  assert.equal(appendModel.key(p1), appendModel.key(p2));
  assert.ok(!appendModel.equal(p1, stateOf('abcd')));
  assert.ok(!appendModel.equal(after('ab', 'c'), p1) && !appendModel.equal(p1, after('ab', 'c')));
  assert.ok(appendModel.equal(after('ab', 'c'), stateOf('abc')));
});

test('append pin: orders that fit the longest read stay ok, also past it and with ambiguous values', () => {
  const ok = (history: AppendOp[]) => assert.deepEqual(checkLinearizable(appendModel, history), { result: 'ok' }, JSON.stringify(history));
  // Past the longest read: an append after the last read, and one concurrent with it that it did not see.
  ok([append(1, 'f', 'a', 0, 1), read(2, 'f', 'a', 2, 3), append(1, 'f', 'b', 4, 5)]);
  ok([append(1, 'f', 'a', 0, 1), append(3, 'f', 'b', 2, 10), read(2, 'f', 'a', 3, 4), read(2, 'f', 'a', 5, 6)]);
  // An append that never returned but was read goes where the read puts it.
  ok([append(1, 'f', 'a', 0, 1), append(3, 'f', 'b', 2, Infinity), read(2, 'f', 'a', 3, 4), read(2, 'f', 'ab', 5, 6)]);
  // Values that are prefixes of each other ('a' and 'ab' both fit 'aba' first), and equal values.
  ok([append(1, 'f', 'a', 0, 10), append(2, 'f', 'ab', 0, 10), read(3, 'f', 'aba', 11, 12)]);
  ok([append(1, 'f', 'a', 0, 10), append(2, 'f', 'ab', 0, 10), read(3, 'f', 'aab', 11, 12)]);
  ok([append(1, 'f', 'x', 0, 10), append(2, 'f', 'x', 0, 10), read(3, 'f', 'x', 5, 6), read(3, 'f', 'xx', 11, 12)]);
  // An empty value fits anywhere; an absent key reads as ''.
  ok([append(1, 'f', '', 0, 1), { ...read(2, 'f', '', 2, 3), output: { value: undefined } }, append(1, 'f', 'a', 4, 5)]);
});

test('append pin: lost, reordered, repeated and diverging appends are still illegal', () => {
  const illegal = (history: AppendOp[]) => assertIllegal(checkLinearizable(appendModel, history));
  // Lost: 'a' returned before the read was sent.
  illegal([append(1, 'f', 'a', 0, 1), append(2, 'f', 'b', 0, 10), read(3, 'f', 'b', 5, 12)]);
  // Against real time: 'a' returned before 'b' was sent, the read has them the other way round.
  illegal([append(1, 'f', 'a', 0, 1), append(2, 'f', 'b', 2, 3), read(3, 'f', 'ba', 4, 5)]);
  // Two reads that are not prefixes of one another, with equal or different lengths.
  const both = [append(1, 'f', 'a', 0, 10), append(2, 'f', 'b', 0, 10)];
  illegal([...both, read(3, 'f', 'ab', 11, 12), read(3, 'f', 'ba', 13, 14)]);
  illegal([...both, read(3, 'f', 'ab', 11, 12), read(3, 'f', 'b', 13, 14)]);
  // A read that went back in time, and one that saw an append twice or one nobody made.
  illegal([...both, read(3, 'f', 'ab', 11, 12), read(3, 'f', 'a', 13, 14)]);
  illegal([...both, read(3, 'f', 'abb', 11, 12)]);
  illegal([...both, read(3, 'f', 'abc', 11, 12)]);
  // An append past the longest read while a read that must follow it is still to come.
  illegal([append(1, 'f', 'a', 0, 1), read(2, 'f', 'a', 2, 3), append(1, 'f', 'b', 4, 5), read(2, 'f', 'a', 6, 7)]);
  // A value that would run past the longest read: 'ab' cannot go before the read of 'a' or after it.
  illegal([append(1, 'f', 'ab', 0, 1), read(2, 'f', 'a', 2, 3)]);
});

test('append pin: a chain of overlapping appends read once at the end takes linear steps, not exponential', () => {
  // Append i overlaps i-1 and i+1; the read says each pair went in reverse. Unpinned, every order of the chain
  // that real time allows is tried before the read (20 appends: 90,126 steps; 40: over 2,000,000).
  const chain = (n: number, order = (i: number) => (i % 2 === 0 ? i + 1 : i - 1)): AppendOp[] => {
    const history = Array.from({ length: n }, (_, i) => append(i % 2, 'f', `${i};`, 2 * i, 2 * i + 3));
    const seen = Array.from({ length: n }, (_, i) => `${order(i)};`).join('');
    return [...history, read(9, 'f', seen, 2 * n + 5, 2 * n + 6)];
  };
  assert.equal(checkLinearizable(appendModel, chain(40), { stepBudget: 100 }).result, 'ok'); // 61
  assert.equal(checkLinearizable(appendUnpinnedModel, chain(20), { stepBudget: 10_000 }).result, 'unknown');
  // Read as 1;2;3;0;5;4;...: 2 before 0, although 0 returned before 2 was sent. Found illegal as fast.
  const wrong = chain(40, (i) => [1, 2, 3, 0][i] ?? (i % 2 === 0 ? i + 1 : i - 1));
  assertIllegal(checkLinearizable(appendModel, wrong, { stepBudget: 100 }));
});

test('malformed operations and options are rejected with a code', () => {
  const cases: KvOp[] = [
    put(1, 'x', 'a', 10, 5),
    put(1, 'x', 'a', NaN, 5),
    put(1, 'x', 'a', -Infinity, 5),
    { ...put(1, 'x', 'a', 0, Infinity), output: { ok: true } },
  ];
  for (const op of cases) {
    assert.throws(() => checkLinearizable(kvModel, [op]), { code: LinearizabilityErrorCode.BadOperation });
  }
  assert.throws(() => checkLinearizable(kvModel, [], { stepBudget: -1 }), { code: LinearizabilityErrorCode.BadOption });
  assert.throws(() => checkLinearizable(kvModel, [], { stepBudget: 1.5 }), { code: LinearizabilityErrorCode.BadOption });
  assert.throws(() => checkLinearizable(kvModel, [], { memoEntriesMax: -5 }), { code: LinearizabilityErrorCode.BadOption });
});

test('a model without partition or describeOp is checked as one history with a default description', () => {
  const counter: Model<number, 'inc' | 'read', number> = {
    init: () => 0,
    step: (s, input, output) => (input === 'inc' ? { ok: true, state: s + 1 } : { ok: output === undefined || output === s, state: s }),
    equal: (a, b) => a === b,
    key: (s) => String(s),
  };
  const op = (input: 'inc' | 'read', output: number | undefined, call: number, ret: number) => ({ clientId: 7, input, call, ret, output });
  assert.equal(checkLinearizable(counter, [op('inc', 0, 0, 3), op('inc', 0, 1, 2), op('read', 2, 4, 5)]).result, 'ok');
  const r = assertIllegal(checkLinearizable(counter, [op('inc', 0, 0, 3), op('read', 2, 4, 5)]));
  assert.match(r.explanation, /client 7 "read" -> 2 \[4, 5\]/);
});

// ---- Generated histories ----

/** mulberry32: a small seeded PRNG, so every generated history is reproducible from its seed. */
function prng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) % n);
  };
}

interface Planned<I> {
  clientId: number;
  input: I;
  call: number;
  ret: number; // Infinity: the answer was lost
  takesEffectAt: number | undefined; // undefined: never took effect (only when ret is Infinity)
}

/**
 * Runs planned operations atomically at their effect points, in an order that respects real time even at equal
 * timestamps (by effect time, then return, then call), and fills in the outputs a correct server would give.
 */
function execute<S, I, O>(
  model: Model<S, I, O>,
  plans: Planned<I>[],
  partitionKey: (input: I) => string,
  outputOf: (state: S, input: I) => O,
): Operation<I, O>[] {
  const states = new Map<string, S>();
  const outputs: (O | undefined)[] = plans.map(() => undefined);
  const order = plans.map((_, i) => i).filter((i) => plans[i].takesEffectAt !== undefined);
  order.sort((a, b) => plans[a].takesEffectAt! - plans[b].takesEffectAt! || plans[a].ret - plans[b].ret || plans[a].call - plans[b].call);
  for (const i of order) {
    const k = partitionKey(plans[i].input);
    const state = states.get(k) ?? model.init();
    outputs[i] = outputOf(state, plans[i].input);
    states.set(k, model.step(state, plans[i].input, undefined).state);
  }
  return plans.map((p, i) => ({
    clientId: p.clientId,
    input: p.input,
    call: p.call,
    ret: p.ret,
    output: p.ret === Infinity ? undefined : outputs[i],
  }));
}

const kvOutputOf = (state: string | undefined, input: KvInput): KvOutput => (input.kind === 'put' ? { ok: true } : { value: state });

/** Clients issue one operation at a time with random gaps, durations and effect points; some answers are lost. */
function planRegister(seed: number, opCount: number, clients: number, keys: number, lostPercent: number): Planned<KvInput>[] {
  const rand = prng(seed);
  const clientTime = new Array<number>(clients).fill(0);
  const plans: Planned<KvInput>[] = [];
  for (let i = 0; i < opCount; i++) {
    const clientId = rand(clients);
    const call = clientTime[clientId] + rand(4);
    const duration = 1 + rand(20);
    const key = `k${rand(keys)}`;
    const input: KvInput = rand(2) === 0 ? { kind: 'put', key, value: `v${i}` } : { kind: 'get', key };
    const lost = rand(100) < lostPercent;
    const takesEffectAt = lost && rand(2) === 0 ? undefined : call + rand(duration + 1);
    plans.push({ clientId, input, call, ret: lost ? Infinity : call + duration, takesEffectAt });
    clientTime[clientId] = call + duration; // a client whose answer was lost gives up and carries on
  }
  return plans;
}

function registerHistory(seed: number, opCount: number, clients: number, keys: number, lostPercent: number): KvOp[] {
  return execute(kvModel, planRegister(seed, opCount, clients, keys, lostPercent), (input) => input.key, kvOutputOf);
}

/** Makes a late read return a value that two completed puts in real-time order had already buried. */
function corruptWithStaleRead(history: KvOp[]): { history: KvOp[]; index: number } {
  const completedPuts = history.filter((op) => op.input.kind === 'put' && op.ret !== Infinity);
  for (let r = history.length - 1; r >= 0; r--) {
    const reader = history[r];
    if (reader.input.kind !== 'get' || reader.ret === Infinity) continue;
    const key = reader.input.key;
    const q = completedPuts.findLast((op) => op.input.key === key && op.ret < reader.call);
    const p = q && completedPuts.find((op) => op.input.key === key && op.ret < q.call);
    if (p === undefined || p.input.kind !== 'put') continue;
    const corrupted = history.slice();
    corrupted[r] = { ...reader, output: { value: p.input.value } };
    return { history: corrupted, index: r };
  }
  throw new Error('no read to corrupt');
}

// The budgets below guard the search heuristics: this history takes 17,991 steps, and 35,862 without trying
// operations by deadline.
test('2,000 operations on one key from a correct register are ok within a small budget; one stale read is illegal', (t) => {
  const history = registerHistory(1, 2000, 8, 1, 2);
  const started = performance.now();
  const ok = checkLinearizable(kvModel, history, { stepBudget: 25_000 });
  const okMs = performance.now() - started;
  assert.equal(ok.result, 'ok', JSON.stringify(ok));

  const { history: corrupted, index } = corruptWithStaleRead(history);
  const started2 = performance.now();
  const r = assertIllegal(checkLinearizable(kvModel, corrupted, { stepBudget: 1_000_000 }));
  const illegalMs = performance.now() - started2;
  assert.ok(r.stuckOps.includes(corrupted[index]), r.explanation);
  assert.ok(r.longestPrefix.length > 1000, `prefix ${r.longestPrefix.length}`);
  t.diagnostic(`2,000 ops, one key: ok in ${okMs.toFixed(1)} ms, stale read found illegal in ${illegalMs.toFixed(1)} ms`);
});

test('2,000 operations over 10 keys are ok; a read of a never-written value is illegal in its key', () => {
  const history = registerHistory(2, 2000, 16, 10, 5);
  assert.equal(checkLinearizable(kvModel, history, { stepBudget: 40_000 }).result, 'ok');
  const index = history.findLastIndex((op) => op.input.kind === 'get' && op.ret !== Infinity);
  const corrupted = history.slice();
  corrupted[index] = { ...history[index], output: { value: 'never-written' } };
  const r = assertIllegal(checkLinearizable(kvModel, corrupted));
  assert.deepEqual(r.stuckOps.filter((op) => op.output !== undefined && 'value' in op.output && op.output.value === 'never-written'), [corrupted[index]]);
});

test('16 clients on one key with 5% of answers lost: ok within 300,000 steps (205,550; 1,952,564 without deadlines)', () => {
  assert.equal(checkLinearizable(kvModel, registerHistory(5, 2000, 16, 1, 5), { stepBudget: 300_000 }).result, 'ok');
});

test('the step budget ends the search with unknown, never ok', () => {
  const history = registerHistory(3, 2000, 8, 1, 2);
  const r = checkLinearizable(kvModel, history, { stepBudget: 500 });
  assert.equal(r.result, 'unknown');
  assert.match((r as { reason: string }).reason, /^step budget of 500 exhausted in partition 0 \(\d+ operations\)/);
  assert.equal(checkLinearizable(kvModel, [put(1, 'x', 'a', 0, 1)], { stepBudget: 0 }).result, 'unknown');
  assert.equal(checkLinearizable(kvModel, [put(1, 'x', 'a', 0, 1)], { stepBudget: 1 }).result, 'ok');
  // Below some budget the answer is unknown, from it on always the same: the search is deterministic.
  const stale = [put(1, 'x', 'a', 0, 10), put(1, 'x', 'b', 11, 20), get(2, 'x', 'a', 15, 30), get(2, 'x', 'a', 31, 32)];
  const answers = Array.from({ length: 30 }, (_, budget) => checkLinearizable(kvModel, stale, { stepBudget: budget }).result);
  const first = answers.indexOf('illegal');
  assert.ok(first > 0, answers.join());
  assert.deepEqual(answers, [...Array(first).fill('unknown'), ...Array(30 - first).fill('illegal')]);
});

test('the budget is shared by all partitions, and small partitions are checked first', () => {
  const big = registerHistory(4, 2000, 8, 1, 0); // all on k0
  const small = [put(9, 'other', 'a', 0, 1), get(9, 'other', 'stale', 2, 3)];
  const r = checkLinearizable(kvModel, [...big, ...small], { stepBudget: 100 });
  assert.equal(assertIllegal(r).partitionIndex, 1);
  const okSmall = [put(9, 'other', 'a', 0, 1), get(9, 'other', 'a', 2, 3)];
  assert.equal(checkLinearizable(kvModel, [...big, ...okSmall], { stepBudget: 2000 }).result, 'unknown');
});

// ---- Append histories: recorded and generated ----

/** One operation as test/testdata/linearizability/*.json stores it (see the README there). */
interface RecordedOp {
  clientId: number;
  input: AppendInput;
  call: number;
  ret: number | null; // null: never returned (Infinity)
  output?: { ok: true } | { value: string | null }; // absent: not recorded; value null: the key was absent
}

function loadAppendHistory(name: string): AppendOp[] {
  const text = readFileSync(new URL(`../testdata/linearizability/${name}`, import.meta.url), 'utf8');
  return (JSON.parse(text) as RecordedOp[]).map(({ clientId, input, call, ret, output }) => ({
    clientId,
    input,
    call,
    ret: ret ?? Infinity,
    output: output === undefined ? undefined : 'value' in output ? { value: output.value ?? undefined } : output,
  }));
}

/** The read with the longest text, and where it is: the one that pins the appends of its key. */
function longestRead(history: AppendOp[], key: string): { index: number; text: string } {
  let best = { index: -1, text: '' };
  history.forEach((op, index) => {
    if (op.input.key !== key || op.output === undefined || !('value' in op.output)) return;
    const text = op.output.value ?? '';
    if (best.index < 0 || text.length > best.text.length) best = { index, text };
  });
  return best;
}

function withOutput(history: AppendOp[], index: number, value: string): AppendOp[] {
  const changed = history.slice();
  changed[index] = { ...history[index], output: { value } };
  return changed;
}

// The simulator gave up on this history at 2,000,000 steps (deciding it took 2,500,000 to 3,000,000): 7 clients
// appended to key a with few reads in between, so every order of those appends was tried until a read refuted it.
test('seed 9649 (kv, 1,082 operations, 378 on key a) is ok within 5,000 steps (1,267); unpinned not within 100,000', () => {
  const history = loadAppendHistory('seed-9649-kv.json');
  assert.equal(history.length, 1082);
  assert.deepEqual(checkLinearizable(appendModel, history, { stepBudget: 5_000 }), { result: 'ok' });
  assert.equal(checkLinearizable(appendUnpinnedModel, history, { stepBudget: 100_000 }).result, 'unknown');
});

test('seed 9649 with a lost or reordered append on key a is illegal within 5,000 steps', () => {
  const history = loadAppendHistory('seed-9649-kv.json');
  const { index, text } = longestRead(history, 'a');
  const values = text.split(';').slice(0, -1).map((v) => `${v};`);
  assert.equal(values.length, 233);
  // Lost: the longest read misses the 101st append, which returned long before it and which earlier reads saw.
  const lost = withOutput(history, index, values.filter((_, i) => i !== 100).join(''));
  const r = assertIllegal(checkLinearizable(appendModel, lost, { stepBudget: 5_000 })); // 1,638
  assert.equal(r.partitionIndex, 0);
  // Reordered: two appends swapped in the last read, which every earlier read that saw both contradicts.
  const swapped = values.slice();
  [swapped[50], swapped[51]] = [swapped[51], swapped[50]];
  assertIllegal(checkLinearizable(appendModel, withOutput(history, index, swapped.join('')), { stepBudget: 5_000 })); // 1,021
});

/** Like registerHistory, with appends of unique values in place of puts, against the append model. */
function appendHistory(seed: number, opCount: number, clients: number, keys: number, lostPercent: number): AppendOp[] {
  const plans = planRegister(seed, opCount, clients, keys, lostPercent).map((p): Planned<AppendInput> => ({
    ...p,
    input: p.input.kind === 'put' ? { kind: 'append', key: p.input.key, value: `${p.input.value};` } : p.input,
  }));
  return execute(appendModel, plans, (input) => input.key, (state, input) => (input.kind === 'append' ? { ok: true } : { value: state.text }));
}

test('append: 2,000 operations on one key are ok within 5,000 steps (4,840); a lost append is illegal within 10,000 (7,300)', (t) => {
  const history = appendHistory(11, 2000, 8, 1, 2);
  const started = performance.now();
  assert.deepEqual(checkLinearizable(appendModel, history, { stepBudget: 5_000 }), { result: 'ok' });
  const okMs = performance.now() - started;
  const { index, text } = longestRead(history, 'k0');
  const lost = withOutput(history, index, text.replace(/^((?:[^;]*;){500})[^;]*;/, '$1'));
  assertIllegal(checkLinearizable(appendModel, lost, { stepBudget: 10_000 }));
  assert.equal(checkLinearizable(appendUnpinnedModel, history, { stepBudget: 100_000 }).result, 'unknown');
  t.diagnostic(`2,000 append ops, one key: ok in ${okMs.toFixed(1)} ms`);
});

test('append: lost appends that no read saw cost a configuration per set of them, not per order', () => {
  // Ten concurrent appends, all answered before a read that saw none of them: illegal, after trying every set of
  // them that could go before the read (10! orders before the states past the read were made equal).
  const history = [append(50, 'f', 's;', 0, 1)];
  for (let i = 0; i < 10; i++) history.push(append(i, 'f', `${i};`, 2, 10));
  history.push(read(99, 'f', 's;', 20, 21));
  assertIllegal(checkLinearizable(appendModel, history, { stepBudget: 10_000 })); // 6,147
  assert.equal(checkLinearizable(appendModel, history.slice(0, -1), { stepBudget: 20 }).result, 'ok');
  const textEqual: Model<AppendState, AppendInput, AppendOutput> = {
    ...appendModel,
    equal: (a, b) => a.hash === b.hash && a.text === b.text,
    key: (state) => `${state.text.length}:${state.hash}`,
  };
  assert.equal(checkLinearizable(textEqual, history, { stepBudget: 200_000 }).result, 'unknown');
});

// ---- Properties ----

const planArb = fc.record({
  clientId: fc.integer({ min: 0, max: 4 }),
  kind: fc.constantFrom('write', 'get'),
  key: fc.constantFrom('a', 'b'),
  call: fc.integer({ min: 0, max: 30 }),
  duration: fc.integer({ min: 0, max: 10 }),
  effect: fc.double({ min: 0, max: 1, noNaN: true }),
  lost: fc.constantFrom('answered', 'answered', 'answered', 'lost-applied', 'lost-never'),
});
type PlanSpec = typeof planArb extends fc.Arbitrary<infer T> ? T : never;

// Effect points are rounded to integers half the time so that equal timestamps are common.
function toPlans<I>(specs: PlanSpec[], inputOf: (spec: PlanSpec, i: number) => I): Planned<I>[] {
  return specs.map((s, i) => {
    const raw = s.call + s.effect * s.duration;
    const at = i % 2 === 0 ? Math.round(raw) : raw;
    return {
      clientId: s.clientId,
      input: inputOf(s, i),
      call: s.call,
      ret: s.lost === 'answered' ? s.call + s.duration : Infinity,
      takesEffectAt: s.lost === 'lost-never' ? undefined : at,
    };
  });
}

const kvInputOf = (s: PlanSpec, i: number): KvInput => (s.kind === 'write' ? { kind: 'put', key: s.key, value: `v${i % 3}` } : { kind: 'get', key: s.key });
const appendInputOf = (s: PlanSpec, i: number): AppendInput =>
  s.kind === 'write' ? { kind: 'append', key: s.key, value: String.fromCharCode(97 + (i % 26)) } : { kind: 'get', key: s.key };
const appendOutputOf = (state: { text: string }, input: AppendInput): AppendOutput => (input.kind === 'append' ? { ok: true } : { value: state.text });

test('property: executing each op atomically inside its interval always gives an ok history (kv and append)', () => {
  fc.assert(
    fc.property(fc.array(planArb, { maxLength: 40 }), (specs) => {
      const kv = execute(kvModel, toPlans(specs, kvInputOf), (input) => input.key, kvOutputOf);
      assert.deepEqual(checkLinearizable(kvModel, kv), { result: 'ok' });
      const log = execute(appendModel, toPlans(specs, appendInputOf), (input) => input.key, appendOutputOf);
      assert.deepEqual(checkLinearizable(appendModel, log), { result: 'ok' });
    }),
    { numRuns: 300, seed: 0x11ea7 },
  );
});

/** Real-time order with the checker's tie rule, written independently of its entry ranks. */
function precedes<I, O>(a: Operation<I, O>, b: Operation<I, O>): boolean {
  const bothInstant = a.call === a.ret && b.call === b.ret;
  return a.ret < b.call || (a.ret === b.call && !bothInstant);
}

/** Tries every real-time-respecting order: the reference the memoized search must agree with. */
function bruteForce<S, I, O>(model: Model<S, I, O>, ops: Operation<I, O>[]): boolean {
  const placed = ops.map(() => false);
  const search = (state: S, count: number): boolean => {
    if (count === ops.length) return true;
    for (let i = 0; i < ops.length; i++) {
      if (placed[i] || ops.some((o, j) => !placed[j] && j !== i && precedes(o, ops[i]))) continue;
      const stepped = model.step(state, ops[i].input, ops[i].output);
      if (!stepped.ok) continue;
      placed[i] = true;
      const found = search(stepped.state, count + 1);
      placed[i] = false;
      if (found) return true;
    }
    return false;
  };
  return search(model.init(), 0);
}

/** The register with a constant memo key, so every state collides and only model.equal tells them apart. */
const kvCollidingModel: Model<string | undefined, KvInput, KvOutput> = { ...kvModel, key: () => 'same' };

test('property: on small kv histories with corrupted reads the checker agrees with brute force', () => {
  const readValues = [undefined, 'v0', 'v1', 'v2', 'v3', 'v4'];
  fc.assert(
    fc.property(
      fc.array(planArb.map((s) => ({ ...s, key: 'a' as const })), { minLength: 1, maxLength: 7 }),
      fc.integer({ min: 3, max: 6 }),
      fc.array(fc.tuple(fc.nat(), fc.constantFrom(...readValues)), { maxLength: 2 }),
      (specs, distinctValues, corruptions) => {
        const inputOf = (s: PlanSpec, i: number): KvInput =>
          s.kind === 'write' ? { kind: 'put', key: s.key, value: `v${i % distinctValues}` } : { kind: 'get', key: s.key };
        const history = execute(kvModel, toPlans(specs, inputOf), (input) => input.key, kvOutputOf);
        for (const [at, value] of corruptions) {
          const i = at % history.length;
          if (history[i].input.kind === 'get' && history[i].output !== undefined) history[i] = { ...history[i], output: { value } };
        }
        const expected = bruteForce(kvModel, history) ? 'ok' : 'illegal';
        assert.equal(checkLinearizable(kvModel, history).result, expected);
        assert.equal(checkLinearizable(kvCollidingModel, history).result, expected);
        assert.equal(checkLinearizable(kvModel, history, { memoEntriesMax: 0 }).result, expected);
      },
    ),
    { numRuns: 2000, seed: 0xb2f },
  );
});

test('property: on small append histories with corrupted reads the checker agrees with brute force', () => {
  fc.assert(
    fc.property(
      fc.array(planArb.map((s) => ({ ...s, key: 'a' as const })), { minLength: 1, maxLength: 7 }),
      fc.array(fc.tuple(fc.nat(), fc.string({ unit: fc.constantFrom('a', 'b', 'c', 'd'), maxLength: 4 })), { maxLength: 2 }),
      (specs, corruptions) => {
        const history = execute(appendModel, toPlans(specs, appendInputOf), (input) => input.key, appendOutputOf);
        for (const [at, value] of corruptions) {
          const i = at % history.length;
          if (history[i].input.kind === 'get' && history[i].output !== undefined) history[i] = { ...history[i], output: { value } };
        }
        const expected = bruteForce(appendModel, history) ? 'ok' : 'illegal';
        assert.equal(checkLinearizable(appendModel, history).result, expected);
      },
    ),
    { numRuns: 2000, seed: 0xa99 },
  );
});

// The pin and the equal states past the longest read rely on no property of the values: here they are prefixes of
// one another, repeated, or empty, and reads are corrupted into any short text.
test('property: on small append histories with ambiguous values the checker agrees with brute force', () => {
  const values = ['a', 'b', 'ab', 'ba', 'aa', ''];
  fc.assert(
    fc.property(
      fc.array(fc.tuple(planArb.map((s) => ({ ...s, key: 'a' as const })), fc.nat()), { minLength: 1, maxLength: 7 }),
      fc.array(fc.tuple(fc.nat(), fc.string({ unit: fc.constantFrom('a', 'b'), maxLength: 6 })), { maxLength: 2 }),
      (specsWithValues, corruptions) => {
        const specs = specsWithValues.map(([spec]) => spec);
        const inputOf = (spec: PlanSpec, i: number): AppendInput =>
          spec.kind === 'write' ? { kind: 'append', key: spec.key, value: values[specsWithValues[i][1] % values.length] } : { kind: 'get', key: spec.key };
        const history = execute(appendModel, toPlans(specs, inputOf), (input) => input.key, appendOutputOf);
        for (const [at, value] of corruptions) {
          const i = at % history.length;
          if (history[i].input.kind === 'get' && history[i].output !== undefined) history[i] = { ...history[i], output: { value } };
        }
        const expected = bruteForce(appendModel, history) ? 'ok' : 'illegal';
        assert.equal(checkLinearizable(appendModel, history).result, expected);
        assert.equal(checkLinearizable(appendModel, history, { memoEntriesMax: 0 }).result, expected);
      },
    ),
    { numRuns: 3000, seed: 0x9649 },
  );
});

test('a memo limit keeps the answers right, only slower', () => {
  const history = registerHistory(7, 300, 4, 1, 2);
  assert.equal(checkLinearizable(kvModel, history, { memoEntriesMax: 10 }).result, 'ok');
  const { history: corrupted } = corruptWithStaleRead(history);
  const limited = checkLinearizable(kvModel, corrupted, { memoEntriesMax: 10, stepBudget: 200_000 }).result;
  assert.equal(checkLinearizable(kvModel, corrupted).result, 'illegal');
  assert.ok(limited === 'illegal' || limited === 'unknown', limited);
});

test('the checker and models stay pure: no I/O, clock, timers or randomness', () => {
  for (const file of ['src/sim/linearizability.ts', 'src/sim/models.ts']) {
    const source = readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8');
    assert.doesNotMatch(source, /from 'node:|Date\.now|Math\.random|setTimeout|setInterval|performance\.|process\./, file);
  }
});
