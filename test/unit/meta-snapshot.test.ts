// Tests of MetaState snapshots: chunked streaming within the size limit, restore to an identical
// state hash, rejection of damaged streams (checksums, order, truncation, structure), and a
// property: a copy restored midway and the original apply the rest to the same state.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { MetaError, MetaState, MetaStateMachine, namespaceCommandOps, rootCaller, snapshotChunkBytesMax } from '../../src/meta/index.ts';
import type { MetaCommand } from '../../src/meta/index.ts';
import { MetaFs } from '../meta-fs.ts';

const packr = new Packr({ useRecords: false });

/** The snapshot tests' client: its own id and clock step, so their states are their own. */
class Log extends MetaFs {
  constructor(state?: MetaState) {
    super({ clientId: 'snap', stepMs: 7, state });
  }
}

/** A state with something in every table (FIFOs and device nodes too, unless `specials` is false: formats before 5). */
function populated(files = 200, specials = true): Log {
  const log = new Log();
  log.ok({ op: 'mkdir', path: '/a/b/c', mode: 0o755, uid: 1, gid: 1, parents: true });
  for (let i = 0; i < files; i++) log.ok({ op: 'create', path: `/a/b/f${i}`, mode: 0o644, uid: 2, gid: 2, exclusive: true });
  log.ok({ op: 'setattr', path: '/a/b/f1', sizeBytes: 123_456_789 });
  log.ok({ op: 'link', existing: '/a/b/f2', path: '/a/c-link' });
  log.ok({ op: 'symlink', path: '/a/s', target: '../a/b/ünïcode', uid: 0, gid: 0 });
  if (specials) {
    log.ok({ op: 'mknod', path: '/a/fifo', type: 'fifo', mode: 0o600, uid: 3, gid: 3, rdev: 0 });
    log.ok({ op: 'mknod', path: '/a/tty', type: 'chardev', mode: 0o620, uid: 0, gid: 5, rdev: 0x0401 });
  }
  log.ok({ op: 'openSession', path: '/a/b/f3', sessionId: 'w1', truncate: false });
  log.ok({ op: 'openSession', path: '/a/b/f4', truncate: false });
  log.ok({ op: 'unlink', path: '/a/b/f4' }); // an orphan held by @1
  log.ok({ op: 'unlink', path: '/a/b/f5' }); // pending GC
  log.ok({ op: 'registerWorker', workerId: 1, instance: 'i1', address: 'a:1', domain: 'r1', targets: [{ targetId: 11, path: '/d1', capacityBytes: 100 }, { targetId: 12, path: '/d2', capacityBytes: 100 }] });
  log.ok({ op: 'registerWorker', workerId: 2, instance: 'i1', address: 'b:1', domain: '', targets: [{ targetId: 21, path: '/d1', capacityBytes: 200 }, { targetId: 22, path: '/d2', capacityBytes: 0 }] });
  log.ok({ op: 'addChains', tableId: 1, chains: [{ chainId: 1, targetIds: [11, 21] }] });
  log.ok({ op: 'addChains', tableId: 1, chains: [{ chainId: 2, targetIds: [22, 12] }] });
  log.ok({ op: 'updateChains', chains: [{ chainId: 1, version: 1, targets: [{ targetId: 21, state: 'serving' }, { targetId: 11, state: 'offline' }] }] });
  for (let c = 0; c < 5; c++) log.state.apply(++log.index, { op: 'noop', clientId: `client-${c}`, seq: 3, nowMs: log.nowMs });
  log.run({ op: 'rmdir', path: '/a' }); // a failed result in the client table
  return log;
}

function corruptCode(chunks: Iterable<Uint8Array>): string {
  try {
    MetaState.restore(chunks);
    return 'restored';
  } catch (err) {
    assert.ok(err instanceof MetaError, `not a MetaError: ${String(err)}`);
    assert.equal(err.code, 'CAIRN_META_SNAPSHOT_CORRUPT');
    return err.message;
  }
}

/** Rewrites the records of chunk `i` with valid framing and checksum: structural damage only. */
function rewriteChunk(chunks: Uint8Array[], i: number, edit: (body: unknown) => unknown): Uint8Array[] {
  const [no, kind, body] = packr.unpack(chunks[i]) as [number, number, Uint8Array, number];
  const bytes = packr.pack(edit(packr.unpack(body)));
  const out = [...chunks];
  out[i] = packr.pack([no, kind, bytes, crc32c(bytes)]);
  return out;
}

function kindOf(chunk: Uint8Array): number {
  return (packr.unpack(chunk) as [number, number])[1];
}

test('an empty state round-trips', () => {
  const state = new MetaState();
  const chunks = [...state.snapshot()];
  assert.equal(chunks.length, 3, 'header, the root inode, end: empty tables take no chunk');
  const copy = MetaState.restore(chunks);
  assert.equal(copy.stateHash(), state.stateHash());
  assert.deepEqual(copy.statfs(), state.statfs());
});

