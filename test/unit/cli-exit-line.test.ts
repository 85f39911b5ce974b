// Tests of how `cairn local up` finds why a process exited (src/cli/exit-line.ts): the last error
// line of its log, whether the CLI, pino or Node wrote it.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { lastErrorIn, lastErrorLine } from '../../src/cli/exit-line.ts';

const info = JSON.stringify({ level: 30, time: '2026-01-01T00:00:00.000Z', pid: 1, role: 'master', node: 1, msg: 'serving' });

test('the last cairn: line, without its prefix', () => {
  assert.equal(lastErrorIn(`${info}\ncairn: --tick-ms must be a positive whole number, got "x"\n`), '--tick-ms must be a positive whole number, got "x"');
  assert.equal(lastErrorIn('cairn: first\ncairn: second\n'), 'second');
});

test('a pino error or fatal line gives its message with the error\'s message and code; lower levels are no error', () => {
  const fatal = JSON.stringify({ level: 60, msg: 'the journal failed', err: { type: 'JournalError', message: 'no space left on device', code: 'CAIRN_DISK_FULL', stack: 'JournalError: ...' } });
  assert.equal(lastErrorIn(`${info}\n${fatal}\n${info}\n`), 'the journal failed: no space left on device (CAIRN_DISK_FULL)');
  assert.equal(lastErrorIn(JSON.stringify({ level: 50, msg: 'lost the lock' })), 'lost the lock');
  assert.equal(lastErrorIn(`${info}\n${JSON.stringify({ level: 40, msg: 'slow fsync' })}\n`), undefined);
});

test('the heading of an uncaught error\'s stack trace', () => {
  const trace = ['file:///x/wal.ts:10', '    throw err;', '    ^', '', "Error: ENOSPC: no space left on device, write", '    at writeSync (node:fs:1)', "  errno: -28,", '', 'Node.js v26.0.0'].join('\n');
  assert.equal(lastErrorIn(trace), 'Error: ENOSPC: no space left on device, write');
  assert.equal(lastErrorIn('TypeError [ERR_INVALID_ARG_TYPE]: bad\n'), 'TypeError [ERR_INVALID_ARG_TYPE]: bad');
});

test('whichever came last wins; a log with no error has none', () => {
  assert.equal(lastErrorIn(`Error: old\n${info}\ncairn: newer\n`), 'newer');
  assert.equal(lastErrorIn(`cairn: older\n${JSON.stringify({ level: 60, msg: 'newest' })}\n`), 'newest');
  assert.equal(lastErrorIn(`${info}\n{not json\n\n`), undefined);
  assert.equal(lastErrorIn(''), undefined);
});

test('lastErrorLine reads only what was written after the given offset: an earlier run\'s error is not this one\'s', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-exit-line-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const log = path.join(dir, 'master.log');
  const earlier = 'cairn: an earlier run failed\n';
  await writeFile(log, `${earlier}${info}\n`);
  assert.equal(lastErrorLine(log, 0), 'an earlier run failed');
  assert.equal(lastErrorLine(log, Buffer.byteLength(earlier)), undefined);
  assert.equal(lastErrorLine(path.join(dir, 'missing.log'), 0), undefined);
});
