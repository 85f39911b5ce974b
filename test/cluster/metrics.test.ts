// /metrics of every kind of process on a real cluster: masters, workers, the S3 gateway and the
// FUSE daemon (where FUSE can mount; in CI a missing dependency fails). Each scrape is parsed with
// a Prometheus text parser and held to the conventions (cairn_ prefix, _total counters, histograms
// with buckets, help texts), counters must move under load, /metrics asks for the cluster secret
// with --metrics-auth, a made-up RPC method adds no label, and deploy/grafana-dashboard.json uses
// only names the processes expose.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { test } from 'node:test';
import { GetObjectCommand, PutObjectCommand, CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { getFile, putFile } from '../../src/client/files.ts';
import { RpcClient } from '../../src/rpc/index.ts';
import { MasterWorkerMethod, type WorkerHealth } from '../../src/worker/protocol.ts';
import { DataCluster, pieces } from './data-cluster.ts';
import { fuseSkipReason, Mounts } from './fuse-mount.ts';
import { mainScript, MasterCluster, ProcessGroup, waitFor } from './process-cluster.ts';
import { zkClusterFor, zooKeeperSkipReason } from '../zookeeper-fixture.ts';

interface Family {
  name: string;
  help: string;
  type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED';
  metrics: { value?: string; labels?: Record<string, string>; buckets?: Record<string, string>; count?: string; sum?: string }[];
}

/** A parsed scrape, with its text: the parser merges a histogram's label sets, so their counts are read from the text. */
type Scrape = Family[] & { text: string };

const parsePrometheus = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => Family[];
const fuseSkip = fuseSkipReason();
const dashboardFile = new URL('../../deploy/grafana-dashboard.json', import.meta.url);

/** Families each kind of process must show (beside the process_* and nodejs_* defaults). */
const expected: Record<string, string[]> = {
  master: [
    'cairn_journal_term', 'cairn_journal_commit_index', 'cairn_journal_applied_index', 'cairn_journal_proposals_total', 'cairn_journal_batch_entries',
    'cairn_journal_fsync_seconds', 'cairn_journal_leader_changes_total', 'cairn_journal_checkpoint_seconds', 'cairn_journal_checkpoint_bytes',
    'cairn_journal_peer_sent_messages_total', 'cairn_meta_operations_total', 'cairn_meta_operation_seconds', 'cairn_rpc_server_calls_total',
    'cairn_rpc_server_call_seconds', 'cairn_chains', 'cairn_targets', 'cairn_workers_online', 'cairn_routing_version',
  ],
  worker: [
    'cairn_worker_target_state', 'cairn_worker_target_capacity_bytes', 'cairn_worker_target_used_bytes', 'cairn_worker_target_chunks', 'cairn_worker_chains',
    'cairn_worker_routing_version', 'cairn_worker_read_bytes_total', 'cairn_worker_disk_reads_total', 'cairn_worker_written_bytes_total', 'cairn_worker_resync_running',
    'cairn_worker_scrub_chunks_total',
    'cairn_rpc_server_calls_total', 'cairn_rpc_server_call_seconds',
  ],
  s3: ['cairn_s3_requests_total', 'cairn_s3_request_seconds', 'cairn_s3_received_bytes_total', 'cairn_s3_sent_bytes_total', 'cairn_rpc_client_calls_total'],
  fuse: ['cairn_fuse_operations_total', 'cairn_fuse_operation_seconds', 'cairn_fuse_read_bytes_total', 'cairn_fuse_written_bytes_total', 'cairn_fuse_read_ahead_hits_total', 'cairn_fuse_local_reads_total'],
};
const processDefaults = ['process_resident_memory_bytes', 'process_cpu_seconds_total', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_heap_size_used_bytes'];

test('metrics: every kind of process serves Prometheus metrics that follow the conventions and move under load', { timeout: 120_000 }, async (t) => {
  let cluster: DataCluster | undefined;
  const mounts = fuseSkip === undefined ? await Mounts.create(t, () => cluster!.masters.addresses(), () => cluster!.masters.secret) : undefined;
  // Masters serve /metrics on a port of their own choosing; every process asks for the secret.
  cluster = await DataCluster.start(t, { masters: 3, workers: 3, targetsPerWorker: 1, heartbeatMs: 200, offlineTimeoutMs: 1_500, env: { CAIRN_HTTP: '127.0.0.1:0', CAIRN_METRICS_AUTH: '1' } });
  const c = cluster;
  const secret = c.masters.secret;
  const endpoints: { kind: string; http: string }[] = [];
  for (const m of c.masters.masters.values()) endpoints.push({ kind: 'master', http: await startedHttp(m.log, /"http":"([^"]+)"[^\n]*"msg":"master started"/) });
  for (const w of c.workers.values()) endpoints.push({ kind: 'worker', http: w.http });

  const s3Log = path.join(path.dirname(c.workers.get(1)!.log), 's3.log');
  const gateway = c['procs'].spawn(process.execPath, [mainScript, 's3', '--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', '--metrics-auth', '--masters', c.masters.addresses().join(',')], s3Log, { CAIRN_SECRET: secret });
  t.after(() => gateway.kill('SIGKILL'));
  const s3Line = await startedLine(s3Log, /serving on (http:\/\/[0-9.:]+) \(pid \d+\), \/metrics on http:\/\/([0-9.:]+)/);
  endpoints.push({ kind: 's3', http: s3Line[2] });
  let mountDir: string | undefined;
  if (mounts !== undefined) {
    const m = await mounts.mount('m', ['--http', '127.0.0.1:0', '--metrics-auth']);
    mountDir = m.dir;
    endpoints.push({ kind: 'fuse', http: (await startedLine(m.log, /\/metrics on http:\/\/([0-9.:]+)/))[1] });
  } else {
    t.diagnostic(`FUSE daemon not scraped: ${fuseSkip}`);
  }
  const scrape = async (http: string): Promise<Scrape> => {
    const res = await fetch(`http://${http}/metrics`, { headers: { authorization: `Bearer ${secret}` } });
    assert.equal(res.status, 200, `${http}/metrics with the secret`);
    const text = await res.text();
    return Object.assign(parsePrometheus(text), { text });
  };
  const scrapeAll = async (): Promise<Scrape[]> => Promise.all(endpoints.map((e) => scrape(e.http)));

  await t.test('/metrics asks for the cluster secret with --metrics-auth; /healthz does not', async () => {
    for (const e of endpoints) {
      assert.equal((await fetch(`http://${e.http}/metrics`)).status, 401, `${e.kind} ${e.http} without a token`);
      assert.equal((await fetch(`http://${e.http}/metrics`, { headers: { authorization: 'Bearer wrong' } })).status, 401, `${e.kind} with a wrong token`);
      assert.equal((await fetch(`http://${e.http}/metrics`, { headers: { authorization: `Bearer ${secret}` } })).status, 200, `${e.kind} with the secret`);
      assert.notEqual((await fetch(`http://${e.http}/healthz`)).status, 401, `${e.kind} /healthz is open`);
    }
  });

  const before = await scrapeAll();
  await t.test('names, types, help texts and label sets follow the conventions', () => {
    for (const [i, families] of before.entries()) {
      const e = endpoints[i];
      const names = new Set(families.map((f) => f.name));
      for (const name of [...expected[e.kind], ...processDefaults]) assert.ok(names.has(name), `${e.kind} ${e.http} shows ${name}`);
      for (const f of families) checkFamily(f, e.kind);
    }
  });

  await t.test('counters move under load: files written and read, metadata operations, S3 and FUSE requests', async () => {
    const client = c.client();
    const body = randomBytes(3 * 1024 * 1024 + 5);
    await client.meta.mutate('meta.mutate', { op: 'mkdir', path: '/m', mode: 0o755, uid: 0, gid: 0, parents: false });
    await putFile(client.meta, client.data, '/m/f', pieces(body, 256 * 1024));
    const { chunks } = await getFile(client.meta, client.data, '/m/f');
    const got: Buffer[] = [];
    for await (const part of chunks) got.push(part);
    assert.ok(Buffer.concat(got).equals(body));
    await client.meta.query('meta.query', { op: 'stat', path: '/m/f' });
    await assert.rejects(client.meta.query('meta.query', { op: 'stat', path: '/m/none' }), { code: 'ENOENT' });

    await client.meta.mutate('meta.mutate', { op: 's3UserAdd', accessKeyId: 'METRICS1', secretKey: 'metrics-secret-key-0123456789', buckets: ['*'], uid: 0, gid: 0 });
    const s3 = new S3Client({ endpoint: s3Line[1], region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'METRICS1', secretAccessKey: 'metrics-secret-key-0123456789' }, maxAttempts: 1 });
    t.after(() => s3.destroy());
    await s3.send(new CreateBucketCommand({ Bucket: 'bkt' }));
    await s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'k', Body: body.subarray(0, 100_000) }));
    const obj = await s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'k' }));
    assert.equal((await obj.Body!.transformToByteArray()).length, 100_000);

    if (mountDir !== undefined) {
      await writeFile(path.join(mountDir, 'via-fuse'), body.subarray(0, 200_000));
      assert.equal((await readFile(path.join(mountDir, 'via-fuse'))).length, 200_000);
    }
    // Workers' counts are read at scrape time; masters' cluster gauges within a second.
    await waitFor(async () => {
      const after = await scrapeAll();
      return endpoints.every((e, i) => moved(e.kind, before[i], after[i], mountDir !== undefined) === undefined);
    }, 'every process\'s counters to move', 20_000, async () => {
      const after = await scrapeAll();
      return endpoints.map((e, i) => `${e.kind} ${e.http}: ${moved(e.kind, before[i], after[i], mountDir !== undefined) ?? 'moved'}`).join('\n');
    });
    const after = await scrapeAll();
    const leader = after.find((f, i) => endpoints[i].kind === 'master' && value(f, 'cairn_journal_is_leader') === 1)!;
    assert.ok(sum(leader, 'cairn_meta_operations_total', { kind: 'query', op: 'stat', result: 'ENOENT' }) >= 1, 'a failed stat counted with its code');
    assert.ok(sum(leader, 'cairn_journal_peer_sent_messages_total') > 0, 'the leader counts Raft messages to its peers');
    assert.equal(value(leader, 'cairn_chains', { state: 'healthy' }), 1);
    assert.equal(value(leader, 'cairn_targets', { state: 'serving' }), 3);
    assert.equal(value(leader, 'cairn_workers_online'), 3);
  });

  await t.test('the leader\'s worker health carries each worker\'s bytes read and written', async () => {
    await waitFor(async () => {
      const health = await c.masters.client().query<WorkerHealth[]>(MasterWorkerMethod.health, {});
      // Clients' bytes only (at the chain's head), so the sum is what clients wrote and read.
      const written = health.reduce((n, h) => n + h.bytesWritten, 0);
      const read = health.reduce((n, h) => n + h.bytesRead, 0);
      return health.length === 3 && written >= 3 * 1024 * 1024 + 5 + 100_000 && read >= 3 * 1024 * 1024 + 5 + 100_000;
    }, 'the bytes clients wrote and read, summed over the leader\'s worker health', 10_000);
  });

  await t.test('a checkpoint is timed and its size shown', async () => {
    for (const address of c.masters.addresses()) {
      const conn = new RpcClient(address, { secret });
      try {
        await conn.call('admin.journal.checkpoint', {});
      } finally {
        conn.close();
      }
    }
    for (const e of endpoints.filter((x) => x.kind === 'master')) {
      const got = await scrape(e.http);
      assert.ok(histogramCount(got, 'cairn_journal_checkpoint_seconds') >= 1, `${e.http}: checkpoint timed`);
      assert.ok((value(got, 'cairn_journal_checkpoint_bytes') ?? 0) > 0, `${e.http}: checkpoint size`);
    }
  });

  await t.test('a made-up RPC method counts as unknown and adds no label', async () => {
    const conn = new RpcClient(c.masters.addresses()[0], { secret });
    t.after(() => conn.close());
    for (let i = 0; i < 5; i++) await assert.rejects(conn.call(`made.up.${i}`, {}), { code: 'CAIRN_UNKNOWN_METHOD' });
    let unknown = 0;
    for (const e of endpoints.filter((x) => x.kind === 'master')) {
      const text = await (await fetch(`http://${e.http}/metrics`, { headers: { authorization: `Bearer ${secret}` } })).text();
      assert.doesNotMatch(text, /made\.up/, `${e.http}: no label from a made-up method`);
      unknown += sum(parsePrometheus(text), 'cairn_rpc_server_calls_total', { method: 'unknown' });
    }
    assert.ok(unknown >= 5, `unknown methods counted (${unknown})`);
  });

  await t.test('deploy/grafana-dashboard.json is valid and uses only names the processes expose', async () => {
    const shown = new Set<string>();
    for (const families of await scrapeAll()) for (const f of families) shown.add(f.name);
    const dashboard = JSON.parse(readFileSync(dashboardFile, 'utf8')) as { panels: { targets?: { expr: string }[] }[] };
    const used = new Set<string>();
    for (const p of dashboard.panels) for (const target of p.targets ?? []) for (const name of metricNames(target.expr)) used.add(name);
    assert.ok(used.size > 20, `the dashboard uses ${used.size} metric names`);
    // FUSE's names are checked where a mount ran; elsewhere they must at least be cairn_fuse_ ones.
    const missing = [...used].filter((n) => !shown.has(n) && !(mountDir === undefined && n.startsWith('cairn_fuse_')));
    assert.deepEqual(missing, [], 'names in the dashboard that no process exposes');
  });
});

