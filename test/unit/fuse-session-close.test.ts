// A release that leaves nothing to commit ends its write session a little later, together with the
// others ending meanwhile (each mutation in flight slowed the next create in the directory); one
// with writes to commit ends it at once; the unmount ends the waiting ones. The masters here are a
// MetaState driven in memory.

import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import type { MasterClient } from '../../src/client/index.ts';
import { CairnFs } from '../../src/fuse/cairn-fs.ts';
import { dataStub, FakeMasters } from '../meta-fs.ts';

type Body = Parameters<FakeMasters['mutate']>[1];

function mountOver(sessionCloseDelayMs?: number): { fs: CairnFs; closes: string[][] } {
  const masters = new FakeMasters();
  // Each batch: the sessions whose closeSession calls were sent in one turn of the event loop.
  const closes: string[][] = [];
  let batch: string[] | undefined;
  const meta = {
    query: masters.query.bind(masters),
    mutate: <T>(method: string, body: Body): Promise<T> => {
      const b = body as { op: string; sessionId?: string };
      if (b.op === 'closeSession') {
        if (batch === undefined) {
          batch = [];
          closes.push(batch);
          queueMicrotask(() => (batch = undefined));
        }
        batch.push(b.sessionId!);
      }
      return masters.mutate<T>(method, body);
    },
  };
  const fs = new CairnFs({ meta: meta as unknown as MasterClient, data: dataStub(), owner: { uid: 0, gid: 0, groups: [] }, ...(sessionCloseDelayMs === undefined ? {} : { sessionCloseDelayMs }) });
  return { fs, closes };
}

test('sessions with nothing to commit end within the delay, together', async () => {
  const { fs, closes } = mountOver(30);
  await fs.mkdir('/d', 0o755);
  for (let i = 0; i < 5; i++) await fs.release(await fs.create(`/d/f${i}`, 0o644));
  assert.equal(closes.length, 0, 'none ended yet');
  await sleep(80);
  assert.equal(closes.length, 1, 'one batch');
  assert.equal(closes[0].length, 5, 'all five sessions in it');
  // The next ones start a new wait.
  await fs.release(await fs.create('/d/g', 0o644));
  await sleep(80);
  assert.deepEqual(closes.map((b) => b.length), [5, 1]);
});

test('the unmount ends the waiting sessions at once; with a delay of 0 each release ends its own', async () => {
  const { fs, closes } = mountOver(60_000);
  await fs.mkdir('/d', 0o755);
  await fs.release(await fs.create('/d/f', 0o644));
  await fs.release(await fs.create('/d/g', 0o644));
  assert.equal(closes.length, 0);
  await fs.releaseAll();
  assert.deepEqual(closes.map((b) => b.length), [2]);

  const now = mountOver(0);
  await now.fs.mkdir('/d', 0o755);
  await now.fs.release(await now.fs.create('/d/f', 0o644));
  assert.deepEqual(now.closes.map((b) => b.length), [1], 'ended before release returned');
});

test('local reads\' kept chunk files of a file are forgotten at each open and at its last release, not at others', async () => {
  const masters = new FakeMasters();
  const forgotten: number[] = [];
  const data = dataStub({ forgetLocal: (inodeId: number) => forgotten.push(inodeId) });
  const fs = new CairnFs({ meta: masters as unknown as MasterClient, data, owner: { uid: 0, gid: 0, groups: [] }, sessionCloseDelayMs: 0 });
  await fs.release(await fs.create('/f', 0o644));
  assert.equal(forgotten.length, 1, 'the creator\'s last release');
  const inode = forgotten[0];
  const a = await fs.open('/f', 0);
  const b = await fs.open('/f', 0);
  assert.deepEqual(forgotten, [inode, inode, inode], 'each open (close-to-open)');
  await fs.release(a);
  assert.equal(forgotten.length, 3, 'another descriptor still reads it');
  await fs.release(b);
  assert.deepEqual(forgotten, [inode, inode, inode, inode], 'the last release: a file deleted meanwhile holds no disk space through this mount');
});
