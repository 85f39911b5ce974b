// The V8 flags cairn's long-running processes (masters, workers, the FUSE daemon, the S3 gateway)
// start with. The `cairn` script's first line passes the same ones (`env -S node ...`), so that a
// process started from the command line gets them too; processes cairn spawns itself get them here.
// And where Node's compile cache lives (main.ts).

import { statSync } from 'node:fs';
import { userInfo } from 'node:os';
import path from 'node:path';

/**
 * A floor of 64 MiB for V8's old-generation limit. With the default, the limit follows the small
 * live heap (about 15 MiB live, limit about 25 MiB), and a writing worker, which holds each 4 MiB
 * request while it syncs and forwards it, reached it every 250 ms or so: 80 mark-compacts per
 * worker in a 1 GiB write, each with 20-80 ms of marking, a fifth of the worker's CPU. With the
 * floor, 25 to 30 (the rest are V8's external-memory checks), and writes went from 55 to 72-81
 * MiB/s (docs/benchmarks.md). It is a limit, not an allocation: the heap grows only as it fills.
 */
export const serverNodeFlags: readonly string[] = ['--initial-old-space-size=64'];

/**
 * `execArgv` with every flag of serverNodeFlags that it does not already set, and, when
 * CAIRN_CPU_PROF_DIR is set (benchmarks, profiling), V8's CPU profiler writing a profile there when
 * the process exits (Node refuses --cpu-prof in NODE_OPTIONS).
 */
export function withServerNodeFlags(execArgv: readonly string[]): string[] {
  const name = (flag: string): string => flag.split('=')[0];
  const given = new Set(execArgv.map(name));
  const prof = process.env.CAIRN_CPU_PROF_DIR;
  const profiling = prof === undefined || prof === '' ? [] : ['--cpu-prof', `--cpu-prof-dir=${prof}`];
  return [...serverNodeFlags.filter((f) => !given.has(name(f))), ...profiling, ...execArgv];
}

/**
 * The directory of Node's compile cache (main.ts): in the home directory that the password database
 * gives this user, if that directory is this user's own. What is cached there is run as code, so
 * never a shared directory such as /tmp, nor $HOME, which `sudo -E` leaves naming the invoking
 * user's home: root would then run what that user wrote. Undefined: no cache (it only makes
 * starts faster).
 */
export function compileCacheDir(user: () => { uid: number; homedir: string } = userInfo, ownerOf = (p: string): number => statSync(p).uid): string | undefined {
  try {
    const { uid, homedir } = user();
    if (homedir === '' || ownerOf(homedir) !== uid) return undefined;
    return path.join(homedir, '.cache', 'cairn', 'compile-cache');
  } catch {
    return undefined; // no entry in the password database, no home directory
  }
}