test('a populated state restores to the same hash, queries and counters', () => {
  const log = populated();
  const chunks = [...log.state.snapshot()];
  const copy = MetaState.restore(chunks);
  assert.equal(copy.stateHash(), log.state.stateHash());
  assert.deepEqual(copy.statfs(), log.state.statfs());
  assert.deepEqual(copy.statfs().orphans, 1);
  assert.equal(copy.indexApplied, log.index);
  for (const path of ['/', '/a', '/a/b/f1', '/a/c-link', '/a/s']) assert.deepEqual(copy.stat(path, rootCaller), log.state.stat(path, rootCaller));
  assert.deepEqual(copy.readdir('/a/b', { limit: 1000 }, rootCaller), log.state.readdir('/a/b', { limit: 1000 }, rootCaller));
  assert.deepEqual(copy.workers(), log.state.workers());
  assert.deepEqual(copy.chainTables(), log.state.chainTables());
  assert.deepEqual(copy.pendingGc(10), log.state.pendingGc(10));
  assert.deepEqual(copy.session('w1'), log.state.session('w1'));
  // Both continue the same way, including the session counter and client records.
  const twin = new Log(copy);
  Object.assign(twin, { index: log.index, seq: log.seq, nowMs: log.nowMs });
  for (const l of [log, twin]) {
    l.ok({ op: 'openSession', path: '/a/b/f6', truncate: false });
    l.ok({ op: 'closeSession', sessionId: '@1' });
    l.ok({ op: 'create', path: '/a/new', mode: 0o600, uid: 0, gid: 0, exclusive: true });
  }
  assert.equal(twin.state.stateHash(), log.state.stateHash());
  assert.equal(twin.state.statfs().pendingGc, 2, 'the orphan went to GC on its last close');
});

test('a restorer fed one chunk at a time gives the same state; an unfinished or damaged one leaves the old state', () => {
  const log = populated(5_000);
  const chunks = [...log.state.snapshot()];
  assert.ok(chunks.length > 1, 'several chunks');
  const r = MetaState.restorer();
  for (const c of chunks) r.add(c);
  assert.equal(r.finish().stateHash(), log.state.stateHash());

  const sm = new MetaStateMachine();
  const before = sm.state.stateHash();
  const half = sm.restorer();
  for (const c of chunks.slice(0, 2)) half.add(c);
  assert.equal(sm.state.stateHash(), before, 'nothing changes before finish()');
  assert.throws(() => half.finish(), MetaError, 'a truncated snapshot is refused');
  assert.equal(sm.state.stateHash(), before);
  const whole = sm.restorer();
  for (const c of chunks) whole.add(c);
  whole.finish();
  assert.equal(sm.state.stateHash(), log.state.stateHash());
});

test('large states stream as many chunks, none above snapshotChunkBytesMax', () => {
  const log = populated(30_000);
  const targetsPerWorker = 250;
  const workers = Array.from({ length: 160 }, (_, w) => ({
    workerId: w + 1,
    instance: `i${w}`,
    address: `w${w}:1`,
    domain: '',
    targets: Array.from({ length: targetsPerWorker }, (_, t) => ({ targetId: 100_000 + w * 1000 + t, path: `/data/${t}`, capacityBytes: 1 << 40 })),
  }));
  for (const w of workers) log.ok({ op: 'registerWorker', ...w });
  // A chain table too big for one chunk: 10,000 chains of 4 targets, added in two versions.
  const chainIds = Array.from({ length: 10_000 }, (_, i) => 1000 + i);
  const chain = (i: number) => ({ chainId: 1000 + i, targetIds: [0, 1, 2, 3].map((k) => 100_000 + ((4 * i + k) % 160) * 1000 + Math.floor((4 * i + k) / 160)) });
  log.ok({ op: 'addChains', tableId: 9, chains: chainIds.slice(0, 6000).map((_, i) => chain(i)) });
  log.ok({ op: 'addChains', tableId: 9, chains: chainIds.slice(6000).map((_, i) => chain(6000 + i)) });
  const chunks = [...log.state.snapshot()];
  assert.ok(chunks.length > 5, `${chunks.length} chunks`);
  for (const c of chunks) assert.ok(c.length <= snapshotChunkBytesMax, `chunk of ${c.length} bytes`);
  const copy = MetaState.restore(chunks);
  assert.equal(copy.stateHash(), log.state.stateHash());
  const table = copy.chainTables().find((t) => t.tableId === 9);
  assert.deepEqual(table?.chainIds, chainIds);
  assert.deepEqual(table?.chainCounts, [6000, 10_000]);
  assert.deepEqual(copy.routing(), log.state.routing());
});

