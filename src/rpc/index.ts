// cairn's RPC: framed, multiplexed request/response calls over TCP between masters, workers and
// clients. The wire format is described in frame.ts, the handshake in auth.ts.

export { RpcError, RpcErrorCode } from './errors.ts';
export { reply, type CallContext, type Handler, type Reply } from './handler.ts';
export { RpcServer, type HandleOptions, type RpcServerOptions, type RpcServerStats } from './server.ts';
export { RpcClient, type CallOptions, type CallResult, type RpcClientOptions } from './client.ts';
export type { RpcLog } from './server-connection.ts';
export { unknownMethodLabel, type RpcMetrics } from './metrics.ts';
export * as rpcLimits from './limits.ts';
