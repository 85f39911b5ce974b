// Why a process of a local cluster stopped, from the end of its log: what `local up` says when a
// master or worker exits at start instead of waiting for a leader that cannot come.

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

/** Enough of a log's end to hold the exit line, however long the log has grown. */
const logTailBytes = 64 * 1024;
/** pino's level numbers: 50 is error, 60 fatal. */
const pinoErrorLevelMin = 50;
/** The heading Node prints for an uncaught error: `Error: ...`, `TypeError [ERR_X]: ...`. */
const uncaughtHeading = /^[A-Za-z]*Error(?: \[[A-Z0-9_]+\])?: /;

/**
 * The last error line of a log's text, from the last of: a `cairn: ...` line (what the CLI prints
 * when it fails; without the prefix), a pino line at level error or fatal (its message, the error's
 * message and code), or the heading of an uncaught error's stack trace. Undefined if there is none.
 */
export function lastErrorIn(text: string): string | undefined {
  const lines = text.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i].trim();
    if (line.startsWith('cairn: ')) return line.slice('cairn: '.length).trim();
    if (line.startsWith('{')) {
      const logged = pinoError(line);
      if (logged !== undefined) return logged;
    } else if (uncaughtHeading.test(line)) return line;
  }
  return undefined;
}

function pinoError(line: string): string | undefined {
  let entry: { level?: unknown; msg?: unknown; err?: { message?: unknown; code?: unknown } };
  try {
    entry = JSON.parse(line) as typeof entry;
  } catch {
    return undefined;
  }
  if (typeof entry.level !== 'number' || entry.level < pinoErrorLevelMin) return undefined;
  const msg = typeof entry.msg === 'string' ? entry.msg : 'error';
  const err = entry.err;
  if (typeof err?.message !== 'string' || err.message === '') return msg;
  return `${msg}: ${err.message}${typeof err.code === 'string' ? ` (${err.code})` : ''}`;
}

/** The last error line (see lastErrorIn) written to a log file after byte `from`; undefined if none or unreadable. */
export function lastErrorLine(file: string, from: number): string | undefined {
  let text: string;
  try {
    const fd = openSync(file, 'r');
    try {
      const size = fstatSync(fd).size;
      const start = Math.max(from, size - logTailBytes);
      const buf = Buffer.alloc(Math.max(0, size - start));
      readSync(fd, buf, 0, buf.length, start);
      text = buf.toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
  return lastErrorIn(text);
}
