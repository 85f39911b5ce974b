// A daemon started from a command line that carried --secret gets the secret in its environment,
// not on its own command line, which every user reads in `ps` for as long as it runs.

import assert from 'node:assert/strict';
import { appendFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { spawnDaemon, takeSecretArg } from '../../src/cli/daemon.ts';
import { daemonArgs } from '../../src/cli/mount-cmd.ts';

test('--secret VALUE and --secret=VALUE leave the arguments; nothing else does', () => {
  assert.deepEqual(takeSecretArg(['main.ts', 'mount', '/m', '--secret', 's3cr3t', '--masters', 'h:1']), { rest: ['main.ts', 'mount', '/m', '--masters', 'h:1'], secret: 's3cr3t' });
  assert.deepEqual(takeSecretArg(['main.ts', 'mount', '--secret=a=b', '/m']), { rest: ['main.ts', 'mount', '/m'], secret: 'a=b' });
  assert.deepEqual(takeSecretArg(['main.ts', 'mount', '/m', '--secrets', 'x']), { rest: ['main.ts', 'mount', '/m', '--secrets', 'x'] });
  assert.deepEqual(takeSecretArg(['main.ts', 'mount', '/m', '--secret']), { rest: ['main.ts', 'mount', '/m', '--secret'] }, 'no value: left for the daemon to refuse');
});

test('the mount daemon, which runs in /, gets the mount point, --dir and --log as absolute paths, and no --daemon', () => {
  const here = process.cwd();
  assert.deepEqual(daemonArgs(['main.ts', 'mount', 'mnt', '--daemon', '--dir', 'cluster', '--log=logs/m.log', '--timeout-ms', '5'], 'mnt', `${here}/mnt`), [
    'main.ts',
    'mount',
    `${here}/mnt`,
    '--dir',
    `${here}/cluster`,
    `--log=${here}/logs/m.log`,
    '--timeout-ms',
    '5',
  ]);
  // A flag's value that equals the mount point is left alone: only the argument after `mount` is it.
  assert.deepEqual(daemonArgs(['main.ts', '--masters', 'mnt', 'mount', 'mnt'], 'mnt', '/abs/mnt'), ['main.ts', '--masters', 'mnt', 'mount', '/abs/mnt']);
});

test("a daemon that fails before it is ready: the error quotes the end of what it wrote this time, not an earlier run's", async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-daemon-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const log = path.join(dir, 'd.log');
  await appendFile(log, 'an earlier run ended well\n');
  const failing = ['-e', "console.log('connecting'); console.error('no leading master answered'); process.exit(3)"];
  await assert.rejects(spawnDaemon(failing, log, 'the test daemon'), (err: Error) => {
    assert.match(err.message, /the test daemon exited with code 3 before it started; see .*d\.log; its log ends: connecting \| no leading master answered$/);
    return true;
  });
  await assert.rejects(spawnDaemon(['-e', 'process.exit(4)'], log, 'the test daemon'), /exited with code 4 before it started; see .*d\.log \(it wrote nothing\)$/);
});