test('snapshot is deterministic and canonical: equal states give equal bytes', () => {
  const a = populated(50);
  const b = populated(50);
  assert.deepEqual([...a.state.snapshot()], [...b.state.snapshot()]);
  // A restored copy re-snapshots to the very same bytes.
  assert.deepEqual([...MetaState.restore(a.state.snapshot()).snapshot()], [...a.state.snapshot()]);
  b.ok({ op: 'noop' });
  assert.notEqual(a.state.stateHash(), b.state.stateHash());
});

test('reading a snapshot while applying is refused', () => {
  const log = populated(20);
  const it = log.state.snapshot()[Symbol.iterator]();
  it.next();
  log.ok({ op: 'noop' });
  assert.throws(() => {
    for (let r = it.next(); !r.done; r = it.next());
  }, /the state changed while its snapshot was being read/);
});

test('damaged streams are refused: flipped bytes, lost, repeated, reordered or extra chunks, truncation', () => {
  const chunks = [...populated(3000).state.snapshot()];
  assert.ok(chunks.length >= 6);
  const mid = 2;
  for (const offset of [0, 5, Math.floor(chunks[mid].length / 2), chunks[mid].length - 1]) {
    const bad = [...chunks];
    bad[mid] = Uint8Array.from(chunks[mid]);
    bad[mid][offset] ^= 0x40;
    assert.match(corruptCode(bad), /corrupt metadata snapshot: chunk 2/);
  }
  assert.match(corruptCode(chunks.filter((_, i) => i !== mid)), /chunk 2 is numbered 3/);
  assert.match(corruptCode([...chunks.slice(0, mid + 1), chunks[mid], ...chunks.slice(mid + 1)]), /numbered 2/);
  assert.match(corruptCode([chunks[1], chunks[0], ...chunks.slice(2)]), /chunk 0 is numbered 1/);
  assert.match(corruptCode(chunks.slice(0, -1)), /without its end chunk \(truncated\)/);
  assert.match(corruptCode([...chunks, chunks[0]]), /follows the end chunk/);
  assert.match(corruptCode([]), /the snapshot is empty/);
  assert.match(corruptCode([new Uint8Array(snapshotChunkBytesMax + 1)]), /more than/);
  assert.match(corruptCode([Uint8Array.from([1, 2, 3])]), /chunk 0/);
});

/** The snapshot as an older format would hold it, as far as inodes go: before 5, no device numbers. */
function asFormat(chunks: Uint8Array[], version: number): Uint8Array[] {
  let out = rewriteChunk(chunks, 0, (h) => ({ ...(h as object), formatVersion: version }));
  // Inode records: 14 fields before format 5 (no device number), 15 in format 5 (no extended attributes).
  const fields = version < 5 ? 14 : version === 5 ? 15 : 16;
  for (let i = 0; i < out.length; i++) if (kindOf(out[i]) === 1) out = rewriteChunk(out, i, (rs) => (rs as unknown[][]).map((r) => r.slice(0, fields)));
  // Target records: 6 fields before format 8 (no leftChainAt).
  if (version < 8) for (let i = 0; i < out.length; i++) if (kindOf(out[i]) === 7) out = rewriteChunk(out, i, (rs) => (rs as unknown[][]).map((r) => r.slice(0, 6)));
  // Session records: 4 fields before format 9 (no temporary file).
  if (version < 9) for (let i = 0; i < out.length; i++) if (kindOf(out[i]) === 3) out = rewriteChunk(out, i, (rs) => (rs as unknown[][]).map((r) => r.slice(0, 4)));
  return out;
}

test('special files keep their type and device number through a snapshot; format 4 (before them) still reads', () => {
  const log = populated(6);
  const chunks = [...log.state.snapshot()];
  const copy = MetaState.restore(chunks);
  assert.equal(copy.stateHash(), log.state.stateHash());
  const tty = copy.stat('/a/tty', rootCaller);
  assert.ok(tty.ok);
  assert.deepEqual([tty.value.type, tty.value.rdev], ['chardev', 0x0401]);
  const plain = new Log();
  plain.ok({ op: 'mkdir', path: '/d', mode: 0o755, uid: 0, gid: 0, parents: false });
  plain.ok({ op: 'create', path: '/d/f', mode: 0o644, uid: 0, gid: 0, exclusive: true });
  assert.equal(MetaState.restore(asFormat([...plain.state.snapshot()], 4)).stateHash(), plain.state.stateHash());
  // Format 4 knew three types only, and a FIFO has no device number.
  assert.match(corruptCode(rewriteChunk(asFormat(chunks, 4), 0, (h) => h)), /type/);
  const inodesAt = chunks.findIndex((c) => kindOf(c) === 1);
  assert.match(corruptCode(rewriteChunk(chunks, inodesAt, (rs) => (rs as unknown[][]).map((r) => (r[1] === 3 ? [...r.slice(0, 14), 7, null] : r)))), /a fifo with a device number/);
});

