// A master's exclusive hold on its data directory: a LOCK file naming the holding process, so a
// second process never appends to the same WAL. A lock left by a crashed process is taken over.
//
// The pid check only sees processes on this host and in this pid namespace: the lock does not
// protect a directory shared between hosts or containers.

import { randomUUID } from 'node:crypto';
import { link, open, readFile, realpath, rename, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CairnError, ErrorCode, assert } from '../errors.ts';
import { ensureDir } from '../io/ensure-dir.ts';
import { fileMode } from '../io/node-disk.ts';
import { isErrno } from '../io/index.ts';
import { nodeDisk } from '../io/node-disk.ts';

export const lockFileName = 'LOCK';
/** A lock file is a line of JSON; anything longer is not one of ours. */
export const lockFileBytesMax = 4096;
/** Rounds of (create, find a stale lock, remove it) before giving up to a crowd of starters. */
const acquireAttemptsMax = 16;
/** The wait before the next round while another starter is removing a stale lock. */
const acquireRetryDelayMs = 10;

export interface LockHolder {
  pid: number;
  startedAt: string;
  host: string;
}

export interface DirLock {
  /** The lock file's path. */
  readonly path: string;
  readonly holder: LockHolder;
  /** Set when a lock left by a dead process (or an unreadable one) was taken over, for the caller to log. */
  readonly note: string | undefined;
  /** Deletes the lock file if it still names this holder; idempotent. */
  release(): Promise<void>;
}

interface FoundLock {
  dev: number;
  ino: number;
  raw: string;
  holder: LockHolder | undefined;
}

/** Lock files this process holds or is acquiring: a second master in the same process is refused too. */
const heldHere = new Set<string>();

/** Takes `dir` (created if missing) for this process, or throws `CAIRN_DIR_LOCKED` naming the live holder. */
export async function acquireDirLock(dir: string): Promise<DirLock> {
  const lockPath = path.join(await prepareDir(dir), lockFileName);
  if (heldHere.has(lockPath)) throw new CairnError(ErrorCode.DirLocked, `data directory ${dir} is already in use by this process (pid ${process.pid})`, { dir, pid: process.pid });
  heldHere.add(lockPath);
  try {
    return await acquire(dir, lockPath);
  } catch (err) {
    heldHere.delete(lockPath);
    throw err;
  }
}

