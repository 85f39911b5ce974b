// Opens the journal a master runs on, by backend, on the real disk, clock and RPC: the embedded
// Raft journal (the default) or the ZooKeeper one. The master sees only the `Journal` interface.

import type { Disk } from '../io/index.ts';
import { nodeDisk } from '../io/node-disk.ts';
import { rpcTransport } from '../io/rpc-transport.ts';
import { systemClock } from '../io/system-clock.ts';
import type { RpcServer } from '../rpc/index.ts';
import type { Journal } from './journal.ts';
import { RaftJournal, type RaftJournalOptions } from './raft/raft-journal.ts';
import { ZkJournal, type ZkJournalOptions } from './zookeeper/zk-journal.ts';

export const journalBackends = ['raft', 'zookeeper'] as const;
export type JournalBackend = (typeof journalBackends)[number];

export type OpenJournalOptions =
  | ({ backend: 'raft'; server: RpcServer; secret?: string; disk?: Disk } & Omit<RaftJournalOptions, 'transport' | 'disk' | 'clock' | 'bugs' | 'observer'>)
  | ({ backend: 'zookeeper'; server: RpcServer } & Omit<ZkJournalOptions, 'transport' | 'disk'>);

export function openJournal(opts: OpenJournalOptions): Journal {
  switch (opts.backend) {
    case 'raft': {
      const { backend: _, server, secret, disk, ...raft } = opts;
      return new RaftJournal({ ...raft, transport: rpcTransport(server, secret === undefined ? {} : { secret }), disk: disk ?? nodeDisk, clock: systemClock });
    }
    case 'zookeeper': {
      const { backend: _, server, ...zk } = opts;
      return new ZkJournal({ ...zk, transport: rpcTransport(server, zk.secret === undefined ? {} : { secret: zk.secret }), disk: nodeDisk });
    }
  }
}
