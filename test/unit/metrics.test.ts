// The metrics plumbing without a cluster: bounded labels, /metrics behind the cluster secret
// (ops-http.ts, --metrics-auth), the RPC server's counts by method (a made-up method is 'unknown'),
// and the heartbeat's byte counts, validated on the master and carried to its worker health.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { parseMasterConfig, parseWorkerConfig } from '../../src/cli/config.ts';
import { checkOpsHttpFlags } from '../../src/cli/ops-http-flags.ts';
import { ErrorCode } from '../../src/errors.ts';
import type { Clock } from '../../src/io/index.ts';
import type { Journal } from '../../src/journal/index.ts';
import { ClusterManager } from '../../src/master/cluster-manager.ts';
import { BoundedLabel, rpcMetrics } from '../../src/metrics.ts';
import { MetaStateMachine } from '../../src/meta/state-machine.ts';
import { opsHttpOptions, startOpsHttp } from '../../src/ops-http.ts';
import { RpcClient, RpcServer } from '../../src/rpc/index.ts';
import { WorkerErrorCode } from '../../src/worker/errors.ts';
import { validateHeartbeat } from '../../src/worker/protocol.ts';

test('BoundedLabel keeps the first values and names the rest other', () => {
  const l = new BoundedLabel(2);
  assert.equal(l.of('a'), 'a');
  assert.equal(l.of('b'), 'b');
  assert.equal(l.of('c'), 'other');
  assert.equal(l.of('a'), 'a');
});

