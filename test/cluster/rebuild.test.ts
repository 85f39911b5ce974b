// A master whose WAL went bad in the middle while it was stopped refuses to start, saying how to
// rebuild it; the others keep serving; following those steps brings it back under a new id with
// every acknowledged entry, and its old id can never be added back.

import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { MasterClient } from '../../src/client/master-client.ts';
import { rootCaller } from '../../src/meta/commands.ts';
import { readLocalCluster } from '../../src/cli/cluster-target.ts';
import type { JournalStatus } from '../../src/journal/journal.ts';
import { decodeRecords } from '../../src/journal/raft/wal-record.ts';
import type { HardState } from '../../src/raft/types.ts';
import { TestCluster, listAll, waitFor } from './harness.ts';
import { runCairn } from './process-cluster.ts';

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
async function cairn(command: string, secret?: string): Promise<{ stdout: string; stderr: string; code: number }> {
  const args = command.trim().split(/\s+/);
  assert.equal(args[0], 'cairn', command);
  // A local cluster's commands find its secret in its directory.
  return runCairn(args.slice(1), secret === undefined ? {} : { CAIRN_SECRET: secret });
}

/** Runs a command that must succeed, and returns what it printed. */
async function cairnOk(command: string, secret?: string): Promise<string> {
  const r = await cairn(command, secret);
  assert.equal(r.code, 0, `${command}: ${r.stderr}`);
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

  // The steps, as the message gives them: the old id is removed, the new master gets another.
  const steps = lastLine.slice(lastLine.indexOf('Steps, in this order: ') + 'Steps, in this order: '.length).replace(/ \(the admin commands need .*$/, '');
  const [remove, move, startJoin, add] = steps.split(/; \d\) /).map((s) => s.replace(/^1\) /, ''));
  const others = [...cluster.masters.values()].filter((x) => x.id !== victim).map((x) => x.address).join(',');
  assert.equal(remove, `cairn admin journal remove ${victim} --masters ${others}, which prints an unused id, <new-id> below (${victim} is never used again)`);
  assert.equal(move, `mv ${m.dir} ${m.dir}.corrupt`);
  assert.equal(startJoin, `cairn master --id <new-id> --dir ${m.dir} --listen ${m.address} --join, with its other flags`);
  assert.equal(add, `cairn admin journal add <new-id> ${m.address} --masters ${others}`);
  const removed = await cairnOk(remove.replace(/, which prints .*$/, ''), cluster.secret);
  const newId = Number(new RegExp(`^master ${victim} removed; a master that replaces it needs a new id, such as (\\d+) \\(${victim} is never added back\\)$`, 'm').exec(removed)?.[1]);
  assert.equal(newId, 4, removed);
  await rename(m.dir, `${m.dir}.corrupt`);
  // Step 3 with the harness's own flags (the secret, in its environment): the same id, directory and address.
  assert.equal(startJoin.replace('<new-id>', String(newId)), `cairn master --id ${newId} --dir ${m.dir} --listen ${m.address} --join, with its other flags`);
  cluster.masters.delete(victim);
  cluster.masters.set(newId, { id: newId, address: m.address, dir: m.dir, log: path.join(path.dirname(m.log), `master-${newId}.log`), child: undefined, join: true });
  cluster.spawn(newId);
  assert.match(await cairnOk(add.replaceAll('<new-id>', String(newId)), cluster.secret), new RegExp(`master ${newId} at ${m.address} is a voter`));

  // The old id cannot come back, in any form: one line, its code, what to do.
  const again = await cairn(`cairn admin journal add ${victim} ${m.address} --masters ${others}`, cluster.secret);
  assert.equal(again.code, 1);
  assert.equal(
    again.stderr.trim(),
    `cairn: master ${victim} was removed from this cluster and a removed id is never added back: start the rebuilt master with a new --id, such as ${newId + 1}, and add that id (CAIRN_ID_REMOVED)`,
  );

  const all = [...names, ...later].map((p) => p.slice('/c/'.length)).sort();
  await cluster.waitConverged();
  const st = (await cluster.status(newId))!;
  assert.ok(st.term >= termBefore && st.term >= old.term, `term ${st.term} after the rebuild, ${old.term} before`);
  const members = (await cluster.status(leader))!.members;
  assert.deepEqual(members.map((x) => [x.id, x.role]).sort((a, b) => Number(a[0]) - Number(b[0])), [...cluster.masters.keys()].sort((a, b) => a - b).map((id) => [id, 'voter']));
  assert.deepEqual((await cluster.status(leader))!.removedIds, [victim]);

  // It leads with every acknowledged create.
  await c.call('admin.journal.transfer', { id: newId });
  await waitFor(async () => (await cluster.leaderId()) === newId, `master ${newId} to lead`, 10_000);
  assert.deepEqual((await listAll(c, '/c')).map((e) => e.name).sort(), all);
  assert.ok((await stat(`${m.dir}.corrupt`)).isDirectory(), 'the damaged directory stays aside');
});

