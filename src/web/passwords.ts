// Dashboard passwords: only an scrypt hash reaches the masters (`scrypt$N$r$p$salt$hash`), made by
// the CLI that adds the user, so the password itself is never in the journal, a snapshot or a backup.

import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { dashboardPasswordHashOk } from '../meta/commands.ts';

/** scrypt's cost: about 100 ms and 32 MiB per check (N=2^15, r=8: what Node and OWASP suggest for interactive logins). */
const cost = { N: 32_768, r: 8, p: 1 };
const hashBytes = 32;
export const passwordLengthMin = 12;

function derive(password: string, salt: Buffer, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, hashBytes, { ...opts, maxmem: 128 * opts.N! * opts.r! * 2 }, (err, key) => (err === null ? resolve(key) : reject(err)));
  });
}

export async function hashPassword(password: string): Promise<string> {
  if (password.length < passwordLengthMin) throw new Error(`a dashboard password needs at least ${passwordLengthMin} characters`);
  const salt = randomBytes(16);
  const key = await derive(password, salt, cost);
  return ['scrypt', cost.N, cost.r, cost.p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

/** Whether `password` matches `stored`; false for a malformed hash (never throws on input). */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  // Checked again here (the masters refuse others): a cost beyond the bounds would stall the master.
  if (!dashboardPasswordHashOk(stored)) return false;
  const parts = stored.split('$');
  const [N, r, p] = parts.slice(1, 4).map(Number);
  const expected = Buffer.from(parts[5], 'base64url');
  if (expected.length !== hashBytes || password.length > 1024) return false;
  const key = await derive(password, Buffer.from(parts[4], 'base64url'), { N, r, p });
  return timingSafeEqual(key, expected);
}

/** A new password of 24 base64url characters (144 bits). */
export function newPassword(): string {
  return randomBytes(18).toString('base64url');
}
