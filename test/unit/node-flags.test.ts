import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { userInfo } from 'node:os';
import { compileCacheDir, serverNodeFlags, withServerNodeFlags } from '../../src/cli/node-flags.ts';

test('the cairn script starts node with the server flags that spawned processes get', () => {
  const shebang = readFileSync(new URL('../../src/cli/main.ts', import.meta.url), 'utf8').split('\n')[0];
  assert.equal(shebang, `#!/usr/bin/env -S node ${serverNodeFlags.join(' ')}`);
});

test('withServerNodeFlags adds each flag once, before the rest, and keeps a value given', () => {
  assert.deepEqual(withServerNodeFlags(['main.ts', 'worker']), [...serverNodeFlags, 'main.ts', 'worker']);
  assert.deepEqual(withServerNodeFlags(['--initial-old-space-size=512', 'main.ts']), ['--initial-old-space-size=512', 'main.ts']);
  assert.deepEqual(withServerNodeFlags(withServerNodeFlags(['main.ts'])), withServerNodeFlags(['main.ts']));
});

test("the compile cache is in the user's own home from the password database, never $HOME's, nor a home another user owns", () => {
  const me = { uid: 1000, homedir: '/home/me' };
  assert.equal(compileCacheDir(() => me, () => 1000), '/home/me/.cache/cairn/compile-cache');
  assert.equal(compileCacheDir(() => me, () => 1001), undefined, 'a home another user owns (they could plant code)');
  assert.equal(compileCacheDir(() => ({ uid: 1000, homedir: '' }), () => 1000), undefined);
  assert.equal(compileCacheDir(() => me, () => { throw new Error('ENOENT'); }), undefined, 'no home directory');
  assert.equal(compileCacheDir(() => { throw new Error('no passwd entry'); }), undefined);
  const home = process.env.HOME;
  process.env.HOME = '/tmp';
  try {
    const dir = compileCacheDir(); // undefined where this user's home is not its own
    assert.ok(dir === undefined || dir.startsWith(`${userInfo().homedir}/`), `sudo -E: $HOME names another user's home, not ${dir}`);
  } finally {
    process.env.HOME = home;
  }
});