test('a header from another format version, or no header at all, is refused', () => {
  const chunks = [...new MetaState().snapshot()];
  assert.match(corruptCode(rewriteChunk(chunks, 0, (h) => ({ ...(h as object), formatVersion: 11 }))), /format version 11, this build reads 2, 3, 4, 5, 6, 7, 8, 9, 10/);
  assert.match(corruptCode(rewriteChunk(chunks, 0, (h) => ({ ...(h as object), formatVersion: 1 }))), /format version 1/);
  assert.match(corruptCode(rewriteChunk(chunks, 0, (h) => ({ ...(h as object), magic: 'other' }))), /not a metadata snapshot/);
  assert.match(corruptCode(chunks.slice(1)), /chunk 0 is numbered 1/);
  assert.match(corruptCode(rewriteChunk(chunks, 0, (h) => ({ ...(h as object), counts: { ...(h as { counts: object }).counts, inodes: 2 } }))), /the header counts 2 inodes, the chunks hold 1/);
});

test('decommissioned workers: kept through a snapshot; a format 2 snapshot (before them) still reads', () => {
  const log = populated(6, false);
  log.ok({ op: 'decommissionWorker', workerId: 2 });
  const chunks = [...log.state.snapshot()];
  const copy = MetaState.restore(chunks);
  assert.equal(copy.stateHash(), log.state.stateHash());
  assert.deepEqual(copy.workers().map((w) => [w.workerId, w.decommissionedMs]), [[1, undefined], [2, log.nowMs]]);
  const workersAt = chunks.findIndex((c) => kindOf(c) === 6);
  // Format 2 had 7-tuples for workers and no decommissioning.
  const chainsAt = chunks.findIndex((c) => kindOf(c) === 8);
  const v2 = rewriteChunk(
    rewriteChunk(asFormat(chunks, 2), workersAt, (rs) => (rs as unknown[][]).map((r) => r.slice(0, 7))),
    chainsAt,
    (rs) => (rs as unknown[][]).map((r) => r.slice(0, 3)),
  );
  assert.deepEqual(MetaState.restore(v2).workers().map((w) => w.decommissionedMs), [undefined, undefined]);
  assert.match(corruptCode(rewriteChunk(chunks, workersAt, (rs) => (rs as unknown[][]).map((r) => r.slice(0, 7)))), /worker record is not a 8-tuple/);
  assert.match(corruptCode(asFormat(chunks, 2)), /worker record is not a 7-tuple/);
  assert.match(corruptCode(rewriteChunk(chunks, workersAt, (rs) => (rs as unknown[][]).map((r) => [...r.slice(0, 7), 'soon']))), /worker 1 decommissioned is not an integer/);
});

test('a chain\'s move is kept through a snapshot; format 3 (before moves) still reads; a move between non-members is refused', () => {
  const log = new Log();
  for (const w of [1, 2, 3]) log.ok({ op: 'registerWorker', workerId: w, instance: 'i1', address: `h${w}:1`, domain: '', targets: [{ targetId: w, path: '/d', capacityBytes: 100 }] });
  log.ok({ op: 'addChains', tableId: 1, chains: [{ chainId: 1, targetIds: [1, 2] }] });
  log.ok({ op: 'moveChainMember', chainId: 1, version: 1, fromTargetId: 1, toTargetId: 3 });
  const chunks = [...log.state.snapshot()];
  const copy = MetaState.restore(chunks);
  assert.equal(copy.stateHash(), log.state.stateHash());
  assert.deepEqual(copy.chains()[0].moving, { fromTargetId: 1, toTargetId: 3 });
  const chainsAt = chunks.findIndex((c) => kindOf(c) === 8);
  const v3 = rewriteChunk(asFormat(chunks, 3), chainsAt, (rs) => (rs as unknown[][]).map((r) => r.slice(0, 3)));
  assert.equal(MetaState.restore(v3).chains()[0].moving, undefined);
  assert.match(corruptCode(asFormat(chunks, 3)), /chain record is not a 3-tuple/);
  assert.match(corruptCode(rewriteChunk(chunks, chainsAt, (rs) => (rs as unknown[][]).map((r) => [...r.slice(0, 3), [1, 9]]))), /chain 1 moves target 1 to 9, which are not two of its members/);
  assert.match(corruptCode(rewriteChunk(chunks, chainsAt, (rs) => (rs as unknown[][]).map((r) => [...r.slice(0, 3), [1]]))), /chain 1 move is not a 2-tuple/);
});

