// Write sessions of clients that are gone end by themselves. A client renews the sessions it holds
// with the leading master (meta.renewSessions, every quarter lease), and the session's opening
// counts as its first renewal. The leader keeps the renewals in memory only (never journaled), so
// a new leader knows nothing of them: it ends no session until it has led for a whole lease, which
// gives every live client time to find it. After that, a session not renewed within the lease ends
// through the journal (expireSessions), as its close would have, and an unlinked file it alone
// held becomes garbage. Renewing sessions, not clients, also ends those a live client lost track
// of (a close whose answer never came). Pure: the cluster manager brings the clock and journal.

import { CairnError, ErrorCode } from '../errors.ts';
import { Fields } from '../fields.ts';
import { renewSessionsMax, sessionIdBytesMax } from '../meta/commands.ts';
import type { Session } from '../meta/namespace-state.ts';

/** Two minutes: a client renews every 30 s, so three renewals and a failover may go missing first. */
export const sessionLeaseMsDefault = 120_000;
/** Shorter leases would end the sessions of live clients across an ordinary master failover. */
export const sessionLeaseMsMin = 10_000;

export class SessionLeases {
  readonly leaseMs: number;
  /** Session → when this master last heard it renewed (or opened), on its monotonic clock; oldest first. */
  private readonly renewed = new Map<string, number>();

  constructor(leaseMs: number) {
    this.leaseMs = leaseMs;
  }

  /** The session was opened, or its client renewed it. */
  renew(sessionId: string, nowMs: number): void {
    this.renewed.delete(sessionId); // re-inserted last: the map stays in order of renewal for forget()
    this.renewed.set(sessionId, nowMs);
  }

  /**
   * The open sessions not renewed within the lease, in the order given; none while this leadership
   * is younger than a lease. Forgets renewals older than the lease.
   */
  expired(open: Iterable<Readonly<Session>>, nowMs: number, leadingSinceMs: number): Readonly<Session>[] {
    this.forget(nowMs);
    if (nowMs - leadingSinceMs < this.leaseMs) return [];
    const out: Readonly<Session>[] = [];
    for (const s of open) if (!this.renewed.has(s.sessionId)) out.push(s);
    return out;
  }

  /** How long ago the session was last renewed (or opened) as this master heard it; undefined: not within the lease. */
  renewedAgoMs(sessionId: string, nowMs: number): number | undefined {
    const at = this.renewed.get(sessionId);
    return at === undefined || nowMs - at > this.leaseMs ? undefined : nowMs - at;
  }

  private forget(nowMs: number): void {
    for (const [sessionId, atMs] of this.renewed) {
      if (nowMs - atMs <= this.leaseMs) break;
      this.renewed.delete(sessionId);
    }
  }
}

const renewFieldErrors = {
  invalid: (message: string) => new CairnError(ErrorCode.InvalidArgument, message),
  tooLong: (message: string) => new CairnError(ErrorCode.InvalidArgument, message),
};

/** A meta.renewSessions body: { sessionIds: [...] }, at most renewSessionsMax of them. */
export function validateRenewSessions(body: unknown): string[] {
  const f = new Fields(body, 'renewSessions', renewFieldErrors);
  const ids = f.array('sessionIds', renewSessionsMax).map((id, i) => f.checkStr(`sessionIds[${i}]`, id, sessionIdBytesMax));
  f.done();
  return ids;
}