async function acquire(dir: string, lockPath: string): Promise<DirLock> {
  const me: LockHolder = { pid: process.pid, startedAt: new Date().toISOString(), host: hostname() };
  // The lock appears with its whole content by a hard link from a written temporary file, so no
  // reader ever sees a half-written lock and mistakes it for garbage left by a crash. No fsync:
  // after a power loss the holder is gone, and an empty or missing lock file is what it should be.
  const tmp = `${lockPath}.${process.pid}.${randomUUID()}.tmp`;
  await writeFile(tmp, `${JSON.stringify(me)}\n`, { flag: 'wx', mode: fileMode });
  try {
    let note: string | undefined;
    for (let attempt = 0; attempt < acquireAttemptsMax; attempt++) {
      if (await linkExclusive(tmp, lockPath)) return newDirLock(lockPath, me, note);
      const found = await readLock(lockPath);
      if (found === undefined) continue; // released or removed since the link failed
      const h = found.holder;
      if (h !== undefined && h.pid !== process.pid && (await pidAlive(h.pid))) throw lockedError(dir, lockPath, h);
      // A dead pid, garbage, or our own pid from an earlier life of a reused pid (a container's pid 1).
      const outcome = await removeStale(lockPath, found, tmp, dir);
      if (outcome === 'removed') note = `stale lock of ${h === undefined ? 'unreadable content' : `pid ${h.pid} (started ${h.startedAt} on ${h.host})`} removed from ${dir}`;
      if (outcome === 'busy') await sleep(acquireRetryDelayMs);
    }
    throw new CairnError(ErrorCode.DirLocked, `could not lock data directory ${dir} in ${acquireAttemptsMax} attempts: other processes keep taking ${lockPath}; start one master per directory`, { dir });
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/**
 * Deletes a stale lock file, unless it changed since it was judged stale. Racing starters must not
 * each delete "the stale lock" when one of them already replaced it with a live one, so only the
 * holder of LOCK.break (created exclusively, naming its holder) deletes, after checking that LOCK is
 * still the very file that was read. Nobody else removes a lock of a dead holder, so the check holds.
 */
async function removeStale(lockPath: string, stale: FoundLock, tmp: string, dir: string): Promise<'removed' | 'changed' | 'busy'> {
  const breakPath = `${lockPath}.break`;
  if (!(await linkExclusive(tmp, breakPath))) {
    const b = await readLock(breakPath);
    if (b === undefined) return 'changed';
    if (b.holder !== undefined && b.holder.pid !== process.pid && (await pidAlive(b.holder.pid))) return 'busy';
    await removeIfUnchanged(breakPath, b, dir); // its holder died while taking over
    return 'changed';
  }
  try {
    const now = await readLock(lockPath);
    if (now === undefined || !sameFile(now, stale)) return 'changed';
    await unlink(lockPath);
    return 'removed';
  } finally {
    await unlink(breakPath);
  }
}

function newDirLock(lockPath: string, me: LockHolder, note: string | undefined): DirLock {
  let released = false;
  return {
    path: lockPath,
    holder: me,
    note,
    async release() {
      if (released) return;
      released = true;
      const found = await readLock(lockPath).catch(() => undefined);
      if (found?.holder?.pid === me.pid && found.holder.startedAt === me.startedAt) await unlink(lockPath).catch(() => undefined);
      // Only now: an acquire in this process meanwhile would take our own pid's lock for a stale one.
      heldHere.delete(lockPath);
    },
  };
}

/** Creates `dir` like the WAL does and returns its real path, so two spellings of one directory share one lock. */
async function prepareDir(dir: string): Promise<string> {
  try {
    await ensureDir(nodeDisk, dir);
    return await realpath(dir);
  } catch (err) {
    throw new CairnError(ErrorCode.BadOption, `cannot use ${dir} as a data directory: ${(err as Error).message}`, { dir }, { cause: err });
  }
}

/** Gives `from`'s file the name `to` unless `to` exists: an atomic create-if-absent with content. */
async function linkExclusive(from: string, to: string): Promise<boolean> {
  try {
    await link(from, to);
    return true;
  } catch (err) {
    if (isErrno(err, 'EEXIST')) return false;
    throw err;
  }
}

/**
 * Removes a LOCK.break left by a dead process, only if it is still that file: renamed to a name of
 * our own (atomic, so of racing starters only one moves it) and compared with what was read; a newer
 * one moved by mistake is put back.
 */
async function removeIfUnchanged(file: string, stale: FoundLock, dir: string): Promise<void> {
  const aside = `${file}.${process.pid}.${randomUUID()}.stale`;
  try {
    await rename(file, aside);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return;
    throw err;
  }
  const moved = await readLock(aside);
  assert(moved !== undefined, `the file moved to ${aside} vanished`);
  const restore = !sameFile(moved, stale);
  const restored = restore && (await linkExclusive(aside, file));
  await unlink(aside);
  if (restore && !restored) throw new CairnError(ErrorCode.DirLocked, `several processes are starting on data directory ${dir} at once; stop every master using it, then start one`, { dir });
}

function sameFile(a: FoundLock, b: FoundLock): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.raw === b.raw;
}

/** The lock file's identity and content; undefined when there is none. */
async function readLock(file: string): Promise<FoundLock | undefined> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
  try {
    const st = await fh.stat();
    const buf = Buffer.alloc(lockFileBytesMax + 1);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const raw = buf.subarray(0, bytesRead).toString('utf8');
    return { dev: st.dev, ino: st.ino, raw, holder: bytesRead > lockFileBytesMax ? undefined : parseHolder(raw) };
  } finally {
    await fh.close();
  }
}

/** Validates a lock file's content at the disk boundary; undefined for anything that is not a lock. */
export function parseHolder(raw: string): LockHolder | undefined {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const { pid, startedAt, host } = v as Record<string, unknown>;
  // pid 0 and negative pids name process groups for kill(): never one of ours.
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0) return undefined;
  if (typeof startedAt !== 'string' || typeof host !== 'string') return undefined;
  return { pid, startedAt, host };
}

/** Whether a process with this pid exists (EPERM: it exists but belongs to another user). */
async function pidAlive(pid: number): Promise<boolean> {
  assert(Number.isSafeInteger(pid) && pid > 0, `pid ${pid} is not a process id`);
  try {
    process.kill(pid, 0);
  } catch (err) {
    if (!isErrno(err, 'EPERM')) return false;
  }
  return !(await isZombie(pid));
}

/**
 * A killed process that its parent has not reaped yet still answers kill(pid, 0), but it can write
 * nothing. Linux shows it in /proc; elsewhere this says no and such a lock waits for the reaping.
 */
async function isZombie(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return false;
  // "pid (comm) state ...": comm may hold spaces and parentheses, so the state follows the last ')'.
  const state = stat.charAt(stat.lastIndexOf(')') + 2);
  return state === 'Z' || state === 'X';
}

function lockedError(dir: string, lockPath: string, h: LockHolder): CairnError {
  return new CairnError(
    ErrorCode.DirLocked,
    `data directory ${dir} is in use by pid ${h.pid} (started ${h.startedAt} on ${h.host}): stop that process first (if pid ${h.pid} is not a cairn process using it, delete ${lockPath})`,
    { dir, pid: h.pid, startedAt: h.startedAt, host: h.host },
  );
}
