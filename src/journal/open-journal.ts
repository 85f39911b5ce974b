// Opens the journal a master runs on, by backend, on the real disk, clock and RPC: the embedded
// Raft journal today (ZooKeeper comes next). The master sees only the `Journal` interface.

import { nodeDisk } from '../io/node-disk.ts';
import { rpcTransport } from '../io/rpc-transport.ts';
import { systemClock } from '../io/system-clock.ts';
import type { RpcServer } from '../rpc/index.ts';
import type { Journal } from './journal.ts';
import { RaftJournal, type RaftJournalOptions } from './raft/raft-journal.ts';

export type JournalBackend = 'raft';

export type OpenJournalOptions = { backend: JournalBackend; server: RpcServer; secret?: string } & Omit<RaftJournalOptions, 'transport' | 'disk' | 'clock' | 'bugs' | 'observer'>;

export function openJournal(opts: OpenJournalOptions): Journal {
  const { backend, server, secret, ...raft } = opts;
  switch (backend) {
    case 'raft':
      return new RaftJournal({ ...raft, transport: rpcTransport(server, secret === undefined ? {} : { secret }), disk: nodeDisk, clock: systemClock });
  }
}
