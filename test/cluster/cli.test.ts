// The `cairn` command as a user runs it: a local cluster, file system and admin commands, clear
// errors, and a clear failure when no quorum is left.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat as fileStat, symlink, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { readLocalCluster } from '../../src/cli/cluster-target.ts';
import { zooKeeperSkipReason } from '../zookeeper-fixture.ts';
import { mainScript, runCairn } from './process-cluster.ts';


const cairn = (args: string[], env: Record<string, string> = {}): ReturnType<typeof runCairn> => runCairn(args, env);

test('local up, fs and admin commands, local status and down', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-cli-'));
  t.after(async () => {
    await cairn(['local', 'down', '--dir', dir]);
    await rm(dir, { recursive: true, force: true });
  });
  const up = await cairn(['local', 'up', '--dir', dir]);
  assert.equal(up.code, 0, up.stderr);
  assert.match(up.stdout, /leader/);
  const d = ['--dir', dir];
  const shared: string[] = [];
  for (const name of await readdir(dir, { recursive: true })) {
    const mode = (await fileStat(path.join(dir, name))).mode & 0o777;
    if ((mode & 0o077) !== 0) shared.push(`${name} ${mode.toString(8)}`);
  }
  assert.deepEqual(shared, [], 'every file and directory of the cluster is its owner\'s alone');

  assert.equal((await cairn(['fs', 'mkdir', '-p', '/data/set1', ...d])).code, 0);
  assert.equal((await cairn(['fs', 'touch', '/data/set1/a', '/data/set1/b', ...d])).code, 0);
  assert.equal((await cairn(['fs', 'mv', '/data/set1/b', '/data/set1/c', ...d])).code, 0);
  assert.equal((await cairn(['fs', 'ln', '-s', '/data/set1/a', '/data/link', ...d])).code, 0);
  assert.equal((await cairn(['fs', 'ln', '/data/set1/a', '/data/hard', ...d])).code, 0);
  const ls = JSON.parse((await cairn(['fs', 'ls', '/data/set1', '--json', ...d])).stdout) as { name: string }[];
  assert.deepEqual(ls.map((e) => e.name), ['a', 'c']);
  const stat = JSON.parse((await cairn(['fs', 'stat', '/data/set1/a', '--json', ...d])).stdout) as { nlink: number; type: string; inodeId: number };
  assert.equal(stat.type, 'file');
  assert.equal(stat.nlink, 2);
  // Its paths from its inode, as a worker's log names a chunk of it.
  const found = await cairn(['fs', 'find', '--inode', `${stat.inodeId.toString(16).padStart(16, '0')}-00000000`, ...d]);
  assert.deepEqual([found.code, found.stdout.trim().split('\n').sort()], [0, ['/data/hard', '/data/set1/a']]);
  const notFound = await cairn(['fs', 'find', '/data/set1', '--inode', String(stat.inodeId + 1000), ...d]);
  assert.equal(notFound.code, 1);
  assert.match(notFound.stderr, /no path under \/data\/set1 is inode/);
  const du = JSON.parse((await cairn(['fs', 'du', '/data', '--json', ...d])).stdout) as { files: number; dirs: number };
  assert.equal(du.files, 3);
  assert.equal(du.dirs, 2);

  // Permissions, on the identity the CLI presents: yours, or --uid, --gid and --groups.
  const mine = JSON.parse((await cairn(['fs', 'stat', '/data', '--json', ...d])).stdout) as { uid: number; gid: number };
  assert.deepEqual([mine.uid, mine.gid], [process.getuid!(), process.getgid!()], 'made as the invoking user');
  const as = (uid: number): string[] => ['--uid', String(uid), '--gid', String(uid), ...d];
  if (process.getuid!() !== 1000) {
    const denied = await cairn(['fs', 'mkdir', '/data/x', ...as(1000)]);
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /^cairn: .*permission denied: uid 1000 .*'\/data'.*EACCES/m);
  }
  assert.equal((await cairn(['fs', 'mkdir', '-m', '1777', '/data/tmp', ...d])).code, 0);
  assert.equal((await cairn(['fs', 'touch', '/data/tmp/f', ...as(1000)])).code, 0);
  assert.equal(JSON.parse((await cairn(['fs', 'stat', '/data/tmp/f', '--json', ...d])).stdout).uid, 1000);
  assert.match((await cairn(['fs', 'rm', '/data/tmp/f', ...as(1001)])).stderr, /sticky directory.*EPERM/);
  assert.equal((await cairn(['fs', 'rm', '/data/tmp/f', ...as(1000)])).code, 0);
  assert.equal((await cairn(['fs', 'mkdir', '-m', '750', '/data/tmp/own', ...as(1000)])).code, 0);
  assert.match((await cairn(['fs', 'ls', '/data/tmp/own', ...as(1001)])).stderr, /no read permission on '\/data\/tmp\/own'.*EACCES/);
  assert.equal((await cairn(['fs', 'ls', '/data/tmp/own', '--uid', '1001', '--gid', '5', '--groups', '1000', ...d])).code, 0, 'a supplementary group');
  assert.equal((await cairn(['fs', 'rm', '-r', '/data/tmp/own', ...as(1000)])).code, 0);
  assert.match((await cairn(['fs', 'ls', '/', '--uid', 'nobody', ...d])).stderr, /^cairn: --uid must be an id/m);

  const missing = await cairn(['fs', 'stat', '/nope', ...d]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^cairn: .*ENOENT/m);
  const notEmpty = await cairn(['fs', 'rm', '/data', ...d]);
  assert.match(notEmpty.stderr, /rm -r/);
  assert.equal((await cairn(['fs', 'rm', '-r', '/data', ...d])).code, 0);
  assert.deepEqual(JSON.parse((await cairn(['fs', 'ls', '/', '--json', ...d])).stdout), []);

  const info = await cairn(['admin', 'journal', 'info', ...d]);
  assert.equal(info.code, 0, info.stderr);
  assert.match(info.stdout, /leader master \d at 127\.0\.0\.1:\d+, term \d+, commit \d+/);
  assert.equal(info.stdout.trim().split('\n').length, 5, 'a header, a column line and 3 members');

  const http = readLocalCluster(dir)!.processes[0].http!;
  const health = (await (await fetch(`http://${http}/healthz`)).json()) as { ok: boolean; term: number };
  assert.ok(health.ok && health.term > 0);
  assert.match(await (await fetch(`http://${http}/metrics`)).text(), /^cairn_journal_applied_index \d+$/m);

  const status = JSON.parse((await cairn(['local', 'status', '--json', ...d])).stdout) as { kind: string; alive: boolean; role: string; pid: number; targets?: { state: string }[] }[];
  assert.deepEqual(status.map((p) => p.kind), ['master', 'master', 'master', 'worker', 'worker', 'worker']);
  assert.ok(status.every((p) => p.alive && p.pid > 0));
  assert.equal(status.filter((p) => p.role === 'leader').length, 1);
  assert.ok(status.filter((p) => p.kind === 'worker').every((p) => p.targets?.length === 2 && p.targets.every((x) => x.state === 'serving')));

  // File data through the workers: put, get, cat, cp, and what the cluster manager shows.
  const local = path.join(dir, 'local.bin');
  const body = randomBytes(5 * 1024 * 1024 + 123);
  await writeFile(local, body);
  const put = await cairn(['fs', 'put', local, '/blob', '--json', ...d]);
  assert.equal(put.code, 0, put.stderr);
  assert.equal(JSON.parse(put.stdout).sizeBytes, body.length);
  assert.equal((await cairn(['fs', 'get', '/blob', path.join(dir, 'back.bin'), ...d])).code, 0);
  assert.ok((await readFile(path.join(dir, 'back.bin'))).equals(body), 'get returns the bytes put');
  // get decides as cp: through a symlink (its target replaced, keeping its mode), into a
  // directory, into a FIFO as a stream (never replaced by a file), never through a dangling link.
  const gets = await mkdtemp(path.join(dir, 'gets-'));
  await writeFile(path.join(gets, 'real'), 'old');
  await chmod(path.join(gets, 'real'), 0o640);
  await symlink('real', path.join(gets, 'link'));
  await symlink('nowhere', path.join(gets, 'dangling'));
  await mkdir(path.join(gets, 'sub'));
  assert.equal((await cairn(['fs', 'get', '/blob', path.join(gets, 'link'), '--quiet', ...d])).code, 0);
  assert.ok((await lstat(path.join(gets, 'link'))).isSymbolicLink(), 'the link stays a link');
  assert.ok((await readFile(path.join(gets, 'real'))).equals(body));
  assert.equal((await fileStat(path.join(gets, 'real'))).mode & 0o777, 0o640, 'the replaced file keeps its mode');
  assert.equal((await cairn(['fs', 'get', '/blob', path.join(gets, 'sub'), '--quiet', ...d])).code, 0);
  // A symlink in cairn is followed, as cat and cp follow one (relative, and through another).
  assert.equal((await cairn(['fs', 'ln', '-s', '../blob', '/into-link', ...d])).code, 0);
  assert.equal((await cairn(['fs', 'ln', '-s', '/into-link', '/link2', ...d])).code, 0);
  assert.equal((await cairn(['fs', 'get', '/link2', path.join(gets, 'via-link'), '--quiet', ...d])).code, 0);
  assert.ok((await readFile(path.join(gets, 'via-link'))).equals(body));
  assert.ok((await readFile(path.join(gets, 'sub', 'blob'))).equals(body));
  const dangling = await cairn(['fs', 'get', '/blob', path.join(gets, 'dangling'), '--quiet', ...d]);
  assert.equal(dangling.code, 1);
  assert.match(dangling.stderr, /not writing through the dangling symlink/);
  const fifo = path.join(gets, 'fifo');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  const [streamed, viaFifo] = await Promise.all([readFile(fifo), cairn(['fs', 'get', '/blob', fifo, '--quiet', ...d])]);
  assert.equal(viaFifo.code, 0, viaFifo.stderr);
  assert.ok(streamed.equals(body), 'the FIFO\'s reader got the bytes');
  assert.ok((await lstat(fifo)).isFIFO(), 'the FIFO is still one');
  // A cat into a pipe its reader closed ends at once (it used to retry its reads in flight for minutes).
  await writeFile(path.join(dir, 'big.bin'), randomBytes(24 << 20));
  assert.equal((await cairn(['fs', 'put', path.join(dir, 'big.bin'), '/big.bin', '--quiet', ...d])).code, 0);
  const catStarted = Date.now();
  const head = spawnSync('bash', ['-c', `set -o pipefail; '${process.execPath}' '${mainScript}' fs cat /big.bin --dir '${dir}' | head -c 10 | wc -c`], { encoding: 'utf8', timeout: 60_000 });
  assert.deepEqual([head.status, head.stdout.trim(), head.stderr], [0, '10', ''], 'no EPIPE error');
  assert.ok(Date.now() - catStarted < 20_000, `cat | head took ${Date.now() - catStarted} ms`);
  assert.equal((await cairn(['fs', 'cp', '/blob', '/blob2', ...d])).code, 0);
  assert.equal((await cairn(['fs', 'put', local, '/', ...d])).code, 0, 'put into a directory keeps the name');
  const copied = await cairn(['fs', 'stat', '/local.bin', '--json', ...d]);
  assert.equal(JSON.parse(copied.stdout).sizeBytes, body.length);
  const withChains = JSON.parse((await cairn(['fs', 'stat', '/blob2', '--json', ...d])).stdout) as { chains: { chainId: number }[] };
  assert.equal(withChains.chains.length, 2, 'the stripe covers both chains');
  // A destination ending in '/', and mv onto a directory: into it, as cp and mv do.
  assert.match((await cairn(['fs', 'put', local, '/into/', ...d])).stderr, /\/into\/ is not a directory/);
  assert.equal((await cairn(['fs', 'mkdir', '/into', ...d])).code, 0);
  assert.equal((await cairn(['fs', 'put', local, '/into/', ...d])).code, 0);
  assert.equal((await cairn(['fs', 'mv', '/blob2', '/into', ...d])).code, 0);
  assert.deepEqual((JSON.parse((await cairn(['fs', 'ls', '/into', '--json', ...d])).stdout) as { name: string }[]).map((e) => e.name), ['blob2', 'local.bin']);
  assert.equal((await cairn(['fs', 'mv', '/into/blob2', '/blob2', ...d])).code, 0);
  const targets = JSON.parse((await cairn(['admin', 'targets', '--json', ...d])).stdout) as { state: string }[];
  assert.equal(targets.length, 6);
  const report = JSON.parse((await cairn(['admin', 'report', '--json', ...d])).stdout) as { chains: number; chainsDegraded: number[] };
  assert.deepEqual([report.chains, report.chainsDegraded], [2, []]);
  assert.match((await cairn(['admin', 'chains', '--balance', ...d])).stdout, /pair shares/);
  const workerHttp = status.find((p) => p.kind === 'worker') as unknown as { http: string };
  assert.equal(((await (await fetch(`http://${workerHttp.http}/healthz`)).json()) as { serving: boolean }).serving, true);

  const checkpoint = await cairn(['admin', 'journal', 'checkpoint', ...d]);
  assert.equal(checkpoint.stdout.match(/checkpoint at index \d+/g)?.length, 3, checkpoint.stdout + checkpoint.stderr);
  const transfer = await cairn(['admin', 'journal', 'transfer-leader', String(status.findIndex((p) => p.role !== 'leader') + 1), ...d]);
  assert.match(transfer.stdout, /leader is now master \d/);

  // Backup to a file, refuse a damaged copy, restore into a second, empty cluster.
  assert.equal((await cairn(['fs', 'mkdir', '-p', '/kept/deep', ...d])).code, 0);
  assert.equal((await cairn(['fs', 'touch', '/kept/deep/f', ...d])).code, 0);
  const file = path.join(dir, 'meta.bak');
  // Onto a symlink: the link is replaced by the backup (written beside it, then renamed), not written through.
  await writeFile(path.join(dir, 'precious'), 'precious');
  await symlink('precious', file);
  const backup = await cairn(['admin', 'backup', file, ...d]);
  assert.match(backup.stdout, /backup of \d+ bytes/, backup.stderr);
  assert.equal(await readFile(path.join(dir, 'precious'), 'utf8'), 'precious');
  assert.equal((await lstat(file)).mode & 0o777, 0o600, 'the backup, a file of its own, is its owner\'s alone');
  const damaged = path.join(dir, 'damaged.bak');
  const bytes = await readFile(file);
  bytes[bytes.length - 1] ^= 0xff;
  await writeFile(damaged, bytes);
  const dir2 = await mkdtemp(path.join(tmpdir(), 'cairn-cli-restore-'));
  t.after(async () => {
    await cairn(['local', 'down', '--dir', dir2]);
    await rm(dir2, { recursive: true, force: true });
  });
  assert.equal((await cairn(['local', 'up', '--workers', '0', '--dir', dir2])).code, 0);
  assert.match((await cairn(['admin', 'restore', damaged, '--dir', dir2])).stderr, /damaged: checksum mismatch/);
  const restored = await cairn(['admin', 'restore', file, '--dir', dir2]);
  assert.equal(restored.code, 0, restored.stderr);
  assert.equal(JSON.parse((await cairn(['fs', 'stat', '/kept/deep/f', '--json', '--dir', dir2])).stdout).type, 'file');
  assert.match((await cairn(['admin', 'restore', file, '--dir', dir2])).stderr, /needs an empty cluster/);

  // A put stopped by SIGTERM (or Ctrl-C) removes its temporary file on the way out, and exits 143.
  const names = async (dirPath: string): Promise<string[]> => (JSON.parse((await cairn(['fs', 'ls', dirPath, '--json', ...d])).stdout) as { name: string }[]).map((e) => e.name);
  const putting = spawn(process.execPath, [mainScript, 'fs', 'put', '-', '/partial.bin', '--quiet', ...d], { stdio: ['pipe', 'ignore', 'pipe'] });
  let putError = '';
  putting.stderr.on('data', (c: Buffer) => (putError += c.toString()));
  const putExit = new Promise<number | null>((resolve) => putting.on('exit', (code) => resolve(code)));
  putting.stdin.on('error', () => undefined); // a put that failed at once: its error is asserted below
  putting.stdin.write(randomBytes(2 ** 20)); // and stdin stays open: the put waits for more
  for (let i = 0; !(await names('/')).some((n) => n.includes('.partial.bin.cairn-put-')); i++) {
    assert.ok(i < 100, `the put made its temporary file: ${putError}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  putting.kill('SIGTERM');
  assert.equal(await putExit, 143, putError);
  assert.match(putError, /interrupted by SIGTERM: the partial file was removed/);
  assert.deepEqual((await names('/')).filter((n) => n.includes('partial')), [], 'no temporary file, no file');
  // A put killed with -9 leaves its write session open: listed by its client (HOST:PID:...), and
  // ended by the operator.
  type Sessions = { sessions: { sessionId: string; clientId: string; inodeId: number }[]; matched: number; open: number };
  const killed = spawn(process.execPath, [mainScript, 'fs', 'put', '-', '/killed.bin', '--quiet', ...d], { stdio: ['pipe', 'ignore', 'ignore'] });
  killed.stdin.on('error', () => undefined);
  killed.stdin.write(randomBytes(2 ** 20));
  const ofKilled = async (): Promise<Sessions> => JSON.parse((await cairn(['admin', 'sessions', '--client', `${hostname()}:${killed.pid}:`, '--json', ...d])).stdout) as Sessions;
  for (let i = 0; (await ofKilled()).matched === 0; i++) {
    assert.ok(i < 100, 'the put opened its session');
    await new Promise((r) => setTimeout(r, 200));
  }
  killed.kill('SIGKILL');
  await new Promise((r) => killed.once('exit', r));
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal((await ofKilled()).matched, 1, 'left open by the killed put');
  const listed = await cairn(['admin', 'sessions', '--client', `${hostname()}:${killed.pid}:`, ...d]);
  assert.match(listed.stdout, /\trenewed \d+ s ago$/m, 'the leader heard it opened (the masters end it once not renewed for the lease)');
  const refused = await cairn(['admin', 'sessions', 'end', '--client', `${hostname()}:${killed.pid}:`, ...d]);
  assert.deepEqual([refused.code, /pass --yes/.test(refused.stderr)], [1, true], refused.stderr);
  const endedNow = await cairn(['admin', 'sessions', 'end', '--client', `${hostname()}:${killed.pid}:`, '--yes', ...d]);
  assert.equal(endedNow.code, 0, endedNow.stderr);
  assert.match(endedNow.stdout, /^ended 1 session$/m);
  assert.equal((await ofKilled()).matched, 0);
  assert.deepEqual((await names('/')).filter((n) => n.includes('.killed.bin.cairn-put-')), [], 'its temporary file went with it');
  assert.equal((await cairn(['admin', 'sessions', 'end', 'no-such-session', '--yes', ...d])).code, 1);
  // A get into a local name of 250 bytes: its temporary name fits in 255 too.
  const longName = path.join(dir, 'g'.repeat(250));
  const gotLong = await cairn(['fs', 'get', '/blob', longName, '--quiet', ...d]);
  assert.equal(gotLong.code, 0, gotLong.stderr);
  assert.ok((await readFile(longName)).equals(body));
  await rm(longName);

  // A get whose reads fail gives up after --timeout-ms, and leaves the local file it would have
  // replaced as it was (it was emptied before the first byte came).
  const workers = status.filter((p) => p.kind === 'worker');
  for (const w of workers) process.kill(w.pid, 'SIGSTOP');
  try {
    const started = Date.now();
    const failed = await cairn(['fs', 'get', '/blob', path.join(dir, 'back.bin'), '--quiet', '--timeout-ms', '2000', ...d]);
    assert.equal(failed.code, 1);
    assert.ok(Date.now() - started < 20_000, `the get gave up after ${Date.now() - started} ms`);
    assert.ok((await readFile(path.join(dir, 'back.bin'))).equals(body), 'the local file is whole');
    assert.deepEqual((await readdir(dir)).filter((n) => n.includes('cairn-get')), [], 'no temporary file left');
  } finally {
    for (const w of workers) process.kill(w.pid, 'SIGCONT');
  }

  // With two of three masters gone there is no quorum: a clear error, not a hang.
  const cluster = readLocalCluster(dir)!;
  for (const p of cluster.processes.slice(0, 2)) process.kill(p.pid, 'SIGKILL');
  const start = Date.now();
  const noQuorum = await cairn(['fs', 'mkdir', '/x', '--timeout-ms', '3000', ...d]);
  assert.equal(noQuorum.code, 1);
  assert.match(noQuorum.stderr, /no leading master answered within 3000 ms.*majority/);
  assert.ok(Date.now() - start < 15_000);

  const down = await cairn(['local', 'down', ...d]);
  assert.match(down.stdout, /stopped 6 processes/);
});

test('bad arguments get a one-line error', async () => {
  const r = await cairn(['master', '--id', 'zero', '--dir', '/tmp/x', '--listen', '127.0.0.1:1']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--id must be a positive whole number/);
  const r2 = await cairn(['fs', 'ls', '/', '--masters', 'nohost']);
  assert.match(r2.stderr, /--masters must be host:port/);
  const r3 = await cairn(['fs', 'ls', '/', '--dir', '/nonexistent-cairn-dir']);
  assert.match(r3.stderr, /no cluster given/);
  // A secret on the command line is readable by every local user: said before anything else.
  const r4 = await cairn(['fs', 'ls', '/', '--masters', 'nohost', '--secret', 'not-a-good-place']);
  assert.match(r4.stderr, /^cairn: warning: --secret on the command line is visible to every user of this machine .*CAIRN_SECRET/);
  assert.match(r4.stderr, /--masters must be host:port/);
  assert.doesNotMatch(r2.stderr, /warning/);
  const version = await cairn(['--version']);
  assert.equal(version.code, 0, version.stderr);
  assert.equal(version.stdout, `${JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')).version}\n`);
});

test('npm start: the cluster in the foreground stops cleanly on Ctrl-C', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-fg-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const child = spawn(process.execPath, [mainScript, 'local', 'up', '--foreground', '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const start = Date.now();
  while (!out.includes('Ctrl-C stops the cluster')) {
    assert.ok(Date.now() - start < 30_000, `the cluster did not come up:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const pids = readLocalCluster(dir)!.processes.map((p) => p.pid);
  child.kill('SIGINT');
  assert.equal(await exited, 0, out);
  assert.match(out, /stopped 6 processes/);
  assert.match(out, /demo: wrote \/demo\/hello\.bin \(32 MiB, 3 replicas\) in \d+ ms \(\d+ MiB\/s\), read it back in \d+ ms \(\d+ MiB\/s\): identical/);
  for (const pid of pids) assert.throws(() => process.kill(pid, 0), `pid ${pid} still runs`);
});

/** Every process of a cluster local up gave up on is gone (within 5 s): none was left running. */
async function assertNoneLeftRunning(processes: { kind: string; id: number; pid: number }[]): Promise<void> {
  for (let i = 0; i < 100 && processes.some((p) => isAlive(p.pid)); i++) await new Promise((r) => setTimeout(r, 50));
  for (const p of processes) assert.equal(isAlive(p.pid), false, `${p.kind} ${p.id} (pid ${p.pid}) was left running`);
}

test('a new local cluster that cannot start is stopped, not left half running', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-half-'));
  t.after(async () => {
    await cairn(['local', 'down', '--dir', dir]);
    await rm(dir, { recursive: true, force: true });
  });
  // Master 3's directory is held by a live process (this one), so master 3 exits at start.
  await mkdir(path.join(dir, 'master-3'), { recursive: true });
  await writeFile(path.join(dir, 'master-3', 'LOCK'), `${JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString(), host: hostname() })}\n`);
  const up = await cairn(['local', 'up', '--dir', dir]);
  assert.notEqual(up.code, 0);
  assert.match(up.stderr, /master 3 exited/);
  const cluster = readLocalCluster(dir);
  assert.ok(cluster !== undefined);
  await assertNoneLeftRunning(cluster.processes);
});

test('a master that cannot start: local up names it and its error at once, and leaves nothing running', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-badstart-'));
  t.after(async () => {
    await cairn(['local', 'down', '--dir', dir]);
    await rm(dir, { recursive: true, force: true });
  });
  // The masters read CAIRN_TICK_MS from the environment local up passes on: each exits at start.
  const start = Date.now();
  const up = await cairn(['local', 'up', '--workers', '0', '--dir', dir], { CAIRN_TICK_MS: 'zero' });
  assert.equal(up.code, 1);
  assert.match(up.stderr, /^cairn: master \d exited: --tick-ms must be a positive whole number, got "zero"; see \S+master-\d\/master\.log.*\(CAIRN_PROCESS_FAILED\)$/m);
  assert.equal(up.stderr.trim().split('\n').length, 1, up.stderr);
  assert.ok(Date.now() - start < 15_000, 'reported at once, not after the wait for a leader');
  const cluster = readLocalCluster(dir)!;
  await assertNoneLeftRunning(cluster.processes);
});

test('a worker that cannot start: local up names it and its error, and stops the new cluster', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-badworker-'));
  t.after(async () => {
    await cairn(['local', 'down', '--dir', dir]);
    await rm(dir, { recursive: true, force: true });
  });
  // Only the workers read CAIRN_SCRUB_MIB_PER_S: the masters start and lead, each worker exits.
  const up = await cairn(['local', 'up', '--dir', dir], { CAIRN_SCRUB_MIB_PER_S: 'zero' });
  assert.equal(up.code, 1);
  assert.match(up.stderr, /^cairn: worker \d exited: .*scrub.*; see \S+worker-\d\/worker\.log/m);
  const cluster = readLocalCluster(dir)!;
  assert.ok(cluster.processes.some((p) => p.kind === 'master') && cluster.processes.some((p) => p.kind === 'worker'));
  await assertNoneLeftRunning(cluster.processes);
});

test('a worker whose --http port is taken exits with the error before it registers with the masters', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-httptaken-'));
  const taken = createServer();
  t.after(async () => {
    taken.close();
    await cairn(['local', 'down', '--dir', dir]);
    await rm(dir, { recursive: true, force: true });
  });
  assert.equal((await cairn(['local', 'up', '--workers', '0', '--dir', dir])).code, 0);
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  const cluster = readLocalCluster(dir)!;
  const masters = cluster.processes.map((p) => p.address).join(',');
  const port = (taken.address() as AddressInfo).port;
  const w = await cairn(['worker', '--id', '9', '--listen', '127.0.0.1:0', '--masters', masters, '--target', path.join(dir, 'w9'), '--http', `127.0.0.1:${port}`], { CAIRN_SECRET: cluster.secret });
  assert.notEqual(w.code, 0);
  assert.match(w.stderr, new RegExp(`EADDRINUSE.*127\\.0\\.0\\.1:${port}`));
  const nodes = JSON.parse((await cairn(['admin', 'nodes', '--json', '--dir', dir])).stdout) as { workers?: unknown[] } | unknown[];
  assert.deepEqual(Array.isArray(nodes) ? nodes : (nodes.workers ?? []), [], 'no worker registered');
});

test('hostile names, rm guards, ls -l modes, and a stopped local cluster', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-guards-'));
  t.after(async () => {
    await cairn(['local', 'down', '--dir', dir]);
    await rm(dir, { recursive: true, force: true });
  });
  const d = ['--dir', dir];
  assert.equal((await cairn(['local', 'up', '--workers', '0', ...d])).code, 0);

  // A name with a newline cannot fake an entry, one with ESC cannot drive the terminal; --json keeps names exact.
  const fake = '/x\n-rw-r--r--   1     0     0            0 2026-01-01T00:00:00.000Z passwd';
  const esc = '/\x1b[2J\x1b]0;owned\x07';
  assert.equal((await cairn(['fs', 'touch', fake, esc, '/back\\slash', ...d])).code, 0);
  assert.equal((await cairn(['fs', 'ln', '-s', '/\x1b[31mred', '/link', ...d])).code, 0);
  assert.equal((await cairn(['fs', 'mkdir', '/big', ...d])).code, 0);
  assert.equal((await cairn(['fs', 'touch', ...Array.from({ length: 1001 }, (_, i) => `/big/f${i}`), ...d])).code, 0);

  // rm never removes the root, and asks before a large tree: with no terminal to ask on, it refuses.
  const root = await cairn(['fs', 'rm', '-r', '/link', '/', ...d]);
  assert.equal(root.code, 1);
  assert.match(root.stderr, /^cairn: refusing to remove the root '\/' \(nothing removed\)/);
  const big = await cairn(['fs', 'rm', '-r', '/big', ...d]);
  assert.equal(big.code, 1);
  assert.match(big.stderr, /^cairn: rm -r would remove \/big and everything in it \(more than 1000 entries\); pass --yes to confirm \(nothing removed\) \(CAIRN_NOT_CONFIRMED\)$/m);
  assert.equal(JSON.parse((await cairn(['fs', 'du', '/big', '--json', ...d])).stdout).files, 1001);
  const json = JSON.parse((await cairn(['fs', 'ls', '/', '--json', ...d])).stdout) as { name: string }[];
  assert.deepEqual(json.map((e) => e.name).sort(), [esc.slice(1), 'back\\slash', 'big', 'link', fake.slice(1)].sort(), 'names exact, and nothing removed');

  const noControls = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/; // tabs and line ends are the output's own
  const ls = await cairn(['fs', 'ls', '/', ...d]);
  assert.deepEqual(ls.stdout.split('\n').filter((l) => l !== '').sort(), ['\\x1b[2J\\x1b]0;owned\\x07', 'back\\\\slash', 'big/', 'link', 'x\\n-rw-r--r--   1     0     0            0 2026-01-01T00:00:00.000Z passwd'].sort());
  const long = await cairn(['fs', 'ls', '-l', '/', ...d]);
  assert.equal(long.stdout.trim().split('\n').length, 5, long.stdout);
  assert.doesNotMatch(long.stdout, noControls);
  assert.match(long.stdout, /^-rw-r--r-- +1 .* x\\n-rw-r--r--/m);
  assert.match(long.stdout, /^drwxr-xr-x .* big\/$/m);
  assert.match(long.stdout, /^lrwxrwxrwx .* link -> \/\\x1b\[31mred$/m);
  const stat = await cairn(['fs', 'stat', esc, ...d]);
  assert.match(stat.stdout, /^path: +\/\\x1b\[2J\\x1b\]0;owned\\x07$/m);
  assert.match(stat.stdout, /^mode: +0644 \(-rw-r--r--\)/m);
  assert.doesNotMatch(stat.stdout, noControls);
  const missing = await cairn(['fs', 'stat', `${esc}\n`, ...d]);
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr.trim().split('\n').length, 1, 'an error naming the path is one line');
  assert.doesNotMatch(missing.stderr.trim(), noControls);
  assert.equal((await cairn(['fs', 'rm', '-r', '--yes', '/big', ...d])).code, 0);

  // Stopped: a command sees at once that nothing runs and says how to start it.
  assert.equal((await cairn(['local', 'down', ...d])).code, 0);
  const start = Date.now();
  const stopped = await cairn(['fs', 'ls', '/', ...d]);
  assert.equal(stopped.code, 1);
  assert.match(stopped.stderr, /^cairn: the local cluster in \S+ is not running .*start it with 'cairn local up --dir \S+' \(CAIRN_NOT_RUNNING\)$/m);
  assert.ok(Date.now() - start < 5_000, `took ${Date.now() - start} ms`);

  // A recorded pid that another program has since (after a reboot, or a kill -9): not taken for
  // the master, and never signalled by local down.
  const stranger = spawn('sleep', ['600'], { stdio: 'ignore' });
  t.after(() => stranger.kill('SIGKILL'));
  const record = path.join(dir, 'cluster.json');
  const cluster = JSON.parse(await readFile(record, 'utf8')) as { processes: { pid: number }[] };
  cluster.processes[0].pid = stranger.pid!;
  await writeFile(record, JSON.stringify(cluster));
  const status = JSON.parse((await cairn(['local', 'status', '--json', ...d])).stdout) as { pid: number; alive: boolean }[];
  assert.equal(status.find((p) => p.pid === stranger.pid)?.alive, false);
  assert.equal((await cairn(['local', 'down', ...d])).code, 0);
  assert.equal(stranger.exitCode ?? stranger.signalCode, null, 'local down left the stranger alone');

  // A damaged record is named as such (not a JavaScript error), and a missing one is not taken for
  // "no cluster here" while the masters' data is (a new cluster over it would get no leader).
  await writeFile(record, '{}');
  const damaged = await cairn(['local', 'status', ...d]);
  assert.equal(damaged.code, 1);
  assert.match(damaged.stderr, /cluster\.json is damaged \(it has no secret or no list of processes\)/);
  await rm(record);
  const over = await cairn(['local', 'up', '--workers', '0', ...d]);
  assert.equal(over.code, 1);
  assert.match(over.stderr, /holds a cluster's data \(master-1\/wal, master-2\/wal, master-3\/wal\) but no cluster\.json/);
});

test('admin worker decommission: refused without --yes off a terminal, then a killed worker\'s chains get replacements, shown by admin nodes and report', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-decom-'));
  t.after(async () => {
    await cairn(['local', 'down', '--dir', dir]);
    await rm(dir, { recursive: true, force: true });
  });
  const d = ['--dir', dir];
  // Fast heartbeats (the processes inherit the environment): a dead worker is out within a second.
  const up = await cairn(['local', 'up', '--masters', '1', '--workers', '4', '--targets-per-worker', '2', ...d], { CAIRN_HEARTBEAT_MS: '200', CAIRN_OFFLINE_TIMEOUT_MS: '1000' });
  assert.equal(up.code, 0, up.stderr);
  const body = randomBytes(300_000);
  await writeFile(path.join(dir, 'in.bin'), body);
  assert.equal((await cairn(['fs', 'put', path.join(dir, 'in.bin'), '/f', '--quiet', ...d])).code, 0);
  const targets = JSON.parse((await cairn(['admin', 'targets', '--json', ...d])).stdout) as { workerId: number; chainId: number }[];
  const inChains = (w: number): number => targets.filter((x) => x.workerId === w && x.chainId !== 0).length;
  const victim = [1, 2, 3, 4].sort((a, b) => inChains(b) - inChains(a))[0];
  const pid = readLocalCluster(dir)!.processes.find((p) => p.kind === 'worker' && p.id === victim)!.pid;
  process.kill(pid, 'SIGKILL');

  const unknown = await cairn(['admin', 'worker', 'decommission', '9', '--yes', ...d]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /^cairn: no worker 9: the workers are 1, 2, 3, 4/m);
  const unconfirmed = await cairn(['admin', 'worker', 'decommission', String(victim), ...d]);
  assert.equal(unconfirmed.code, 1);
  assert.match(unconfirmed.stdout, new RegExp(`^worker ${victim} at 127\\.0\\.0\\.1:\\d+: targets `, 'm'));
  assert.match(unconfirmed.stdout, /^ {2}chain \d+: target \d+ leaves; \d of its 3 members serve on other workers$/m);
  assert.match(unconfirmed.stderr, /pass --yes to confirm \(nothing changed\) \(CAIRN_NOT_CONFIRMED\)$/m);
  const done = await cairn(['admin', 'worker', 'decommission', String(victim), '--yes', ...d]);
  assert.equal(done.code, 0, done.stderr);
  assert.match(done.stdout, new RegExp(`^worker ${victim} decommissioned; the cluster manager now replaces its members`, 'm'));

  type Report = { chainsDegraded: number[]; chainsUnavailable: number[]; decommissionedWorkers: number[]; chainsAwaitingReplacement: unknown[] };
  let report: Report | undefined;
  for (let i = 0; i < 100; i++) {
    report = JSON.parse((await cairn(['admin', 'report', '--json', ...d])).stdout) as Report;
    if (report.chainsDegraded.length === 0 && report.chainsUnavailable.length === 0) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.deepEqual([report?.chainsDegraded, report?.decommissionedWorkers, report?.chainsAwaitingReplacement], [[], [victim], []], 'every chain whole again');
  assert.match((await cairn(['admin', 'report', ...d])).stdout, new RegExp(`^decommissioned workers: ${victim} \\(`, 'm'));
  assert.match((await cairn(['admin', 'nodes', ...d])).stdout, new RegExp(`^${victim} .*DECOMMISSIONED`, 'm'));
  const chains = JSON.parse((await cairn(['admin', 'chains', '--json', ...d])).stdout) as { targetIds: number[] }[];
  assert.ok(chains.every((ch) => ch.targetIds.every((id) => Math.floor(id / 1000) !== victim)), 'no chain holds the victim\'s targets');
  // The victim's targets left their chains holding chunks; a decommissioned worker's are never reclaimed.
  assert.match((await cairn(['admin', 'targets', ...d])).stdout, new RegExp(`^${victim}\\d{3} +${victim} +- \\(left one; to reclaim\\) +offline`, 'm'));
  assert.equal((await cairn(['fs', 'get', '/f', path.join(dir, 'out.bin'), '--quiet', ...d])).code, 0);
  assert.ok((await readFile(path.join(dir, 'out.bin'))).equals(body));
  const again = await cairn(['admin', 'worker', 'decommission', String(victim), ...d]);
  assert.equal(again.code, 0);
  assert.match(again.stdout, /was decommissioned at .*; nothing to do/);
  // Stopped and started again: the decommissioned worker is not started (it would be refused).
  assert.equal((await cairn(['local', 'down', ...d])).code, 0);
  const restarted = await cairn(['local', 'up', ...d], { CAIRN_HEARTBEAT_MS: '200', CAIRN_OFFLINE_TIMEOUT_MS: '1000' });
  assert.equal(restarted.code, 0, restarted.stderr);
  assert.match(restarted.stdout + restarted.stderr, new RegExp(`worker ${victim} was decommissioned: not started`));
  assert.equal((await cairn(['fs', 'get', '/f', path.join(dir, 'again.bin'), '--quiet', ...d])).code, 0);
  assert.ok((await readFile(path.join(dir, 'again.bin'))).equals(body));
});

test('admin chain recover: a chain whose last serving member is lost for good serves again from the member that served last; what only the lost one held reads as EIO', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-recover-'));
  t.after(async () => {
    await cairn(['local', 'down', '--dir', dir]);
    await rm(dir, { recursive: true, force: true });
  });
  const d = ['--dir', dir];
  const fast = { CAIRN_HEARTBEAT_MS: '200', CAIRN_OFFLINE_TIMEOUT_MS: '1000' };
  const up = await cairn(['local', 'up', '--masters', '1', '--workers', '4', '--targets-per-worker', '1', ...d], fast);
  assert.equal(up.code, 0, up.stderr);
  const put = async (name: string, body: Buffer) => {
    await writeFile(path.join(dir, name), body);
    const r = await cairn(['fs', 'put', path.join(dir, name), `/${name}`, '--quiet', ...d]);
    assert.equal(r.code, 0, r.stderr);
  };
  const before = randomBytes(300_000);
  await put('before', before);
  const targets = JSON.parse((await cairn(['admin', 'targets', '--json', ...d])).stdout) as { targetId: number; workerId: number; chainId: number; state: string }[];
  const members = targets.filter((x) => x.chainId === 1).map((x) => x.workerId);
  assert.equal(members.length, 3);
  const pidOf = (w: number) => readLocalCluster(dir)!.processes.find((p) => p.kind === 'worker' && p.id === w)!.pid;
  const stateOf = async (w: number) => (JSON.parse((await cairn(['admin', 'targets', '--json', ...d])).stdout) as typeof targets).find((x) => x.workerId === w)!.state;
  const waitState = async (w: number, want: string) => {
    for (let i = 0; (await stateOf(w)) !== want; i++) {
      assert.ok(i < 100, `worker ${w}'s target to be ${want}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  // Two members stop; a file is written to the last one alone; then it is lost for good.
  const [x, y, last] = members;
  process.kill(pidOf(x), 'SIGKILL');
  process.kill(pidOf(y), 'SIGKILL');
  await waitState(x, 'offline');
  await waitState(y, 'offline');
  const after = randomBytes(300_000);
  await put('after', after);
  process.kill(pidOf(last), 'SIGKILL');
  await waitState(last, 'lastsrv');
  assert.equal((await cairn(['admin', 'worker', 'decommission', String(last), '--force', '--yes', ...d])).code, 0);
  const early = await cairn(['admin', 'chain', 'recover', '1', '--yes', ...d]);
  assert.equal(early.code, 1);
  assert.match(early.stderr, /no other member of chain 1 runs/);
  // The other two come back (local up starts them, and waits for every chain to serve).
  const restarting = cairn(['local', 'up', ...d], fast);
  let recovered: Awaited<ReturnType<typeof cairn>> | undefined;
  for (let i = 0; i < 150; i++) {
    const unconfirmed = await cairn(['admin', 'chain', 'recover', '1', ...d]);
    if (unconfirmed.code === 1 && /pass --yes/.test(unconfirmed.stderr)) {
      assert.match(unconfirmed.stdout, new RegExp(`^ {2}target \\d+ \\(lastsrv\\): its worker was decommissioned$`, 'm'));
      assert.match(unconfirmed.stdout, /would serve; writes that only target \d+ held are given up/);
      recovered = await cairn(['admin', 'chain', 'recover', '1', '--yes', ...d]);
      break;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(recovered?.code, 0, recovered?.stderr ?? 'the plan was never shown');
  assert.match(recovered!.stdout, /^chain 1 serves from target \d+; its other members resync from it/m);
  const restarted = await restarting;
  assert.equal(restarted.code, 0, restarted.stderr);
  const got = await cairn(['fs', 'get', '/before', path.join(dir, 'before.out'), '--quiet', ...d]);
  assert.equal(got.code, 0, got.stderr);
  assert.ok((await readFile(path.join(dir, 'before.out'))).equals(before), 'what the members left had reads back');
  const lost = await cairn(['fs', 'cat', '/after', ...d]);
  assert.notEqual(lost.code, 0, 'what only the lost member held is not served as something else');
  assert.match(lost.stderr, /EIO|CHUNK_LOST|no replica/i);
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('local up --journal zookeeper: an ensemble and masters on it, a file stored and read back, admin journal info, status and down', { skip: zooKeeperSkipReason() }, async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-cli-zk-'));
  t.after(async () => {
    await cairn(['local', 'down', '--dir', dir]);
    await rm(dir, { recursive: true, force: true });
  });
  const up = await cairn(['local', 'up', '--journal', 'zookeeper', '--workers', '1', '--replication', '1', '--dir', dir]);
  assert.equal(up.code, 0, up.stderr);
  assert.match(up.stdout, /zookeeper 3 .* (leader|follower)/);
  const d = ['--dir', dir];
  const file = path.join(dir, 'in.bin');
  const data = randomBytes(3_000_000);
  await writeFile(file, data);
  assert.equal((await cairn(['fs', 'put', file, '/in.bin', '--quiet', ...d])).code, 0);
  assert.equal((await cairn(['fs', 'get', '/in.bin', `${file}.back`, '--quiet', ...d])).code, 0);
  assert.ok((await readFile(`${file}.back`)).equals(data), 'the file reads back identical');
  const info = JSON.parse((await cairn(['admin', 'journal', 'info', '--json', ...d])).stdout) as { backend: string; zookeeper?: { root: string }; members: unknown[] };
  assert.equal(info.backend, 'zookeeper');
  assert.match(info.zookeeper?.root ?? '', /^\/cairn\//);
  assert.equal(info.members.length, 3);
  const add = await cairn(['admin', 'journal', 'add', '4', '127.0.0.1:1', ...d]);
  assert.equal(add.code, 1);
  assert.match(add.stderr, /ZooKeeper journal has no membership/);
  const status = JSON.parse((await cairn(['local', 'status', '--json', ...d])).stdout) as { kind: string; alive: boolean }[];
  assert.equal(status.filter((p) => p.kind === 'zookeeper' && p.alive).length, 3);
  assert.equal((await cairn(['local', 'down', ...d])).code, 0);
  const after = JSON.parse((await cairn(['local', 'status', '--json', ...d])).stdout) as { kind: string; alive: boolean }[];
  assert.deepEqual(after.filter((p) => p.alive), [], 'nothing left running, ZooKeeper included');
});

