// Disk faults for the whole-cluster chaos test, on real file systems: a target on a small tmpfs
// that a filler file runs out of space, and a target on a loop device whose I/O the kernel
// throttles (the cgroup v1 blkio controller) for the worker process while the fault lasts.

import { execFile } from 'node:child_process';
import { access, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const blkioRoot = '/sys/fs/cgroup/blkio';

/** A target directory on a tmpfs of `bytes`; fill() takes all its free space until empty(). */
export class SmallDisk {
  readonly dir: string;
  private readonly filler: string;
  private mounted = false;

  constructor(dir: string) {
    this.dir = dir;
    this.filler = path.join(dir, 'chaos-filler');
  }

  async mount(bytes: number): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await run('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0700`, 'tmpfs', this.dir]);
    this.mounted = true;
  }

  async fill(): Promise<void> {
    const block = Buffer.alloc(1 << 20, 0x66);
    try {
      for (;;) await writeFile(this.filler, block, { flag: 'a' });
    } catch {
      // ENOSPC: full
    }
  }

  async empty(): Promise<void> {
    await rm(this.filler, { force: true });
  }

  /** A lazy unmount: the file system is detached at once, even under a running worker. */
  async unmount(): Promise<void> {
    if (!this.mounted) return;
    this.mounted = false;
    await run('umount', ['-l', this.dir]).catch(() => undefined);
  }
}

/** Why a throttled loop device cannot be used here, or undefined when it can. */
export async function slowDiskUnavailable(): Promise<string | undefined> {
  try {
    await access(path.join(blkioRoot, 'cgroup.procs'));
    await run('losetup', ['--version']);
    await run('mkfs.ext4', ['-V']);
    return undefined;
  } catch (err) {
    return `no blkio cgroup or loop devices: ${(err as Error).message.split('\n')[0]}`;
  }
}

/** A target directory on an ext4 loop device; slow(pid) throttles that process's I/O to it until fast(). */
export class SlowDisk {
  readonly dir: string;
  private image = '';
  private device = '';
  private majorMinor = '';
  private readonly cgroup = path.join(blkioRoot, `cairn-chaos-${process.pid}`);

  constructor(dir: string) {
    this.dir = dir;
  }

  async mount(bytes: number): Promise<void> {
    const imageDir = await mkdtemp(path.join(tmpdir(), 'cairn-chaos-disk-'));
    this.image = path.join(imageDir, 'disk.img');
    await run('truncate', ['-s', String(bytes), this.image]);
    this.device = (await run('losetup', ['-f', '--show', this.image])).stdout.trim();
    this.majorMinor = (await run('lsblk', ['-dno', 'MAJ:MIN', this.device])).stdout.trim();
    await run('mkfs.ext4', ['-q', this.device]);
    await mkdir(this.dir, { recursive: true });
    await run('mount', [this.device, this.dir]);
    await mkdir(this.cgroup, { recursive: true });
  }

  /** Moves `pid` into the throttled group: about 1 MiB/s and 50 operations/s each way. */
  async slow(pid: number): Promise<void> {
    for (const [file, limit] of [
      ['blkio.throttle.write_bps_device', 1 << 20],
      ['blkio.throttle.read_bps_device', 1 << 20],
      ['blkio.throttle.write_iops_device', 50],
      ['blkio.throttle.read_iops_device', 50],
    ] as const) {
      await writeFile(path.join(this.cgroup, file), `${this.majorMinor} ${limit}`);
    }
    await writeFile(path.join(this.cgroup, 'cgroup.procs'), String(pid));
  }

  /** Lifts the limits (the process stays in the group, unthrottled). */
  async fast(): Promise<void> {
    for (const file of ['blkio.throttle.write_bps_device', 'blkio.throttle.read_bps_device', 'blkio.throttle.write_iops_device', 'blkio.throttle.read_iops_device']) {
      await writeFile(path.join(this.cgroup, file), `${this.majorMinor} 0`).catch(() => undefined);
    }
  }

  /** Unmounts (lazily, under a running worker) and frees the device; the group goes once empty. */
  async unmount(): Promise<void> {
    await this.fast();
    if (this.device !== '') {
      await run('umount', ['-l', this.dir]).catch(() => undefined);
      await run('losetup', ['-d', this.device]).catch(() => undefined);
      this.device = '';
    }
    if (this.image !== '') await rm(path.dirname(this.image), { recursive: true, force: true });
    this.image = '';
  }

  /** Removes the group: called once its processes are gone. */
  async removeGroup(): Promise<void> {
    await run('rmdir', [this.cgroup]).catch(() => undefined);
  }
}
