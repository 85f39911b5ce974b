// The HTTP face every cairn process shows operators: /metrics (Prometheus text) and /healthz
// (200 or 503 with a JSON body). Each process brings its own registry and health check. /metrics
// may require the cluster secret as a bearer token (OpsHttpOptions.metricsToken).

import { timingSafeEqual, createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { CairnError, ErrorCode } from './errors.ts';
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

export interface OpsHttpOptions {
  /**
   * When set, /metrics answers 401 unless the request carries `Authorization: Bearer <token>`
   * (the cluster secret; --metrics-auth). Empty is refused: it must never mean "no check".
   */
  metricsToken?: string;
}

/** /metrics's check: the cluster secret as bearer token when asked for (a missing or empty one refuses to start). */
export function opsHttpOptions(metricsAuth: boolean | undefined, secret: string | undefined): OpsHttpOptions {
  return metricsAuth === true ? { metricsToken: secret ?? '' } : {};
}

export async function startOpsHttp(host: string, port: number, registry: Registry, health: () => Health, extra?: ExtraRoutes, opts: OpsHttpOptions = {}): Promise<HttpEndpoint> {
  const authorized = metricsAuthorizer(opts.metricsToken);
  const server: Server = createServer((req, res) => {
    // A scraper may add parameters (Prometheus's params:); the path alone picks the page.
    const pathname = (req.url ?? '').split('?')[0];
    if (pathname === '/metrics') {
      if (!authorized(req)) {
        res.writeHead(401, { 'www-authenticate': 'Bearer realm="cairn metrics"' }).end('/metrics needs Authorization: Bearer <cluster secret>\n');
        return;
      }
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
      return;
    }
    if (pathname === '/healthz') {
      const h = health();
      res.writeHead(h.ok ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify(h));
      return;
    }
    try {
      if (extra?.(req, res) === true) return;
    } catch (err) {
      // A route's bug must not take the process down with it (an uncaught throw here would).
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' }).end(`internal error: ${err instanceof Error ? err.message : String(err)}\n`);
      else res.destroy();
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
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        // Live streams (the dashboard's) never end by themselves; a scrape in progress gets a
        // closed connection (its answer, written later, goes nowhere), never a hang.
        server.closeAllConnections();
      }),
  };
}

/** Checks a request's bearer token against `token` in constant time (both hashed first, so lengths leak nothing). */
function metricsAuthorizer(token: string | undefined): (req: IncomingMessage) => boolean {
  if (token === undefined) return () => true;
  if (token.length === 0) throw new CairnError(ErrorCode.BadOption, '/metrics authentication needs the cluster secret, and it is empty: set --secret (or CAIRN_SECRET), or leave --metrics-auth off');
  const want = createHash('sha256').update(token).digest();
  return (req) => {
    const header = req.headers.authorization;
    // The scheme's name is case-insensitive (RFC 9110).
    const m = typeof header === 'string' ? /^bearer +(.+)$/i.exec(header) : null;
    if (m === null) return false;
    return timingSafeEqual(createHash('sha256').update(m[1]).digest(), want);
  };
}
