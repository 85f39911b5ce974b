// The HTTP face every cairn process shows operators: /metrics (Prometheus text) and /healthz
// (200 or 503 with a JSON body). Each process brings its own registry and health check.

import { createServer, type Server } from 'node:http';
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

export async function startOpsHttp(host: string, port: number, registry: Registry, health: () => Health): Promise<HttpEndpoint> {
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
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
