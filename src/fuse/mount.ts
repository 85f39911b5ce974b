// Mounting a CairnFs through fuse-native (libfuse's high-level, path-based API; the addon npm install
// builds speaks libfuse 3: scripts/build-fuse-addon.ts): the mount point
// checks (a stale mount left by a killed daemon is detached; a live mount or a non-empty directory
// is refused), the options given to the kernel, and the binding of each FUSE operation to CairnFs
// with its errors turned into errnos.

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { CairnError, ErrorCode } from '../errors.ts';
import { callerGroupsMax, type Caller } from '../meta/commands.ts';
import type { CairnFs, Stat, UtimeMs } from './cairn-fs.ts';
import { errno, errnoOf } from './errno.ts';
import type { NamesMirror } from './dir-holds.ts';
import type { InodeAttr } from '../meta/namespace-state.ts';
import { measured, type FuseMetrics } from './metrics.ts';

export interface MountOptions {
  /** How long the kernel trusts attributes and names it was given (the attribute and entry caches). */
  attrTimeoutMs: number;
  entryTimeoutMs: number;
  /** Lets other users than the one mounting use the mount (root may always; others need user_allow_other in /etc/fuse.conf). */
  allowOther: boolean;
  debug?: boolean;
  log: (level: 'info' | 'warn' | 'error', message: string) => void;
  /** Counts and times each FUSE operation (/metrics). */
  metrics?: FuseMetrics;
}

export interface Mounted {
  mountpoint: string;
  /** Ends open files (their sessions) and detaches the mount; lazily if a process still uses it. */
  unmount(): Promise<void>;
}

const execFileAsync = promisify(execFile);

/** fuse-native's opcode of init, whose dispatch carries no caller. */
const opInit = 0;
/** Largest read and write the kernel sends in one request through libfuse 2 (it cannot ask for more; libfuse 3 gets 1 MiB). */
const libfuse2RequestBytesMax = 128 * 1024;
/** The kernel's read-ahead for the mount: one 1 MiB request (reads of 0.65-0.70 GB/s at 128 KiB, 0.93-0.97 at 1 MiB; no better above). */
const kernelReadAheadKib = 1024;
/** How often the descriptors the addon released are released here, when no create did it (CairnFs.releaseDeferred). */
const releasedEveryMs = 100;
/**
 * How often, while directories are held, the creates the addon answered are taken when no operation
 * reaching JavaScript took them first: they join their batches no later than this (docs/fuse.md).
 */
const adoptEveryMs = 10;
/** Descriptors handed to the addon for its creates at a time, once fewer than addonFdsLow are left. */
const addonFds = 1024;
const addonFdsLow = 256;

type FuseCallback = (code: number, ...results: unknown[]) => void;
type NativeHandler = (native: unknown, opCode: number, ...args: unknown[]) => unknown;
interface FuseInstance {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
  _fuseOptions(): string;
  _makeHandlerArray(): (NativeHandler | undefined)[];
  _op_create(signal: (code: number, ...results: unknown[]) => void, path: string, mode: number): void;
  _op_getattr(signal: (code: number, ...results: unknown[]) => void, path: string): void;
  _op_unlink(signal: (code: number, ...results: unknown[]) => void, path: string): void;
  _op_rename(signal: (code: number) => void, from: string, to: string): void;
  /** The mount's state in the addon (set by mount). */
  _thread: Buffer;
  ops: Record<string, (...args: unknown[]) => void>;
}
type FuseClass = new (mnt: string, ops: Record<string, unknown>, opts: Record<string, unknown>) => FuseInstance;

/** fuse-native, loaded only by a command that mounts (it is an optional dependency). */
function loadFuse(): FuseClass {
  try {
    return createRequire(import.meta.url)('fuse-native') as FuseClass;
  } catch (err) {
    throw new CairnError(
      ErrorCode.NotInstalled,
      `FUSE support is not installed (${(err as Error).message.split('\n')[0]}): it needs the npm package fuse-native (an optional dependency: run 'npm install') and Debian's fuse3 and libfuse3-dev ('sudo apt-get install fuse3 libfuse3-dev', then 'npm rebuild'; or scripts/install-system-packages.sh as root)`,
    );
  }
}

/** fuse-native's native binding, as fuse-native itself loads it (throws if it cannot). */
export function loadFuseBinding(): Record<string, unknown> {
  const require = createRequire(import.meta.url);
  const dir = path.dirname(require.resolve('fuse-native/package.json'));
  return (require(require.resolve('node-gyp-build', { paths: [dir] })) as (d: string) => Record<string, unknown>)(dir);
}

