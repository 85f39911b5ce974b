// The data-directory lock on real processes: a second `cairn master` on a directory a running
// master holds exits with a one-line error naming the holder, and the first keeps serving.

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { MasterClient } from '../../src/client/master-client.ts';
import { rootCaller } from '../../src/meta/commands.ts';
import { freePort } from '../../src/cli/local.ts';
import type { JournalStatus } from '../../src/journal/journal.ts';
import { waitFor } from './harness.ts';

const run = promisify(execFile);
const mainScript = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const secret = 'test-secret';

test('a second master on a held data directory exits with a clear error; the first keeps serving', async (t) => {
  const root = await mkdtemp(path.join(tmpdir(), 'cairn-dir-lock-'));
  const dir = path.join(root, 'm1');
  const logFile = path.join(root, 'm1.log');
  const address = `127.0.0.1:${await freePort()}`;
  const fd = openSync(logFile, 'a');
  const first = spawn(process.execPath, [mainScript, 'master', '--id', '1', '--dir', dir, '--listen', address, '--tick-ms', '10'], { stdio: ['ignore', fd, fd], env: { ...process.env, CAIRN_SECRET: secret } });
  closeSync(fd);
  const client = new MasterClient({ masters: [address], secret, callTimeoutMs: 1_000, caller: rootCaller });
  t.after(async () => {
    client.close();
    if (first.exitCode === null && first.signalCode === null) first.kill('SIGKILL');
    if ((t as unknown as { passed?: boolean }).passed === false) console.error(await readFile(logFile, 'utf8').catch(() => ''));
    await rm(root, { recursive: true, force: true });
  });
  const role = async (): Promise<string | undefined> => (await client.callAt<JournalStatus>(address, 'admin.journal.info', {}).catch(() => undefined))?.role;
  await waitFor(async () => (await role()) === 'leader', 'the first master to lead', 10_000);

  const second = await run(process.execPath, [mainScript, 'master', '--id', '1', '--dir', dir, '--listen', `127.0.0.1:${await freePort()}`], {
    env: { ...process.env, CAIRN_SECRET: secret },
    timeout: 10_000,
  }).then(
    () => ({ code: 0, stderr: '' }),
    (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }),
  );
  assert.equal(second.code, 1, second.stderr);
  assert.match(second.stderr, new RegExp(`^cairn: data directory ${dir} is in use by pid ${first.pid} .*stop that process first.*\\(CAIRN_DIR_LOCKED\\)$`, 'm'));

  assert.equal(first.exitCode, null);
  assert.equal(await role(), 'leader', 'the first master still serves');
  const exited = new Promise((resolve) => first.once('exit', resolve));
  first.kill('SIGTERM');
  assert.equal(await exited, 0);
  assert.ok(!(await readdir(dir)).includes('LOCK'), 'a clean stop releases the lock');
});
