// The message surface between cairn's processes: a node serves named methods and reaches its
// peers by address. Production passes rpcTransport (TCP, src/rpc/); the simulator passes one over
// its virtual network, which delays, drops, duplicates and partitions.

import type { CallOptions, CallResult } from '../rpc/client.ts';
import type { Handler } from '../rpc/handler.ts';

export interface Connection {
  call<T = unknown>(method: string, body: unknown, opts?: CallOptions): Promise<CallResult<T>>;
  /** One-way, no delivery guarantee: for protocols that tolerate loss (Raft's messages). */
  notify(method: string, body: unknown, payload?: Uint8Array): void;
  close(): void;
}

export interface Transport {
  /**
   * Serves `method` on this node's endpoint. `internal`: traffic between cairn's own processes,
   * which an RPC server never makes wait for, or refuses for, its memory of clients' requests.
   */
  handle(method: string, handler: Handler, opts?: { internal?: boolean }): void;
  connect(address: string): Connection;
}
