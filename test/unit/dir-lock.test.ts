// The master's data-directory lock: a live holder refuses a second process, a lock left by a dead
// process or holding garbage is taken over with a note, and release removes only our own lock.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { test, type TestContext } from 'node:test';
import { CairnError, ErrorCode } from '../../src/errors.ts';
import { acquireDirLock, lockFileBytesMax, lockFileName, parseHolder } from '../../src/master/dir-lock.ts';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-dir-lock-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A live process that is not us, killed when the test ends. */
async function liveOtherPid(t: TestContext): Promise<number> {
  const child: ChildProcess = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await new Promise((resolve, reject) => child.once('spawn', resolve).once('error', reject));
  return child.pid!;
}

/** The pid of a process that has exited (and been reaped). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

function lockContent(pid: number): string {
  return `${JSON.stringify({ pid, startedAt: '2020-01-01T00:00:00.000Z', host: hostname() })}\n`;
}

async function lockPid(dir: string): Promise<number> {
  return (JSON.parse(await readFile(path.join(dir, lockFileName), 'utf8')) as { pid: number }).pid;
}

test('acquire creates the directory and a LOCK naming this process; release removes it', async (t) => {
  const dir = path.join(await tempDir(t), 'a', 'b');
  const lock = await acquireDirLock(dir);
  assert.equal(lock.note, undefined);
  const content = JSON.parse(await readFile(path.join(dir, lockFileName), 'utf8')) as Record<string, unknown>;
  assert.equal(content.pid, process.pid);
  assert.equal(content.host, hostname());
  assert.equal(typeof content.startedAt, 'string');
  await lock.release();
  await lock.release();
  assert.deepEqual(await readdir(dir), [], 'no lock and no temporary files left');
});

test('a data directory that is a file is refused as an invalid argument', async (t) => {
  const file = path.join(await tempDir(t), 'not-a-dir');
  await writeFile(file, '');
  await assert.rejects(acquireDirLock(file), (err: unknown) => err instanceof CairnError && err.code === ErrorCode.BadOption && err.message.startsWith(`cannot use ${file} as a data directory`));
});

test('a second acquire in this process is refused while the first holds the directory', async (t) => {
  const dir = await tempDir(t);
  const lock = await acquireDirLock(dir);
  await assert.rejects(acquireDirLock(path.join(dir, '.')), (err: unknown) => err instanceof CairnError && err.code === ErrorCode.DirLocked);
  await lock.release();
  const again = await acquireDirLock(dir);
  await again.release();
});

test('a lock held by another live process is refused with a clear error', async (t) => {
  const dir = await tempDir(t);
  const pid = await liveOtherPid(t);
  await writeFile(path.join(dir, lockFileName), lockContent(pid));
  await assert.rejects(acquireDirLock(dir), (err: unknown) => {
    assert.ok(err instanceof CairnError);
    assert.equal(err.code, ErrorCode.DirLocked);
    assert.match(err.message, new RegExp(`data directory ${dir} is in use by pid ${pid} .*stop that process first`));
    assert.equal(err.details.pid, pid);
    return true;
  });
  assert.equal(await lockPid(dir), pid, 'the holder\'s lock is untouched');
  assert.deepEqual(await readdir(dir), [lockFileName], 'no temporary files left');
});

test('a lock of a dead process is taken over, with a note for the log', async (t) => {
  const dir = await tempDir(t);
  const pid = await deadPid();
  await writeFile(path.join(dir, lockFileName), lockContent(pid));
  const lock = await acquireDirLock(dir);
  assert.match(lock.note ?? '', new RegExp(`^stale lock of pid ${pid} \\(started .*\\) removed from `));
  assert.equal(await lockPid(dir), process.pid);
  assert.deepEqual(await readdir(dir), [lockFileName]);
  await lock.release();
});

test('a lock of a killed but not yet reaped (zombie) process is taken over', { skip: !existsSync('/proc/self/stat') && 'needs /proc' }, async (t) => {
  const dir = await tempDir(t);
  // The inner process exits after its parent has become `sleep`, which never reaps it.
  const parent = spawn('sh', ['-c', 'sleep 0.1 & echo $!; exec sleep 60'], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.after(() => {
    if (parent.exitCode === null && parent.signalCode === null) parent.kill('SIGKILL');
  });
  const [line] = await once(createInterface({ input: parent.stdout! }), 'line');
  const zombie = Number(line);
  const state = async (): Promise<string> => {
    const stat = await readFile(`/proc/${zombie}/stat`, 'utf8');
    return stat.charAt(stat.lastIndexOf(')') + 2);
  };
  const deadline = Date.now() + 5_000;
  while ((await state()) !== 'Z') {
    assert.ok(Date.now() < deadline, `pid ${zombie} did not become a zombie within 5 s`);
    await new Promise((r) => setTimeout(r, 10));
  }
  process.kill(zombie, 0); // it still answers, as a live process would
  await writeFile(path.join(dir, lockFileName), lockContent(zombie));
  const lock = await acquireDirLock(dir);
  assert.match(lock.note ?? '', new RegExp(`stale lock of pid ${zombie} `));
  await lock.release();
});

test('a lock naming our own pid (a reused pid after a restart) is taken over', async (t) => {
  const dir = await tempDir(t);
  await writeFile(path.join(dir, lockFileName), lockContent(process.pid));
  const lock = await acquireDirLock(dir);
  assert.match(lock.note ?? '', new RegExp(`stale lock of pid ${process.pid} `));
  await lock.release();
});

test('garbage in the lock file is taken over', async (t) => {
  const dir = await tempDir(t);
  const garbage = ['', 'not json', '{"pid":0,"startedAt":"x","host":"h"}', '{"pid":-1,"startedAt":"x","host":"h"}', '{"pid":1.5}', '[]', 'x'.repeat(lockFileBytesMax + 10)];
  for (const g of garbage) {
    await writeFile(path.join(dir, lockFileName), g);
    const lock = await acquireDirLock(dir);
    assert.match(lock.note ?? '', /^stale lock of unreadable content removed from /, JSON.stringify(g.slice(0, 40)));
    assert.equal(await lockPid(dir), process.pid);
    await lock.release();
  }
});

test('parseHolder accepts only a whole lock record with a positive pid', () => {
  assert.deepEqual(parseHolder('{"pid":42,"startedAt":"t","host":"h"}'), { pid: 42, startedAt: 't', host: 'h' });
  assert.equal(parseHolder('{"pid":42,"startedAt":"t"}'), undefined);
  assert.equal(parseHolder('{"pid":"42","startedAt":"t","host":"h"}'), undefined);
  assert.equal(parseHolder('null'), undefined);
});

test('release leaves a lock that another process took over', async (t) => {
  const dir = await tempDir(t);
  const lock = await acquireDirLock(dir);
  const other = await liveOtherPid(t);
  await writeFile(path.join(dir, lockFileName), lockContent(other));
  await lock.release();
  assert.equal(await lockPid(dir), other);
});

test('concurrent acquires in one process: one holds, the others are refused', async (t) => {
  const dir = await tempDir(t);
  await writeFile(path.join(dir, lockFileName), lockContent(await deadPid()));
  const results = await Promise.allSettled([acquireDirLock(dir), acquireDirLock(dir), acquireDirLock(dir)]);
  const won = results.filter((r) => r.status === 'fulfilled');
  assert.equal(won.length, 1, JSON.stringify(results.map((r) => r.status)));
  for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as CairnError).code, ErrorCode.DirLocked);
  await won[0].value.release();
  assert.deepEqual(await readdir(dir), []);
});

const dirLockUrl = new URL('../../src/master/dir-lock.ts', import.meta.url).href;
const racerScript = `
  const [url, dir] = process.argv.slice(1);
  const { acquireDirLock } = await import(url);
  const { createInterface } = await import('node:readline');
  let lock;
  console.log('ready');
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'go') {
      try {
        lock = await acquireDirLock(dir);
        console.log(JSON.stringify({ won: true }));
      } catch (err) {
        console.log(JSON.stringify({ won: false, code: err.code }));
      }
    } else if (line === 'release') {
      await lock?.release();
      console.log('released');
    }
  }`;

/** A process that tries to take `dir` on each "go" line, answers with a line, and releases on "release". */
function racer(t: TestContext, dir: string): { send(line: string): void; next(): Promise<string> } {
  const child = spawn(process.execPath, ['--input-type=module', '-e', racerScript, dirLockUrl, dir], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  return {
    send: (line) => child.stdin!.write(`${line}\n`),
    async next() {
      const r = await lines.next();
      if (r.done === true) throw new Error(`racer pid ${child.pid} exited (code ${child.exitCode})`);
      return r.value;
    },
  };
}

test('racing processes on a stale lock: exactly one wins, every round', async (t) => {
  const dir = await tempDir(t);
  const racers = Array.from({ length: 4 }, () => racer(t, dir));
  for (const r of racers) assert.equal(await r.next(), 'ready');
  for (const stale of [lockContent(await deadPid()), 'garbage', lockContent(await deadPid())]) {
    await writeFile(path.join(dir, lockFileName), stale);
    for (const r of racers) r.send('go');
    const outcomes = (await Promise.all(racers.map((r) => r.next()))).map((l) => JSON.parse(l) as { won: boolean; code?: string });
    assert.equal(outcomes.filter((o) => o.won).length, 1, JSON.stringify(outcomes));
    for (const o of outcomes) if (!o.won) assert.equal(o.code, ErrorCode.DirLocked);
    const winner = racers[outcomes.findIndex((o) => o.won)];
    winner.send('release');
    assert.equal(await winner.next(), 'released');
    assert.deepEqual(await readdir(dir), [], 'the winner released, and nobody left a temporary file');
  }
});
