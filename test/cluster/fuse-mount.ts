// FUSE mounts for tests: whether this machine can mount (else a skip reason, or a failure in CI),
// and `cairn mount` daemons started as users start them, each on a mount point of its own that is
// detached and removed when the test ends, even if the daemon was killed.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, mkdir, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { detach, mountAt } from '../../src/fuse/mount.ts';
import { mainScript, waitFor } from './process-cluster.ts';


/** Why FUSE tests cannot run here, or undefined; in CI (CI=true) never a reason: they run and fail. */
export function fuseSkipReason(): string | undefined {
  if (process.env.CI === 'true') return undefined;
  const missing: string[] = [];
  if (!existsSync('/dev/fuse')) missing.push('/dev/fuse (the kernel\'s FUSE device)');
  try {
    execFileSync('sh', ['-c', 'command -v fusermount && ldconfig -p | grep "libfuse3.so.3 "'], { stdio: 'ignore' });
  } catch {
    missing.push('fusermount and libfuse3.so.3 (Debian fuse3: scripts/install-system-packages.sh as root)');
  }
  try {
    createRequire(import.meta.url)('fuse-native');
  } catch {
    missing.push('the npm package fuse-native (npm install)');
  }
  if (process.getuid?.() !== 0) missing.push('root (the tests mount with allow_other and act as other users)');
  return missing.length === 0 ? undefined : `FUSE is not usable here: missing ${missing.join('; ')}`;
}

export interface Mount {
  dir: string;
  log: string;
  child: ChildProcess;
}

/** Mount daemons of one test; call `create` before the cluster starts, so that they go first at the end. */
export class Mounts {
  private readonly root: string;
  private readonly all: Mount[] = [];
  private readonly masters: () => string[];
  private readonly secret: () => string;

  private constructor(root: string, masters: () => string[], secret: () => string) {
    this.root = root;
    this.masters = masters;
    this.secret = secret;
  }

  static async create(t: TestContext, masters: () => string[], secret: () => string): Promise<Mounts> {
    const root = await mkdtemp(path.join(tmpdir(), 'cairn-mnt-'));
    await chmod(root, 0o755); // other users reach the mounts (permission tests act as them)
    let m: Mounts | undefined;
    t.after(async () => {
      for (const x of m?.all ?? []) {
        if (x.child.exitCode === null && x.child.signalCode === null) x.child.kill('SIGKILL');
        if ((await mountAt(x.dir)) !== undefined) await detach(x.dir).catch(() => undefined);
      }
      await rm(root, { recursive: true, force: true });
    });
    // Masters and secret are known once the cluster has started: read lazily.
    m = new Mounts(root, masters, secret);
    return m;
  }

  /** Starts `cairn mount DIR` (a new mount point, or `dir` again after a daemon died) and waits until it serves. */
  async mount(name: string, extraArgs: string[] = [], dir?: string): Promise<Mount> {
    const mnt = dir ?? path.join(this.root, name);
    if (dir === undefined) await mkdir(mnt, { recursive: true }); // a given one may be a stale mount
    const log = path.join(this.root, `${name}.log`);
    const from = await stat(log).then((s) => s.size, () => 0); // a restarted daemon appends to its log
    const fd = openSync(log, 'a');
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [mainScript, 'mount', mnt, '--masters', this.masters().join(','), ...extraArgs], {
        stdio: ['ignore', fd, fd],
        env: { ...process.env, CAIRN_SECRET: this.secret() },
        cwd: '/',
      });
    } finally {
      closeSync(fd);
    }
    const m: Mount = { dir: mnt, log, child };
    this.all.push(m);
    await waitFor(
      async () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`cairn mount exited (${child.exitCode ?? child.signalCode}):\n${await readFile(log, 'utf8')}`);
        return (await readFile(log, 'utf8')).slice(from).includes(`${mnt} mounted (pid`);
      },
      `the mount at ${mnt}`,
      30_000,
      () => readFile(log, 'utf8'),
    );
    return m;
  }
}