/**
 * Which of scripts/build-fuse-addon.ts's builds fuse-native's addon is (0: the prebuilt one): from
 * 2 on it hands every operation the uid, gid, pid and umask of the process that asked, after its
 * own arguments, and passes utimens' mtime; from 6 on, `unclean` tells it a descriptor's flush may
 * have work; from 10 on, `names` keeps held directories' names (DirHolds.mirror); from 11 on, the
 * addon releases clean descriptors itself and `released` hands them over (CairnFs.releasedElsewhere).
 */
function loadAddon(): { version: number; unclean?: (thread: Buffer, fd: number) => void; names?: AddonNames; released?: (thread: Buffer) => number[]; creates?: AddonCreates } {
  try {
    const binding = loadFuseBinding();
    // 3 also passes a change of one time only (2 predates it: libfuse drops those); 4 passes
    // create's O_EXCL (createExclusiveBit); 6 answers a create's fgetattr and clean flush itself;
    // 7 also a held directory's getattr (heldDirTtlMs); 8 is built on libfuse 3 (1 MiB requests);
    // 10 answers a lookup of a name a held directory lacks; 11 a clean descriptor's release; 12
    // passes rename's RENAME_NOREPLACE; 14 answers creates, unlinks and lookups of files in held
    // directories (AddonCreates; 13 did creates only, with names without attributes).
    const version = typeof binding.cairn_caller_context === 'number' ? binding.cairn_caller_context : 0;
    const names = version >= 10 ? { hold: binding.cairn_names_hold, change: binding.cairn_names_change, drop: binding.cairn_names_drop, until: binding.cairn_names_until } : undefined;
    const released = version >= 11 ? (binding.cairn_released as (thread: Buffer) => number[]) : undefined;
    const creates = version >= 14 ? { take: binding.cairn_created_take, ids: binding.cairn_created_ids, fds: binding.cairn_created_fds } : undefined;
    return { version, unclean: version >= 6 ? (binding.cairn_unclean as (thread: Buffer, fd: number) => void) : undefined, names: names as AddonNames | undefined, released, creates: creates as AddonCreates | undefined };
  } catch {
    return { version: 0 };
  }
}

/**
 * The addon's copy of held directories' names (version 10; scripts/build-fuse-addon.ts, namesEdits),
 * with their attributes where given (version 14: a getattr's Uint32Array each, 18 numbers; a mode
 * of 0 for one not given), which it answers lookups of such names with.
 */
interface AddonNames {
  hold(thread: Buffer, dir: string, names: Buffer, attrs?: Uint32Array): void;
  change(thread: Buffer, dir: string, name: string, present: boolean, attrs?: Uint32Array): void;
  drop(thread: Buffer, dir: string): void;
  until(thread: Buffer, ms: number): void;
}

/**
 * The addon's creates and unlinks in held directories (version 14; scripts/build-fuse-addon.ts,
 * createEdits): a create takes an inode id given for its directory (NamesMirror.createIds) and a
 * descriptor given here; each waits in a queue for take: [path, mode, uid, gid, pid, inode id,
 * descriptor, time, kind] (kind 1: an unlink, with its path, caller and time only).
 */
interface AddonCreates {
  take(thread: Buffer): [string, number, number, number, number, number, number, number, number][];
  ids(thread: Buffer, dir: string, first: number, end: number, creatorUid: number): void;
  fds(thread: Buffer, first: number, end: number): void;
}

/**
 * The addon's names as DirHolds' mirror. Paths it cannot keep (255 bytes or more) are left to
 * JavaScript. With `creates` (version 14), it answers creates, unlinks and lookups of files there
 * too: `stat` gives the attributes it may answer a name's lookup and unlink with (CairnFs.mirroredStat),
 * `adopt` takes what it answered, first when a directory is dropped, and `held` hears how many
 * directories it keeps.
 */
