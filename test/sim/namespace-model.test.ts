// The namespace model against the real metadata state machine, one operation at a time: with no
// concurrency the two must answer every operation alike, so a linearizability failure in the
// simulator is about ordering, never about the model disagreeing with POSIX as MetaState does it.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { metaWorkload } from '../../src/sim/meta-workload.ts';
import { describeNsInput, describeNsOutput, namespaceModel, runNsOp, type NsInput, type NsOutput } from '../../src/sim/namespace-model.ts';
import { Prng } from '../../src/sim/prng.ts';

const runs = 30;
const opsPerRun = 300;

test(`the model answers ${runs} x ${opsPerRun} random operations exactly as MetaState does`, () => {
  const seen = new Set<string>();
  for (let seed = 1; seed <= runs; seed++) {
    const prng = new Prng(seed);
    let sm = metaWorkload.newMachine();
    let state = namespaceModel.init();
    let seq = 0;
    for (let i = 1; i <= opsPerRun; i++) {
      const input = metaWorkload.nextInput(prng, { id: 1, seq });
      let actual: NsOutput;
      if (metaWorkload.isRead(input)) actual = sm.read(input);
      else {
        seq++;
        const entry = metaWorkload.entry(input, { clientId: 1, seq, nowMs: 1000 + i });
        actual = metaWorkload.writeOutput(input, sm.apply(i, entry));
      }
      const expected = runNsOp(state, input);
      const where = `seed ${seed} op ${i} ${describeNsInput(input)} in ${namespaceModel.describeState!(state)}`;
      assert.equal(describeNsOutput(actual), describeNsOutput(expected.output), where);
      assert.ok(namespaceModel.step(state, input, actual).ok, where);
      state = expected.state;
      seen.add(`${input.kind} ${actual.code}`);
      if (i % 50 === 0) {
        // A replica restored from a snapshot is the same replica.
        const restored = metaWorkload.newMachine();
        restored.restore(sm.snapshot());
        assert.equal(restored.stateHash(), sm.stateHash(), `${where}: snapshot round trip`);
        sm = restored;
      }
    }
  }
  // The operations reach every answer the workload is meant to exercise.
  const wanted = [
    'mkdir ok', 'mkdir EEXIST', 'mkdir ENOENT', 'mkdir ENOTDIR',
    'create ok', 'create EEXIST', 'create EISDIR', 'create ENOENT', 'create ENOTDIR',
    'unlink ok', 'unlink ENOENT', 'unlink EISDIR', 'unlink ENOTDIR',
    'rmdir ok', 'rmdir ENOENT', 'rmdir ENOTDIR', 'rmdir ENOTEMPTY',
    'rename ok', 'rename ENOENT', 'rename ENOTDIR', 'rename EISDIR', 'rename ENOTEMPTY', 'rename EINVAL',
    'setattr ok', 'setattr ENOENT', 'setattr EISDIR', 'setattr ENOTDIR',
    'stat ok', 'stat ENOENT', 'stat ENOTDIR',
    'readdir ok', 'readdir ENOENT', 'readdir ENOTDIR',
  ];
  assert.deepEqual(wanted.filter((w) => !seen.has(w)), []);
});

test('rename moves a directory with its subtree, and refuses to move it into itself', () => {
  let state = namespaceModel.init();
  const run = (input: NsInput): string => {
    const out = runNsOp(state, input);
    state = out.state;
    return describeNsOutput(out.output);
  };
  run({ kind: 'mkdir', path: '/a', mode: 0o755 });
  run({ kind: 'mkdir', path: '/a/x', mode: 0o700 });
  run({ kind: 'create', path: '/a/x/f', mode: 0o644, exclusive: true });
  assert.equal(run({ kind: 'rename', from: '/a', to: '/a/x/g' }), 'EINVAL');
  assert.equal(run({ kind: 'rename', from: '/a', to: '/b' }), 'no victim');
  assert.equal(run({ kind: 'stat', path: '/b/x/f' }), 'file 0644 0B nlink 1');
  assert.equal(run({ kind: 'stat', path: '/b' }), 'dir 0755 0B nlink 3');
  assert.equal(run({ kind: 'stat', path: '/a' }), 'ENOENT');
  assert.equal(run({ kind: 'mkdir', path: '/c', mode: 0o755 }), 'dir 0755 0B nlink 2');
  assert.equal(run({ kind: 'rename', from: '/c', to: '/b' }), 'ENOTEMPTY');
  assert.equal(run({ kind: 'rename', from: '/b/x/f', to: '/c' }), 'EISDIR');
  assert.equal(run({ kind: 'readdir', path: '/' }), '[b:dir c:dir]');
});

test('the model refuses an answer it does not predict', () => {
  const state = namespaceModel.init();
  assert.equal(namespaceModel.step(state, { kind: 'stat', path: '/a' }, { code: 'ENOENT' }).ok, true);
  assert.equal(namespaceModel.step(state, { kind: 'stat', path: '/a' }, { code: 'ENOTDIR' }).ok, false);
  const made = namespaceModel.step(state, { kind: 'mkdir', path: '/a', mode: 0o755 }, undefined);
  assert.equal(made.ok, true, 'an unknown outcome fits');
  assert.equal(namespaceModel.step(made.state, { kind: 'rmdir', path: '/a' }, { code: 'ENOENT' }).ok, false);
  assert.equal(namespaceModel.key(state), namespaceModel.key(namespaceModel.init()));
  assert.notEqual(namespaceModel.key(made.state), namespaceModel.key(state));
});
