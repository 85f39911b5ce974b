// `cairn demo` end to end: three nodes on real timers and real WALs elect a leader, commit, survive
// the loss of the leader, and bring the old leader back from its WAL.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runDemo } from '../../src/cli/demo.ts';

test('the demo elects, commits, fails over and catches the old leader up from its WAL', async () => {
  const lines: string[] = [];
  await runDemo({ keep: false, log: (l) => lines.push(l) });
  const text = lines.join('\n');
  assert.match(text, /committed 20 entries 'before-1\.\.20'/);
  assert.match(text, /node \d took over after \d+ ms/);
  assert.match(text, /committed 10 entries 'after-1\.\.10'/);
  assert.match(text, /caught up: 30 entries applied on every node, logs identical: true/);
});