test('a target that left a chain keeps its mark through a snapshot; format 7 (before marks) reads with none; a bad mark is refused', () => {
  const log = new Log();
  for (const w of [1, 2, 3]) log.ok({ op: 'registerWorker', workerId: w, instance: 'i1', address: `h${w}:1`, domain: '', targets: [{ targetId: w, path: '/d', capacityBytes: 100 }] });
  log.ok({ op: 'addChains', tableId: 1, chains: [{ chainId: 1, targetIds: [1, 2] }] });
  log.ok({ op: 'moveChainMember', chainId: 1, version: 1, fromTargetId: 1, toTargetId: 3 });
  log.ok({ op: 'updateChains', chains: [{ chainId: 1, version: 2, targets: [{ targetId: 1, state: 'serving' }, { targetId: 2, state: 'serving' }, { targetId: 3, state: 'serving' }] }] });
  log.ok({ op: 'endChainMove', chainId: 1, version: 3, outcome: 'done' });
  const chunks = [...log.state.snapshot()];
  const copy = MetaState.restore(chunks);
  assert.equal(copy.stateHash(), log.state.stateHash());
  const mark = log.state.targets()[0].leftChainAt!;
  assert.ok(mark > 0);
  assert.deepEqual(copy.targets().map((t) => t.leftChainAt), [mark, undefined, undefined]);
  assert.deepEqual(MetaState.restore(asFormat(chunks, 7)).targets().map((t) => t.leftChainAt), [undefined, undefined, undefined]);
  const targetsAt = chunks.findIndex((c) => kindOf(c) === 7);
  const edit = (id: number, value: unknown) => rewriteChunk(chunks, targetsAt, (rs) => (rs as unknown[][]).map((r) => (r[0] === id ? [...r.slice(0, 6), value] : r)));
  assert.match(corruptCode(edit(1, 0)), /target 1 leftChainAt/);
  assert.match(corruptCode(edit(2, 5)), /target 2 is in chain 1 and has left one/);
  assert.match(corruptCode(rewriteChunk(chunks, targetsAt, (rs) => (rs as unknown[][]).map((r) => r.slice(0, 6)))), /target record is not a 7-tuple/);
});

