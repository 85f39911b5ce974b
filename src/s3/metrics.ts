// The S3 gateway's metrics: requests by operation and status class with their latency, and the
// bytes that crossed its sockets. Operations come from the gateway's routing table ('unknown'
// before one is chosen: a refused signature, a bad address), so a client cannot add labels.

import { Counter, Histogram, type Registry } from 'prom-client';
import { gaugeOf, latencyBuckets } from '../metrics.ts';

export interface S3Metrics {
  /** One request answered (or cut off): its operation, HTTP status, seconds taken, bytes in and out (headers included). */
  request(op: string, status: number, seconds: number, bytesIn: number, bytesOut: number): void;
}

export function s3Metrics(registry: Registry, connections: () => number): S3Metrics {
  const registers = [registry];
  const requests = new Counter({ name: 'cairn_s3_requests_total', help: "S3 requests answered, by operation (putObject, getObject, headObject, listObjectsV2, ...; 'unknown' when refused before one was chosen) and status class (2xx, 3xx, 4xx, 5xx)", labelNames: ['op', 'status'], registers });
  const seconds = new Histogram({ name: 'cairn_s3_request_seconds', help: 'how long S3 requests took, from their headers to the last byte of the answer, by operation', labelNames: ['op'], buckets: latencyBuckets, registers });
  const received = new Counter({ name: 'cairn_s3_received_bytes_total', help: 'bytes received from S3 clients (requests, headers included)', registers });
  const sent = new Counter({ name: 'cairn_s3_sent_bytes_total', help: 'bytes sent to S3 clients (answers, headers included)', registers });
  gaugeOf(registry, 'cairn_s3_connections', 'client connections open (at most 256)', connections);
  return {
    request(op, status, secondsTaken, bytesIn, bytesOut) {
      requests.inc({ op, status: statusClass(status) });
      seconds.observe({ op }, secondsTaken);
      received.inc(bytesIn);
      sent.inc(bytesOut);
    },
  };
}

const statusClasses = ['1xx', '2xx', '3xx', '4xx', '5xx'];

function statusClass(status: number): string {
  return statusClasses[Math.floor(status / 100) - 1] ?? 'other';
}
