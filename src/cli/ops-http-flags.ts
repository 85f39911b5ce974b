// --http and --metrics-auth of the processes that are clients of a cluster (the S3 gateway, the
// FUSE daemon): /metrics and /healthz served as masters and workers serve them, off when --http is
// absent.

import type { Registry } from 'prom-client';
import { parseAddress as parseHostPort } from '../address.ts';
import { opsHttpOptions, startOpsHttp, type Health, type HttpEndpoint } from '../ops-http.ts';
import { configError, parseAddress } from './config.ts';

export interface OpsHttpFlags {
  http?: string;
  metricsAuth?: boolean;
}

export const httpOptionHelp = 'serve /metrics (Prometheus) and /healthz here (default: not served)';
export const metricsAuthOptionHelp = '/metrics answers only requests with Authorization: Bearer <cluster secret> (default: open, for a scraper on a trusted network)';

/** Checks the flags before anything starts: --metrics-auth without a secret is refused. */
export function checkOpsHttpFlags(flags: OpsHttpFlags, secret: string | undefined): void {
  if (flags.metricsAuth === true && flags.http === undefined) throw configError('--metrics-auth protects the /metrics of --http: give --http HOST:PORT too');
  if (flags.metricsAuth === true && (secret === undefined || secret === '')) throw configError('--metrics-auth makes /metrics ask for the cluster secret, and there is none: give --secret (or CAIRN_SECRET)');
}

export async function startFlagsOpsHttp(flags: OpsHttpFlags, secret: string | undefined, registry: Registry, health: () => Health): Promise<HttpEndpoint | undefined> {
  if (flags.http === undefined) return undefined;
  const at = parseHostPort(parseAddress(flags.http, '--http', { portZero: true }), { portZero: true });
  if ('problem' in at) throw configError(`--http must be host:port: ${at.problem}`);
  return startOpsHttp(at.host, at.port, registry, health, undefined, opsHttpOptions(flags.metricsAuth, secret));
}