test('structural damage with valid checksums is refused: link counts, dangling dentries, cycles, sessions', () => {
  const log = populated(10);
  const chunks = [...log.state.snapshot()];
  const inodesAt = chunks.findIndex((c) => kindOf(c) === 1);
  const dentriesAt = chunks.findIndex((c) => kindOf(c) === 2);
  const sessionsAt = chunks.findIndex((c) => kindOf(c) === 3);
  type Rec = unknown[];
  const editInode = (id: number, field: number, value: unknown) =>
    rewriteChunk(chunks, inodesAt, (recs) => (recs as Rec[]).map((r) => (r[0] === id ? r.map((v, i) => (i === field ? value : v)) : r)));
  const fileId = (log.state.stat('/a/b/f1', rootCaller) as { value: { inodeId: number } }).value.inodeId;
  const dirB = (log.state.stat('/a/b', rootCaller) as { value: { inodeId: number } }).value.inodeId;
  const dirC = (log.state.stat('/a/b/c', rootCaller) as { value: { inodeId: number } }).value.inodeId;
  assert.match(corruptCode(editInode(fileId, 5, 2)), new RegExp(`inode ${fileId} has nlink 2 but 1 dentries`));
  assert.match(corruptCode(editInode(dirB, 5, 7)), new RegExp(`directory ${dirB} has nlink 7, expected 3`));
  assert.match(corruptCode(editInode(fileId, 11, null)), /a file without a layout/);
  assert.match(corruptCode(editInode(fileId, 2, 0o17777)), /mode/);
  assert.match(corruptCode(editInode(fileId, 1, 7)), /type/);
  // A directory whose parent pointer disagrees with its dentry.
  assert.match(corruptCode(editInode(dirC, 10, fileId)), /has parent/);
  // A dentry pointing at a missing inode, and dentries out of order (a repeated name).
  const dangling = rewriteChunk(chunks, dentriesAt, (recs) => (recs as Rec[]).map((r) => (r[1] === 'f1' ? [r[0], r[1], 99_999] : r)));
  assert.match(corruptCode(dangling), /points to missing inode 99999/);
  const repeated = rewriteChunk(chunks, dentriesAt, (recs) => [...(recs as Rec[]), (recs as Rec[]).at(-1)]);
  assert.match(corruptCode(repeated), /out of order or repeated/);
  const badName = rewriteChunk(chunks, dentriesAt, (recs) => (recs as Rec[]).map((r) => (r[1] === 'f1' ? [r[0], 'a/b', r[2]] : r)));
  assert.match(corruptCode(badName), /out of order|contains '\/'/);
  // A cycle: directory c re-parented as b's parent and b inside c, detached from the root.
  const aId = (log.state.stat('/a', rootCaller) as { value: { inodeId: number } }).value.inodeId;
  const detached = rewriteChunk(
    rewriteChunk(chunks, inodesAt, (recs) => (recs as Rec[]).map((r) => (r[0] === dirB ? r.map((v, i) => (i === 10 ? dirC : v)) : r))),
    dentriesAt,
    (recs) => (recs as Rec[]).map((r) => (r[0] === aId && r[1] === 'b' ? [dirC, 'b', dirB] : r)).sort((x, y) => (x[0] as number) - (y[0] as number) || ((x[1] as string) < (y[1] as string) ? -1 : 1)),
  );
  assert.match(corruptCode(detached), /not reachable from the root|cycle|nlink/);
  // A session counter behind a generated id, a session on a missing inode, an orphan without its session.
  assert.match(corruptCode(rewriteChunk(chunks, 0, (h) => ({ ...(h as object), nextSessionNo: 1 }))), /session '@1' is not below the session counter 1/);
  assert.match(corruptCode(rewriteChunk(chunks, sessionsAt, (recs) => (recs as Rec[]).map((r) => [r[0], 99_999, r[2], r[3], r[4]]))), /holds 99999, not a file/);
  assert.match(corruptCode(rewriteChunk(chunks, sessionsAt, (recs) => (recs as Rec[]).map((r) => [r[0], r[1], r[2], r[3], [0, 'x']]))), /temporary file's directory is not an integer/);
  assert.match(corruptCode(rewriteChunk(chunks, sessionsAt, (recs) => (recs as Rec[]).map((r) => [r[0], r[1], r[2], r[3], 'x']))), /temporary file is not a 2-tuple/);
  assert.match(corruptCode(rewriteChunk(chunks, sessionsAt, (recs) => (recs as Rec[]).filter((r) => r[0] === 'w1'))), /nlink 0 but is not an open file/);
});

// ---------------------------------------------------------------------------------------------

const nameArb = fc.constantFrom('a', 'b', 'c');
/** Short paths over few names, so that commands often find what they name. */
const pathArb = fc
  .oneof({ arbitrary: fc.tuple(nameArb), weight: 4 }, { arbitrary: fc.tuple(nameArb, nameArb), weight: 3 }, { arbitrary: fc.tuple(nameArb, nameArb, nameArb), weight: 1 })
  .map((p) => `/${p.join('/')}`);
const sessionIdArb = fc.constantFrom('s1', 's2', '@1', '@2', '@3');
const w = (weight: number, arbitrary: fc.Arbitrary<Record<string, unknown>>) => ({ weight, arbitrary });
const bodyArb: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  w(4, fc.record({ op: fc.constant('mkdir'), path: pathArb, mode: fc.constant(0o755), uid: fc.nat(3), gid: fc.nat(3), parents: fc.boolean() })),
  w(6, fc.record({ op: fc.constant('create'), path: pathArb, mode: fc.constant(0o644), uid: fc.nat(3), gid: fc.nat(3), exclusive: fc.boolean() })),
  w(2, fc.record({ op: fc.constant('unlink'), path: pathArb })),
  w(2, fc.record({ op: fc.constant('rmdir'), path: pathArb })),
  w(3, fc.record({ op: fc.constant('rename'), from: pathArb, to: pathArb })),
  w(1, fc.record({ op: fc.constant('symlink'), path: pathArb, target: pathArb, uid: fc.constant(0), gid: fc.constant(0) })),
  w(2, fc.record({ op: fc.constant('link'), existing: pathArb, path: pathArb })),
  w(1, fc.record({ op: fc.constant('mknod'), path: pathArb, type: fc.constantFrom('fifo', 'socket'), mode: fc.constant(0o644), uid: fc.nat(3), gid: fc.nat(3), rdev: fc.constant(0) })),
  w(1, fc.record({ op: fc.constant('mknod'), path: pathArb, type: fc.constantFrom('chardev', 'blockdev'), mode: fc.constant(0o600), uid: fc.nat(3), gid: fc.nat(3), rdev: fc.nat(0xffff) })),
  w(1, fc.record({ op: fc.constant('setattr'), path: pathArb, sizeBytes: fc.nat(1 << 30) })),
  w(1, fc.record({ op: fc.constant('setattr'), path: pathArb, mode: fc.nat(0o7777), mtimeMs: fc.integer() })),
  w(2, fc.record({ op: fc.constant('openSession'), path: pathArb, sessionId: fc.constantFrom('s1', 's2'), truncate: fc.boolean() })),
  w(2, fc.record({ op: fc.constant('openSession'), path: pathArb, truncate: fc.constant(false) })),
  w(3, fc.record({ op: fc.constant('closeSession'), sessionId: sessionIdArb, lengthBytes: fc.nat(1 << 20) })),
  w(1, fc.record({ op: fc.constant('commitLength'), path: pathArb, lengthBytes: fc.nat(1 << 20) })),
  w(1, fc.record({ op: fc.constant('commitLength'), inodeId: fc.integer({ min: 1, max: 20 }), lengthBytes: fc.nat(1 << 20) })),
  w(1, fc.record({ op: fc.constant('gcDone'), inodeIds: fc.array(fc.integer({ min: 1, max: 20 }), { maxLength: 3 }) })),
  w(1, fc.record({ op: fc.constant('registerWorker'), workerId: fc.integer({ min: 1, max: 3 }), instance: fc.constantFrom('a', 'b'), address: fc.constant('h:1'), domain: fc.constantFrom('', 'r1'), targets: fc.constantFrom([], [{ targetId: 1, path: '/x', capacityBytes: 5 }], [{ targetId: 2, path: '/y', capacityBytes: 0 }], [{ targetId: 3, path: '/z', capacityBytes: 1 }]) })),
  w(1, fc.record({ op: fc.constant('addChains'), tableId: fc.constantFrom(1, 2), chains: fc.constantFrom([{ chainId: 1, targetIds: [1] }], [{ chainId: 2, targetIds: [1, 2] }], [{ chainId: 3, targetIds: [2, 3] }, { chainId: 4, targetIds: [1] }]) })),
  w(1, fc.record({ op: fc.constant('updateChains'), chains: fc.constantFrom(
    [{ chainId: 1, version: 1, targets: [{ targetId: 1, state: 'offline' }] }],
    [{ chainId: 2, version: 1, targets: [{ targetId: 2, state: 'serving' }, { targetId: 1, state: 'offline' }] }],
    [{ chainId: 2, version: 2, targets: [{ targetId: 2, state: 'serving' }, { targetId: 1, state: 'syncing' }] }],
    [{ chainId: 3, version: 1, targets: [{ targetId: 3, state: 'lastsrv' }] }],
  ) })),
  w(1, fc.record({ op: fc.constant('decommissionWorker'), workerId: fc.integer({ min: 1, max: 3 }) })),
  w(1, fc.record({ op: fc.constant('replaceChainMember'), chainId: fc.integer({ min: 1, max: 4 }), version: fc.integer({ min: 1, max: 3 }), lostTargetId: fc.integer({ min: 1, max: 3 }), newTargetId: fc.integer({ min: 1, max: 3 }) })),
  w(1, fc.record({ op: fc.constant('targetReclaimed'), targetId: fc.integer({ min: 1, max: 3 }), leftChainAt: fc.integer({ min: 1, max: 12 }) })),
  w(1, fc.record({ op: fc.constant('noop') })),
);
/** Who each of the three clients acts as: root, and two users (so that permission checks run too). */
const callers = [rootCaller, { uid: 1, gid: 1, groups: [2] }, { uid: 2, gid: 2, groups: [] }];
/** A command from one of three clients, sometimes a retry of that client's last seq, with time jumps. */
const stepArb = fc.record({ body: bodyArb, client: fc.nat(2), retry: fc.boolean(), advanceMs: fc.oneof(fc.nat(20), fc.constant(500)) });

