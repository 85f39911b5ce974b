// Exactly-once application (Raft thesis §6.3): the latest (seq, result) of each client, bounded by
// idle time on the commands' own clock and by count, least recently used first out.
//
// One outstanding command per clientId: a client that sent seq n has its answer to every seq
// below n, so an older seq can only be a late duplicate and is answered CAIRN_STALE_SEQ; a client
// that wants several commands in flight uses several clientIds.

import { ResultErrorCode } from './errors.ts';
import { fail } from './namespace-state.ts';
import type { MetaResult, MetaTables } from './namespace-state.ts';

/** The answer to a command already seen (its stored result, or CAIRN_STALE_SEQ), or undefined for a new one. */
export function answerSeen(t: MetaTables, clientId: string, seq: number): MetaResult | undefined {
  const record = t.clients.get(clientId);
  if (record === undefined || seq > record.seq) return undefined;
  if (seq < record.seq) {
    return fail(ResultErrorCode.StaleSeq, `stale request: client '${clientId}' seq ${seq} is older than its last applied seq ${record.seq}`);
  }
  t.clients.delete(clientId);
  record.lastUsedMs = t.clockMs;
  t.clients.set(clientId, record);
  return record.result;
}

export function remember(t: MetaTables, clientId: string, seq: number, result: MetaResult): void {
  t.clients.delete(clientId);
  t.clients.set(clientId, { seq, result, lastUsedMs: t.clockMs });
}

/** Drops records idle for longer than clientIdleMsMax, then the least recently used beyond clientsMax. */
export function evictClients(t: MetaTables): void {
  const usedSinceMs = t.clockMs - t.options.clientIdleMsMax;
  for (const [clientId, record] of t.clients) {
    if (record.lastUsedMs >= usedSinceMs && t.clients.size <= t.options.clientsMax) break;
    t.clients.delete(clientId);
  }
}
