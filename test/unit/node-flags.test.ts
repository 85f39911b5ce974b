import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { serverNodeFlags, withServerNodeFlags } from '../../src/cli/node-flags.ts';

test('the cairn script starts node with the server flags that spawned processes get', () => {
  const shebang = readFileSync(new URL('../../src/cli/main.ts', import.meta.url), 'utf8').split('\n')[0];
  assert.equal(shebang, `#!/usr/bin/env -S node ${serverNodeFlags.join(' ')}`);
});

test('withServerNodeFlags adds each flag once, before the rest, and keeps a value given', () => {
  assert.deepEqual(withServerNodeFlags(['main.ts', 'worker']), [...serverNodeFlags, 'main.ts', 'worker']);
  assert.deepEqual(withServerNodeFlags(['--initial-old-space-size=512', 'main.ts']), ['--initial-old-space-size=512', 'main.ts']);
  assert.deepEqual(withServerNodeFlags(withServerNodeFlags(['main.ts'])), withServerNodeFlags(['main.ts']));
});