/** Damages the middle of a stopped master's only WAL segment, whole records before and after. */
async function damageWal(masterDir: string): Promise<string> {
  const walDir = path.join(masterDir, 'wal');
  const [segment, ...more] = (await readdir(walDir)).filter((f) => f.endsWith('.wal')).map((f) => path.join(walDir, f));
  assert.equal(more.length, 0, 'one segment');
  const bytes = await readFile(segment);
  assert.ok(bytes.length > 50_000, `the segment holds ${bytes.length} bytes`);
  bytes.write('CORRUPT!', Math.floor(bytes.length / 2), 'latin1');
  await writeFile(segment, bytes);
  return segment;
}

test('a local cluster: the local steps rebuild a master under a new id, and local up restarts the masters it has', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-local-rebuild-'));
  const d = `--dir ${dir}`;
  t.after(async () => {
    await cairn(`cairn local down ${d}`);
    await rm(dir, { recursive: true, force: true });
  });
  await cairnOk(`cairn local up ${d} --workers 0`);
  const record = readLocalCluster(dir)!;
  const client = (): MasterClient => new MasterClient({ masters: readLocalCluster(dir)!.processes.map((p) => p.address), secret: record.secret, deadlineMs: 20_000, caller: rootCaller });
  const c = client();
  t.after(() => c.close());
  await c.mutate('meta.mutate', { op: 'mkdir', path: '/c', mode: 0o755, uid: 0, gid: 0, parents: true });
  const names = Array.from({ length: 300 }, (_, i) => `f${i}`);
  for (const n of names) await c.mutate('meta.mutate', { op: 'create', path: `/c/${n}`, mode: 0o644, uid: 0, gid: 0, exclusive: true });
  await cairnOk(`cairn local down ${d}`);
  const segment = await damageWal(path.join(dir, 'master-2'));

  // local up: masters 1 and 3 start, master 2 refuses, and the report gives the steps for this cluster.
  const up = await cairn(`cairn local up ${d}`);
  assert.equal(up.code, 1);
  const line = up.stderr.trim();
  assert.ok(line.startsWith(`cairn: master 2 refuses to start: wal segment ${segment} is corrupt: damaged at offset `), line);
  const marker = ' For this local cluster, in this order: ';
  const steps = line.slice(line.indexOf(marker) + marker.length).replace(/ \(CAIRN_WAL_CORRUPT; log: .*\)$/, '');
  const [remove, move, join, add] = steps.split(/; \d\) /).map((s) => s.replace(/^1\) /, ''));
  assert.equal(remove, `cairn admin journal remove 2 ${d}`);
  assert.equal(move, `mv ${dir}/master-2 ${dir}/master-2.corrupt`);
  assert.equal(join, `cairn local up ${d} --join 4`);
  assert.equal(add, `cairn admin journal add 4 ${d}`);

  assert.match(await cairnOk(remove), /^master 2 removed; a master that replaces it needs a new id, such as 4 \(2 is never added back\)$/m);
  const [mv, from, to] = move.split(' ');
  assert.equal(mv, 'mv');
  await rename(from, to);
  assert.match(await cairnOk(join), /master 4 starts empty at 127\.0\.0\.1:\d+ and joins/);
  assert.match(await cairnOk(add), /^master 4 at 127\.0\.0\.1:\d+ is a voter$/m);
  const refused = await cairn(`cairn admin journal add 2 ${d}`);
  assert.match(refused.stderr, /^cairn: master 2 is not in the local cluster in .*: start it with 'cairn local up --dir .* --join 2', or give its address$/m);
  const readded = await cairn(`cairn admin journal add 2 ${record.processes[1].address} ${d}`);
  assert.match(readded.stderr, /^cairn: master 2 was removed from this cluster .* such as 5, and add that id \(CAIRN_ID_REMOVED\)$/m);
  assert.match((await cairn(`cairn local up ${d} --join 2`)).stderr, /master 2 already exists or existed in .*, and ids are never reused: --join 5$/m);

  // Stopped and started again, the cluster is masters 1, 3 and 4, with every create.
  await cairnOk(`cairn local down ${d}`);
  await cairnOk(`cairn local up ${d}`);
  assert.deepEqual(readLocalCluster(dir)!.processes.map((p) => p.id), [1, 3, 4]);
  const c2 = client();
  t.after(() => c2.close());
  const info = await c2.call<JournalStatus>('admin.journal.info', {});
  assert.deepEqual(info.members.map((m) => m.id).sort(), [1, 3, 4]);
  assert.deepEqual(info.removedIds, [2]);
  await c2.call('admin.journal.transfer', { id: 4 });
  await waitFor(async () => (await c2.call<JournalStatus>('admin.journal.info', {})).leader?.id === 4, 'master 4 to lead', 10_000);
  assert.deepEqual((await listAll(c2, '/c')).map((e) => e.name).sort(), [...names].sort());
});
