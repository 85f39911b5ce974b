// The anchor: a 3-member etcd cluster (Debian etcd-server, stock settings) under the same load
// as cairn, from the same script: puts of new keys with a value of one entry's size.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Etcd3 } from 'etcd3';
import type { ProcessGroup } from '../../test/cluster/process-cluster.ts';
import { EtcdMembers, Load, passThroughPolicy } from '../cluster.ts';
import type { Device } from './disk.ts';
import { probeCallTimeoutMs, runFailovers } from './failover.ts';
import type { Options } from './options.ts';
import { loadCallTimeoutMs, measureLoadAndDisk, memberCount, type SystemResult } from './system.ts';

function etcdKey(worker: number, k: number): string {
  return `bench/journal/w${String(worker).padStart(3, '0')}/${String(k).padStart(9, '0')}`;
}

export function etcdClientVersion(): string {
  try {
    return `etcd3 ${(JSON.parse(readFileSync(path.join(import.meta.dirname, '..', '..', 'node_modules', 'etcd3', 'package.json'), 'utf8')) as { version: string }).version}`;
  } catch {
    return 'etcd3';
  }
}

export async function runEtcd(procs: ProcessGroup, binary: string, opts: Options, devices: Device[]): Promise<SystemResult> {
  const etcd = await EtcdMembers.start(procs, binary, memberCount);
  try {
    const client = etcd.client(etcd.endpoints(), undefined, loadCallTimeoutMs);
    const value = Buffer.from(randomBytes(Math.ceil(opts.entryBytes / 2)).toString('hex').slice(0, opts.entryBytes));
    const next = new Array<number>(opts.proposers).fill(0);
    const op = (worker: number): Promise<unknown> => client.put(etcdKey(worker, next[worker]++)).value(value).exec();
    await client.put('bench/journal/warm').value(value).exec();
    console.log(`etcd: ${opts.proposers} concurrent puts for ${opts.warmupSeconds} + ${opts.seconds} s...`);
    // Every put makes one revision: the revision's growth is the entries committed.
    const committed = { count: async () => Number((await client.maintenance.status()).header.revision), by: "etcd's revision at the window's edges" };
    const { load, disk } = await measureLoadAndDisk(opts, op, etcd.pids(), devices, committed);
    const leaderAtLoad = await etcd.waitForLeader();
    const probeClients = new Map<string, Etcd3>();
    let probeSeq = 0;
    const failovers = await runFailovers('etcd', {
      waitForLeader: () => etcd.waitForLeader(),
      probes: async (leader) => {
        const survivors = [...etcd.members.values()].filter((m) => m.name !== leader);
        const probes = survivors.map((m) => {
          let c = probeClients.get(m.name);
          if (c === undefined) {
            c = etcd.client([m.clientUrl], passThroughPolicy, probeCallTimeoutMs);
            probeClients.set(m.name, c);
          }
          const probeClient = c;
          return () => probeClient.put(`bench/probe/${++probeSeq}`).value(value).exec();
        });
        await Promise.all(probes.map((p) => p()));
        return probes;
      },
      kill: (name) => etcd.kill(name),
      restart: async (name) => {
        // A restarted member gets new probe connections: the old ones backed off while it was down.
        probeClients.get(name)?.close();
        probeClients.delete(name);
        etcd.spawn(name);
        await etcd.waitServing(name);
      },
      startLoad: () => new Load(opts.proposers, op),
    }, opts.failovers);
    return { label: 'etcd', load, disk, failovers, extra: { leader: leaderAtLoad, valueBytes: value.length } };
  } catch (err) {
    console.error(await etcd.logTails());
    throw err;
  } finally {
    etcd.closeClients();
  }
}