test('property: a copy restored from a snapshot midway applies the rest to the same state', () => {
  fc.assert(
    fc.property(fc.array(stepArb, { minLength: 1, maxLength: 120, size: 'max' }), fc.nat(120), (steps, cutRaw) => {
      const cut = cutRaw % (steps.length + 1);
      const options = { clientIdleMsMax: 300, clientsMax: 2, sessionsMax: 4 };
      const original = new MetaState(options);
      let copy: MetaState | undefined;
      const seqs = [0, 0, 0];
      let nowMs = 0;
      const results: unknown[][] = [[], []];
      steps.forEach((step, i) => {
        if (i === cut) copy = MetaState.restore(original.snapshot());
        nowMs += step.advanceMs;
        const seq = step.retry && seqs[step.client] > 0 ? seqs[step.client] : ++seqs[step.client];
        const caller = namespaceCommandOps.has(step.body.op as string) ? { caller: callers[step.client] } : {};
        const cmd = { ...step.body, ...caller, clientId: `c${step.client}`, seq, nowMs } as MetaCommand;
        results[0].push(original.apply(i + 1, cmd));
        if (copy !== undefined) results[1].push(copy.apply(i + 1, cmd));
      });
      copy ??= MetaState.restore(original.snapshot());
      assert.deepEqual(results[1], results[0].slice(cut), 'the copy answers the same');
      assert.equal(copy.stateHash(), original.stateHash());
      // And the end state passes every structural check of restore.
      assert.equal(MetaState.restore(original.snapshot()).stateHash(), original.stateHash());
    }),
    { numRuns: 300 },
  );
});