test('metrics: a master on the ZooKeeper journal counts its appends to ZooKeeper, proposals, batches and leader changes', { skip: zooKeeperSkipReason(), timeout: 60_000 }, async (t) => {
  const zk = await zkClusterFor(t);
  const procs = await ProcessGroup.create('cairn-metrics-zk');
  t.after(() => procs.close('SIGKILL'));
  const masters = await MasterCluster.start(procs, { count: 1, env: { CAIRN_HTTP: '127.0.0.1:0' }, zookeeper: { connect: zk.connectString, clusterId: zk.clusterId } });
  t.after(() => masters.closeClients());
  const http = await startedHttp(masters.masters.get(1)!.log, /"http":"([^"]+)"[^\n]*"msg":"master started"/);
  await masters.waitForLeader();
  const client = masters.client();
  for (let i = 0; i < 5; i++) await client.mutate('meta.mutate', { op: 'mkdir', path: `/d${i}`, mode: 0o755, uid: 0, gid: 0, parents: false });
  const text = await (await fetch(`http://${http}/metrics`)).text();
  const scrape: Scrape = Object.assign(parsePrometheus(text), { text });
  for (const f of scrape) checkFamily(f, 'master (zookeeper)');
  assert.ok(histogramCount(scrape, 'cairn_journal_zookeeper_write_seconds') >= 5, 'appends to ZooKeeper timed');
  assert.ok(histogramCount(scrape, 'cairn_journal_batch_entries') >= 5, 'batch sizes observed');
  assert.equal(histogramCount(scrape, 'cairn_journal_fsync_seconds'), 0, 'no WAL on this backend');
  assert.ok(sum(scrape, 'cairn_journal_proposals_total') >= 5);
  assert.ok(sum(scrape, 'cairn_journal_leader_changes_total') >= 1);
  assert.ok(sum(scrape, 'cairn_meta_operations_total', { kind: 'mutate', op: 'mkdir', result: 'ok' }) === 5);
});

