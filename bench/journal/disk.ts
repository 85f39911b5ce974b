// The disk under the journal benchmark: what one append + fdatasync costs at least, and how many
// bytes the whole machine wrote to the device(s) holding the data directories over a window
// (/proc/diskstats), beside what the benchmark's own processes caused to be written (/proc/PID/io).

import { readFileSync, realpathSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import path from 'node:path';

/** The disk anchor: appends of one entry's size, each followed by fdatasync, for this long. */
const diskProbeMs = 1_000;
/** /proc/diskstats counts in 512-byte sectors whatever the device's own sector size. */
const diskstatsSectorBytes = 512;

export interface DiskResult {
  syncsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

/** Appends of `bytes` bytes, each followed by fdatasync, one at a time: what one WAL save costs at least. */
export async function measureDisk(dir: string, bytes: number): Promise<DiskResult> {
  const file = path.join(dir, 'disk-probe.dat');
  const fh = await open(file, 'w');
  const buf = Buffer.alloc(bytes, 0x61);
  const latencies: number[] = [];
  try {
    const start = performance.now();
    for (let pos = 0; performance.now() - start < diskProbeMs; pos += bytes) {
      const t = performance.now();
      await fh.write(buf, 0, bytes, pos);
      await fh.datasync();
      latencies.push(performance.now() - t);
    }
  } finally {
    await fh.close();
    await rm(file, { force: true });
  }
  latencies.sort((a, b) => a - b);
  return {
    syncsPerSecond: latencies.length / (diskProbeMs / 1000),
    p50Ms: latencies[Math.floor(latencies.length / 2)],
    p99Ms: latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))],
  };
}

// ---- bytes written -------------------------------------------------------------------------------

/** A block device as /proc/diskstats names it. */
export interface Device {
  /** major:minor */
  id: string;
  name: string;
  mountPoint: string;
}

/**
 * The block device holding `dir`: the mount whose mount point is the longest prefix of the
 * directory's real path (/proc/self/mountinfo), if /proc/diskstats knows its major:minor (a tmpfs
 * or overlay has none); otherwise the reason.
 */
export function deviceOf(dir: string): Device | { missing: string } {
  let real: string;
  let mountinfo: string;
  let diskstats: string;
  try {
    real = realpathSync(dir);
    mountinfo = readFileSync('/proc/self/mountinfo', 'utf8');
    diskstats = readFileSync('/proc/diskstats', 'utf8');
  } catch (err) {
    return { missing: `cannot read /proc (${(err as Error).message}): not Linux?` };
  }
  let best: { id: string; mountPoint: string; fs: string } | undefined;
  for (const line of mountinfo.split('\n')) {
    // id parent major:minor root mount-point options ... - fstype source superoptions
    const f = line.split(' ');
    if (f.length < 5) continue;
    const mountPoint = f[4].replace(/\\040/g, ' ');
    const inside = mountPoint === '/' || real === mountPoint || real.startsWith(`${mountPoint}/`);
    if (inside && (best === undefined || mountPoint.length >= best.mountPoint.length)) {
      best = { id: f[2], mountPoint, fs: f[f.indexOf('-') + 1] ?? '?' };
    }
  }
  if (best === undefined) return { missing: `no mount found for ${real}` };
  const name = diskstats.split('\n').map((l) => l.trim().split(/\s+/)).find((f) => `${f[0]}:${f[1]}` === best.id)?.[2];
  if (name === undefined) return { missing: `${real} is on ${best.mountPoint} (${best.fs}, device ${best.id}), which /proc/diskstats does not list` };
  return { id: best.id, name, mountPoint: best.mountPoint };
}

/** The devices of `dirs`, each once; the reasons for those that cannot be measured. */
export function devicesOf(dirs: string[]): { devices: Device[]; missing: string[] } {
  const devices = new Map<string, Device>();
  const missing: string[] = [];
  for (const d of dirs) {
    const dev = deviceOf(d);
    if ('missing' in dev) missing.push(dev.missing);
    else devices.set(dev.id, dev);
  }
  return { devices: [...devices.values()], missing };
}

/** Sectors written to each device since boot, in bytes. */
function deviceWrittenBytes(devices: Device[]): number {
  const wanted = new Set(devices.map((d) => d.id));
  let sectors = 0;
  for (const line of readFileSync('/proc/diskstats', 'utf8').split('\n')) {
    // major minor name reads merged sectors-read ms writes merged sectors-written ...
    const f = line.trim().split(/\s+/);
    if (wanted.has(`${f[0]}:${f[1]}`)) sectors += Number(f[9]);
  }
  return sectors * diskstatsSectorBytes;
}

interface ProcessIo {
  /** Bytes the process caused to be sent to storage (write_bytes). */
  storage: number;
  /** Bytes it passed to write, send and the like (wchar): files and sockets alike. */
  syscalls: number;
}

/** A process's /proc/PID/io, or undefined once it has gone. */
function processIo(pid: number): ProcessIo | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/io`, 'utf8');
    const storage = /^write_bytes:\s+(\d+)$/m.exec(text);
    const syscalls = /^wchar:\s+(\d+)$/m.exec(text);
    return storage === null || syscalls === null ? undefined : { storage: Number(storage[1]), syscalls: Number(syscalls[1]) };
  } catch {
    return undefined;
  }
}

export interface DiskWrites {
  /** Bytes written to the device(s) by everything on the machine, file system journal included. */
  deviceBytes: number;
  /** What each named process caused to be written (write_bytes), over the same window. */
  processBytes: Record<string, number>;
  /** What each named process passed to write and send calls (wchar: sockets included), over the same window. */
  processSyscallBytes: Record<string, number>;
}

/**
 * Counts bytes written over a window: start() and end() are synchronous so that they can run at
 * the exact edges of a measured load (WindowHooks). Processes are given by name and PID.
 */
export class DiskWriteCounter {
  private readonly devices: Device[];
  private readonly pids: Record<string, number>;
  private before: { device: number; processes: Map<string, ProcessIo | undefined> } | undefined;
  result: DiskWrites | undefined;

  constructor(devices: Device[], pids: Record<string, number>) {
    this.devices = devices;
    this.pids = pids;
  }

  start(): void {
    this.before = { device: deviceWrittenBytes(this.devices), processes: new Map(Object.entries(this.pids).map(([n, pid]) => [n, processIo(pid)])) };
  }

  end(): void {
    if (this.before === undefined) throw new Error('DiskWriteCounter.end() before start()');
    const processBytes: Record<string, number> = {};
    const processSyscallBytes: Record<string, number> = {};
    for (const [name, pid] of Object.entries(this.pids)) {
      const a = this.before.processes.get(name);
      const b = processIo(pid);
      if (a === undefined || b === undefined) continue;
      processBytes[name] = b.storage - a.storage;
      processSyscallBytes[name] = b.syscalls - a.syscalls;
    }
    this.result = { deviceBytes: deviceWrittenBytes(this.devices) - this.before.device, processBytes, processSyscallBytes };
  }
}
