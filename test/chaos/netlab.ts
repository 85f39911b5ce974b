// A private network for the whole-cluster chaos test: each process in a Linux network namespace
// of its own, joined by veth pairs to a bridge in one more namespace, with a veth from the test's
// own namespace so that its clients reach every host. Partitions between two hosts are blackhole
// routes on both sides (iproute2 only: no iptables needed). Everything is named after one prefix,
// removed by close(), and a lab left by a killed run is removed by the next (by its prefix).

import { execFile } from 'node:child_process';
import { processAlive } from '../cluster/process-cluster.ts';
import { promisify } from 'node:util';

const run = promisify(execFile);
/** Every lab's names start with this; a leftover lab is found by it. */
const namePrefix = 'cz';

export interface Host {
  name: string;
  /** Its address on the lab's subnet. */
  ip: string;
  /** Its network namespace: a process started with netnsExec(host) runs in it. */
  netns: string;
}

async function ip(...args: string[]): Promise<string> {
  return (await run('ip', args)).stdout;
}

/** Why namespaces cannot be used here, or undefined when they can (root, iproute2, netns allowed). */
export async function netLabUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  const probe = `${namePrefix}probe${process.pid}`;
  try {
    await ip('netns', 'add', probe);
    await ip('netns', 'del', probe);
    return undefined;
  } catch (err) {
    return `cannot create a network namespace: ${(err as Error).message.split('\n')[0]}`;
  }
}

export class NetLab {
  readonly hosts = new Map<string, Host>();
  /** The address of the test's own end (clients run there). */
  readonly clientIp: string;
  private readonly id: string;
  private readonly subnet: string;
  private readonly cut = new Set<string>();

  private constructor(id: string, subnet: string) {
    this.id = id;
    this.subnet = subnet;
    this.clientIp = `${subnet}.254`;
  }

  /**
   * Creates the bridge, one namespace per host name, and the test's own link. The subnet is
   * 10.201.X.0/24 with X from the PID, so that labs of parallel test processes rarely collide.
   */
  static async create(hostNames: readonly string[]): Promise<NetLab> {
    await removeLeftovers();
    const lab = new NetLab(`${namePrefix}${process.pid}`, `10.201.${process.pid % 250}`);
    try {
      await lab.build(hostNames);
    } catch (err) {
      await lab.close();
      throw err;
    }
    return lab;
  }

  private get bridgeNs(): string {
    return `${this.id}-br`;
  }

  private async build(hostNames: readonly string[]): Promise<void> {
    await ip('netns', 'add', this.bridgeNs);
    await ip('-n', this.bridgeNs, 'link', 'add', 'br0', 'type', 'bridge');
    await ip('-n', this.bridgeNs, 'link', 'set', 'br0', 'up');
    let i = 0;
    for (const name of hostNames) {
      i++;
      const netns = `${this.id}-h${i}`;
      const inside = `${this.id}h${i}`;
      const outside = `${this.id}b${i}`;
      await ip('netns', 'add', netns);
      await ip('link', 'add', inside, 'type', 'veth', 'peer', 'name', outside);
      await ip('link', 'set', inside, 'netns', netns);
      await ip('link', 'set', outside, 'netns', this.bridgeNs);
      await ip('-n', netns, 'addr', 'add', `${this.subnet}.${i}/24`, 'dev', inside);
      await ip('-n', netns, 'link', 'set', inside, 'up');
      await ip('-n', netns, 'link', 'set', 'lo', 'up');
      await ip('-n', this.bridgeNs, 'link', 'set', outside, 'master', 'br0');
      await ip('-n', this.bridgeNs, 'link', 'set', outside, 'up');
      this.hosts.set(name, { name, ip: `${this.subnet}.${i}`, netns });
    }
    // The test's own end: a veth whose other side joins the bridge.
    await ip('link', 'add', `${this.id}c`, 'type', 'veth', 'peer', 'name', `${this.id}cb`);
    await ip('link', 'set', `${this.id}cb`, 'netns', this.bridgeNs);
    await ip('addr', 'add', `${this.clientIp}/24`, 'dev', `${this.id}c`);
    await ip('link', 'set', `${this.id}c`, 'up');
    await ip('-n', this.bridgeNs, 'link', 'set', `${this.id}cb`, 'master', 'br0');
    await ip('-n', this.bridgeNs, 'link', 'set', `${this.id}cb`, 'up');
  }

  host(name: string): Host {
    const h = this.hosts.get(name);
    if (h === undefined) throw new Error(`no host ${name} in the lab`);
    return h;
  }

  /** The command prefix that runs a program in `host`'s namespace (ip netns exec replaces itself, so the PID is the program's). */
  netnsExec(name: string): string[] {
    return ['ip', 'netns', 'exec', this.host(name).netns];
  }

  /** Cuts `a` from `b` both ways ('client' is the test's own end, which has no namespace to route in: cut from the host side only). */
  async partition(a: string, b: string): Promise<void> {
    await this.route('add', a, b);
  }

  async heal(a: string, b: string): Promise<void> {
    await this.route('del', a, b);
  }

  /** Heals every partition. */
  async healAll(): Promise<void> {
    for (const key of [...this.cut]) {
      const [a, b] = key.split('|');
      await this.route('del', a, b);
    }
  }

  /** Partitions in force, as "a|b". */
  partitions(): string[] {
    return [...this.cut];
  }

  private async route(op: 'add' | 'del', a: string, b: string): Promise<void> {
    const key = [a, b].sort().join('|');
    if ((op === 'add') === this.cut.has(key)) return;
    const ipOf = (n: string): string => (n === 'client' ? this.clientIp : this.host(n).ip);
    for (const [from, to] of [
      [a, b],
      [b, a],
    ]) {
      if (from === 'client') continue; // the host side's blackhole drops the replies too
      await ip('-n', this.host(from).netns, 'route', op, 'blackhole', `${ipOf(to)}/32`);
    }
    if (op === 'add') this.cut.add(key);
    else this.cut.delete(key);
  }

  async close(): Promise<void> {
    await removeLab(this.id);
  }
}

async function removeLab(id: string): Promise<void> {
  const names = (await ip('netns', 'list').catch(() => ''))
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter((n) => n.startsWith(`${id}-`));
  // Deleting a namespace deletes the veth ends in it, and with them their peers.
  for (const n of names) await ip('netns', 'del', n).catch(() => undefined);
  await ip('link', 'del', `${id}c`).catch(() => undefined);
}

/** Labs whose process is gone (a run killed before close()): their names carry the owner's PID. */
async function removeLeftovers(): Promise<void> {
  const list = await ip('netns', 'list').catch(() => '');
  const ids = new Set<string>();
  for (const line of list.split('\n')) {
    const m = /^(cz(\d+))-/.exec(line);
    if (m !== null && !processAlive(Number(m[2]))) ids.add(m[1]);
  }
  for (const id of ids) await removeLab(id);
}

