// Which machine, and which boot of it, this process runs on: a worker names it in chunk.locate's
// answer, and a client reads a chunk file itself only if the worker's name is its own.

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

let cached: string | undefined;

/**
 * The kernel's boot id (random at every boot, so two machines never share one) with the host
 * name; the host name alone where /proc has no boot id.
 */
export function hostIdentity(): string {
  if (cached !== undefined) return cached;
  let boot = '';
  try {
    boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    // not Linux, or /proc not mounted: the host name is all there is
  }
  cached = boot === '' ? hostname() : `${hostname()}/${boot}`;
  return cached;
}
