// Tests of the metadata commands and queries at the boundary: validation with clear EINVAL and
// ENAMETOOLONG errors, defaults, and the msgpack encoding.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  callerGroupsMax,
  chainLengthMax,
  chunkSizeBytesDefault,
  stripeWidthDefault,
  commandBytesMax,
  decodeCommand,
  encodeCommand,
  MetaError,
  rootCaller,
  validateCommand,
  validateQuery,
} from '../../src/meta/index.ts';
import type { MetaCommand } from '../../src/meta/index.ts';
import { Packr } from 'msgpackr';

const stamp = { clientId: 'client-1', seq: 1, nowMs: 1_700_000_000_000 };
/** The stamp of a namespace command: also who sends it. */
const caller = { uid: 1000, gid: 100, groups: [4, 27] };
const nstamp = { ...stamp, caller };

function refused(x: unknown, code: string, pattern: RegExp): void {
  assert.throws(
    () => validateCommand(x),
    (err: unknown) => {
      assert.ok(err instanceof MetaError, `not a MetaError: ${String(err)}`);
      assert.equal(err.code, code, err.message);
      assert.match(err.message, pattern);
      return true;
    },
    `accepted: ${JSON.stringify(x)?.slice(0, 200)}`,
  );
}

const valid: MetaCommand[] = [
  { op: 'noop', ...stamp },
  { op: 'mkdir', ...nstamp, path: '/a/b', mode: 0o755, uid: 0, gid: 0, parents: true },
  { op: 'create', ...nstamp, path: '/a/f', mode: 0o644, uid: 1, gid: 2, exclusive: true },
  { op: 'create', ...nstamp, path: '/a/.t', mode: 0o644, uid: 1, gid: 2, exclusive: true, openSession: true, ephemeral: true },
  {
    op: 'create', ...nstamp, path: '/a/g', mode: 0o644, uid: 1, gid: 2, exclusive: false,
    layout: { chunkSizeBytes: 65536, stripeWidth: 4, chainTableId: 1, chainTableVersion: 3, shuffleSeed: 0xffff_ffff },
  },
  { op: 'unlink', ...nstamp, path: '/a/f' },
  { op: 'rmdir', ...nstamp, path: '/a' },
  { op: 'rename', ...nstamp, from: '/a', to: '/b' },
  { op: 'symlink', ...nstamp, path: '/s', target: '../x', uid: 0, gid: 0 },
  { op: 'link', ...nstamp, existing: '/a/f', path: '/a/h' },
  { op: 'setattr', ...nstamp, path: '/a/f', mode: 0o7777, uid: 3, gid: 4, atimeMs: -1, mtimeMs: 5, sizeBytes: 2 ** 40 },
  { op: 'openSession', ...nstamp, path: '/a/f', sessionId: 'w-1', truncate: true },
  { op: 'openSession', ...nstamp, path: '/a/f', truncate: false },
  { op: 'closeSession', ...nstamp, sessionId: 'w-1', lengthBytes: 0 },
  { op: 'closeSession', ...nstamp, sessionId: 'w-1', abandoned: true },
  { op: 'commitLength', ...nstamp, path: '/a/f', lengthBytes: 10 },
  { op: 'commitLength', ...nstamp, inodeId: 7, lengthBytes: 10 },
  { op: 'gcDone', ...stamp, inodeIds: [3, 4] },
  { op: 'expireSessions', ...stamp, sessionIds: ['@1', 'w-1'] },
  { op: 'resizeTargets', ...stamp, targets: [{ targetId: 1, capacityBytes: 2 ** 40 }, { targetId: 2, capacityBytes: 0 }] },
  { op: 'targetReclaimed', ...stamp, targetId: 2001, leftChainAt: 17 },
  { op: 'initCluster', ...stamp, clusterId: 'c0ffee' },
  { op: 'registerWorker', ...stamp, workerId: 1, instance: 'i1', address: '[::1]:9000', domain: 'rack-1', targets: [{ targetId: 1, path: '/data', capacityBytes: 1 << 30 }] },
  { op: 'registerWorker', ...stamp, workerId: 2, instance: 'i1', address: 'h:1', domain: '', targets: [] },
  { op: 'addChains', ...stamp, tableId: 1, chains: [{ chainId: 1, targetIds: [1, 2, 3] }, { chainId: 2, targetIds: [4, 5, 6] }] },
  { op: 'updateChains', ...stamp, chains: [{ chainId: 1, version: 3, targets: [{ targetId: 2, state: 'serving' }, { targetId: 1, state: 'lastsrv' }] }] },
  { op: 'decommissionWorker', ...stamp, workerId: 2 },
  { op: 'replaceChainMember', ...stamp, chainId: 1, version: 4, lostTargetId: 2001, newTargetId: 4002 },
  { op: 'moveChainMember', ...stamp, chainId: 1, version: 4, fromTargetId: 2001, toTargetId: 4002 },
  { op: 'endChainMove', ...stamp, chainId: 1, version: 5, outcome: 'done' },
  { op: 'endChainMove', ...stamp, chainId: 1, version: 5, outcome: 'cancelled' },
];

