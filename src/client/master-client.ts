// The client side of the masters as processes use it: MasterCalls (master-calls.ts) over TCP RPC,
// with the system clock and a random client id unless told otherwise, acting as the caller given.

import { randomUUID } from 'node:crypto';
import type { Clock, Connection } from '../io/index.ts';
import { systemClock } from '../io/system-clock.ts';
import { RpcClient } from '../rpc/index.ts';
import { MasterCalls, type MasterCallsOptions } from './master-calls.ts';
import type { Caller } from '../meta/commands.ts';

export interface MasterClientOptions extends Omit<MasterCallsOptions, 'connect' | 'clock' | 'clientId' | 'caller'> {
  /**
   * Who its namespace requests act as (uid, gid, supplementary groups): the masters check file
   * permissions against it. The CLI passes the invoking user's; rootCaller acts as uid 0.
   */
  caller: Caller;
  /** How to reach an address: TCP RPC by default. */
  connect?: (address: string) => Connection;
  clock?: Clock;
  /** Names this client's mutations (exactly-once); a random UUID by default. */
  clientId?: string;
}

export class MasterClient extends MasterCalls {
  declare readonly caller: Caller;

  constructor(opts: MasterClientOptions) {
    super({
      ...opts,
      clock: opts.clock ?? systemClock,
      clientId: opts.clientId ?? randomUUID(),
      connect: opts.connect ?? ((address) => new RpcClient(address, { secret: opts.secret, connectTimeoutMs: 2_000 })),
    });
  }
}
