// RaftJournal on one real process: restart paths that the multi-process tests hit only by timing.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { RaftJournal } from '../../src/journal/index.ts';
import type { StateMachine } from '../../src/journal/journal.ts';
import { RpcClient, RpcServer } from '../../src/rpc/index.ts';

/** Counts applied entries; a snapshot is the count. */
class Counter implements StateMachine {
  count = 0;
  apply(_index: number, _data: Uint8Array): unknown {
    return ++this.count;
  }
  *snapshot(): Iterable<Uint8Array> {
    yield Buffer.from(String(this.count));
  }
  restore(chunks: Uint8Array[]): void {
    this.count = Number(Buffer.concat(chunks).toString());
  }
}

async function openJournal(dir: string, checkpointEveryEntries: number): Promise<{ journal: RaftJournal; sm: Counter; close(): Promise<void> }> {
  const server = new RpcServer({});
  const { port } = await server.listen('127.0.0.1', 0);
  const address = `127.0.0.1:${port}`;
  const journal = new RaftJournal({
    id: 1,
    dir,
    address,
    founders: new Map([[1, address]]),
    server,
    connect: (a) => new RpcClient(a, {}),
    tickMs: 5,
    checkpointEveryEntries,
  });
  const sm = new Counter();
  await journal.start(sm);
  return {
    journal,
    sm,
    close: async () => {
      await journal.stop();
      await server.close();
    },
  };
}

async function waitLeader(j: RaftJournal): Promise<void> {
  for (let i = 0; i < 400 && j.status().leader?.id !== 1; i++) await new Promise((r) => setTimeout(r, 5));
}

test('a restart that replays more than a checkpoint interval of WAL checkpoints once the journal is up', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-journal-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const first = await openJournal(dir, 1_000_000);
  await waitLeader(first.journal);
  for (let i = 0; i < 300; i++) await first.journal.propose(Buffer.from(`e${i}`));
  await first.close();

  // Reopened with a small interval, the replay alone crosses it: the checkpoint must wait for the driver.
  const second = await openJournal(dir, 100);
  t.after(() => second.close());
  for (let i = 0; i < 400 && second.sm.count < 300; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(second.sm.count, 300, 'the WAL replay applied every entry');
  for (let i = 0; i < 200 && second.journal.status().snapshotIndex === 0; i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(second.journal.status().snapshotIndex >= 300, `checkpoint taken after the replay (snapshot index ${second.journal.status().snapshotIndex})`);
});
