// The local ZooKeeper ensemble's parts that need no JVM: the config it writes (127.0.0.1 only, no
// AdminServer), the java command line, the install check and its message, saved records checked at
// the boundary, PIDs that are not its servers left alone, four-letter words and their limits.
// The JVMs themselves are in test/cluster/zookeeper-ensemble.test.ts.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { CairnError, ErrorCode } from '../../src/errors.ts';
import {
  attachEnsemble,
  findZooKeeper,
  fourLetterWord,
  heapMb,
  maxSessionTimeoutMs,
  modeOf,
  serverArgs,
  startEnsemble,
  tickMs,
  zooConfig,
  type ZkServerInfo,
} from '../../src/journal/zookeeper/ensemble.ts';

function servers(dir: string): ZkServerInfo[] {
  return [1, 2, 3].map((id) => ({ id, pid: 0, clientPort: 20_000 + id, quorumPort: 21_000 + id, electionPort: 22_000 + id, dir: path.join(dir, `zk-${id}`), log: path.join(dir, `zk-${id}`, 'zookeeper.log') }));
}

function isCode(code: string): (err: unknown) => boolean {
  return (err) => err instanceof CairnError && err.code === code;
}

test('zoo.cfg: the client port on 127.0.0.1, every quorum address on 127.0.0.1, no AdminServer, fsync on', () => {
  const all = servers('/z');
  const cfg = zooConfig(all[1], all);
  const lines = new Set(cfg.trimEnd().split('\n'));
  for (const l of [
    `tickTime=${tickMs}`,
    'clientPort=20002',
    'clientPortAddress=127.0.0.1',
    'admin.enableServer=false',
    'forceSync=yes',
    `maxSessionTimeout=${maxSessionTimeoutMs}`,
    '4lw.commands.whitelist=ruok,srvr,mntr,stat',
    'quorumListenOnAllIPs=false',
    'dataDir=/z/zk-2/data',
    'server.1=127.0.0.1:21001:22001',
    'server.2=127.0.0.1:21002:22002',
    'server.3=127.0.0.1:21003:22003',
  ]) {
    assert.ok(lines.has(l), `zoo.cfg has '${l}':\n${cfg}`);
  }
  assert.doesNotMatch(cfg, /0\.0\.0\.0|secureClientPort|jmx/);
  assert.equal(cfg.match(/^server\./gm)?.length, 3);
});

test('the java command line: a bounded heap, no JMX log4j beans, log4j from the server dir, the main class and its zoo.cfg last', () => {
  const [s] = servers('/z');
  const args = serverArgs({ java: '/usr/bin/java', classpath: ['/j/zookeeper.jar', '/j/slf4j-log4j12.jar', '/j/log4j-1.2.jar'] }, s);
  assert.ok(args.includes(`-Xmx${heapMb}m`));
  assert.ok(args.includes('-Dzookeeper.jmx.log4j.disable=true'));
  assert.ok(args.includes('-Dlog4j.configuration=file:/z/zk-1/log4j.properties'));
  assert.ok(!args.some((a) => a.includes('jmxremote')), 'no remote JMX');
  assert.equal(args[args.indexOf('-cp') + 1], '/j/zookeeper.jar:/j/slf4j-log4j12.jar:/j/log4j-1.2.jar');
  assert.deepEqual(args.slice(-2), ['org.apache.zookeeper.server.quorum.QuorumPeerMain', '/z/zk-1/zoo.cfg']);
});

test('missing ZooKeeper or Java: CAIRN_NOT_INSTALLED with the command that installs them', (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cairn-zkjar-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  assert.throws(() => findZooKeeper({ jarDir: dir }), (err: unknown) => {
    assert.ok(isCode(ErrorCode.NotInstalled)(err), String(err));
    assert.match((err as Error).message, /zookeeper\.jar/);
    assert.match((err as Error).message, /apt-get install -y --no-install-recommends zookeeper/);
    assert.match((err as Error).message, /bash scripts\/install-system-packages\.sh/);
    return true;
  });
  for (const j of ['zookeeper.jar', 'slf4j-log4j12.jar', 'log4j-1.2.jar']) writeFileSync(path.join(dir, j), '');
  assert.throws(() => findZooKeeper({ jarDir: dir, searchPath: '' }), (err: unknown) => isCode(ErrorCode.NotInstalled)(err) && /Java is not installed.*apt-get install/.test((err as Error).message));
  const bin = path.join(dir, 'bin');
  mkdirSync(bin);
  writeFileSync(path.join(bin, 'java'), '#!/bin/sh\n', { mode: 0o755 });
  assert.deepEqual(findZooKeeper({ jarDir: dir, searchPath: `/nonexistent:${bin}` }).java, path.join(bin, 'java'));
});

