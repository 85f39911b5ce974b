// Structured logs (pino, JSON lines) with the process's context on every line.

import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(bindings: Record<string, unknown>, level = process.env.CAIRN_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { pid: process.pid, ...bindings }, timestamp: pino.stdTimeFunctions.isoTime });
}

/** Adapts a pino logger to the small (level, msg, ctx) callback the libraries take. */
export function logCallback(log: Logger): (level: 'info' | 'warn' | 'error', msg: string, ctx?: object) => void {
  return (level, msg, ctx) => log[level](ctx ?? {}, msg);
}