test('every valid command passes validation unchanged and round-trips through msgpack', () => {
  for (const cmd of valid) {
    assert.deepEqual(validateCommand(cmd), cmd);
    const bytes = encodeCommand(cmd);
    assert.ok(bytes instanceof Uint8Array);
    assert.deepEqual(decodeCommand(bytes), cmd);
  }
});

test('validation fills in defaults and returns a fresh object', () => {
  const input = { op: 'create', ...nstamp, path: '/f', mode: 0o644, uid: 0, gid: 0, layout: { chainTableId: 2, chainTableVersion: 0, shuffleSeed: 9 } };
  const cmd = validateCommand(input);
  assert.deepEqual(cmd, {
    op: 'create', ...nstamp, path: '/f', mode: 0o644, uid: 0, gid: 0, exclusive: false,
    layout: { chunkSizeBytes: chunkSizeBytesDefault, stripeWidth: stripeWidthDefault, chainTableId: 2, chainTableVersion: 0, shuffleSeed: 9 },
  });
  assert.notEqual(cmd, input);
  assert.deepEqual(validateCommand({ op: 'mkdir', ...nstamp, path: '/d', mode: 0o755, uid: 0, gid: 0 }), {
    op: 'mkdir', ...nstamp, path: '/d', mode: 0o755, uid: 0, gid: 0, parents: false,
  });
  assert.deepEqual(validateCommand({ op: 'openSession', ...nstamp, path: '/f' }), { op: 'openSession', ...nstamp, path: '/f', truncate: false });
});

test('the stamp: clientId, seq and nowMs are required and checked', () => {
  const base = { op: 'noop', ...stamp };
  refused({ op: 'noop', seq: 1, nowMs: 0 }, 'EINVAL', /missing field 'clientId'/);
  refused({ ...base, clientId: '' }, 'EINVAL', /'clientId' is empty/);
  refused({ ...base, clientId: 7 }, 'EINVAL', /'clientId' must be a string, not number 7/);
  refused({ ...base, clientId: 'x'.repeat(129) }, 'ENAMETOOLONG', /'clientId' of 129 bytes/);
  refused({ ...base, seq: 0 }, 'EINVAL', /'seq' = 0 is out of range/);
  refused({ ...base, seq: 1.5 }, 'EINVAL', /'seq' must be an integer/);
  refused({ ...base, seq: '1' }, 'EINVAL', /'seq' must be an integer, not string '1'/);
  refused({ ...base, nowMs: -1 }, 'EINVAL', /'nowMs' = -1 is out of range/);
  refused({ ...base, nowMs: Number.NaN }, 'EINVAL', /'nowMs' must be an integer/);
  refused({ op: 'noop', clientId: 'c', seq: 1 }, 'EINVAL', /noop command: missing field 'nowMs'/);
});

test('the shape: objects only, known ops only, no unknown fields', () => {
  refused(null, 'EINVAL', /command must be an object, not null/);
  refused([1], 'EINVAL', /not an array/);
  refused('mkdir', 'EINVAL', /must be an object/);
  refused(new Uint8Array(3), 'EINVAL', /must be an object/);
  refused({ ...stamp }, 'EINVAL', /missing field 'op'/);
  refused({ op: 'format', ...stamp }, 'EINVAL', /unknown command op string 'format'/);
  refused({ op: 'toString', ...stamp }, 'EINVAL', /unknown command op/);
  refused({ op: 'unlink', ...nstamp, path: '/f', force: true }, 'EINVAL', /unlink command: unknown field 'force'/);
  refused({ op: 'setattr', ...nstamp, path: '/f', size: 3 }, 'EINVAL', /unknown field 'size'/);
  refused(JSON.parse(`{"op":"noop","clientId":"c","seq":1,"nowMs":0,"__proto__":{"x":1}}`), 'EINVAL', /unknown field '__proto__'/);
});

