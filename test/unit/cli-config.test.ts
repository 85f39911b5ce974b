// Tests of the CLI's configuration parsing (src/cli/config.ts): flags over environment over file,
// and one-line CAIRN_BAD_OPTION errors naming the flag.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseMasterConfig, parseMasterList, parseWorkerConfig } from '../../src/cli/config.ts';
import { ErrorCode } from '../../src/errors.ts';

const badOption = (message: RegExp) => (err: unknown) => {
  assert.equal((err as { code?: string }).code, ErrorCode.BadOption);
  assert.match((err as Error).message, message);
  return true;
};

test('a master listens on host:port or [IPv6]:port, port 0 letting the OS pick; it founds a cluster of itself by default', () => {
  const cfg = parseMasterConfig({ secret: 's', id: '2', dir: '/d', listen: '[::1]:0' }, {});
  assert.equal(cfg.listen, '[::1]:0');
  assert.deepEqual([...cfg.peers], [[2, '[::1]:0']]);
  const env = parseMasterConfig({ secret: 's', id: '1', dir: '/d' }, { CAIRN_LISTEN: '127.0.0.1:7001', CAIRN_PEERS: '1=127.0.0.1:7001,2=[::1]:7002' });
  assert.deepEqual([...env.peers], [[1, '127.0.0.1:7001'], [2, '[::1]:7002']]);
});

test('bad addresses and values fail with CAIRN_BAD_OPTION naming the flag', () => {
  assert.throws(() => parseMasterConfig({ secret: 's', id: '1', dir: '/d', listen: '::1:7000' }, {}), badOption(/--listen must be host:port, got '::1:7000': .*brackets/));
  assert.throws(() => parseMasterConfig({ secret: 's', id: '1', dir: '/d', listen: 'h:1', peers: '1=h:1,2=h:0' }, {}), badOption(/--peers address of 2 must be host:port/));
  assert.throws(() => parseMasterConfig({ secret: 's', id: '0', dir: '/d', listen: 'h:1' }, {}), badOption(/--id must be a positive whole number/));
  assert.throws(() => parseMasterList('h:1,nohost'), badOption(/--masters must be host:port, got 'nohost': no port/));
  assert.throws(() => parseMasterList('h:0'), badOption(/--masters must be host:port, got 'h:0'/));
  assert.deepEqual(parseMasterList(' h:1, [::1]:2 '), ['h:1', '[::1]:2']);
});

test('worker heartbeat timing: defaults when absent, each defaulting on its own, the timeout at least 4 heartbeats', () => {
  assert.equal(parseMasterConfig({ secret: 's', id: '1', dir: '/d', listen: 'h:1' }, {}).timing, undefined);
  assert.deepEqual(parseMasterConfig({ secret: 's', id: '1', dir: '/d', listen: 'h:1' }, { CAIRN_HEARTBEAT_MS: '250', CAIRN_OFFLINE_TIMEOUT_MS: '2000' }).timing, { heartbeatMs: 250, offlineTimeoutMs: 2000 });
  assert.deepEqual(parseMasterConfig({ secret: 's', id: '1', dir: '/d', listen: 'h:1', heartbeatMs: '500' }, {}).timing, { heartbeatMs: 500, offlineTimeoutMs: 5000 });
  assert.throws(() => parseMasterConfig({ secret: 's', id: '1', dir: '/d', listen: 'h:1', offlineTimeoutMs: '3000' }, {}), badOption(/--offline-timeout-ms must be at least 4 heartbeats \(--heartbeat-ms 1000\): at least 4000, got 3000/));
  assert.throws(() => parseMasterConfig({ secret: 's', id: '1', dir: '/d', listen: 'h:1', heartbeatMs: '0' }, {}), badOption(/--heartbeat-ms must be a positive whole number/));
});

