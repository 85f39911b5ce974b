// Where a target last served (`target.served`): the chain, and the routing version of the last
// change of that chain the target served through. A worker writes it, durably, before the target
// takes a write under such a change, so no target ever acknowledged a write under a newer one than
// its record says. The masters normally know which member of a chain served last (its lastsrv); after every
// master was lost and a backup restored they know only the backup's picture, and then these
// records, reported in heartbeats, pick each chain's source (chain-states.ts, restoredSource).

import path from 'node:path';
import type { Disk } from '../io/index.ts';
import { isErrno } from '../io/index.ts';
import { decodeChecked, encodeChecked, replaceChecked } from './checked-file.ts';

export interface ServedRecord {
  chainId: number;
  /** The chain's version at that change: a new one means a new record. */
  chainVersion: number;
  routingVersion: number;
}

export const servedFileName = 'target.served';
const servedFormat = 1;

export function encodeServed(r: ServedRecord): Uint8Array {
  return encodeChecked({ format: servedFormat, chainId: r.chainId, chainVersion: r.chainVersion, routingVersion: r.routingVersion });
}

/** The record in a file's bytes, or what is wrong with them. */
export function decodeServed(bytes: Uint8Array): ServedRecord | string {
  const o = decodeChecked(bytes, 'served record', servedFormat);
  if (typeof o === 'string') return o;
  const ok = (v: unknown, min: number): v is number => Number.isSafeInteger(v) && (v as number) >= min;
  if (!ok(o.chainId, 1) || !ok(o.chainVersion, 1) || !ok(o.routingVersion, 1)) return 'missing or mistyped fields';
  return { chainId: o.chainId, chainVersion: o.chainVersion, routingVersion: o.routingVersion };
}

/** The target's record: undefined if it never served; a string says what is wrong with a damaged one. */
export async function readServed(disk: Disk, dir: string): Promise<ServedRecord | undefined | string> {
  try {
    return decodeServed(await disk.readFile(path.join(dir, servedFileName)));
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
}

export function writeServed(disk: Disk, dir: string, r: ServedRecord): Promise<void> {
  return replaceChecked(disk, dir, servedFileName, encodeServed(r));
}