test('paths and names: absolute, canonical, no NUL, bounded in bytes', () => {
  const mk = (path: unknown) => ({ op: 'mkdir', ...nstamp, path, mode: 0o755, uid: 0, gid: 0 });
  refused(mk('a/b'), 'EINVAL', /'a\/b' is not absolute/);
  refused(mk(''), 'EINVAL', /is not absolute/);
  refused(mk('/a//b'), 'EINVAL', /empty name/);
  refused(mk('/a/b/'), 'EINVAL', /ends with '\/'/);
  refused(mk('/a/./b'), 'EINVAL', /name '\.' is reserved/);
  refused(mk('/a/../b'), 'EINVAL', /name '\.\.' is reserved/);
  refused(mk('/a/\0b'), 'EINVAL', /NUL/);
  refused(mk('/a/\ud800'), 'EINVAL', /lone surrogate/);
  refused(mk(5), 'EINVAL', /'path' must be a string/);
  refused(mk(`/${'n'.repeat(256)}`), 'ENAMETOOLONG', /name of 256 bytes is longer than 255/);
  refused(mk(`/${'é'.repeat(128)}`), 'ENAMETOOLONG', /name of 256 bytes/);
  assert.equal((validateCommand(mk(`/${'é'.repeat(127)}`)) as { path: string }).path.length, 128);
  const deep = `/${Array.from({ length: 5462 }, () => 'ab').join('/')}`;
  assert.equal(Buffer.byteLength(deep), 16386);
  refused(mk(deep), 'ENAMETOOLONG', /of 16386 bytes is longer than 16384/);
  assert.equal((validateCommand(mk(deep.slice(0, 16383))) as { path: string }).path.length, 16383);
  refused({ op: 'rename', ...nstamp, from: '/a', to: 'b' }, 'EINVAL', /rename command: 'to' 'b' is not absolute/);
  refused({ op: 'symlink', ...nstamp, path: '/s', target: '', uid: 0, gid: 0 }, 'EINVAL', /'target' is empty/);
  refused({ op: 'symlink', ...nstamp, path: '/s', target: 'x'.repeat(4097), uid: 0, gid: 0 }, 'ENAMETOOLONG', /'target'/);
});

test('numbers: modes, ids, sizes and times in range', () => {
  const mk = (extra: object) => ({ op: 'mkdir', ...nstamp, path: '/d', mode: 0o755, uid: 0, gid: 0, ...extra });
  refused(mk({ mode: 0o10000 }), 'EINVAL', /'mode' = 4096 is out of range \[0, 4095\]/);
  refused(mk({ mode: -1 }), 'EINVAL', /'mode'/);
  refused(mk({ uid: 2 ** 32 }), 'EINVAL', /'uid'/);
  refused(mk({ gid: -1 }), 'EINVAL', /'gid'/);
  refused(mk({ parents: 'yes' }), 'EINVAL', /'parents' must be a boolean/);
  refused({ op: 'setattr', ...nstamp, path: '/f', sizeBytes: -1 }, 'EINVAL', /'sizeBytes' = -1 is out of range/);
  refused({ op: 'setattr', ...nstamp, path: '/f', sizeBytes: 2 ** 53 }, 'EINVAL', /'sizeBytes' must be an integer/);
  refused({ op: 'setattr', ...nstamp, path: '/f' }, 'EINVAL', /nothing to change/);
  refused({ op: 'closeSession', ...nstamp, sessionId: 's', lengthBytes: -5 }, 'EINVAL', /'lengthBytes'/);
  refused({ op: 'closeSession', ...nstamp, sessionId: 's', lengthBytes: 5, abandoned: true }, 'EINVAL', /commits nothing/);
  refused({ op: 'create', ...nstamp, path: '/f', mode: 0o644, uid: 0, gid: 0, exclusive: false, openSession: true, ephemeral: true }, 'EINVAL', /'ephemeral' needs/);
  refused({ op: 'commitLength', ...nstamp, lengthBytes: 1 }, 'EINVAL', /exactly one of 'path' and 'inodeId'/);
  refused({ op: 'commitLength', ...nstamp, path: '/f', inodeId: 3, lengthBytes: 1 }, 'EINVAL', /exactly one/);
  refused({ op: 'commitLength', ...nstamp, inodeId: 0, lengthBytes: 1 }, 'EINVAL', /'inodeId' = 0/);
  refused({ op: 'gcDone', ...stamp, inodeIds: [1, 'x'] }, 'EINVAL', /'inodeIds\[1\]' must be an integer/);
  refused({ op: 'targetReclaimed', ...stamp, targetId: 1, leftChainAt: 0 }, 'EINVAL', /'leftChainAt' = 0/);
  refused({ op: 'expireSessions', ...stamp, sessionIds: ['x'.repeat(129)] }, 'ENAMETOOLONG', /sessionIds\[0\]/);
  refused({ op: 'resizeTargets', ...stamp, targets: [{ targetId: 1, capacityBytes: 1 }, { targetId: 1, capacityBytes: 2 }] }, 'EINVAL', /listed twice/);
  refused({ op: 'resizeTargets', ...stamp, targets: [{ targetId: 1, capacityBytes: -1 }] }, 'EINVAL', /'capacityBytes'/);
  refused({ op: 'openSession', ...nstamp, path: '/f', sessionId: '@1' }, 'EINVAL', /may not start with '@'/);
});