/** The conventions every family is held to. */
function checkFamily(f: Family, kind: string): void {
  const where = `${kind}: ${f.name}`;
  assert.match(f.name, /^(cairn|process|nodejs)_[a-z0-9_]+$/, `${where}: prefix and snake_case`);
  assert.ok(f.help.length > 0, `${where} has a help text`);
  if (f.type === 'COUNTER') assert.match(f.name, /_total$/, `${where}: a counter ends in _total`);
  // (prom-client's own nodejs_active_handles_total and the like are gauges: only ours are held to it.)
  else if (f.name.startsWith('cairn_')) assert.doesNotMatch(f.name, /_total$/, `${where}: only counters end in _total (it is a ${f.type})`);
  if (f.type === 'HISTOGRAM') {
    for (const m of f.metrics) assert.ok(m.buckets !== undefined && '+Inf' in m.buckets, `${where}: a histogram has buckets up to +Inf`);
    assert.match(f.name, /_(seconds|bytes|entries)$/, `${where}: a histogram names its unit`);
  }
  if (!f.name.startsWith('cairn_')) return;
  for (const m of f.metrics) {
    for (const label of Object.keys(m.labels ?? {})) {
      assert.match(label, /^[a-z][a-z_]*$/, `${where}: label ${label}`);
      assert.ok(!['chain', 'chunk', 'inode', 'file', 'path'].includes(label), `${where}: no label per ${label}`);
    }
  }
}

