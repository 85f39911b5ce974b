// A micro-measure of MetaState's apply speed: 100,000 creates in one directory, typed and through
// encoded entries, and the time to snapshot and restore the result. Printed, never asserted:
// these machines are noisy, and `npm run bench` is where speed is compared.

import assert from 'node:assert/strict';
import os from 'node:os';
import { test } from 'node:test';
import { encodeCommand, MetaState, rootCaller } from '../../src/meta/index.ts';
import type { MetaCommand } from '../../src/meta/index.ts';

const files = 100_000;

function createCmd(i: number): MetaCommand {
  return { op: 'create', clientId: `c${i % 64}`, seq: Math.floor(i / 64) + 1, nowMs: 1_000 + i, path: `/dir/f${i}`, mode: 0o644, uid: 0, gid: 0, exclusive: true, caller: rootCaller };
}

function rate(count: number, ms: number): string {
  return `${Math.round(count / (ms / 1000)).toLocaleString('en-US')}/s`;
}

test(`apply speed: ${files.toLocaleString('en-US')} creates in one directory (printed, not asserted)`, () => {
  const mkdir: MetaCommand = { op: 'mkdir', clientId: 'setup', seq: 1, nowMs: 0, path: '/dir', mode: 0o755, uid: 0, gid: 0, parents: false, caller: rootCaller };
  const cmds = Array.from({ length: files }, (_, i) => createCmd(i));
  const entries = cmds.map(encodeCommand);

  const typed = new MetaState();
  typed.apply(1, mkdir);
  let t0 = performance.now();
  for (let i = 0; i < files; i++) typed.apply(i + 2, cmds[i]);
  const typedMs = performance.now() - t0;

  const decoded = new MetaState();
  decoded.apply(1, mkdir);
  t0 = performance.now();
  for (let i = 0; i < files; i++) decoded.applyEntry(i + 2, entries[i]);
  const entryMs = performance.now() - t0;
  assert.equal(decoded.statfs().files, files);

  t0 = performance.now();
  let pages = 0;
  let after: string | undefined;
  do {
    const r = typed.readdir('/dir', after === undefined ? { limit: 1000 } : { after, limit: 1000 }, rootCaller);
    assert.ok(r.ok);
    after = r.value.next;
    pages++;
  } while (after !== undefined);
  const readdirMs = performance.now() - t0;

  t0 = performance.now();
  const chunks = [...typed.snapshot()];
  const snapshotMs = performance.now() - t0;
  t0 = performance.now();
  const copy = MetaState.restore(chunks);
  const restoreMs = performance.now() - t0;
  assert.equal(copy.statfs().files, files);
  assert.equal(copy.stateHash(), typed.stateHash());
  assert.equal(decoded.stateHash(), typed.stateHash());

  const bytes = chunks.reduce((n, c) => n + c.length, 0);
  console.log(
    [
      `namespace apply micro-measure: node ${process.version}, ${os.cpus()[0]?.model ?? 'unknown cpu'} x${os.cpus().length}`,
      `  apply(create), typed:            ${typedMs.toFixed(0)} ms, ${rate(files, typedMs)}`,
      `  applyEntry(create), msgpack:     ${entryMs.toFixed(0)} ms, ${rate(files, entryMs)}`,
      `  readdir, ${pages} pages of 1000:     ${readdirMs.toFixed(0)} ms (sorted once, then served)`,
      `  snapshot: ${chunks.length} chunks, ${(bytes / 1024 / 1024).toFixed(1)} MiB in ${snapshotMs.toFixed(0)} ms; restore with checks ${restoreMs.toFixed(0)} ms`,
    ].join('\n'),
  );
});
