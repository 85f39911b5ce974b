// The Transport of a real process: cairn's RPC over TCP.

import { RpcClient, type RpcClientOptions, type RpcServer } from '../rpc/index.ts';
import type { Transport } from './transport.ts';

export function rpcTransport(server: RpcServer, clientOptions: RpcClientOptions = {}): Transport {
  return {
    handle: (method, handler, opts) => server.handle(method, handler, opts),
    connect: (address) => new RpcClient(address, clientOptions),
  };
}
