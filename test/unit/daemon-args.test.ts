// A daemon started from a command line that carried --secret gets the secret in its environment,
// not on its own command line, which every user reads in `ps` for as long as it runs.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { takeSecretArg } from '../../src/cli/daemon.ts';

test('--secret VALUE and --secret=VALUE leave the arguments; nothing else does', () => {
  assert.deepEqual(takeSecretArg(['main.ts', 'mount', '/m', '--secret', 's3cr3t', '--masters', 'h:1']), { rest: ['main.ts', 'mount', '/m', '--masters', 'h:1'], secret: 's3cr3t' });
  assert.deepEqual(takeSecretArg(['main.ts', 'mount', '--secret=a=b', '/m']), { rest: ['main.ts', 'mount', '/m'], secret: 'a=b' });
  assert.deepEqual(takeSecretArg(['main.ts', 'mount', '/m', '--secrets', 'x']), { rest: ['main.ts', 'mount', '/m', '--secrets', 'x'] });
  assert.deepEqual(takeSecretArg(['main.ts', 'mount', '/m', '--secret']), { rest: ['main.ts', 'mount', '/m', '--secret'] }, 'no value: left for the daemon to refuse');
});
