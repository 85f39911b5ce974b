// Starting a cairn command as a daemon: detached, its output in a log file, and ready once it says
// so over an IPC channel (a message), so that a caller knows it serves before it returns.

import { spawn } from 'node:child_process';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { CairnError, ErrorCode } from '../errors.ts';
import { withServerNodeFlags } from './node-flags.ts';

/**
 * How long a daemon may take to say it is ready: longer than the client library waits for a
 * leading master (60 s), so that a daemon that cannot reach the masters fails with that error
 * (quoted from its log) rather than being stopped before it said anything.
 */
export const daemonStartMs = 90_000;
/** The end of the daemon's log quoted in a failure to start. */
const logTailBytes = 2048;

/**
 * Runs `node ARGS` detached in `/` (so that it never holds a directory busy), its output in
 * `logFile`; resolves with its pid and its first message once it sends one, and fails if it exits
 * first or takes longer than `startMs` (`what` names it in the error).
 */
export async function spawnDaemon(args: string[], logFile: string, what: string, startMs = daemonStartMs): Promise<{ pid: number; message: unknown }> {
  await mkdir(path.dirname(logFile), { recursive: true });
  const out = openSync(logFile, 'a');
  const logFrom = fstatSync(out).size; // what earlier runs wrote is not this one's
  const { rest, secret } = takeSecretArg(args);
  const env = secret === undefined ? process.env : { ...process.env, CAIRN_SECRET: secret };
  const child = spawn(process.execPath, withServerNodeFlags(rest), { cwd: '/', detached: true, stdio: ['ignore', out, out, 'ipc'], env });
  closeSync(out); // the daemon has its own
  const outcome = await new Promise<{ message: unknown } | 'timeout' | number | null>((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), startMs);
    child.once('message', (message) => {
      clearTimeout(timer);
      resolve({ message });
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
  if (typeof outcome === 'object' && outcome !== null) {
    child.disconnect();
    child.unref();
    return { pid: child.pid!, message: outcome.message };
  }
  if (outcome === 'timeout') {
    child.kill('SIGTERM');
    throw new CairnError(ErrorCode.ProcessFailed, `${what} did not start within ${Math.round(startMs / 1000)} s; see ${logFile}${lastLines(logFile, logFrom)}`);
  }
  throw new CairnError(ErrorCode.ProcessFailed, `${what} exited with code ${outcome} before it started; see ${logFile}${lastLines(logFile, logFrom)}`);
}

/** The last lines the daemon wrote to its log (past byte `from`), to quote in an error. */
function lastLines(logFile: string, from: number): string {
  let fd: number;
  try {
    fd = openSync(logFile, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    const buf = Buffer.alloc(Math.max(0, Math.min(size - from, logTailBytes)));
    const n = readSync(fd, buf, 0, buf.length, size - buf.length);
    const lines = buf.subarray(0, n).toString('utf8').split('\n').filter((l) => l.trim() !== '');
    // One line: the CLI escapes a newline in an error.
    return lines.length === 0 ? ' (it wrote nothing)' : `; its log ends: ${lines.slice(-2).join(' | ')}`;
  } catch {
    return '';
  } finally {
    closeSync(fd);
  }
}

/**
 * `args` without `--secret VALUE` (or `--secret=VALUE`), and that value: a daemon gets the secret in
 * its environment instead, which other users cannot read, where its command line stays in `ps` for
 * as long as it runs.
 */
export function takeSecretArg(args: readonly string[]): { rest: string[]; secret?: string } {
  const rest: string[] = [];
  let secret: string | undefined;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--secret' && i + 1 < args.length) secret = args[++i];
    else if (args[i].startsWith('--secret=')) secret = args[i].slice('--secret='.length);
    else rest.push(args[i]);
  }
  return secret === undefined ? { rest } : { rest, secret };
}
