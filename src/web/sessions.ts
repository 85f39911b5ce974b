// Dashboard sessions: a signed cookie (name, expiry, HMAC), so that any master can check one and a
// failover keeps users logged in. The HMAC covers the user's password hash too: removing the user
// or changing its password ends its sessions. Logins are rate-limited per address, and
// password checks (scrypt, ~100 ms of CPU each) run a few at a time so a flood cannot stall a master.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const sessionCookie = 'cairn_dashboard';
export const sessionLifetimeMs = 12 * 3600_000;

export class SessionKeys {
  private readonly key: Buffer;

  /** From the cluster secret (every master signs alike); without one, random: sessions end on failover. */
  constructor(clusterSecret: string | undefined) {
    this.key = clusterSecret === undefined || clusterSecret === '' ? randomBytes(32) : createHmac('sha256', clusterSecret).update('cairn dashboard sessions v1').digest();
  }

  issue(user: string, passwordHash: string, nowMs: number): string {
    const payload = Buffer.from(JSON.stringify({ u: user, e: nowMs + sessionLifetimeMs })).toString('base64url');
    return `${payload}.${this.mac(payload, passwordHash)}`;
  }

  /** The user a token names, if its signature holds for that user's current hash and it has not expired. */
  check(token: string, hashOf: (user: string) => string | undefined, nowMs: number): string | undefined {
    const dot = token.indexOf('.');
    if (dot <= 0 || token.length > 512) return undefined;
    const payload = token.slice(0, dot);
    let claims: unknown;
    try {
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      return undefined;
    }
    if (typeof claims !== 'object' || claims === null) return undefined;
    const { u, e } = claims as { u?: unknown; e?: unknown };
    if (typeof u !== 'string' || typeof e !== 'number' || e <= nowMs) return undefined;
    const hash = hashOf(u);
    if (hash === undefined) return undefined;
    const given = Buffer.from(token.slice(dot + 1));
    const expected = Buffer.from(this.mac(payload, hash));
    return given.length === expected.length && timingSafeEqual(given, expected) ? u : undefined;
  }

  private mac(payload: string, passwordHash: string): string {
    return createHmac('sha256', this.key).update(payload).update('\0').update(passwordHash).digest('base64url');
  }
}

/**
 * Failed logins allowed in a window, before that address's logins (for that user, or for any) are
 * refused for the rest of it. Not per user name alone: anyone could then lock a user out.
 */
const failuresPerUserMax = 10;
const failuresPerAddressMax = 30;
const windowMs = 60_000;
const checksAtOnce = 2;
const checksQueuedMax = 16;

export type LoginGate = { ok: true; release: () => void } | { ok: false; retryAfterS: number; reason: string };

export class LoginLimiter {
  private readonly failures = new Map<string, { count: number; sinceMs: number }>();
  /** Checks let in and not yet done, by key: each may still fail, so each counts against the limits (a burst gets no more guesses than a sequence). */
  private readonly pending = new Map<string, number>();
  private running = 0;
  private readonly queue: (() => void)[] = [];

  /** Waits for a turn to check a password, or says why not now. */
  async enter(address: string, user: string, nowMs: number): Promise<LoginGate> {
    const keys = this.keys(address, user);
    for (const [key, max] of keys) {
      const f = this.failures.get(key);
      const failed = f !== undefined && nowMs - f.sinceMs < windowMs ? f.count : 0;
      if (failed + (this.pending.get(key) ?? 0) >= max) {
        return { ok: false, retryAfterS: f === undefined ? 1 : Math.max(1, Math.ceil((f.sinceMs + windowMs - nowMs) / 1000)), reason: 'too many failed logins: wait a minute' };
      }
    }
    for (const [key] of keys) this.pending.set(key, (this.pending.get(key) ?? 0) + 1);
    const done = (): void => {
      for (const [key] of keys) {
        const n = (this.pending.get(key) ?? 1) - 1;
        if (n <= 0) this.pending.delete(key);
        else this.pending.set(key, n);
      }
    };
    if (this.running >= checksAtOnce) {
      if (this.queue.length >= checksQueuedMax) {
        done();
        return { ok: false, retryAfterS: 1, reason: 'too many logins at once: retry' };
      }
      await new Promise<void>((resolve) => this.queue.push(resolve));
    } else {
      this.running++;
    }
    return {
      ok: true,
      release: () => {
        done();
        const next = this.queue.shift();
        if (next === undefined) this.running--;
        else next();
      },
    };
  }

  failed(address: string, user: string, nowMs: number): void {
    if (this.failures.size > 10_000) this.prune(nowMs);
    for (const [key] of this.keys(address, user)) {
      const f = this.failures.get(key);
      if (f === undefined || nowMs - f.sinceMs >= windowMs) this.failures.set(key, { count: 1, sinceMs: nowMs });
      else f.count++;
    }
  }

  private keys(address: string, user: string): [string, number][] {
    return [[`a:${address}`, failuresPerAddressMax], [`au:${address}\0${user}`, failuresPerUserMax]];
  }

  private prune(nowMs: number): void {
    for (const [key, f] of this.failures) if (nowMs - f.sinceMs >= windowMs) this.failures.delete(key);
  }
}
