// RaftDriver restarts from its snapshot files and WAL: a damaged newest snapshot falls back to an
// older one only while the WAL still connects to it; otherwise the driver refuses to start.

import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { nodeDisk } from '../../src/io/node-disk.ts';
import { systemClock } from '../../src/io/system-clock.ts';
import { RaftDriver } from '../../src/journal/raft/driver.ts';
import { saveSnapshot } from '../../src/journal/raft/snapshot-file.ts';
import { Role } from '../../src/raft/index.ts';
import { snapshotBytes } from '../../src/raft/snapshot-data.ts';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-driver-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function waitUntil(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(cond(), `timed out waiting for ${what}`);
}

function start(dir: string, applied: number[] = []): Promise<RaftDriver> {
  return RaftDriver.start({
    disk: nodeDisk,
    clock: systemClock,
    dir,
    raft: { id: 1, voters: [1], electionTicks: 4, heartbeatTicks: 1 },
    tickMs: 2,
    send: () => undefined,
    apply: (e) => void applied.push(e.index),
    onError: (err) => assert.fail(`driver failed: ${String(err)}`),
  }).then((d) => {
    d.kick();
    return d;
  });
}

/** A one-node log with checkpoints at about 20 and 40 (two snapshot files) and entries after; stopped. */
async function twoCheckpoints(dir: string): Promise<{ snapFiles: string[]; lastIndex: number }> {
  const applied: number[] = [];
  const d = await start(dir, applied);
  try {
    await waitUntil(() => d.raft.role === Role.Leader, 'a leader');
    for (const count of [20, 20, 5]) {
      for (let i = 0; i < count; i++) d.raft.propose(Buffer.from(`e${i}`));
      d.kick();
      const target = d.raft.log.lastIndex();
      await waitUntil(() => applied.includes(target), `entry ${target} applied`);
      if (count === 20) await d.checkpoint(() => [Buffer.from(`state at ${target}`)], 0);
    }
    const names = (await readdir(path.join(dir, 'snap'))).filter((n) => n.endsWith('.snap')).sort((a, b) => index(a) - index(b));
    return { snapFiles: names.map((n) => path.join(dir, 'snap', n)), lastIndex: d.raft.log.lastIndex() };
  } finally {
    await d.stop();
  }
}

/** The index in a snapshot file's name (term-index, 16 hex digits each). */
const index = (name: string): number => parseInt(/-([0-9a-f]{16})\.snap$/.exec(name)?.[1] ?? 'x', 16);

async function flipLastByte(file: string): Promise<Buffer> {
  const bytes = await readFile(file);
  bytes[bytes.length - 1] ^= 0x01;
  await writeFile(file, bytes);
  return bytes;
}

test('a damaged newest snapshot whose fallback the WAL no longer reaches: refuses to start, naming the file', async (t) => {
  const dir = await tempDir(t);
  const { snapFiles } = await twoCheckpoints(dir);
  assert.equal(snapFiles.length, 2);
  const damaged = await flipLastByte(snapFiles[1]);
  await assert.rejects(start(dir), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'CAIRN_SNAPSHOT_CORRUPT', err.message);
    assert.ok(err.message.includes(snapFiles[1]), err.message);
    assert.match(err.message, /data crc mismatch/);
    assert.match(err.message, new RegExp(`usable snapshot at index ${index(snapFiles[0])} is older`));
    assert.match(err.message, /rebuild it from its peers/);
    assert.doesNotMatch(err.message, /\n/);
    return true;
  });
  assert.deepEqual(await readFile(snapFiles[1]), damaged, 'the damaged file is kept for a look');
});

test('the only snapshot damaged, with the WAL released past it: refuses to start', async (t) => {
  const dir = await tempDir(t);
  const { snapFiles } = await twoCheckpoints(dir);
  await rm(snapFiles[0]);
  await flipLastByte(snapFiles[1]);
  await assert.rejects(start(dir), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'CAIRN_SNAPSHOT_CORRUPT', err.message);
    assert.ok(err.message.includes(snapFiles[1]), err.message);
    assert.match(err.message, /no older snapshot file is usable/);
    return true;
  });
});

test('a damaged snapshot newer than the one the WAL records is skipped, and the node starts whole', async (t) => {
  const dir = await tempDir(t);
  const { snapFiles, lastIndex } = await twoCheckpoints(dir);
  // As if a crash came between writing a newer file and recording it in the WAL, and the file then went bad.
  const newer = await saveSnapshot(nodeDisk, dir, { meta: { index: lastIndex, term: 9, conf: { voters: [1], learners: [] } }, data: snapshotBytes(Buffer.from('x')) });
  newer.close();
  await flipLastByte(newer.path);
  const applied: number[] = [];
  const d = await start(dir, applied);
  try {
    assert.equal(d.skippedSnapshots.length, 1);
    assert.ok(d.skippedSnapshots[0].startsWith(newer.path), d.skippedSnapshots[0]);
    assert.equal(d.raft.log.snapshot?.meta.index, index(snapFiles[1]));
    assert.equal(d.raft.log.lastIndex(), lastIndex, 'every entry after the snapshot is back');
  } finally {
    await d.stop();
  }
});