function addonMirror(names: AddonNames, thread: Buffer, creates?: { ids: AddonCreates['ids']; adopt: () => void; held: (count: number) => void; stat: (attr: InodeAttr | undefined) => Stat | undefined }): NamesMirror {
  const fits = (dir: string): boolean => dir.length < 85 || Buffer.byteLength(dir) < 255;
  const kept = new Set<string>();
  const statOf = (attr: InodeAttr | undefined): Stat | undefined => creates?.stat(attr);
  return {
    hold: (dir, entries) => {
      if (!fits(dir)) return;
      const all = [...entries];
      const attrs = new Uint32Array(18 * all.length);
      if (creates !== undefined) {
        for (const [i, [, attr]] of all.entries()) {
          const st = statOf(attr);
          if (st !== undefined) attrs.set(statArray(st), 18 * i);
        }
      }
      names.hold(thread, dir, Buffer.from(all.map(([name]) => name).join('/')), attrs);
      kept.add(dir);
      creates?.held(kept.size);
    },
    change: (dir, name, present, attr) => {
      if (!fits(dir)) return;
      const st = present ? statOf(attr) : undefined;
      names.change(thread, dir, name, present, st === undefined ? undefined : statArray(st));
    },
    drop: (dir) => {
      if (!fits(dir)) return;
      names.drop(thread, dir);
      kept.delete(dir);
      // What the addon created there before it stopped joins the directory's last batches.
      creates?.adopt();
      creates?.held(kept.size);
    },
    until: (ms) => names.until(thread, Math.max(0, Math.min(Math.floor(ms), 0x7fff_ffff))),
    ...(creates === undefined
      ? {}
      : {
          createIds: (dir: string, first: number, end: number, creatorUid: number) => {
            if (fits(dir)) creates.ids(thread, dir, first, end, creatorUid);
          },
          sync: creates.adopt,
        }),
  };
}

/** The bit of create's mode that the addon (version 4) sets for O_EXCL. */
const createExclusiveBit = 0x8000_0000;
/** renameat2's RENAME_NOREPLACE (linux/fs.h), among rename's flags from the addon (version 12). */
const renameNoReplace = 1;

/**
 * A utimens time from the addon, as the two 32-bit halves of a 64-bit number: UTIME_OMIT and
 * UTIME_NOW come as 2^63 and 2^63 + 2^32 (scripts/build-fuse-addon.ts), a time before 1970 as
 * negative milliseconds in two's complement.
 */
export function utimeOf(low: number, high: number): UtimeMs {
  if (low === 0 && high === 2 ** 31) return 'omit';
  if (low === 0 && high === 2 ** 31 + 1) return 'now';
  return (high >= 2 ** 31 ? high - 2 ** 32 : high) * 2 ** 32 + low;
}

/** What libfuse says of the process behind the operation being dispatched (set just before it runs). */
interface AskingProcess {
  uid: number;
  gid: number;
  pid: number;
}

/** A stat as fuse-native's addon takes it (its own encoder is not exported). */
function statArray(st: Stat): Uint32Array {
  const ints = new Uint32Array(18);
  const wide = (i: number, n: number): void => {
    ints[i] = n % 2 ** 32;
    ints[i + 1] = Math.floor(n / 2 ** 32);
  };
  [ints[0], ints[1], ints[2]] = [st.mode, st.uid, st.gid];
  wide(3, st.size);
  [ints[5], ints[6], ints[7], ints[8], ints[9]] = [0, st.nlink, st.ino, st.rdev, st.blksize];
  wide(10, st.blocks);
  wide(12, st.atime);
  wide(14, st.mtime);
  wide(16, st.ctime);
  return ints;
}

/**
 * Supplementary groups of a process, from /proc (libfuse does not pass them); none if it is
 * gone. Read synchronously: procfs builds the text in memory without the process's memory map lock
 * (unlike cmdline or maps), so this takes some 20 us and cannot wait on a page fault in this
 * mount; an asynchronous read took 0.16 ms at the median (four thread-pool trips), twice per create.
 */
function groupsOf(pid: number): number[] {
  let status = '';
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    // The process is gone: it has no groups to act with.
  }
  const line = /^Groups:([^\n]*)$/m.exec(status)?.[1] ?? '';
  return line.split(/[ \t]+/).filter((g) => /^\d+$/.test(g)).map(Number).slice(0, callerGroupsMax);
}

/** Checks the mount point, and detaches a stale mount a killed daemon left there. */
async function prepareMountpoint(mountpoint: string, log: MountOptions['log']): Promise<string> {
  const mnt = path.resolve(mountpoint);
  try {
    await stat(mnt);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTCONN') {
      log('warn', `${mnt} is a mount whose daemon is gone (ENOTCONN): detaching it`);
      await detach(mnt);
    } else if (code === 'ENOENT') {
      throw new CairnError(ErrorCode.BadOption, `mount point ${mnt} does not exist: create an empty directory there first`);
    } else throw new CairnError(ErrorCode.BadOption, `mount point ${mnt} cannot be used: ${(err as Error).message}`);
  }
  const st = await stat(mnt);
  if (!st.isDirectory()) throw new CairnError(ErrorCode.BadOption, `mount point ${mnt} is not a directory`);
  const mounted = await mountAt(mnt);
  if (mounted !== undefined) throw new CairnError(ErrorCode.BadOption, `mount point ${mnt} is busy: a ${mounted} file system is mounted there${mounted === 'fuse.cairn' ? ` (unmount it first: 'cairn umount ${mnt}')` : ': choose an empty directory of your own'}`);
  const entries = await readdir(mnt);
  if (entries.length > 0) throw new CairnError(ErrorCode.BadOption, `mount point ${mnt} is not empty (${entries.length} entries, e.g. ${entries[0]}): mounting would hide them; use an empty directory`);
  return mnt;
}

