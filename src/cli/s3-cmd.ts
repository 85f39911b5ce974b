// `cairn s3 --listen HOST:PORT`: the S3 gateway (src/s3/) over a cluster's clients, in the
// foreground until SIGINT or SIGTERM.

import type { Command } from 'commander';
import { parseAddress as parseHostPort } from '../address.ts';
import { completedUploadKeepMsDefault, completeKeepAliveMsDefault, startS3Gateway } from '../s3/index.ts';
import { s3Metrics } from '../s3/metrics.ts';
import { processRegistry, rpcMetrics } from '../metrics.ts';
import type { HttpEndpoint } from '../ops-http.ts';
import { openClients, receiveBufferPool, targetSecret, type TargetFlags } from './cluster-target.ts';
import { checkOpsHttpFlags, httpOptionHelp, metricsAuthOptionHelp, startFlagsOpsHttp, type OpsHttpFlags } from './ops-http-flags.ts';
import { parseAddress, parsePositiveInt } from './config.ts';
import { printable } from './format.ts';

interface S3Flags extends TargetFlags, OpsHttpFlags {
  listen: string;
  region: string;
  credentialTtlMs: string;
  streamMib: string;
  completeKeepaliveMs: string;
  completedUploadKeepMs: string;
}

export function registerS3Command(program: Command, addTargetOptions: (c: Command) => Command): void {
  addTargetOptions(
    program
      .command('s3')
      .description("serve the cluster's namespace over the S3 API (a bucket is a top-level directory; keys from 'cairn admin s3 user add')")
      .option('--listen <host:port>', 'where to listen (path-style addressing: http://HOST:PORT/BUCKET/KEY)', '127.0.0.1:9000')
      .option('--region <name>', 'the region GetBucketLocation answers (clients may sign for any)', 'us-east-1')
      .option('--credential-ttl-ms <ms>', 'how long a key is trusted before the masters are asked again (a removed key stops working within it)', '10000')
      .option('--stream-mib <n>', 'MiB one request keeps in flight to or from the workers at most', '16')
      .option('--complete-keepalive-ms <ms>', 'a multipart completion still copying its parts after this long answers 200 and sends a space this often until its result, as S3 does, so clients do not time out', String(completeKeepAliveMsDefault))
      .option('--completed-upload-keep-ms <ms>', 'how long a completed multipart upload answers a retried completion (an SDK retries one whose answer it lost) with its result rather than NoSuchUpload', String(completedUploadKeepMsDefault))
      .option('--http <host:port>', httpOptionHelp)
      .option('--metrics-auth', metricsAuthOptionHelp),
  ).action(async (flags: S3Flags) => {
    const listen = parseAddress(flags.listen, '--listen', { portZero: true });
    const hp = parseHostPort(listen, { portZero: true });
    if ('problem' in hp) throw new Error(hp.problem);
    const secret = targetSecret(flags);
    checkOpsHttpFlags(flags, secret);
    const registry = flags.http === undefined ? undefined : processRegistry();
    const { meta, data } = openClients(flags, { receiveBuffers: receiveBufferPool(), ...(registry === undefined ? {} : { rpcMetrics: rpcMetrics(registry).client }) });
    const log = (level: 'info' | 'warn' | 'error', message: string): void => console.error(`${new Date().toISOString()} ${level}: ${printable(message)}`);
    await meta.query('meta.query', { op: 'statfs' }); // fails early, with the cluster's error, when no master answers
    let gatewayNow: { connections: number } | undefined;
    const { gateway, address } = await startS3Gateway(
      {
        meta,
        data,
        log,
        region: flags.region,
        credentialTtlMs: parsePositiveInt(flags.credentialTtlMs, '--credential-ttl-ms'),
        streamBytesMax: parsePositiveInt(flags.streamMib, '--stream-mib') * 2 ** 20,
        completeKeepAliveMs: parsePositiveInt(flags.completeKeepaliveMs, '--complete-keepalive-ms'),
        completedUploadKeepMs: parsePositiveInt(flags.completedUploadKeepMs, '--completed-upload-keep-ms'),
        ...(registry === undefined ? {} : { metrics: s3Metrics(registry, () => gatewayNow?.connections ?? 0) }),
      },
      hp.host,
      hp.port,
    );
    gatewayNow = gateway;
    const endpoint = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
    let http: HttpEndpoint | undefined;
    try {
      http = registry === undefined ? undefined : await startFlagsOpsHttp(flags, secret, registry, () => ({ ok: true, endpoint, connections: gateway.connections }));
    } catch (err) {
      await gateway.close();
      throw err;
    }
    console.log(`cairn s3: serving on ${endpoint} (pid ${process.pid})${http === undefined ? '' : `, /metrics on http://${http.address}`}; try: aws --endpoint-url ${endpoint} s3 ls`);
    process.send?.({ endpoint, ...(http === undefined ? {} : { http: http.address }) });
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await http?.close();
    await gateway.close();
    data.close();
    meta.close();
  });
}