/** Undefined when the counters that load must move did, else what did not. */
function moved(kind: string, before: Scrape, after: Scrape, withFuse: boolean): string | undefined {
  const checks: [string, Record<string, string>?][] =
    kind === 'master' ? [['cairn_rpc_server_calls_total']]
    : kind === 'worker' ? [['cairn_worker_written_bytes_total'], ['cairn_rpc_server_calls_total']]
    : kind === 's3' ? [['cairn_s3_requests_total', { op: 'putObject', status: '2xx' }], ['cairn_s3_requests_total', { op: 'getObject', status: '2xx' }], ['cairn_s3_received_bytes_total'], ['cairn_s3_sent_bytes_total'], ['cairn_rpc_client_calls_total', { method: 'chunk.write' }]]
    : withFuse ? [['cairn_fuse_operations_total', { op: 'write', result: 'ok' }], ['cairn_fuse_written_bytes_total'], ['cairn_fuse_read_bytes_total']]
    : [];
  for (const [name, labels] of checks) {
    if (!(sum(after, name, labels) > sum(before, name, labels))) return `${name}${labels === undefined ? '' : JSON.stringify(labels)} did not grow`;
  }
  if (kind === 'master' && value(after, 'cairn_journal_is_leader') === 1) {
    for (const name of ['cairn_journal_proposals_total', 'cairn_meta_operations_total']) if (!(sum(after, name) > sum(before, name))) return `${name} did not grow on the leader`;
    if (!(histogramCount(after, 'cairn_journal_fsync_seconds') > histogramCount(before, 'cairn_journal_fsync_seconds'))) return 'no WAL fsync observed';
    if (!(histogramCount(after, 'cairn_meta_operation_seconds') > histogramCount(before, 'cairn_meta_operation_seconds'))) return 'no metadata latency observed';
  }
  if (kind === 'worker' && sum(after, 'cairn_worker_target_chunks') === 0) return 'no chunks on its target';
  return undefined;
}