test('the caller: required on namespace commands and queries, refused on the others, every field checked', () => {
  for (const cmd of valid) {
    const { caller: _, ...without } = cmd as MetaCommand & { caller?: unknown };
    if ('caller' in cmd) refused(without, 'EINVAL', new RegExp(`${cmd.op} command: missing field 'caller'.*upgraded`));
    else refused({ ...cmd, caller }, 'EINVAL', new RegExp(`${cmd.op} command: unknown field 'caller'`));
  }
  const mk = (c: unknown) => ({ op: 'unlink', ...stamp, path: '/f', caller: c });
  assert.deepEqual(validateCommand(mk({ uid: 7, gid: 8 })), { op: 'unlink', ...stamp, path: '/f', caller: { uid: 7, gid: 8, groups: [] } }, 'no groups: none');
  const most = Array.from({ length: callerGroupsMax }, (_, i) => i);
  assert.deepEqual((validateCommand(mk({ uid: 0, gid: 0, groups: most })) as { caller: unknown }).caller, { uid: 0, gid: 0, groups: most });
  refused(mk({ uid: 0, gid: 0, groups: [...most, 99] }), 'EINVAL', /caller: 'groups' has 33 items, more than 32/);
  refused(mk({ uid: 0, gid: 0, groups: [1, -1] }), 'EINVAL', /caller: 'groups\[1\]' = -1 is out of range/);
  refused(mk({ uid: 0, gid: 0, groups: [2 ** 32] }), 'EINVAL', /'groups\[0\]'/);
  refused(mk({ uid: 0, gid: 0, groups: 5 }), 'EINVAL', /'groups' must be an array/);
  refused(mk({ uid: 2 ** 32, gid: 0 }), 'EINVAL', /caller: 'uid' = 4294967296 is out of range/);
  refused(mk({ uid: '0', gid: 0 }), 'EINVAL', /caller: 'uid' must be an integer/);
  refused(mk({ uid: 0 }), 'EINVAL', /caller: missing field 'gid'/);
  refused(mk({ uid: 0, gid: 0, root: true }), 'EINVAL', /caller: unknown field 'root'/);
  refused(mk(0), 'EINVAL', /caller must be an object, not number 0/);
  const q = (x: object) => () => validateQuery(x);
  for (const op of ['stat', 'readlink', 'open']) assert.throws(q({ op, path: '/f' }), /missing field 'caller'/);
  assert.throws(q({ op: 'readdir', path: '/', limit: 1 }), /missing field 'caller'/);
  assert.throws(q({ op: 'lookup', parentId: 1, name: 'f' }), /missing field 'caller'/);
  assert.throws(q({ op: 'statInode', inodeId: 1 }), /missing field 'caller'/);
  assert.throws(q({ op: 'stat', path: '/f', caller: { uid: -1, gid: 0 } }), /'uid' = -1/);
  assert.throws(q({ op: 'statfs', caller }), /unknown field 'caller'/);
  assert.throws(q({ op: 'workers', caller }), /unknown field 'caller'/);
});

