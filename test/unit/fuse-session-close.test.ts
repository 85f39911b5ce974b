// A release that leaves nothing to commit ends its write session a little later, together with the
// others ending meanwhile (each mutation in flight slowed the next create in the directory); one
// with writes to commit ends it at once; the unmount ends the waiting ones. The masters here are a
// MetaState driven in memory.

import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import type { DataClient, MasterClient } from '../../src/client/index.ts';
import { CairnFs } from '../../src/fuse/cairn-fs.ts';
import { FakeMasters } from '../meta-fs.ts';

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
  const fs = new CairnFs({ meta: meta as unknown as MasterClient, data: {} as DataClient, owner: { uid: 0, gid: 0, groups: [] }, ...(sessionCloseDelayMs === undefined ? {} : { sessionCloseDelayMs }) });
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