test('/metrics with a token: 401 without it or with another, 200 with it; /healthz stays open', async (t) => {
  const registry = new Registry();
  const http = await startOpsHttp('127.0.0.1', 0, registry, () => ({ ok: true }), undefined, { metricsToken: 'the-secret' });
  t.after(() => http.close());
  const get = (path: string, token?: string): Promise<Response> => fetch(`http://${http.address}${path}`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
  assert.equal((await get('/metrics')).status, 401);
  assert.equal((await get('/metrics', 'the-secreT')).status, 401);
  assert.equal((await get('/metrics', 'the-secret-and-more')).status, 401);
  assert.equal((await fetch(`http://${http.address}/metrics`, { headers: { authorization: 'Basic the-secret' } })).status, 401);
  assert.equal((await get('/metrics', 'the-secret')).status, 200);
  assert.equal((await get('/healthz')).status, 200);
  // A scraper's parameters, and the scheme's name in any case.
  assert.equal((await get('/metrics?job=x', 'the-secret')).status, 200);
  assert.equal((await get('/metrics?job=x')).status, 401);
  assert.equal((await fetch(`http://${http.address}/metrics`, { headers: { authorization: 'bearer the-secret' } })).status, 200);
  assert.equal((await get('/healthz?probe=1')).status, 200);
});

test('an empty token never means no check: the endpoint refuses to start', async () => {
  await assert.rejects(startOpsHttp('127.0.0.1', 0, new Registry(), () => ({ ok: true }), undefined, { metricsToken: '' }), { code: ErrorCode.BadOption });
  await assert.rejects(startOpsHttp('127.0.0.1', 0, new Registry(), () => ({ ok: true }), undefined, opsHttpOptions(true, undefined)), { code: ErrorCode.BadOption });
  assert.deepEqual(opsHttpOptions(false, 'x'), {});
});

test('--metrics-auth is refused without a secret, for masters, workers and the gateways', () => {
  assert.throws(() => parseMasterConfig({ id: '1', dir: '/tmp/x', listen: '127.0.0.1:0', insecure: true, metricsAuth: true }, {}), { code: ErrorCode.BadOption });
  assert.equal(parseMasterConfig({ id: '1', dir: '/tmp/x', listen: '127.0.0.1:0', secret: 's', metricsAuth: true }, {}).metricsAuth, true);
  assert.throws(() => parseWorkerConfig({ id: '1', listen: '127.0.0.1:0', masters: '127.0.0.1:1', target: ['/t'], insecure: true, metricsAuth: true }, {}), { code: ErrorCode.BadOption });
  assert.throws(() => checkOpsHttpFlags({ http: '127.0.0.1:0', metricsAuth: true }, undefined), { code: ErrorCode.BadOption });
  assert.throws(() => checkOpsHttpFlags({ metricsAuth: true }, 's'), { code: ErrorCode.BadOption });
  checkOpsHttpFlags({ http: '127.0.0.1:0', metricsAuth: true }, 's');
});

test('the RPC server counts calls by registered method and result; a made-up method is unknown', async (t) => {
  const registry = new Registry();
  const server = new RpcServer({ metrics: rpcMetrics(registry).server, log: () => undefined });
  server.handle('ok.method', async () => ({}));
  server.handle('bad.method', async () => {
    throw Object.assign(new Error('no'), { code: 'ENOENT' });
  });
  const bound = await server.listen('127.0.0.1', 0);
  const client = new RpcClient(`127.0.0.1:${bound.port}`);
  t.after(async () => {
    client.close();
    await server.close();
  });
  await client.call('ok.method', {});
  await assert.rejects(client.call('bad.method', {}), { code: 'ENOENT' });
  for (let i = 0; i < 3; i++) await assert.rejects(client.call(`made.up.${i}`, {}), { code: 'CAIRN_UNKNOWN_METHOD' });
  client.notify('ok.method', {});
  const text = await registry.metrics();
  // The one-way message is counted once its handler ran.
  await new Promise((r) => setTimeout(r, 50));
  const after = await registry.metrics();
  assert.match(text, /^cairn_rpc_server_calls_total\{method="bad.method",code="ENOENT"\} 1$/m);
  assert.match(text, /^cairn_rpc_server_calls_total\{method="unknown",code="CAIRN_UNKNOWN_METHOD"\} 3$/m);
  assert.match(after, /^cairn_rpc_server_calls_total\{method="ok.method",code="ok"\} 2$/m);
  assert.match(text, /^cairn_rpc_server_call_seconds_count\{method="ok.method"\} 1$/m);
  assert.doesNotMatch(after, /made\.up/);
});

test('heartbeat byte counts: validated (a hostile worker sends anything) and carried to the leader\'s health', async () => {
  const base = { workerId: 1, instance: 'i', routingVersion: 0, targets: [] };
  assert.deepEqual(validateHeartbeat({ ...base, bytesRead: 10, bytesWritten: 20 }), { ...base, bytesRead: 10, bytesWritten: 20 });
  assert.equal(validateHeartbeat(base).bytesRead, undefined, 'absent from older workers');
  for (const bad of [-1, 1.5, '7', 2 ** 60, null]) {
    assert.throws(() => validateHeartbeat({ ...base, bytesRead: bad }), { code: WorkerErrorCode.InvalidArgument }, `bytesRead ${String(bad)}`);
    assert.throws(() => validateHeartbeat({ ...base, bytesWritten: bad }), { code: WorkerErrorCode.InvalidArgument }, `bytesWritten ${String(bad)}`);
  }
  const sm = new MetaStateMachine();
  let index = 0;
  const journal = { isLeader: () => true, leader: () => undefined, status: () => ({ term: 1 }), propose: async (e: Uint8Array) => sm.apply(++index, e) } as unknown as Journal;
  const clock = { now: () => 0, wallNow: () => 1_000_000, randomInt: () => 0 } as unknown as Clock;
  const manager = new ClusterManager({ masterId: 1, journal, state: () => sm.state, clock, replication: 1, timing: { heartbeatMs: 100, offlineTimeoutMs: 500 }, log: () => undefined });
  await manager.round();
  await manager.register({ workerId: 1, instance: 'i', address: 'h:1', targets: [{ targetId: 1001, path: '/d', capacityBytes: 100 }] });
  await manager.register({ workerId: 2, instance: 'i', address: 'h:2', targets: [{ targetId: 2001, path: '/d', capacityBytes: 100 }] });
  manager.heartbeat({ ...base, bytesRead: 10, bytesWritten: 20 });
  manager.heartbeat({ ...base, workerId: 2 });
  const health = manager.health();
  assert.deepEqual(health.map((h) => [h.workerId, h.bytesRead, h.bytesWritten]), [[1, 10, 20], [2, 0, 0]]);
});
