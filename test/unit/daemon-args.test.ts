// A daemon started from a command line that carried --secret gets the secret in its environment,
// not on its own command line, which every user reads in `ps` for as long as it runs.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { takeSecretArg } from '../../src/cli/daemon.ts';
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