test('S3 access keys: kept through a snapshot with their secrets; a damaged or misplaced record is refused', () => {
  const log = populated(6);
  log.ok({ op: 's3UserAdd', accessKeyId: 'AKIDALICE', secretKey: 'alice-secret-1', buckets: ['photos', 'logs'], uid: 1000, gid: 100 });
  log.ok({ op: 's3UserAdd', accessKeyId: 'AKIDADMIN', secretKey: 'admin-secret-1', buckets: ['*'], uid: 0, gid: 0 });
  const chunks = [...log.state.snapshot()];
  const copy = MetaState.restore(chunks);
  assert.equal(copy.stateHash(), log.state.stateHash());
  const alice = copy.query({ op: 's3Credential', accessKeyId: 'AKIDALICE' });
  assert.ok(alice.ok);
  assert.deepEqual(alice.value, { accessKeyId: 'AKIDALICE', secretKey: 'alice-secret-1', buckets: ['logs', 'photos'], uid: 1000, gid: 100, createdMs: (alice.value as { createdMs: number }).createdMs });
  const usersAt = chunks.findIndex((c) => kindOf(c) === 11);
  assert.equal(usersAt, chunks.length - 2, 'the keys come last (no dashboard users here), before the end');
  assert.match(corruptCode(rewriteChunk(chunks, usersAt, (rs) => (rs as unknown[][]).map((r) => [r[0], '', ...r.slice(2)]))), /S3 user 'AKIDADMIN' has an invalid secret/);
  assert.match(corruptCode(rewriteChunk(chunks, usersAt, (rs) => (rs as unknown[][]).reverse())), /out of order or repeated/);
  assert.match(corruptCode(rewriteChunk(chunks, usersAt, (rs) => (rs as unknown[][]).map((r) => [r[0], r[1], ['Bad_Bucket'], ...r.slice(3)]))), /invalid bucket name/);
  // A format 5 snapshot has no such section: one there is damage.
  assert.match(corruptCode(asFormat(chunks, 5)), /records in a chunk of kind 11/);
});

const hashOf = (c: string): string => `scrypt$16384$8$1$${'s'.repeat(22)}$${c.repeat(43)}`;

test('dashboard users: kept through a snapshot with their password hashes; a damaged or misplaced record is refused', () => {
  const log = populated(6);
  log.ok({ op: 'dashboardUserAdd', name: 'ops', passwordHash: hashOf('a'), uid: 0, gid: 0 });
  log.ok({ op: 'dashboardUserAdd', name: 'alice', passwordHash: hashOf('b'), uid: 1000, gid: 100 });
  assert.equal(log.run({ op: 'dashboardUserAdd', name: 'ops', passwordHash: hashOf('c'), uid: 0, gid: 0 }).ok, false, 'a second add of one name is refused');
  const chunks = [...log.state.snapshot()];
  const copy = MetaState.restore(chunks);
  assert.equal(copy.stateHash(), log.state.stateHash());
  assert.equal(copy.dashboardUser('ops')?.passwordHash, hashOf('a'));
  assert.equal(copy.dashboardUser('alice')?.uid, 1000);
  const listed = copy.query({ op: 'dashboardUsers' });
  assert.ok(listed.ok);
  assert.deepEqual((listed.value as { name: string }[]).map((u) => u.name), ['alice', 'ops']);
  assert.ok(!JSON.stringify(listed.value).includes('scrypt'), 'listings carry no hashes');
  const usersAt = chunks.findIndex((c) => kindOf(c) === 12);
  assert.equal(usersAt, chunks.length - 2, 'the logins come last, before the end');
  assert.match(corruptCode(rewriteChunk(chunks, usersAt, (rs) => (rs as unknown[][]).map((r) => [r[0], 'plain-password', ...r.slice(2)]))), /dashboard user 'alice' has an invalid password hash/);
  assert.match(corruptCode(rewriteChunk(chunks, usersAt, (rs) => (rs as unknown[][]).reverse())), /out of order or repeated/);
  assert.match(corruptCode(asFormat(chunks, 6)), /records in a chunk of kind 12/);
  log.ok({ op: 'dashboardUserRemove', name: 'ops' });
  assert.equal(log.state.dashboardUser('ops'), undefined);
});

test('extended attributes: kept through a snapshot; a damaged list is refused', () => {
  const log = populated(6);
  log.ok({ op: 'setxattr', path: '/a/b/f1', name: 'user.b', value: Buffer.from('two'), flags: 0 });
  log.ok({ op: 'setxattr', path: '/a/b/f1', name: 'user.a', value: new Uint8Array([0, 1, 255]), flags: 0 });
  const chunks = [...log.state.snapshot()];
  const copy = MetaState.restore(chunks);
  assert.equal(copy.stateHash(), log.state.stateHash());
  const got = copy.query({ op: 'getxattr', path: '/a/b/f1', name: 'user.a', caller: rootCaller });
  assert.ok(got.ok);
  assert.deepEqual([...(got.value as Uint8Array)], [0, 1, 255]);
  const inodesAt = chunks.findIndex((c) => kindOf(c) === 1);
  const edit = (f: (x: unknown[][]) => unknown): Uint8Array[] => rewriteChunk(chunks, inodesAt, (rs) => (rs as unknown[][]).map((r) => (r[15] === null ? r : [...r.slice(0, 15), f(r[15] as unknown[][])])));
  assert.match(corruptCode(edit((x) => [...x].reverse())), /out of order or repeated/);
  assert.match(corruptCode(edit((x) => x.map(([n, v]) => [`trusted.${String(n)}`, v]))), /a bad name/);
  assert.match(corruptCode(edit((x) => x.map(([n]) => [n, 'not bytes']))), /no value or a value too large/);
  assert.match(corruptCode(edit(() => [])), /not a non-empty list/);
});