function matching(families: Family[], name: string, labels: Record<string, string> = {}): Family['metrics'] {
  const f = families.find((x) => x.name === name);
  return (f?.metrics ?? []).filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
}

function sum(families: Family[], name: string, labels?: Record<string, string>): number {
  return matching(families, name, labels).reduce((n, m) => n + Number(m.value ?? 0), 0);
}

function value(families: Family[], name: string, labels?: Record<string, string>): number | undefined {
  const m = matching(families, name, labels);
  return m.length === 0 ? undefined : Number(m[0].value);
}

/** Observations of a histogram over all its label sets (its _count lines). */
function histogramCount(scrape: Scrape, name: string): number {
  let n = 0;
  for (const line of scrape.text.split('\n')) {
    if (line.startsWith(`${name}_count`) && /^[a-z_]+_count(\{[^}]*\})? /.test(line)) n += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return n;
}

/** Metric families named in a PromQL expression (a histogram's _bucket, _sum, _count are its family). */
function metricNames(expr: string): string[] {
  const names = expr.match(/\b(?:cairn|process|nodejs)_[a-z0-9_]+/g) ?? [];
  return names.map((n) => n.replace(/_(bucket|sum|count)$/, ''));
}

/** The address in the first log line that matches `pattern` (group 1), waiting for it. */
async function startedHttp(log: string, pattern: RegExp): Promise<string> {
  return (await startedLine(log, pattern))[1];
}

async function startedLine(log: string, pattern: RegExp): Promise<RegExpExecArray> {
  let m: RegExpExecArray | null = null;
  await waitFor(async () => {
    m = pattern.exec(await readFile(log, 'utf8').catch(() => ''));
    return m !== null;
  }, `${pattern} in ${log}`, 30_000, () => readFile(log, 'utf8').catch(() => ''));
  return m!;
}
