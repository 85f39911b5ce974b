// What the postinstall builds of cairn's C addons share: Node's N-API headers, the compiler check,
// and giving up (which fails only in CI, where a missing addon must not go unnoticed).

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

/** Node's headers (node_api.h), beside the running node binary. */
export function nodeHeadersDir(): string {
  return path.join(path.dirname(process.execPath), '..', 'include', 'node');
}

/** What is missing to build an addon with `headers`: each a short phrase, empty when nothing is. */
export function missingForAddon(headers: string[]): string[] {
  const missing = headers.filter((h) => !existsSync(h)).map((h) => `headers in ${h}`);
  try {
    execFileSync('cc', ['--version'], { stdio: 'ignore' });
  } catch {
    missing.push('a C compiler, cc (Debian gcc)');
  }
  return missing;
}

/** Stops the build: `npm install` goes on without the addon, except in CI. */
export function skipBuild(say: (m: string) => void, why: string): never {
  say(why);
  process.exit(process.env.CI === 'true' ? 1 : 0);
}
