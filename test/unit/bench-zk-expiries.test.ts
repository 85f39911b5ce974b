// The journal benchmark's session-expiry accounting (bench/journal/zookeeper.ts): an expiry of a
// killed master's session is explained; one of a live master, a raw client or an unknown session
// is spurious, and so is every 'zookeeper session expired' a master logs.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { SessionLedger, sessionHex, spuriousSessions } from '../../bench/journal/zookeeper.ts';

function masterLine(pid: number, time: string, msg: string): string {
  return JSON.stringify({ level: 30, time, pid, role: 'master', node: 1, msg });
}

test('session ids compare as the server logs them: hex without leading zeros', () => {
  assert.equal(sessionHex('0100009f6b8f0000'), '100009f6b8f0000');
  assert.equal(sessionHex('0x100009f6b8f0000'), '100009f6b8f0000');
  assert.equal(sessionHex(Buffer.from('0100009f6b8f0000', 'hex')), '100009f6b8f0000');
});

test('expiries of killed masters are explained; live masters (logged, or known by their digest auth), raw clients and unknown sessions are spurious', (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cairn-expiries-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const m1 = path.join(dir, 'master-1.log');
  const m2 = path.join(dir, 'master-2.log');
  const zk = path.join(dir, 'zookeeper.log');
  writeFileSync(m1, [
    masterLine(100, '2026-11-30T10:00:00.000Z', 'zookeeper journal: session 0100000000000001 on 127.0.0.1:1, root /cairn/c, applied 0'),
    'not json',
    masterLine(101, '2026-11-30T10:00:05.000Z', 'zookeeper journal: session 0100000000000004 on 127.0.0.1:1, root /cairn/c, applied 9'),
  ].join('\n'));
  writeFileSync(m2, [
    masterLine(200, '2026-11-30T10:00:00.000Z', 'zookeeper journal: session 0100000000000002 on 127.0.0.1:1, root /cairn/c, applied 0'),
    masterLine(200, '2026-11-30T10:00:09.000Z', 'zookeeper session expired: this master stops serving and rejoins'),
  ].join('\n'));
  writeFileSync(zk, [
    '2026-11-30 10:00:03,500 INFO  [myid:1] [SessionTracker:ZooKeeperServer@632] - Expiring session 0x100000000000001, timeout of 2000ms exceeded',
    '2026-11-30 10:00:03,500 INFO  [myid:1] [SessionTracker:ZooKeeperServer@632] - Expiring session 0x100000000000001, timeout of 2000ms exceeded',
    '2026-11-30 10:00:08,000 INFO  [myid:1] [SessionTracker:ZooKeeperServer@632] - Expiring session 0x100000000000002, timeout of 2000ms exceeded',
    '2026-11-30 10:00:08,500 INFO  [myid:1] [SessionTracker:ZooKeeperServer@632] - Expiring session 0x100000000000003, timeout of 2000ms exceeded',
    '2026-11-30 10:00:08,550 INFO  [myid:1] [NIOWorkerThread-1:ZooKeeperServer@1639] - Session 0x1000000000000fe: auth success for scheme digest and address /127.0.0.1:55138',
    '2026-11-30 10:00:08,600 INFO  [myid:1] [SessionTracker:ZooKeeperServer@632] - Expiring session 0x1000000000000fe, timeout of 2000ms exceeded',
    '2026-11-30 10:00:08,600 INFO  [myid:1] [SessionTracker:ZooKeeperServer@632] - Expiring session 0x1000000000000ff, timeout of 2000ms exceeded',
  ].join('\n'));
  const ledger = new SessionLedger();
  ledger.killed(100);
  ledger.raw(['0100000000000003']);
  const expiries = ledger.expiries({ 'master-1': m1, 'master-2': m2 }, [zk]);
  const explained = expiries.filter((e) => e.explained);
  assert.deepEqual(explained.map((e) => [e.session, e.holder]), [['100000000000001', 'master-1 pid 100']]);
  assert.deepEqual(spuriousSessions(expiries).sort(), [
    '100000000000002 (master-2 pid 200)',
    '100000000000003 (raw client)',
    '1000000000000fe (a master (digest auth; its process never reported the session))',
    '1000000000000ff (unknown)',
  ]);
  const masterSide = expiries.filter((e) => e.seenBy === 'master');
  assert.equal(masterSide.length, 1);
  assert.equal(masterSide[0].session, '100000000000002');
});

test('a master that expired before logging its session is matched by the session its status reported', (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cairn-expiries-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const m1 = path.join(dir, 'master-1.log');
  const zk = path.join(dir, 'zookeeper.log');
  writeFileSync(m1, masterLine(300, '2026-11-30T10:00:05.000Z', 'zookeeper session expired: this master stops serving and rejoins'));
  writeFileSync(zk, '2026-11-30 10:00:03,500 INFO  [myid:3] [SessionTracker:ZooKeeperServer@632] - Expiring session 0x300000000000025, timeout of 2000ms exceeded');
  const ledger = new SessionLedger();
  ledger.session('master-1', 300, '0300000000000025');
  const expiries = ledger.expiries({ 'master-1': m1 }, [zk]);
  assert.equal(expiries.length, 2);
  assert.deepEqual(spuriousSessions(expiries), ['300000000000025 (master-1 pid 300)']);
});