test('startEnsemble refuses a server count out of 1..7 and a directory that already holds a server', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cairn-zkdir-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await assert.rejects(startEnsemble({ dir, servers: 0 }), isCode(ErrorCode.BadOption));
  await assert.rejects(startEnsemble({ dir, servers: 8 }), isCode(ErrorCode.BadOption));
  mkdirSync(path.join(dir, 'zk-2'));
  await assert.rejects(startEnsemble({ dir, servers: 3 }), (err: unknown) => isCode(ErrorCode.BadOption)(err) && /zk-2 already holds a ZooKeeper server/.test((err as Error).message));
});

test('a damaged saved record is refused, not used to signal PIDs', () => {
  const good = servers('/z').map((s) => ({ ...s, pid: 999_999_999 }));
  for (const bad of [[], [{ ...good[0], pid: -1 }], [{ ...good[0], clientPort: 70_000 }], [good[0], good[0]], [{ ...good[0], dir: 7 }], 'nope', Array.from({ length: 8 }, (_, i) => ({ ...good[0], id: i + 1 }))]) {
    assert.throws(() => attachEnsemble(bad as ZkServerInfo[]), isCode(ErrorCode.BadOption), JSON.stringify(bad));
  }
  assert.equal(attachEnsemble(good).connectString, '127.0.0.1:20001,127.0.0.1:20002,127.0.0.1:20003');
});

test('a saved PID that is alive but not that server (a reused PID) counts as down and is never signalled', async () => {
  // This test process stands for the stranger: if it were signalled, the test would die.
  const e = attachEnsemble(servers('/z').map((s) => ({ ...s, pid: process.pid })));
  assert.equal(e.isRunning(1), false);
  assert.equal(await e.status(1), 'down');
  await e.kill(1);
  await e.stop();
  assert.throws(() => e.isRunning(9), isCode(ErrorCode.InvalidArgument));
});

test('modeOf: leader and follower serve; anything else, or no reply, is looking', () => {
  assert.equal(modeOf('Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nMode: leader\nNode count: 5\n'), 'leader');
  assert.equal(modeOf('Mode: follower\n'), 'follower');
  assert.equal(modeOf('This ZooKeeper instance is not currently serving requests\n'), 'looking');
  assert.equal(modeOf('Mode: observer\n'), 'looking');
  assert.equal(modeOf(undefined), 'looking');
});

async function fakeServer(t: import('node:test').TestContext, reply: (word: string) => Buffer | undefined): Promise<number> {
  const sockets = new Set<Socket>();
  // Half-open allowed: a silent server must not answer the client's FIN with its own.
  const srv: Server = createServer({ allowHalfOpen: true }, (sock) => {
    sockets.add(sock);
    sock.once('close', () => sockets.delete(sock));
    sock.once('data', (b) => {
      const r = reply(b.toString());
      if (r !== undefined) sock.end(r);
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    srv.close();
  });
  return (srv.address() as { port: number }).port;
}

test('fourLetterWord: sends the word, returns the answer; an answer over 64 KiB or none in time is an error', async (t) => {
  const echo = await fakeServer(t, (w) => Buffer.from(`you said ${w}`));
  assert.equal(await fourLetterWord(echo, 'srvr'), 'you said srvr');
  const flood = await fakeServer(t, () => Buffer.alloc(64 * 1024 + 1, 'x'));
  await assert.rejects(fourLetterWord(flood, 'srvr'), /exceeds 65536 bytes/);
  const silent = await fakeServer(t, () => undefined);
  await assert.rejects(fourLetterWord(silent, 'ruok', 200), /no answer to 'ruok' .* in 200 ms/);
});