test('a log entry written before callers were carried replays as root; one with a caller keeps it', () => {
  const old = new Packr({ useRecords: false }).pack({ op: 'mkdir', ...stamp, path: '/d', mode: 0o755, uid: 0, gid: 0, parents: false });
  assert.deepEqual(decodeCommand(old), { op: 'mkdir', ...stamp, path: '/d', mode: 0o755, uid: 0, gid: 0, parents: false, caller: rootCaller });
  const cmd = validateCommand({ op: 'unlink', ...nstamp, path: '/f' });
  assert.deepEqual(decodeCommand(encodeCommand(cmd)), cmd);
  const cluster = new Packr({ useRecords: false }).pack({ op: 'noop', ...stamp, caller });
  assert.throws(() => decodeCommand(cluster), /unknown field 'caller'/);
});

test('setattr timesNow: the masters\' clock for both times, not with given times', () => {
  const set = (extra: object) => ({ op: 'setattr', ...nstamp, path: '/f', ...extra });
  assert.deepEqual(validateCommand(set({ timesNow: true })), set({ timesNow: true }));
  assert.deepEqual(validateCommand(set({ timesNow: false, mode: 1 })), set({ mode: 1 }), 'false is left out');
  refused(set({ timesNow: true, atimeMs: 5 }), 'EINVAL', /'timesNow'.*not both/);
  refused(set({ timesNow: true, mtimeMs: 5 }), 'EINVAL', /not both/);
  refused(set({ timesNow: false }), 'EINVAL', /nothing to change/);
  refused(set({ timesNow: 'yes' }), 'EINVAL', /'timesNow' must be a boolean/);
});

test('layouts: chunk size a power of two in 64 KiB..64 MiB, stripe width >= 1, ids in range', () => {
  const mk = (layout: object) => ({ op: 'create', ...nstamp, path: '/f', mode: 0o644, uid: 0, gid: 0, layout: { chainTableId: 1, chainTableVersion: 0, shuffleSeed: 0, ...layout } });
  refused(mk({ chunkSizeBytes: 32 * 1024 }), 'EINVAL', /'chunkSizeBytes' = 32768 is out of range \[65536, 67108864\]/);
  refused(mk({ chunkSizeBytes: 128 * 1024 * 1024 }), 'EINVAL', /'chunkSizeBytes'/);
  refused(mk({ chunkSizeBytes: 3 * 65536 }), 'EINVAL', /not a power of two/);
  refused(mk({ stripeWidth: 0 }), 'EINVAL', /'stripeWidth' = 0/);
  refused(mk({ chainTableId: 0 }), 'EINVAL', /'chainTableId' = 0/);
  refused(mk({ shuffleSeed: 2 ** 32 }), 'EINVAL', /'shuffleSeed'/);
  refused(mk({ extra: 1 }), 'EINVAL', /layout: unknown field 'extra'/);
  refused({ op: 'create', ...nstamp, path: '/f', mode: 0o644, uid: 0, gid: 0, layout: 5 }, 'EINVAL', /layout must be an object/);
  for (const chunkSizeBytes of [65536, 1 << 20, 64 * 1024 * 1024]) assert.ok(validateCommand(mk({ chunkSizeBytes })));
});