/** The type of the file system mounted exactly at `mnt`, if one is (from /proc/self/mountinfo). */
export async function mountAt(mnt: string): Promise<string | undefined> {
  return (await mountInfo(mnt))?.fsType;
}

/** The file system type and device ("major:minor") of what is mounted at `mnt`, from /proc/self/mountinfo. */
async function mountInfo(mnt: string): Promise<{ fsType: string; device: string } | undefined> {
  const info = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  let found: { fsType: string; device: string } | undefined;
  for (const line of info.split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep < 0 || unescapeMount(f[4]) !== mnt) continue;
    found = { fsType: f[sep + 1], device: f[2] }; // the last one mounted there is what is seen
  }
  return found;
}

/**
 * Sets the kernel's read-ahead for the mount at `mnt`: at its default (128 KiB) a sequential
 * reader's requests stay 128 KiB although libfuse 3 may take 1 MiB (docs/fuse.md, "Writes and
 * reads"). It is the device's setting in sysfs, which only root may change: otherwise it stays.
 */
async function setKernelReadAhead(mnt: string, kib: number, log: MountOptions['log']): Promise<void> {
  const device = (await mountInfo(mnt))?.device;
  if (device === undefined || !/^\d+:\d+$/.test(device)) return;
  await writeFile(`/sys/class/bdi/${device}/read_ahead_kb`, `${kib}\n`).catch((err: unknown) =>
    log('info', `the kernel's read-ahead for ${mnt} stays at its default (writing /sys/class/bdi/${device}/read_ahead_kb: ${(err as Error).message}); sequential reads go in 128 KiB requests`),
  );
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Detaches the FUSE mount at `mnt` at once, even while busy (its users see it gone). */
export async function detach(mnt: string): Promise<void> {
  try {
    await execFileAsync('fusermount', ['-uz', mnt]);
  } catch (err) {
    // fusermount is the unprivileged way; root can also unmount directly.
    if (process.getuid?.() !== 0) throw new CairnError(ErrorCode.ProcessFailed, `could not unmount ${mnt}: ${(err as Error).message.split('\n')[0]}`);
    await execFileAsync('umount', ['-l', mnt]);
  }
}

export async function mount(fs: CairnFs, mountpoint: string, opts: MountOptions): Promise<Mounted> {
  const Fuse = loadFuse();
  const mnt = await prepareMountpoint(mountpoint, opts.log);
  await stat('/dev/fuse').catch(() => {
    throw new CairnError(ErrorCode.NotInstalled, '/dev/fuse is missing: the kernel has no FUSE (modprobe fuse), or this container was started without the device');
  });
  const addon = loadAddon();
  const version = addon.version;
  const withCaller = version >= 2;
  if (version < 4) opts.log('warn', 'fuse-native\'s addon does not pass O_EXCL (run: node scripts/build-fuse-addon.ts): an exclusive create is exclusive within this mount only');
  else if (version < 5) opts.log('warn', 'fuse-native\'s addon cannot show times before 1970 (run: node scripts/build-fuse-addon.ts): setting one is refused (EINVAL)');
  if (!withCaller) opts.log('warn', 'fuse-native\'s addon does not pass the asking process (run: node scripts/build-fuse-addon.ts): new files belong to the mount\'s user, and the masters check permissions as that user');
  let asking: AskingProcess | undefined;
  /** The addon's creates (version 13), while directories are held: see adopt. */
  let adopting: NodeJS.Timeout | undefined;
  let fdNext = 0;
  let fdEnd = 0;
  /**
   * Takes the creates the addon answered in held directories (CairnFs.adoptCreated), before any
   * other operation reaches JavaScript, and gives it descriptors when it runs low.
   */
  const adopt = (): void => {
    const creates = addon.creates;
    if (creates === undefined) return;
    const thread = fuse._thread;
    for (const [p, mode, uid, gid, pid, inodeId, fd, timeMs, kind] of creates.take(thread)) {
      const caller = { uid, gid, groups: uid === 0 ? [] : groupsOf(pid) };
      if (kind === 1) {
        fs.adoptUnlinked(p, caller, timeMs);
        continue;
      }
      fdNext = Math.max(fdNext, fd + 1);
      fs.adoptCreated(p, mode, caller, inodeId, fd, timeMs);
    }
    if (fdEnd - fdNext >= addonFdsLow) return;
    [fdNext, fdEnd] = fs.reserveFds(addonFds);
    creates.fds(thread, fdNext, fdEnd);
  };
  /**
   * How long the addon (version 7) may answer the kernel's getattr of `path` with the attributes
   * just given, itself: a held directory's (this mount makes every change there, and the kernel
   * asks after each), for the attribute timeout, and only until an operation that may change a
   * directory begins or ends (docs/fuse.md, "Caching"). 0: not kept.
   */
  const heldDirTtlMs = (path: string): number => (opts.attrTimeoutMs > 0 && fs.isHeldDir(path) ? Math.min(opts.attrTimeoutMs, 0xffff_ffff) : 0);
  /** With a create's or unlink's answer: the held directory of `path` as the change left it, and for how long the addon keeps it (or nothing). */
  const dirAfter = (path: string): [Uint32Array, number] | [] => {
    const dir = path.slice(0, path.lastIndexOf('/')) || '/';
    const ttlMs = heldDirTtlMs(dir);
    const dirStat = ttlMs > 0 ? fs.getattrLocal(dir) : undefined;
    return dirStat === undefined || dirStat === 'absent' ? [] : [statArray(dirStat), ttlMs];
  };
  class CairnFuse extends Fuse {
    override _makeHandlerArray(): (NativeHandler | undefined)[] {
      const handlers = super._makeHandlerArray();
      if (!withCaller) return handlers;
      // Every operation but init carries the caller after its own arguments: keep it aside for the
      // operation, which reads it synchronously as it starts, and pass on the rest.
      return handlers.map((h, op) =>
        h === undefined || op === opInit
          ? h
          : (native: unknown, opCode: number, ...args: unknown[]): unknown => {
              // No operation finds the mount without a create or unlink the addon answered (there
              // are none while no directory is held: then reads and writes skip the call).
              if (adopting !== undefined) adopt();
              const n = args.length;
              asking = { uid: args[n - 4] as number, gid: args[n - 3] as number, pid: args[n - 2] as number };
              try {
                return h(native, opCode, ...args.slice(0, n - 4));
              } finally {
                asking = undefined;
              }
            },
      );
    }

    /** fuse-native joins a time's halves as unsigned: a time before 1970 became one far ahead. */
    _op_utimens(signal: (code: number) => void, path: string, atimeLow: number, atimeHigh: number, mtimeLow: number, mtimeHigh: number): void {
      const times = [utimeOf(atimeLow, atimeHigh), utimeOf(mtimeLow, mtimeHigh)] as const;
      // An older addon shows such a time in stat as one far ahead: refused there.
      if (version < 5 && times.some((t) => typeof t === 'number' && t < 0)) return signal(errno('EINVAL'));
      this.ops.utimens(path, times[0], times[1], (err: number) => signal(err));
    }

    /**
     * The addon (version 6) takes with the new descriptor the attributes libfuse asks for at once
     * and whether a flush of it does nothing (CairnFs.isClean), and answers both itself; version 7
     * also the directory's new attributes, when it is held (heldDirTtlMs).
     */
    override _op_create(signal: (code: number, ...results: unknown[]) => void, path: string, mode: number): void {
      if (addon.unclean === undefined) return super._op_create(signal, path, mode);
      this.ops.create(path, mode, (err: number, fd?: number) => {
        if (err !== 0 || fd === undefined) return signal(err);
        const created = fs.createdStat(fd);
        signal(0, fd, created === undefined ? undefined : statArray(created), fs.isClean(fd), ...dirAfter(path));
      });
    }

    /** Version 12 passes renameat2's flags (fuse-native's own rename passes none). */
    override _op_rename(signal: (code: number) => void, from: string, to: string, flags?: number): void {
      this.ops.rename(from, to, flags ?? 0, (err: number) => signal(err));
    }

    /** Version 10 keeps the directory's attributes after an unlink, as after a create. */
    override _op_unlink(signal: (code: number, ...results: unknown[]) => void, path: string): void {
      if (version < 10) return super._op_unlink(signal, path);
      this.ops.unlink(path, (err: number) => (err !== 0 ? signal(err) : signal(0, ...dirAfter(path))));
    }

    /** Version 7 keeps a held directory's attributes for the kernel's next asking (heldDirTtlMs). */
    override _op_getattr(signal: (code: number, ...results: unknown[]) => void, path: string): void {
      if (version < 7) return super._op_getattr(signal, path);
      // The addon reads a stat from every answer, a failed one too.
      this.ops.getattr(path, (err: number, st?: Stat) => (err !== 0 || st === undefined ? signal(err === 0 ? errno('EIO') : err, new Uint32Array(18)) : signal(0, statArray(st), heldDirTtlMs(path))));
    }

    /** fuse-native answers fgetattr with getattr by path and drops the descriptor: the handle's own is asked. */
    _op_fgetattr(signal: (code: number, stat?: Uint32Array) => void, path: string, fd: number): void {
      this.ops.fgetattr(path, fd, (err: number, st?: Stat) => (err !== 0 || st === undefined ? signal(err) : signal(0, statArray(st))));
    }

    /** fuse-native copies a value into any buffer: a size query (0) gets the length, a short buffer ERANGE. */
    _op_getxattr(signal: (code: number, buf?: ArrayBuffer) => void, path: string, name: string, valueBuf: Buffer, position: number): void {
      this.ops.getxattr(path, name, position, (err: number, value?: Buffer) => {
        if (err !== 0 || value === undefined) return signal(err !== 0 ? err : errno('ENODATA'), valueBuf.buffer as ArrayBuffer);
        if (valueBuf.length === 0) return signal(value.length, valueBuf.buffer as ArrayBuffer);
        if (value.length > valueBuf.length) return signal(errno('ERANGE'), valueBuf.buffer as ArrayBuffer);
        value.copy(valueBuf);
        signal(value.length, valueBuf.buffer as ArrayBuffer);
      });
    }

    /**
     * listxattr: fuse-native writes the names past a short buffer and throws, which ended the
     * daemon (any user could, with enough names on a file of theirs): a buffer too small for
     * the list is ERANGE, and the caller asks again with the size (0 asks for it).
     */
    _op_listxattr(signal: (code: number, buf?: ArrayBuffer) => void, path: string, listBuf: Buffer): void {
      this.ops.listxattr(path, (err: number, list?: string[]) => {
        if (err !== 0 || list === undefined) return signal(err !== 0 ? err : 0, listBuf.buffer as ArrayBuffer);
        const joined = Buffer.from(list.map((name) => `${name}\0`).join(''));
        if (listBuf.length === 0) return signal(joined.length, listBuf.buffer as ArrayBuffer);
        if (joined.length > listBuf.length) return signal(errno('ERANGE'), listBuf.buffer as ArrayBuffer);
        joined.copy(listBuf);
        signal(joined.length, listBuf.buffer as ArrayBuffer);
      });
    }

    override _fuseOptions(): string {
      // Options fuse-native does not pass: fuse-native drops a cache timeout of 0. libfuse 3 (addon
      // version 8) takes 1 MiB requests by itself and sets use_ino in its init; libfuse 2 (the
      // prebuilt addon) is told to take its largest requests (big_writes), which cuts the calls
      // per MiB from 256 to 8, and use_ino makes a file's st_ino its cairn inode id, the same
      // under every name (hard links).
      const libfuse2 = version >= 8 ? '' : `,use_ino,big_writes,max_write=${libfuse2RequestBytesMax},max_read=${libfuse2RequestBytesMax}`;
      return `${super._fuseOptions()}${libfuse2},attr_timeout=${opts.attrTimeoutMs / 1000},entry_timeout=${opts.entryTimeoutMs / 1000}`;
    }
  }
  const callerNow = (): Caller | undefined => {
    const p = asking;
    if (p === undefined) return undefined;
    // Root passes every check whatever its groups (src/meta/permissions.ts): not read for it.
    return { uid: p.uid, gid: p.gid, groups: p.uid === 0 ? [] : groupsOf(p.pid) };
  };
  const ops = operations(fs, opts.log, callerNow);
  const fuse = new CairnFuse(mnt, opts.metrics === undefined ? ops : measured(ops, opts.metrics), {
    // The kernel checks permissions against the attributes (fuse-native does not say who asks).
    defaultPermissions: true,
    allowOther: opts.allowOther,
    // The page cache survives an open when the file's mtime and size did not change.
    autoCache: true,
    fsname: 'cairn',
    subtype: 'cairn',
    debug: opts.debug === true,
    // Operations end by the client's own deadlines (then EIO), not fuse-native's 15 s.
    timeout: false,
  });
  await new Promise<void>((resolve, reject) => fuse.mount((err) => (err ? reject(new CairnError(ErrorCode.ProcessFailed, `mounting ${mnt} failed: ${err.message}`)) : resolve())));
  if (version >= 8) await setKernelReadAhead(mnt, kernelReadAheadKib, opts.log);
  const unclean = addon.unclean;
  if (unclean !== undefined) fs.onUnclean = (fd) => unclean(fuse._thread, fd);
  adopt(); // the addon's first descriptors
  if (addon.names !== undefined) {
    const held = (count: number): void => {
      if (count > 0) adopting ??= setInterval(adopt, adoptEveryMs).unref();
      else {
        clearInterval(adopting);
        adopting = undefined;
      }
    };
    fs.holds.mirror = addonMirror(addon.names, fuse._thread, addon.creates === undefined ? undefined : { ids: addon.creates.ids, adopt, held, stat: (attr) => fs.mirroredStat(attr) });
  }
  const released = addon.released;
  // Each create releases those before it; this, the last ones of a burst.
  let releasing: NodeJS.Timeout | undefined;
  if (released !== undefined) {
    // A descriptor the addon created is taken before its release is.
    fs.releasedElsewhere = () => {
      adopt();
      return released(fuse._thread);
    };
    releasing = setInterval(() => fs.releaseDeferred(), releasedEveryMs).unref();
  }
  let unmounting: Promise<void> | undefined;
  return {
    mountpoint: mnt,
    unmount: () =>
      (unmounting ??= (async () => {
        clearInterval(releasing);
        await fs.releaseAll();
        clearInterval(adopting);
        if ((await mountAt(mnt)) === undefined) return; // unmounted from outside: nothing left to detach
        await new Promise<void>((resolve) =>
          fuse.unmount((err) => {
            if (err) opts.log('warn', `unmount of ${mnt}: ${err.message}; detaching it lazily`);
            resolve();
          }),
        );
        if ((await mountAt(mnt)) !== undefined) await detach(mnt).catch((err: unknown) => opts.log('error', (err as Error).message));
      })()),
  };
}

/** fuse-native's operations over CairnFs: each answers through its callback, errors as errnos. */
function operations(fs: CairnFs, log: MountOptions['log'], callerNow: () => Caller | undefined): Record<string, unknown> {
  /** Runs `work` as the asking process (read now, before anything else can run) and answers. */
  const run = <T>(what: string, cb: FuseCallback, work: (caller: Caller | undefined) => Promise<T>, answer: (v: T) => unknown[] = () => []): void => {
    const caller = callerNow();
    settle(what, cb, Promise.resolve(caller).then(work), answer);
  };
  /**
   * Runs `work` that acts on an open file (its caller was checked when it opened) and answers:
   * without reading the asking process's groups from /proc, a file read on the thread pool.
   */
  const runOpen = <T>(what: string, cb: FuseCallback, work: () => Promise<T>, answer: (v: T) => unknown[] = () => []): void => {
    settle(what, cb, work(), answer);
  };
  const settle = <T>(what: string, cb: FuseCallback, done: Promise<T>, answer: (v: T) => unknown[]): void => {
    done.then(
      (v) => cb(0, ...answer(v)),
      (err: unknown) => {
        const code = errnoOf(err);
        if (code === errno('EIO') || process.env.CAIRN_FUSE_DEBUG) log('warn', `${what}: ${(err as Error).message}`);
        cb(code);
      },
    );
  };
  /** read and write answer with the byte count where other operations answer 0. */
  const bytes = (what: string, cb: FuseCallback, work: Promise<number>): void => {
    work.then(
      (n) => cb(n),
      (err: unknown) => {
        log('warn', `${what}: ${(err as Error).message}`);
        cb(errnoOf(err));
      },
    );
  };
  return {
    getattr: (p: string, cb: FuseCallback) => {
      // Answered at once when the daemon has it (a directory's listing): no caller needed.
      const local = fs.getattrLocal(p);
      if (local === 'absent') return cb(errno('ENOENT'));
      if (local !== undefined) return cb(0, local);
      run(`getattr ${p}`, cb, (c) => fs.getattrAsked(p, c), (s) => [s]);
    },
    fgetattr: (p: string, fd: number, cb: FuseCallback) => {
      // Right after a create: the attributes it answered, at once.
      const created = fs.createdStat(fd);
      if (created !== undefined) return cb(0, created);
      run(`getattr ${p}`, cb, (c) => fs.fgetattr(fd, p, c), (s) => [s]);
    },
    access: (p: string, _mode: number, cb: FuseCallback) => run(`access ${p}`, cb, (c) => fs.getattr(p, c)),
    readdir: (p: string, cb: FuseCallback) => run(`readdir ${p}`, cb, (c) => fs.readdir(p, c), (names) => [names]),
    readlink: (p: string, cb: FuseCallback) => run(`readlink ${p}`, cb, (c) => fs.readlink(p, c), (t) => [t]),
    mkdir: (p: string, mode: number, cb: FuseCallback) => run(`mkdir ${p}`, cb, (c) => fs.mkdir(p, mode, c)),
    rmdir: (p: string, cb: FuseCallback) => run(`rmdir ${p}`, cb, (c) => fs.rmdir(p, c)),
    unlink: (p: string, cb: FuseCallback) => run(`unlink ${p}`, cb, (c) => fs.unlink(p, c)),
    // flags: renameat2's, from the addon (version 12; it refuses all but RENAME_NOREPLACE itself).
    rename: (from: string, to: string, flags: number, cb: FuseCallback) => run(`rename ${from}`, cb, (c) => fs.rename(from, to, c, (flags & renameNoReplace) !== 0)),
    symlink: (target: string, p: string, cb: FuseCallback) => run(`symlink ${p}`, cb, (c) => fs.symlink(target, p, c)),
    mknod: (p: string, mode: number, dev: number, cb: FuseCallback) => run(`mknod ${p}`, cb, (c) => fs.mknod(p, mode, dev, c)),
    link: (existing: string, p: string, cb: FuseCallback) => run(`link ${p}`, cb, (c) => fs.link(existing, p, c)),
    chmod: (p: string, mode: number, cb: FuseCallback) => run(`chmod ${p}`, cb, (c) => fs.chmod(p, mode, c)),
    chown: (p: string, uid: number, gid: number, cb: FuseCallback) => run(`chown ${p}`, cb, (c) => fs.chown(p, uid, gid, c)),
    utimens: (p: string, atime: UtimeMs, mtime: UtimeMs, cb: FuseCallback) => run(`utimens ${p}`, cb, (c) => fs.utimens(p, atime, mtime, c)),
    truncate: (p: string, size: number, cb: FuseCallback) => run(`truncate ${p}`, cb, (c) => fs.truncate(p, size, c)),
    ftruncate: (p: string, fd: number, size: number, cb: FuseCallback) => runOpen(`truncate ${p}`, cb, () => fs.ftruncate(fd, size)),
    // O_EXCL comes as a bit of the mode (addon version 4); an older addon's creates are not exclusive.
    create: (p: string, mode: number, cb: FuseCallback) => run(`create ${p}`, cb, (c) => fs.create(p, mode % createExclusiveBit, c, mode >= createExclusiveBit), (fd) => [fd]),
    open: (p: string, flags: number, cb: FuseCallback) => run(`open ${p}`, cb, (c) => fs.open(p, flags, c), (fd) => [fd]),
    read: (p: string, fd: number, buf: Buffer, len: number, pos: number, cb: FuseCallback) => bytes(`read ${p}`, cb, fs.read(fd, buf, len, pos)),
    write: (p: string, fd: number, buf: Buffer, len: number, pos: number, cb: FuseCallback) => bytes(`write ${p}`, cb, fs.write(fd, buf, len, pos)),
    flush: (p: string, fd: number, cb: FuseCallback) => runOpen(`flush ${p}`, cb, () => fs.flush(fd)),
    fsync: (p: string, _datasync: number, fd: number, cb: FuseCallback) => runOpen(`fsync ${p}`, cb, () => fs.fsync(fd)),
    release: (p: string, fd: number, cb: FuseCallback) => runOpen(`release ${p}`, cb, () => fs.release(fd)),
    fsyncdir: (p: string, _datasync: number, _fd: number, cb: FuseCallback) => runOpen(`fsyncdir ${p}`, cb, () => fs.fsyncdir(p)),
    statfs: (_p: string, cb: FuseCallback) => runOpen('statfs', cb, () => fs.statfs(), (s) => [s]),
    getxattr: (p: string, name: string, _position: number, cb: FuseCallback) => run(`getxattr ${p}`, cb, (c) => fs.getxattr(p, name, c), (v) => [v]),
    setxattr: (p: string, name: string, value: Buffer, _position: number, flags: number, cb: FuseCallback) => {
      const copy = Buffer.from(value); // the kernel's buffer is gone once this returns
      run(`setxattr ${p}`, cb, (c) => fs.setxattr(p, name, copy, flags, c));
    },
    listxattr: (p: string, cb: FuseCallback) => run(`listxattr ${p}`, cb, (c) => fs.listxattr(p, c), (names) => [names]),
    removexattr: (p: string, name: string, cb: FuseCallback) => run(`removexattr ${p}`, cb, (c) => fs.removexattr(p, name, c)),
  };
}