test('--replace-after-ms (off by default, at least the offline timeout) and --resync-mib-per-s (positive)', () => {
  const master = { secret: 's', id: '1', dir: '/d', listen: 'h:1' };
  assert.equal(parseMasterConfig(master, {}).replaceAfterMs, undefined);
  assert.equal(parseMasterConfig({ ...master, replaceAfterMs: '600000' }, {}).replaceAfterMs, 600_000);
  assert.equal(parseMasterConfig(master, { CAIRN_REPLACE_AFTER_MS: '8000' }).replaceAfterMs, 8000);
  assert.throws(() => parseMasterConfig({ ...master, replaceAfterMs: '4000' }, {}), badOption(/--replace-after-ms must be at least the offline timeout \(5000 ms\)/));
  assert.throws(() => parseMasterConfig({ ...master, replaceAfterMs: '0' }, {}), badOption(/--replace-after-ms must be a positive whole number/));
  const worker = { secret: 's', id: '1', listen: 'h:1', masters: 'h:2', target: ['/t'] };
  assert.equal(parseWorkerConfig(worker, {}).resyncBytesPerSec, undefined);
  assert.equal(parseWorkerConfig({ ...worker, resyncMibPerS: '8' }, {}).resyncBytesPerSec, 8 * 2 ** 20);
  assert.equal(parseWorkerConfig(worker, { CAIRN_RESYNC_MIB_PER_S: '2' }).resyncBytesPerSec, 2 * 2 ** 20);
  assert.throws(() => parseWorkerConfig({ ...worker, resyncMibPerS: '0' }, {}), badOption(/--resync-mib-per-s must be a positive whole number/));
});

test('--cache-writes: off unless given (flag, CAIRN_CACHE_WRITES or the config file), and only true or false', () => {
  const worker = { secret: 's', id: '1', listen: 'h:1', masters: 'h:2', target: ['/t'] };
  assert.equal(parseWorkerConfig(worker, {}).cacheWrites, undefined);
  assert.equal(parseWorkerConfig({ ...worker, cacheWrites: true }, {}).cacheWrites, true);
  assert.equal(parseWorkerConfig(worker, { CAIRN_CACHE_WRITES: '1' }).cacheWrites, true);
  assert.equal(parseWorkerConfig(worker, { CAIRN_CACHE_WRITES: 'false' }).cacheWrites, undefined);
  assert.equal(parseWorkerConfig(worker, {}).directWrites, undefined);
  assert.equal(parseWorkerConfig({ ...worker, bufferedWrites: true }, {}).directWrites, false);
  assert.equal(parseWorkerConfig(worker, { CAIRN_BUFFERED_WRITES: '1' }).directWrites, false);
  assert.throws(() => parseWorkerConfig(worker, { CAIRN_CACHE_WRITES: 'yes' }), badOption(/--cache-writes must be true or false/));
});

test('--rebalance-moves: absent means the default, 0 turns moves off, a count past 1024 or not a whole number is refused', () => {
  const master = { secret: 's', id: '1', dir: '/d', listen: 'h:1' };
  assert.equal(parseMasterConfig(master, {}).rebalanceMoves, undefined);
  assert.equal(parseMasterConfig({ ...master, rebalanceMoves: '0' }, {}).rebalanceMoves, 0);
  assert.equal(parseMasterConfig(master, { CAIRN_REBALANCE_MOVES: '4' }).rebalanceMoves, 4);
  assert.throws(() => parseMasterConfig({ ...master, rebalanceMoves: '1025' }, {}), badOption(/--rebalance-moves must be 0 to 1024, got 1025/));
  assert.throws(() => parseMasterConfig({ ...master, rebalanceMoves: '-1' }, {}), badOption(/--rebalance-moves/));
  assert.throws(() => parseMasterConfig({ ...master, rebalanceMoves: 'two' }, {}), badOption(/--rebalance-moves/));
});

test('--gc-delay-ms and --restore-wait-ms: absent means the default, 0 is allowed, past a week or not a whole number is refused', () => {
  const master = { secret: 's', id: '1', dir: '/d', listen: 'h:1' };
  for (const [key, flag, env] of [['gcDelayMs', '--gc-delay-ms', 'CAIRN_GC_DELAY_MS'], ['restoreWaitMs', '--restore-wait-ms', 'CAIRN_RESTORE_WAIT_MS']] as const) {
    assert.equal(parseMasterConfig(master, {})[key], undefined);
    assert.equal(parseMasterConfig({ ...master, [key]: '0' }, {})[key], 0);
    assert.equal(parseMasterConfig(master, { [env]: '300000' })[key], 300_000);
    assert.throws(() => parseMasterConfig({ ...master, [key]: String(8 * 24 * 3600 * 1000) }, {}), badOption(new RegExp(`${flag} must be at most 604800000 \\(a week\\)`)));
    assert.throws(() => parseMasterConfig({ ...master, [key]: '-1' }, {}), badOption(new RegExp(flag)));
    assert.throws(() => parseMasterConfig({ ...master, [key]: '1m' }, {}), badOption(new RegExp(flag)));
  }
});