test('cluster commands: ids, addresses, states and chains are checked', () => {
  const reg = (extra: object) => ({ op: 'registerWorker', ...stamp, workerId: 1, instance: 'i1', address: 'h:1', targets: [], ...extra });
  refused(reg({ workerId: 0 }), 'EINVAL', /'workerId' = 0/);
  refused(reg({ address: 'nohost' }), 'EINVAL', /'address' must be host:port/);
  refused(reg({ address: 'h:0' }), 'EINVAL', /host:port/);
  refused(reg({ address: 'h:70000' }), 'EINVAL', /host:port/);
  refused(reg({ address: ':80' }), 'EINVAL', /host:port/);
  refused(reg({ targets: [{ targetId: 1, path: '/a', capacityBytes: 0 }, { targetId: 1, path: '/b', capacityBytes: 0 }] }), 'EINVAL', /target 1 is listed twice/);
  refused(reg({ targets: [{ targetId: 1, capacityBytes: 0 }] }), 'EINVAL', /targets\[0\]: missing field 'path'/);
  refused(reg({ targets: [{ targetId: 1, path: '/a' }] }), 'EINVAL', /targets\[0\]: missing field 'capacityBytes'/);
  refused(reg({ targets: [{ targetId: 1, path: '/a', capacityBytes: -1 }] }), 'EINVAL', /'capacityBytes' = -1/);
  refused(reg({ targets: Array.from({ length: 257 }, (_, i) => ({ targetId: i + 1, path: '/t', capacityBytes: 0 })) }), 'EINVAL', /257 items, more than 256/);
  refused(reg({ domain: 'x'.repeat(300) }), 'ENAMETOOLONG', /'domain'/);
  assert.equal((validateCommand(reg({})) as { domain: string }).domain, '', 'no domain is the empty one');
  const add = (chains: unknown) => ({ op: 'addChains', ...stamp, tableId: 1, chains });
  refused(add([{ chainId: 1, targetIds: [1, 2] }, { chainId: 2, targetIds: [] }]), 'EINVAL', /'targetIds' has 0 targets/);
  refused(add([{ chainId: 1, targetIds: [1, 1] }]), 'EINVAL', /lists a target twice/);
  refused(add([{ chainId: 1, targetIds: [1, -2] }]), 'EINVAL', /'targetIds\[1\]' = -2/);
  refused(add([{ chainId: 1, targetIds: Array.from({ length: chainLengthMax + 1 }, (_, i) => i + 1) }]), 'EINVAL', /has 17 targets/);
  refused(add([{ chainId: 1, targetIds: [1] }, { chainId: 1, targetIds: [2] }]), 'EINVAL', /chain 1 is listed twice/);
  refused(add('x'), 'EINVAL', /'chains' must be an array/);
  refused(add([{ chainId: 0, targetIds: [1] }]), 'EINVAL', /'chainId' = 0/);
  const upd = (targets: unknown, version = 1) => ({ op: 'updateChains', ...stamp, chains: [{ chainId: 1, version, targets }] });
  refused(upd([{ targetId: 1, state: 'happy' }]), 'EINVAL', /'state' must be one of serving, syncing, waiting, lastsrv, offline/);
  refused(upd([]), 'EINVAL', /'targets' is empty/);
  refused(upd([{ targetId: 1, state: 'serving' }, { targetId: 1, state: 'offline' }]), 'EINVAL', /listed twice/);
  refused(upd([{ targetId: 1, state: 'serving' }], 0), 'EINVAL', /'version' = 0/);
});

test('decommissionWorker and replaceChainMember: ids checked, nothing else accepted', () => {
  const dec = (extra: object) => ({ op: 'decommissionWorker', ...stamp, workerId: 3, ...extra });
  refused(dec({ workerId: 0 }), 'EINVAL', /'workerId' = 0/);
  refused(dec({ workerId: 2 ** 32 }), 'EINVAL', /'workerId'/);
  refused(dec({ workerId: '3' }), 'EINVAL', /'workerId'/);
  refused(dec({ force: true }), 'EINVAL', /unknown field 'force'/);
  refused({ op: 'decommissionWorker', ...stamp }, 'EINVAL', /missing field 'workerId'/);
  const rep = (extra: object) => ({ op: 'replaceChainMember', ...stamp, chainId: 1, version: 2, lostTargetId: 11, newTargetId: 41, ...extra });
  assert.deepEqual(validateCommand(rep({})), rep({}));
  refused(rep({ chainId: 0 }), 'EINVAL', /'chainId' = 0/);
  refused(rep({ version: 0 }), 'EINVAL', /'version' = 0/);
  refused(rep({ lostTargetId: -1 }), 'EINVAL', /'lostTargetId' = -1/);
  refused(rep({ newTargetId: 1.5 }), 'EINVAL', /'newTargetId'/);
  refused(rep({ newTargetId: 11 }), 'EINVAL', /target 11 cannot replace itself/);
  refused(rep({ state: 'syncing' }), 'EINVAL', /unknown field 'state'/);
  refused({ op: 'replaceChainMember', ...stamp, chainId: 1, version: 2, lostTargetId: 11 }, 'EINVAL', /missing field 'newTargetId'/);
});

