// Small records a worker keeps in a target directory (its identity, where it last served): a line of
// JSON and a line with its CRC32C, so an operator can read them and damage is found, never trusted.
// Each is replaced whole: written to a temp file, synced, renamed into place and the directory
// synced, so a crash leaves the old record or the new one.

import { Buffer } from 'node:buffer';
import path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import type { Disk } from '../io/index.ts';
import { isErrno } from '../io/index.ts';

export function encodeChecked(record: object): Uint8Array {
  const json = JSON.stringify(record);
  const line = Buffer.from(json, 'utf8');
  return Buffer.from(`${json}\ncrc32c ${crc32c(line).toString(16).padStart(8, '0')}\n`, 'utf8');
}

/** The JSON object in a file's bytes (its `format` equal to `format`), or what is wrong with them. */
export function decodeChecked(bytes: Uint8Array, what: string, format: number): Record<string, unknown> | string {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  const m = /^([^\n]*)\ncrc32c ([0-9a-f]{8})\n$/.exec(text);
  if (m === null) return `not a ${what} file (expected a JSON line and a crc32c line)`;
  if (crc32c(Buffer.from(m[1], 'utf8')) !== Number.parseInt(m[2], 16)) return 'checksum mismatch';
  let v: unknown;
  try {
    v = JSON.parse(m[1]);
  } catch {
    return 'bad JSON';
  }
  const o = v as Record<string, unknown>;
  if (typeof o !== 'object' || o === null || o.format !== format) return `unknown format ${String(o?.format)}`;
  return o;
}

/** The temp file `replaceChecked` writes `name` through. */
export function tempNameOf(name: string): string {
  return `${name}.tmp`;
}

/** Replaces `dir/name` with `bytes`, durably and atomically. */
export async function replaceChecked(disk: Disk, dir: string, name: string, bytes: Uint8Array): Promise<void> {
  const temp = path.join(dir, tempNameOf(name));
  try {
    await disk.unlink(temp);
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
  const f = await disk.open(temp, 'create');
  try {
    await f.write(bytes, 0);
    await f.sync();
  } finally {
    await f.close();
  }
  await disk.rename(temp, path.join(dir, name));
  await disk.syncDir(dir);
}
