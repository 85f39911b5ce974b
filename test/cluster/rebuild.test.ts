// A master whose WAL went bad in the middle while it was stopped refuses to start, saying how to
// rebuild it; the others keep serving; following those steps brings it back with every
// acknowledged entry, and no term or vote of its goes backwards.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { decodeRecords } from '../../src/journal/raft/wal-record.ts';
import type { HardState } from '../../src/raft/types.ts';
import { TestCluster, listAll, waitFor } from './harness.ts';

const mainScript = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const run = promisify(execFile);
const creates = 1500;
const writers = 6;

async function createAll(cluster: TestCluster, names: string[]): Promise<void> {
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      const c = cluster.client();
      for (let i = w; i < names.length; i += writers) {
        await c.mutate('meta.mutate', { op: 'create', path: names[i], mode: 0o644, uid: 0, gid: 0, exclusive: true });
      }
    }),
  );
}

/** The newest hard state in a WAL segment's valid prefix. */
function lastHardState(bytes: Uint8Array): HardState {
  const hs = decodeRecords(bytes).records.findLast((r) => r.kind === 'hardState');
  assert.ok(hs?.kind === 'hardState');
  return hs.hardState;
}

/** Runs one `cairn ...` command taken from the refusal message, as an operator would paste it. */
async function cairn(command: string, secret: string): Promise<string> {
  const args = command.trim().split(/\s+/);
  assert.equal(args[0], 'cairn', command);
  const r = await run(process.execPath, [mainScript, ...args.slice(1)], { env: { ...process.env, CAIRN_SECRET: secret }, timeout: 60_000 });
  return r.stdout;
}

test('a master with a WAL damaged mid-segment refuses to start, and the steps it names rebuild it from its peers', async (t) => {
  const cluster = await TestCluster.start(t, { masters: 3 });
  const leader = await cluster.waitForLeader();
  const victim = [...cluster.masters.keys()].find((id) => id !== leader)!;
  const m = cluster.masters.get(victim)!;
  const c = cluster.client();
  await c.mutate('meta.mutate', { op: 'mkdir', path: '/c', mode: 0o755, uid: 0, gid: 0, parents: true });
  const names = Array.from({ length: creates }, (_, i) => `/c/f${i}`);
  await createAll(cluster, names);
  await cluster.waitConverged();
  const termBefore = (await cluster.status(leader))!.term;
  await cluster.kill(victim);

  const walDir = path.join(m.dir, 'wal');
  const [segment, ...more] = (await readdir(walDir)).filter((f) => f.endsWith('.wal')).map((f) => path.join(walDir, f));
  assert.equal(more.length, 0, 'one segment');
  const original = await readFile(segment);
  const old = lastHardState(original);
  // 8 bytes in the middle, as `dd conv=notrunc` would write them: whole records before and after.
  const offset = Math.floor(original.length / 2);
  assert.ok(original.length > 200_000, `the segment holds ${original.length} bytes`);
  const damaged = Buffer.from(original);
  damaged.write('CORRUPT!', offset, 'latin1');
  await writeFile(segment, damaged);

  cluster.spawn(victim);
  const child = m.child!;
  await waitFor(() => child.exitCode !== null, `master ${victim} to exit`, 20_000);
  assert.equal(child.exitCode, 65, 'EX_DATAERR');
  const lastLine = (await readFile(m.log, 'utf8')).trimEnd().split('\n').at(-1)!;
  assert.ok(lastLine.startsWith(`cairn: master ${victim} refuses to start: wal segment ${segment} is corrupt: damaged at offset `), lastLine);
  assert.ok(lastLine.endsWith('(CAIRN_WAL_CORRUPT)'), lastLine);
  const at = Number(/damaged at offset (\d+)/.exec(lastLine)![1]);
  assert.ok(at <= offset && offset - at < 2_000, `damage written at ${offset}, reported at ${at}`);
  assert.deepEqual(await readFile(segment), damaged, 'nothing was truncated');

  // The other two keep serving.
  const later = Array.from({ length: 100 }, (_, i) => `/c/g${i}`);
  await createAll(cluster, later);

  // The steps, as the message gives them.
  const steps = lastLine.slice(lastLine.indexOf('Steps, in this order: ') + 'Steps, in this order: '.length).replace(/ \(.*$/, '');
  const [remove, move, startJoin, add] = steps.split(/;? \d\) /).map((s) => s.replace(/^1\) /, '').replace(/;$/, ''));
  assert.match(remove, new RegExp(`^cairn admin journal remove ${victim} --masters `));
  assert.equal(move, `mv ${m.dir} ${m.dir}.corrupt`);
  assert.equal(startJoin, `cairn master --id ${victim} --dir ${m.dir} --listen ${m.address} --join, with its other flags`);
  assert.match(add, new RegExp(`^cairn admin journal add ${victim} ${m.address} --masters `));
  assert.match(await cairn(remove, cluster.secret), new RegExp(`master ${victim} removed`));
  await rename(m.dir, `${m.dir}.corrupt`);
  m.join = true;
  cluster.spawn(victim);
  assert.match(await cairn(add, cluster.secret), new RegExp(`master ${victim} at ${m.address} is a voter`));

  const all = [...names, ...later].map((p) => p.slice('/c/'.length)).sort();
  await cluster.waitConverged();
  const st = (await cluster.status(victim))!;
  assert.ok(st.term >= termBefore && st.term >= old.term, `term ${st.term} after the rebuild, ${old.term} before`);
  const rebuilt = lastHardState(await readFile((await readdir(walDir)).map((f) => path.join(walDir, f)).find((f) => f.endsWith('.wal'))!));
  assert.ok(rebuilt.term >= old.term, `durable term ${rebuilt.term}, was ${old.term}`);
  // In the same term it may have no vote yet (it came back as a learner), never another one.
  if (rebuilt.term === old.term) assert.ok(rebuilt.vote === 0 || rebuilt.vote === old.vote, `vote ${rebuilt.vote} in term ${old.term}, was ${old.vote}`);
  assert.ok((await cluster.status(leader))!.members.some((x) => x.id === victim && x.role === 'voter'));

  // It leads with every acknowledged create.
  await c.call('admin.journal.transfer', { id: victim });
  await waitFor(async () => (await cluster.leaderId()) === victim, `master ${victim} to lead`, 10_000);
  assert.deepEqual((await listAll(c, '/c')).map((e) => e.name).sort(), all);
  assert.ok((await stat(`${m.dir}.corrupt`)).isDirectory(), 'the damaged directory stays aside');
});
