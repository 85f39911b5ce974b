// The HTTP face every cairn process shows operators: /metrics (Prometheus text) and /healthz
// (200 or 503 with a JSON body). Each process brings its own registry and health check.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { formatAddress } from './address.ts';

export interface HttpEndpoint {
  address: string;
  close(): Promise<void>;
}

export interface Health {
  ok: boolean;
  [key: string]: unknown;
}

/** Serves one request the ops endpoints do not (the masters' dashboard); false: not its path. */
export type ExtraRoutes = (req: IncomingMessage, res: ServerResponse) => boolean;

export async function startOpsHttp(host: string, port: number, registry: Registry, health: () => Health, extra?: ExtraRoutes): Promise<HttpEndpoint> {
  const server: Server = createServer((req, res) => {
    if (req.url === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
      return;
    }
    if (req.url === '/healthz') {
      const h = health();
      res.writeHead(h.ok ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify(h));
      return;
    }
    if (extra?.(req, res) === true) return;
    res.writeHead(404).end('try /metrics or /healthz\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  const bound = typeof addr === 'object' && addr !== null ? addr.port : port;
  return {
    address: formatAddress(host, bound),
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        // Live streams (the dashboard's) never end by themselves.
        server.closeAllConnections();
      }),
  };
}
