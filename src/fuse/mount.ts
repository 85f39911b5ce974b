// Mounting a CairnFs through fuse-native (libfuse 2's high-level, path-based API): the mount point
// checks (a stale mount left by a killed daemon is detached; a live mount or a non-empty directory
// is refused), the options given to the kernel, and the binding of each FUSE operation to CairnFs
// with its errors turned into errnos.

import { execFile } from 'node:child_process';
import { readFile, readdir, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { CairnError, ErrorCode } from '../errors.ts';
import type { CairnFs } from './cairn-fs.ts';
import { errno, errnoOf } from './errno.ts';

export interface MountOptions {
  /** How long the kernel trusts attributes and names it was given (the attribute and entry caches). */
  attrTimeoutMs: number;
  entryTimeoutMs: number;
  /** Lets other users than the one mounting use the mount (root may always; others need user_allow_other in /etc/fuse.conf). */
  allowOther: boolean;
  debug?: boolean;
  log: (level: 'info' | 'warn' | 'error', message: string) => void;
}

export interface Mounted {
  mountpoint: string;
  /** Ends open files (their sessions) and detaches the mount; lazily if a process still uses it. */
  unmount(): Promise<void>;
}

/** Largest read and write the kernel sends in one request (libfuse 2 cannot ask for more). */
const requestBytesMax = 128 * 1024;

type FuseCallback = (code: number, ...results: unknown[]) => void;
interface FuseInstance {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
  _fuseOptions(): string;
}
type FuseClass = new (mnt: string, ops: Record<string, unknown>, opts: Record<string, unknown>) => FuseInstance;

/** fuse-native, loaded only by a command that mounts (it is an optional dependency). */
function loadFuse(): FuseClass {
  try {
    return createRequire(import.meta.url)('fuse-native') as FuseClass;
  } catch (err) {
    throw new CairnError(
      ErrorCode.NotInstalled,
      `FUSE support is not installed (${(err as Error).message.split('\n')[0]}): it needs the npm package fuse-native (an optional dependency: run 'npm install') and Debian's libfuse2 and fuse3 ('sudo apt-get install libfuse2 fuse3', or scripts/install-system-packages.sh as root)`,
    );
  }
}

/** Checks the mount point, and detaches a stale mount a killed daemon left there. */
export async function prepareMountpoint(mountpoint: string, log: MountOptions['log']): Promise<string> {
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
  if (mounted !== undefined) throw new CairnError(ErrorCode.BadOption, `mount point ${mnt} is busy: a ${mounted} file system is mounted there (unmount it first: 'cairn umount ${mnt}')`);
  const entries = await readdir(mnt);
  if (entries.length > 0) throw new CairnError(ErrorCode.BadOption, `mount point ${mnt} is not empty (${entries.length} entries, e.g. ${entries[0]}): mounting would hide them; use an empty directory`);
  return mnt;
}

/** The type of the file system mounted exactly at `mnt`, if one is (from /proc/self/mountinfo). */
export async function mountAt(mnt: string): Promise<string | undefined> {
  const info = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  let found: string | undefined;
  for (const line of info.split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep < 0 || unescapeMount(f[4]) !== mnt) continue;
    found = f[sep + 1]; // the last one mounted there is what is seen
  }
  return found;
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Detaches the FUSE mount at `mnt` at once, even while busy (its users see it gone). */
export async function detach(mnt: string): Promise<void> {
  try {
    await promisify(execFile)('fusermount', ['-uz', mnt]);
  } catch (err) {
    // fusermount is the unprivileged way; root can also unmount directly.
    if (process.getuid?.() !== 0) throw new CairnError(ErrorCode.ProcessFailed, `could not unmount ${mnt}: ${(err as Error).message.split('\n')[0]}`);
    await promisify(execFile)('umount', ['-l', mnt]);
  }
}

export async function mount(fs: CairnFs, mountpoint: string, opts: MountOptions): Promise<Mounted> {
  const Fuse = loadFuse();
  const mnt = await prepareMountpoint(mountpoint, opts.log);
  await stat('/dev/fuse').catch(() => {
    throw new CairnError(ErrorCode.NotInstalled, '/dev/fuse is missing: the kernel has no FUSE (modprobe fuse), or this container was started without the device');
  });
  // libfuse 2 knows these options but fuse-native does not pass them: large requests (big_writes)
  // cut the calls per MiB from 256 to 8.
  class CairnFuse extends Fuse {
    override _fuseOptions(): string {
      // The cache timeouts go here too: fuse-native drops a timeout of 0 (it would mean no caching).
      return `${super._fuseOptions()},big_writes,max_write=${requestBytesMax},max_read=${requestBytesMax},attr_timeout=${opts.attrTimeoutMs / 1000},entry_timeout=${opts.entryTimeoutMs / 1000}`;
    }
  }
  const fuse = new CairnFuse(mnt, operations(fs, opts.log), {
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
  let unmounting: Promise<void> | undefined;
  return {
    mountpoint: mnt,
    unmount: () =>
      (unmounting ??= (async () => {
        await fs.releaseAll();
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
function operations(fs: CairnFs, log: MountOptions['log']): Record<string, unknown> {
  const run = <T>(what: string, cb: FuseCallback, work: () => Promise<T>, answer: (v: T) => unknown[] = () => []): void => {
    work().then(
      (v) => cb(0, ...answer(v)),
      (err: unknown) => {
        const code = errnoOf(err);
        if (code === errno('EIO')) log('warn', `${what}: ${(err as Error).message}`);
        cb(code);
      },
    );
  };
  const noop = (cb: FuseCallback): void => cb(0);
  return {
    getattr: (p: string, cb: FuseCallback) => run(`getattr ${p}`, cb, () => fs.getattr(p), (s) => [s]),
    fgetattr: (p: string, _fd: number, cb: FuseCallback) => run(`getattr ${p}`, cb, () => fs.getattr(p), (s) => [s]),
    access: (p: string, _mode: number, cb: FuseCallback) => run(`access ${p}`, cb, () => fs.getattr(p)),
    readdir: (p: string, cb: FuseCallback) => run(`readdir ${p}`, cb, () => fs.readdir(p), (names) => [names]),
    readlink: (p: string, cb: FuseCallback) => run(`readlink ${p}`, cb, () => fs.readlink(p), (t) => [t]),
    mkdir: (p: string, mode: number, cb: FuseCallback) => run(`mkdir ${p}`, cb, () => fs.mkdir(p, mode)),
    rmdir: (p: string, cb: FuseCallback) => run(`rmdir ${p}`, cb, () => fs.rmdir(p)),
    unlink: (p: string, cb: FuseCallback) => run(`unlink ${p}`, cb, () => fs.unlink(p)),
    rename: (from: string, to: string, cb: FuseCallback) => run(`rename ${from}`, cb, () => fs.rename(from, to)),
    symlink: (target: string, p: string, cb: FuseCallback) => run(`symlink ${p}`, cb, () => fs.symlink(target, p)),
    link: (existing: string, p: string, cb: FuseCallback) => run(`link ${p}`, cb, () => fs.link(existing, p)),
    chmod: (p: string, mode: number, cb: FuseCallback) => run(`chmod ${p}`, cb, () => fs.chmod(p, mode)),
    chown: (p: string, uid: number, gid: number, cb: FuseCallback) => run(`chown ${p}`, cb, () => fs.chown(p, uid, gid)),
    utimens: (p: string, atime: number, mtime: number, cb: FuseCallback) => run(`utimens ${p}`, cb, () => fs.utimens(p, atime, mtime)),
    truncate: (p: string, size: number, cb: FuseCallback) => run(`truncate ${p}`, cb, () => fs.truncate(p, size)),
    ftruncate: (p: string, fd: number, size: number, cb: FuseCallback) => run(`truncate ${p}`, cb, () => fs.ftruncate(fd, size)),
    create: (p: string, mode: number, cb: FuseCallback) => run(`create ${p}`, cb, () => fs.create(p, mode), (fd) => [fd]),
    open: (p: string, flags: number, cb: FuseCallback) => run(`open ${p}`, cb, () => fs.open(p, flags), (fd) => [fd]),
    // read and write answer with a byte count where others answer 0.
    read: (p: string, fd: number, buf: Buffer, len: number, pos: number, cb: FuseCallback) =>
      fs.read(fd, buf, len, pos).then(
        (n) => cb(n),
        (err: unknown) => {
          log('warn', `read ${p}: ${(err as Error).message}`);
          cb(errnoOf(err));
        },
      ),
    write: (p: string, fd: number, buf: Buffer, len: number, pos: number, cb: FuseCallback) =>
      fs.write(fd, buf, len, pos).then(
        (n) => cb(n),
        (err: unknown) => {
          log('warn', `write ${p}: ${(err as Error).message}`);
          cb(errnoOf(err));
        },
      ),
    flush: (p: string, fd: number, cb: FuseCallback) => run(`flush ${p}`, cb, () => fs.flush(fd)),
    fsync: (p: string, _datasync: number, fd: number, cb: FuseCallback) => run(`fsync ${p}`, cb, () => fs.fsync(fd)),
    release: (p: string, fd: number, cb: FuseCallback) => run(`release ${p}`, cb, () => fs.release(fd)),
    fsyncdir: (_p: string, _datasync: number, _fd: number, cb: FuseCallback) => noop(cb),
    statfs: (_p: string, cb: FuseCallback) => run('statfs', cb, () => fs.statfs(), (s) => [s]),
  };
}