test('overload limits from flags or CAIRN_* variables; absent means the defaults; each validated', () => {
  const MiB = 2 ** 20;
  const master = { secret: 's', id: '1', dir: '/d', listen: 'h:1' };
  assert.equal(parseMasterConfig(master, {}).limits, undefined);
  assert.deepEqual(parseMasterConfig({ ...master, pendingCallsMax: '64', requestMemoryMib: '100', connectionsMax: '10', connectionsPerAddressMax: '5' }, {}).limits, {
    pendingCallsMax: 64,
    requestBytesMax: 100 * MiB,
    connectionsMax: 10,
    connectionsPerAddressMax: 5,
  });
  assert.deepEqual(parseMasterConfig(master, { CAIRN_PENDING_CALLS_MAX: '7', CAIRN_CONNECTIONS_PER_ADDRESS_MAX: '3', CAIRN_REQUEST_WAIT_MS: '50' }).limits, { pendingCallsMax: 7, connectionsPerAddressMax: 3, requestWaitMs: 50 });
  assert.throws(() => parseMasterConfig({ ...master, requestWaitMs: '0' }, {}), badOption(/--request-wait-ms must be a positive whole number/));
  assert.throws(() => parseMasterConfig({ ...master, pendingCallsMax: '0' }, {}), badOption(/--pending-calls-max must be a positive whole number/));
  assert.throws(() => parseMasterConfig({ ...master, requestMemoryMib: '0' }, {}), badOption(/--request-memory-mib must be a positive whole number/));
  assert.throws(() => parseMasterConfig({ ...master, connectionsMax: 'many' }, {}), badOption(/--connections-max must be a positive whole number/));
  const worker = { secret: 's', id: '1', listen: 'h:1', masters: 'h:2', target: ['/t'] };
  assert.equal(parseWorkerConfig(worker, {}).limits, undefined);
  assert.deepEqual(parseWorkerConfig({ ...worker, requestMemoryMib: '1024', readMemoryMib: '128' }, {}).limits, { requestBytesMax: 1024 * MiB, readBytesMax: 128 * MiB });
  assert.deepEqual(parseWorkerConfig(worker, { CAIRN_CONNECTIONS_MAX: '100', CAIRN_READ_MEMORY_MIB: '64' }).limits, { connectionsMax: 100, readBytesMax: 64 * MiB });
  assert.deepEqual(parseWorkerConfig({ ...worker, requestMemoryMib: '16' }, {}).limits, { requestBytesMax: 16 * MiB });
  assert.throws(() => parseWorkerConfig({ ...worker, readMemoryMib: '63' }, {}), badOption(/--read-memory-mib must be at least 64/));
});

test('the cluster secret is required: missing or empty is an error, --insecure says out loud there is none', () => {
  assert.throws(() => parseMasterConfig({ id: '1', dir: '/d', listen: 'h:1' }, {}), badOption(/needs the cluster secret: --secret, CAIRN_SECRET .*--insecure/));
  // `--secret "$SECRET"` with SECRET unset, and CAIRN_SECRET= : both empty.
  assert.throws(() => parseMasterConfig({ id: '1', dir: '/d', listen: 'h:1', secret: '' }, {}), badOption(/secret is empty/));
  assert.throws(() => parseMasterConfig({ id: '1', dir: '/d', listen: 'h:1' }, { CAIRN_SECRET: '' }), badOption(/secret is empty/));
  assert.throws(() => parseMasterConfig({ id: '1', dir: '/d', listen: 'h:1', secret: '  ' }, {}), badOption(/secret is empty/));
  assert.throws(() => parseMasterConfig({ id: '1', dir: '/d', listen: 'h:1', secret: 's', insecure: true }, {}), badOption(/contradict/));
  assert.equal(parseMasterConfig({ id: '1', dir: '/d', listen: 'h:1', insecure: true }, {}).secret, undefined);
  assert.equal(parseMasterConfig({ id: '1', dir: '/d', listen: 'h:1' }, { CAIRN_SECRET: 'x' }).secret, 'x');
  assert.throws(() => parseWorkerConfig({ id: '1', listen: 'h:1', masters: 'h:2', target: ['/t'] }, {}), badOption(/worker needs the cluster secret/));
  assert.equal(parseWorkerConfig({ id: '1', listen: 'h:1', masters: 'h:2', target: ['/t'], insecure: true }, {}).secret, undefined);
});