test('moveChainMember and endChainMove: ids and outcome checked, nothing else accepted', () => {
  const mv = (extra: object) => ({ op: 'moveChainMember', ...stamp, chainId: 1, version: 2, fromTargetId: 11, toTargetId: 41, ...extra });
  assert.deepEqual(validateCommand(mv({})), mv({}));
  refused(mv({ chainId: 0 }), 'EINVAL', /'chainId' = 0/);
  refused(mv({ fromTargetId: 'x' }), 'EINVAL', /'fromTargetId'/);
  refused(mv({ toTargetId: 11 }), 'EINVAL', /target 11 cannot move to itself/);
  refused(mv({ force: true }), 'EINVAL', /unknown field 'force'/);
  const end = (extra: object) => ({ op: 'endChainMove', ...stamp, chainId: 1, version: 2, outcome: 'done', ...extra });
  assert.deepEqual(validateCommand(end({})), end({}));
  refused(end({ outcome: 'maybe' }), 'EINVAL', /'outcome' must be one of done, cancelled/);
  refused(end({ outcome: 1 }), 'EINVAL', /'outcome'/);
  refused({ op: 'endChainMove', ...stamp, chainId: 1, version: 2 }, 'EINVAL', /outcome/);
});

test('decodeCommand refuses garbage, trailing bytes, oversized entries and invalid content with EINVAL', () => {
  const codeOf = (bytes: Uint8Array) => {
    try {
      decodeCommand(bytes);
      return 'ok';
    } catch (err) {
      assert.ok(err instanceof MetaError);
      return err.code;
    }
  };
  const good = encodeCommand(valid[1]);
  assert.equal(codeOf(good), 'ok');
  assert.equal(codeOf(good.subarray(0, good.length - 3)), 'EINVAL');
  assert.equal(codeOf(new Uint8Array([...good, 0])), 'EINVAL');
  assert.equal(codeOf(new Uint8Array([0xc1])), 'EINVAL');
  assert.equal(codeOf(new Uint8Array(commandBytesMax + 1)), 'EINVAL');
  assert.equal(codeOf(new Packr({ useRecords: false }).pack({ op: 'mkdir', ...nstamp, path: 'rel', mode: 0, uid: 0, gid: 0 })), 'EINVAL');
});

test('property: whatever the input, validateCommand returns a command or throws a MetaError', () => {
  const field = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.integer(), { maxLength: 3 }), fc.constant(caller));
  const ops = valid.map((c) => c.op);
  fc.assert(
    fc.property(fc.constantFrom(...ops), fc.dictionary(fc.constantFrom('path', 'mode', 'uid', 'gid', 'seq', 'nowMs', 'clientId', 'targets', 'chains', 'from', 'to', 'lengthBytes', 'caller'), field), (op, fields) => {
      try {
        const cmd = validateCommand({ op, ...fields });
        assert.deepEqual(decodeCommand(encodeCommand(cmd)), cmd);
      } catch (err) {
        assert.ok(err instanceof MetaError, String(err));
      }
    }),
    { numRuns: 2000 },
  );
});

test('validateQuery checks queries the same way', () => {
  assert.deepEqual(validateQuery({ op: 'readdir', path: '/d', limit: 10, caller }), { op: 'readdir', path: '/d', limit: 10, caller });
  assert.deepEqual(validateQuery({ op: 'readdir', path: '/d', after: 'x', limit: 10, caller }), { op: 'readdir', path: '/d', after: 'x', limit: 10, caller });
  assert.deepEqual(validateQuery({ op: 'lookup', parentId: 1, name: 'x', caller }), { op: 'lookup', parentId: 1, name: 'x', caller });
  assert.deepEqual(validateQuery({ op: 'open', path: '/f', caller }), { op: 'open', path: '/f', caller });
  assert.deepEqual(validateQuery({ op: 'statfs' }), { op: 'statfs' });
  const code = (x: unknown) => {
    try {
      validateQuery(x);
      return 'ok';
    } catch (err) {
      assert.ok(err instanceof MetaError);
      return err.code;
    }
  };
  assert.equal(code({ op: 'readdir', path: '/d', limit: 0, caller }), 'EINVAL');
  assert.equal(code({ op: 'readdir', path: '/d', limit: 1, after: 3, caller }), 'EINVAL');
  assert.equal(code({ op: 'lookup', parentId: 1, name: 'a/b', caller }), 'EINVAL');
  assert.equal(code({ op: 'lookup', parentId: 1, name: 'n'.repeat(256), caller }), 'ENAMETOOLONG');
  assert.equal(code({ op: 'stat', path: '/x/', caller }), 'EINVAL');
  assert.equal(code({ op: 'statfs', extra: 1 }), 'EINVAL');
  assert.equal(code({ op: 'mkdir', path: '/x' }), 'EINVAL');
});
