// What the RPC layer reports of each call, for /metrics (src/metrics.ts feeds prom-client from it).

export interface RpcMetrics {
  /**
   * One call finished: its method, 'ok' or its error code, and how long it took in seconds
   * (undefined for one-way messages, which have no answer to time).
   */
  call(method: string, code: string, seconds: number | undefined): void;
}

/** The method label of a request whose method has no handler: a peer's made-up names never become labels. */
export const unknownMethodLabel = 'unknown';
