// The client side of the masters as processes use it: MasterCalls (master-calls.ts) over TCP RPC,
// with the system clock and a client id naming its host and process unless told otherwise, acting as the caller given.

import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
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
  /** Names this client's mutations (exactly-once) and its write sessions; defaultClientId() by default. */
  clientId?: string;
}

/**
 * HOST:PID:RANDOM: unique, and it tells an operator whose write sessions are open (`cairn admin
 * sessions`), so that those of a process that is gone can be ended.
 */
export function defaultClientId(): string {
  return `${hostname().slice(0, 64)}:${process.pid}:${randomUUID().slice(0, 8)}`;
}

export class MasterClient extends MasterCalls {
  declare readonly caller: Caller;

  constructor(opts: MasterClientOptions) {
    super({
      ...opts,
      clock: opts.clock ?? systemClock,
      clientId: opts.clientId ?? defaultClientId(),
      connect: opts.connect ?? ((address) => new RpcClient(address, { secret: opts.secret, connectTimeoutMs: 2_000 })),
    });
  }
}
