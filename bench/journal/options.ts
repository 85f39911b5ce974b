// The journal benchmark's command line.

import path from 'node:path';
import { parseArgs } from 'node:util';
import { CairnError, ErrorCode } from '../../src/errors.ts';
import { nonNegativeInt, nonNegativeNumber, positiveInt, positiveNumber } from '../args.ts';

export const backends = ['raft', 'zookeeper'] as const;
export type Backend = (typeof backends)[number];

export interface Options {
  backends: Backend[];
  seconds: number;
  warmupSeconds: number;
  proposers: number;
  entryBytes: number;
  failovers: number;
  /** Entries written while a follower is down; 0 skips the catch-up measurement. */
  catchUpEntries: number;
  /** Sessions the raw ZooKeeper creates go through (writers share them round robin). */
  rawSessions: number;
  /** The masters' (and raw clients') ZooKeeper session timeout; undefined: the master's default. */
  zkSessionTimeoutMs: number | undefined;
  anchor: boolean;
  cpuProfDir: string | undefined;
}

export const usage = `usage: npm run bench -- journal [options]
  --backend LIST   cairn journal backends to measure, side by side: raft, zookeeper or
                   raft,zookeeper (default raft); etcd runs beside them unless --no-anchor
  --seconds N      measured seconds of load, per system (default 10)
  --warmup N       seconds of load before measuring (default 1)
  --proposers N    concurrent writers (default 64)
  --entry-bytes N  bytes of one cairn journal entry / one etcd value / one raw znode (default 256)
  --failovers N    leader kills per system; the median is reported (default 5, 0 skips)
  --catchup N      entries written while a follower is down, then the time it takes to catch
                   up once restarted (default 100000, 0 skips)
  --raw-sessions N ZooKeeper sessions the raw creates go through, shared round robin by the
                   writers (default: one per writer)
  --zk-session-timeout-ms N
                   the masters' ZooKeeper session timeout (default: the master's, 2000)
  --no-anchor      skip etcd and report cairn alone
  --cpu-prof DIR   profile mode (one backend): cairn load only, every master under node
                   --cpu-prof writing to DIR/master-N; prints the leader's top self-time functions`;

function parseBackends(text: string): Backend[] {
  const list = text.split(',').map((b) => b.trim());
  for (const b of list) {
    if (!(backends as readonly string[]).includes(b)) throw new CairnError(ErrorCode.BadOption, `--backend must list ${backends.join(' and/or ')}, got "${b}"`);
  }
  if (new Set(list).size !== list.length) throw new CairnError(ErrorCode.BadOption, `--backend lists a backend twice: "${text}"`);
  return list as Backend[];
}

export function parseOptions(args: string[]): Options | undefined {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      backend: { type: 'string', default: 'raft' },
      seconds: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '1' },
      proposers: { type: 'string', default: '64' },
      'entry-bytes': { type: 'string', default: '256' },
      failovers: { type: 'string', default: '5' },
      catchup: { type: 'string', default: '100000' },
      'raw-sessions': { type: 'string' },
      'zk-session-timeout-ms': { type: 'string' },
      'no-anchor': { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(usage);
    return undefined;
  }
  const proposers = positiveInt(values.proposers, '--proposers');
  const opts: Options = {
    backends: parseBackends(values.backend),
    seconds: positiveNumber(values.seconds, '--seconds'),
    warmupSeconds: nonNegativeNumber(values.warmup, '--warmup'),
    proposers,
    entryBytes: positiveInt(values['entry-bytes'], '--entry-bytes'),
    failovers: nonNegativeInt(values.failovers, '--failovers'),
    catchUpEntries: nonNegativeInt(values.catchup, '--catchup'),
    rawSessions: values['raw-sessions'] === undefined ? proposers : positiveInt(values['raw-sessions'], '--raw-sessions'),
    zkSessionTimeoutMs: values['zk-session-timeout-ms'] === undefined ? undefined : positiveInt(values['zk-session-timeout-ms'], '--zk-session-timeout-ms'),
    anchor: !values['no-anchor'],
    cpuProfDir: values['cpu-prof'] === undefined ? undefined : path.resolve(values['cpu-prof']),
  };
  if (opts.cpuProfDir !== undefined && opts.backends.length !== 1) throw new CairnError(ErrorCode.BadOption, '--cpu-prof profiles one backend at a time: give --backend raft or --backend zookeeper');
  if (opts.rawSessions > proposers) throw new CairnError(ErrorCode.BadOption, `--raw-sessions must be at most --proposers (${proposers}): a session without a writer measures nothing`);
  return opts;
}
