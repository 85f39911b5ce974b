// `cairn mount` against a real cluster (3 masters, 3 workers, replication 3) on 127.0.0.1, used as
// programs use a local disk: node:fs and tar/diff/cp through the kernel. Operations and their errnos,
// a tree of small files in and out with tar, close-to-open between two mounts, kill -9 of the
// daemon and of a worker mid-copy, and a seeded random-operation test against a model file
// (CAIRN_FUSE_OPS operations, default 2,000; replay with CAIRN_FUSE_SEED). `npm run test:fuse` runs
// the full sizes.

import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { freePort } from '../../src/free-port.ts';
import { Prng } from '../../src/sim/prng.ts';
import { DataCluster } from './data-cluster.ts';
import { fuseSkipReason, Mounts } from './fuse-mount.ts';
import { mainScript } from './process-cluster.ts';

const skip = fuseSkipReason();
/** Files in the tar test (CAIRN_FUSE_TREE_FILES, a multiple of 50). */
const treeFiles = Number(process.env.CAIRN_FUSE_TREE_FILES ?? 1_000);

/** Expects `p` to fail with errno `code`. */
/** A mount's metric from its /metrics (0 if absent). */
async function metricOf(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

async function fails(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: NodeJS.ErrnoException) => {
    assert.equal(err.code, code, err.message);
    return true;
  });
}

test('cairn mount: a cluster used through the kernel as a local disk', { skip, timeout: 600_000 }, async (t) => {
  let cluster: DataCluster | undefined;
  const mounts = await Mounts.create(t, () => cluster!.masters.addresses(), () => cluster!.masters.secret);
  cluster = await DataCluster.start(t, { masters: 3, workers: 3, targetsPerWorker: 2, heartbeatMs: 200, offlineTimeoutMs: 1_500 });
  const a = await mounts.mount('a');

  await t.test('operations, and the errnos programs expect', async () => {
    const p = (name: string): string => path.join(a.dir, name);
    await fs.writeFile(p('f'), 'hello');
    assert.equal(await fs.readFile(p('f'), 'utf8'), 'hello');
    await fs.appendFile(p('f'), ' world');
    assert.equal(await fs.readFile(p('f'), 'utf8'), 'hello world');
    await fs.truncate(p('f'), 5);
    assert.equal(await fs.readFile(p('f'), 'utf8'), 'hello');
    await fs.truncate(p('f'), 8); // grows with zeros
    assert.deepEqual(await fs.readFile(p('f')), Buffer.from('hello\0\0\0'));
    // Several chunks (4 MiB by default), with a hole of a whole chunk in the middle.
    const big = randomBytes(5 * 1024 * 1024 + 17);
    await fs.writeFile(p('big'), big);
    assert.ok((await fs.readFile(p('big'))).equals(big));
    const h = await fs.open(p('big'), 'r+');
    await h.write(Buffer.from('XY'), 0, 2, 13 * 1024 * 1024);
    await h.close();
    const after = await fs.readFile(p('big'));
    assert.equal(after.length, 13 * 1024 * 1024 + 2);
    assert.ok(after.subarray(0, big.length).equals(big));
    assert.ok(after.subarray(big.length, 13 * 1024 * 1024).equals(Buffer.alloc(13 * 1024 * 1024 - big.length)));

    await fs.mkdir(p('d'));
    await fails(fs.mkdir(p('d')), 'EEXIST');
    await fs.writeFile(p('d/x'), 'x');
    await fails(fs.rmdir(p('d')), 'ENOTEMPTY');
    await fails(fs.readFile(p('nope')), 'ENOENT');
    await fails(fs.readFile(p('d')), 'EISDIR');
    await fails(fs.unlink(p('d')), 'EISDIR');
    await fails(fs.readdir(p('f')), 'ENOTDIR');
    await fails(fs.writeFile(p('f/x'), ''), 'ENOTDIR');
    await fails(fs.writeFile(p('x'.repeat(256)), ''), 'ENAMETOOLONG');
    await fails(fs.open(p('f'), constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY), 'EEXIST');

    // O_TRUNC empties the file, opened for writing or (as Linux does) for reading; the rest of it is gone either way.
    for (const access of [constants.O_WRONLY, constants.O_RDONLY]) {
      await fs.writeFile(p('t'), 'some bytes');
      await (await fs.open(p('t'), access | constants.O_TRUNC)).close();
      assert.equal((await fs.stat(p('t'))).size, 0, `after open with O_TRUNC and ${access === constants.O_RDONLY ? 'O_RDONLY' : 'O_WRONLY'}`);
      assert.equal(await fs.readFile(p('t'), 'utf8'), '');
    }
    await fs.unlink(p('t'));

    // rename over an existing file replaces it; a directory into its own subtree is refused.
    await fs.writeFile(p('g'), 'gee');
    await fs.rename(p('g'), p('f'));
    assert.equal(await fs.readFile(p('f'), 'utf8'), 'gee');
    await fails(fs.access(p('g')), 'ENOENT');
    await fails(fs.rename(p('d'), p('d/sub')), 'EINVAL');

    await fs.symlink('d/x', p('s'));
    assert.equal(await fs.readlink(p('s')), 'd/x');
    assert.equal(await fs.readFile(p('s'), 'utf8'), 'x');
    assert.ok((await fs.lstat(p('s'))).isSymbolicLink());
    await fs.link(p('f'), p('f2'));
    assert.equal((await fs.stat(p('f2'))).nlink, 2);
    await fs.unlink(p('f'));
    assert.equal(await fs.readFile(p('f2'), 'utf8'), 'gee');

    await fs.chmod(p('f2'), 0o640);
    assert.equal((await fs.stat(p('f2'))).mode & 0o7777, 0o640);
    await fs.chown(p('f2'), 1234, 5678);
    const st = await fs.stat(p('f2'));
    assert.deepEqual([st.uid, st.gid], [1234, 5678]);
    const when = new Date('2024-02-03T04:05:06.789Z');
    await fs.utimes(p('f2'), when, when);
    assert.equal((await fs.stat(p('f2'))).mtimeMs, when.getTime());

    // The kernel checks permissions on the attributes: another user may not write a 0640 file.
    const denied = spawnSync('setpriv', ['--reuid=4321', '--regid=4321', '--clear-groups', 'sh', '-c', `echo no > ${p('f2')}`], { encoding: 'utf8' });
    assert.notEqual(denied.status, 0, 'another user wrote a 0640 file');
    assert.match(denied.stderr, /Permission denied/);
    assert.equal(await fs.readFile(p('f2'), 'utf8'), 'gee');

    // What another user makes is theirs (the addon passes the asking process: scripts/build-fuse-addon.ts).
    await fs.mkdir(p('shared'), { mode: 0o1777 });
    await fs.chmod(p('shared'), 0o1777);
    const made = spawnSync('setpriv', ['--reuid=4321', '--regid=4322', '--clear-groups', 'sh', '-c', `mkdir ${p('shared/dir')} && echo mine > ${p('shared/dir/file')}`], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    for (const x of ['shared/dir', 'shared/dir/file']) {
      const o = await fs.stat(p(x));
      assert.deepEqual([o.uid, o.gid], [4321, 4322], `${x} belongs to ${o.uid}:${o.gid}`);
    }
    // The sticky bit keeps another user from removing it.
    const removed = spawnSync('setpriv', ['--reuid=4444', '--regid=4444', '--clear-groups', 'rm', '-rf', p('shared/dir')], { encoding: 'utf8' });
    assert.notEqual(removed.status, 0, 'another user removed a directory from a sticky one');
    await fs.rm(p('shared'), { recursive: true });
    assert.doesNotMatch(await fs.readFile(a.log, 'utf8'), /does not pass the asking process/);

    // Extended attributes (Node has no API for them: Debian's Python does it).
    const xattrs = execFileSync(
      '/usr/bin/python3',
      ['-c', `import os, errno
p = ${JSON.stringify(p('f2'))}
os.setxattr(p, 'user.k', b'v\\x00w')
out = [repr(os.getxattr(p, 'user.k')), repr(os.listxattr(p))]
for f in (lambda: os.setxattr(p, 'user.k', b'x', os.XATTR_CREATE), lambda: os.getxattr(p, 'user.none'), lambda: os.setxattr(p, 'trusted.k', b'x'), lambda: os.setxattr(p, 'user.big', b'x' * 20000),
          lambda: os.getxattr(p, 'security.selinux'), lambda: os.getxattr(p, 'system.posix_acl_access'), lambda: os.removexattr(p, 'trusted.k')):
    try:
        f(); out.append('ok')
    except OSError as e:
        out.append(errno.errorcode[e.errno])
os.removexattr(p, 'user.k')
out.append(repr(os.listxattr(p)))
# More names than Python's first buffer holds (256 bytes): ERANGE, and it asks again. (The daemon
# once died of it.)
for i in range(30):
    os.setxattr(p, 'user.attr%02d' % i, b'v')
out.append(str(len(os.listxattr(p))))
for i in range(30):
    os.removexattr(p, 'user.attr%02d' % i)
# A name that is not UTF-8 is refused: the kernel's bytes reach the daemon decoded, and two such
# names would be one file.
try:
    open(os.path.join(os.path.dirname(p).encode(), b'\\xff'), 'wb').close(); out.append('ok')
except OSError as e:
    out.append(errno.errorcode[e.errno])
# Past the largest file (2^53 - 1 bytes): EFBIG, as a local file system answers past its own.
try:
    os.truncate(p, 2**60); out.append('ok')
except OSError as e:
    out.append(errno.errorcode[e.errno])
fd = os.open(p, os.O_WRONLY)
try:
    os.pwrite(fd, b'x', 2**53); out.append('ok')
except OSError as e:
    out.append(errno.errorcode[e.errno])
os.close(fd)
# Times before 1970 (tar of old files, touch -d 1960-01-01), kept to the millisecond.
os.utime(p, ns=(-315619199877000000, -1500000000))
s = os.stat(p)
out.append('%d,%d' % (s.st_atime_ns, s.st_mtime_ns))
# renameat2 (mv -n): RENAME_NOREPLACE refuses a name that exists and takes a free one;
# RENAME_EXCHANGE is not offered.
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def renameat2(a, b, flags):
    return 'ok' if libc.renameat2(-100, a.encode(), -100, b.encode(), flags) == 0 else errno.errorcode[ctypes.get_errno()]
d = os.path.dirname(p)
open(d + '/rn1', 'w').close()
out.append(renameat2(d + '/rn1', p, 1))
out.append(renameat2(d + '/rn1', d + '/rn2', 1))
out.append(renameat2(d + '/rn2', p, 2))
os.unlink(d + '/rn2')
print(' '.join(out))`],
      { encoding: 'utf8' },
    ).trim();
    assert.equal(xattrs, "b'v\\x00w' ['user.k'] EEXIST ENODATA ENOTSUP E2BIG ENOTSUP ENOTSUP ENOTSUP [] 30 EILSEQ EFBIG EFBIG -315619199877000000,-1500000000 EEXIST ok EINVAL");

    const names = (await fs.readdir(a.dir)).sort();
    assert.deepEqual(names, ['big', 'd', 'f2', 's']);
    const sfs = await fs.statfs(a.dir);
    assert.ok(sfs.blocks > 0 && sfs.bavail <= sfs.blocks, `statfs: ${JSON.stringify(sfs)}`);
    assert.ok(sfs.files > 0 && sfs.ffree > 0 && sfs.ffree <= sfs.files, `statfs inodes: ${JSON.stringify(sfs)}`);
    // Three workers, each with its two targets on this machine's one disk, replication 3: the
    // mount is the disk's size (each worker's disk once, over 3), its free space the disk's.
    const disk = await fs.statfs(cluster!.workers.get(1)!.targets[0]);
    const near = (a: number, b: number): boolean => Math.abs(a - b) <= 0.02 * b + 64 * 2 ** 20;
    assert.ok(near(sfs.blocks * sfs.bsize, disk.blocks * disk.bsize), `size ${sfs.blocks * sfs.bsize}, the disk's ${disk.blocks * disk.bsize}`);
    assert.ok(near(sfs.bavail * sfs.bsize, disk.bavail * disk.bsize), `free ${sfs.bavail * sfs.bsize}, the disk's ${disk.bavail * disk.bsize}`);
  });

  await t.test("a held directory's own attributes follow each change in it (the addon answers the kernel's getattr of it)", async () => {
    const port = await freePort();
    const h = await mounts.mount('held', ['--http', `127.0.0.1:${port}`]);
    const metric = (name: string): Promise<number> => metricOf(port, name);
    const dir = path.join(h.dir, 'held-attrs');
    await fs.mkdir(dir);
    // Enough creates in a second for the mount to take the directory (changesToHoldDefault).
    for (let i = 0; i < 8; i++) await fs.writeFile(path.join(dir, `f${i}`), '');
    assert.ok((await metric('cairn_fuse_dirs_held_total')) >= 1, 'the directory is held');
    const pause = (): Promise<void> => new Promise((r) => setTimeout(r, 15));
    const moved = async (what: string, change: () => Promise<unknown>): Promise<import('node:fs').Stats> => {
      const before = await fs.stat(dir);
      await fs.stat(dir); // answered again, now by the addon
      await pause();
      await change();
      const after = await fs.stat(dir);
      assert.ok(after.mtimeMs > before.mtimeMs, `${what}: the directory's mtime moved (${before.mtimeMs} -> ${after.mtimeMs})`);
      return after;
    };
    const asked = await metric('cairn_fuse_operation_seconds_count{op="getattr"}');
    for (let i = 0; i < 20; i++) await moved(`create ${i}`, () => fs.writeFile(path.join(dir, `g${i}`), ''));
    // 40 stats of the directory and 20 lookups of new names: the names went to JavaScript, most
    // of the directory's attributes did not.
    const viaJs = (await metric('cairn_fuse_operation_seconds_count{op="getattr"}')) - asked;
    assert.ok(viaJs < 40, `getattrs answered in JavaScript: ${viaJs}`);
    // Another process stats the directory all the while: a getattr the daemon answers before it
    // gets to an unlink that began first must not be kept past the unlink's end.
    const statLoop = spawn(process.execPath, ['-e', 'const fs = require("fs"); const end = Date.now() + 3000; while (Date.now() < end) fs.statSync(process.argv[1]);', dir], { stdio: 'ignore' });
    try {
      for (let i = 3; i < 20; i++) await moved(`unlink ${i} while another process stats the directory`, () => fs.unlink(path.join(dir, `g${i}`)));
    } finally {
      statLoop.kill();
    }
    await moved('unlink', () => fs.unlink(path.join(dir, 'g0')));
    await moved('rename in it', () => fs.rename(path.join(dir, 'g1'), path.join(dir, 'g1b')));
    const made = await moved('mkdir in it', () => fs.mkdir(path.join(dir, 'sub')));
    assert.equal(made.nlink, 3, 'a subdirectory counts as a link');
    await moved('rmdir in it', () => fs.rmdir(path.join(dir, 'sub')));
    await fs.stat(dir);
    await fs.chmod(dir, 0o700);
    assert.equal((await fs.stat(dir)).mode & 0o777, 0o700, 'chmod of the directory shows at once');
    await fs.chmod(dir, 0o755);
    assert.equal((await fs.stat(dir)).mode & 0o777, 0o755);
    // A write in it changes the file, not the directory, and keeps the directory's attributes.
    await fs.writeFile(path.join(dir, 'g2'), 'data');
    assert.equal((await fs.stat(path.join(dir, 'g2'))).size, 4);
    // `ls -l` asks for two extended attributes of each file (SELinux's label and the ACL): the
    // addon refuses them itself (only user.* names are kept), so they never reach the daemon.
    const xattrsAsked = await metric('cairn_fuse_operation_seconds_count{op="getxattr"}');
    const listed = spawnSync('ls', ['-l', dir], { encoding: 'utf8' });
    assert.equal(listed.status, 0, listed.stderr);
    assert.match(listed.stdout, / g2\n/);
    assert.equal((await metric('cairn_fuse_operation_seconds_count{op="getxattr"}')) - xattrsAsked, 0, 'getxattrs answered in JavaScript');
  });

  await t.test('creates, unlinks and lookups in a held directory are answered by the addon itself, for its owner or root, and land as made', async () => {
    const port = await freePort();
    const m = await mounts.mount('creates', ['--http', `127.0.0.1:${port}`]);
    const byAddon = (): Promise<number> => metricOf(port, 'cairn_fuse_held_creates_by_addon_total');
    const dir = path.join(m.dir, 'addon-creates');
    const seen = (...names: string[]): string => path.join(a.dir, 'addon-creates', ...names);
    await fs.mkdir(dir);
    for (let i = 0; i < 8; i++) await fs.writeFile(path.join(dir, `warm${i}`), ''); // the mount takes the directory
    const before = await byAddon();
    const modes = [0o600, 0o640, 0o644, 0o700, 0o755];
    for (let i = 0; i < 100; i++) await fs.writeFile(path.join(dir, `f${i}`), i % 3 === 0 ? `data ${i}` : '', { mode: modes[i % 5] });
    const made = (await byAddon()) - before;
    assert.ok(made >= 90, `creates the addon answered: ${made} of 100`);
    for (let i = 0; i < 100; i += 7) assert.equal((await fs.stat(path.join(dir, `f${i}`))).mode & 0o7777, modes[i % 5], `f${i}'s mode in the mount that made it`);
    await fails(fs.writeFile(path.join(dir, 'f1'), 'x', { flag: 'wx' }), 'EEXIST');
    // Lookups and unlinks of closed files there are the addon's too; an open file's length follows its writes.
    // (A file written is asked of the masters after its close: its length is theirs.)
    for (let i = 0; i < 100; i += 3) assert.equal((await fs.stat(path.join(dir, `f${i}`))).size, `data ${i}`.length);
    await new Promise((r) => setTimeout(r, 200)); // the addon's releases of the others are taken
    const getattrs = await metricOf(port, 'cairn_fuse_operation_seconds_count{op="getattr"}');
    for (let i = 1; i < 100; i += 3) assert.equal((await fs.stat(path.join(dir, `f${i}`))).size, 0);
    const viaDaemon = (await metricOf(port, 'cairn_fuse_operation_seconds_count{op="getattr"}')) - getattrs;
    assert.ok(viaDaemon < 5, `stats of closed files the daemon answered: ${viaDaemon} of 33`);
    const open = await fs.open(path.join(dir, 'f2'), 'r+');
    await open.write(Buffer.alloc(5000, 1), 0, 5000, 0);
    assert.equal((await fs.stat(path.join(dir, 'f2'))).size, 5000, 'an open file\'s length, written and not yet closed');
    await open.close();
    const unlinksBefore = await metricOf(port, 'cairn_fuse_held_unlinks_by_addon_total');
    for (let i = 50; i < 100; i++) await fs.unlink(path.join(dir, `f${i}`));
    // The 33 never written: their attributes are the mount's own (a written one's are the masters').
    assert.ok((await metricOf(port, 'cairn_fuse_held_unlinks_by_addon_total')) - unlinksBefore >= 30, 'the addon unlinked the closed files');
    await fails(fs.stat(path.join(dir, 'f60')), 'ENOENT');
    await fs.writeFile(path.join(dir, 'ro'), 'read-only', { mode: 0o444 }); // the daemon makes it, with its write session
    // Another user: in a directory of its own the addon makes its files; in one it does not own
    // (mode 0777) the daemon does. Both are that user's.
    await fs.mkdir(path.join(dir, 'own'));
    await fs.chown(path.join(dir, 'own'), 4321, 4322);
    await fs.mkdir(path.join(dir, 'open'));
    await fs.chmod(path.join(dir, 'open'), 0o777);
    const asUser = async (sub: string): Promise<number> => {
      const was = await byAddon();
      const r = spawnSync('setpriv', ['--reuid=4321', '--regid=4322', '--clear-groups', 'sh', '-c', 'for i in $(seq 30); do echo "$i" > "$1/u$i"; done', 'sh', path.join(dir, sub)], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return (await byAddon()) - was;
    };
    assert.ok((await asUser('own')) >= 20, 'the addon made the owner\'s files');
    assert.equal(await asUser('open'), 0, 'the addon made files in a directory their maker does not own');
    // Seen from another mount (which asks the masters: the directory is given back to it).
    for (let i = 0; i < 50; i++) {
      const st = await fs.stat(seen(`f${i}`));
      assert.equal(st.mode & 0o7777, modes[i % 5], `f${i}'s mode`);
      const size = i === 2 ? 5000 : i % 3 === 0 ? `data ${i}`.length : 0;
      assert.deepEqual([st.uid, st.gid, st.size], [0, 0, size], `f${i}`);
      if (i % 3 === 0) assert.equal(await fs.readFile(seen(`f${i}`), 'utf8'), `data ${i}`);
    }
    for (let i = 50; i < 100; i++) await fails(fs.stat(seen(`f${i}`)), 'ENOENT');
    assert.equal(await fs.readFile(seen('ro'), 'utf8'), 'read-only');
    for (const sub of ['own', 'open']) {
      for (let i = 1; i <= 30; i++) {
        const st = await fs.stat(seen(sub, `u${i}`));
        assert.deepEqual([st.uid, st.gid], [4321, 4322], `${sub}/u${i} belongs to ${st.uid}:${st.gid}`);
        assert.equal(await fs.readFile(seen(sub, `u${i}`), 'utf8'), `${i}\n`);
      }
    }
    assert.equal(await metricOf(port, 'cairn_fuse_held_changes_failed_total'), 0, 'changes the masters refused');
  });

  await t.test(`tar of ${treeFiles} small files into the mount and back out: identical trees`, async () => {
    const src = await fs.mkdtemp(path.join(tmpdir(), 'cairn-tree-'));
    const out = await fs.mkdtemp(path.join(tmpdir(), 'cairn-tree-out-'));
    t.after(() => Promise.all([fs.rm(src, { recursive: true, force: true }), fs.rm(out, { recursive: true, force: true })]));
    const prng = new Prng(7);
    for (let d = 0; d < treeFiles / 50; d++) {
      await fs.mkdir(path.join(src, `dir-${d}`, 'sub'), { recursive: true });
      for (let f = 0; f < 50; f++) {
        const file = path.join(src, `dir-${d}`, f % 5 === 0 ? 'sub' : '', `file-${f}.txt`);
        await fs.writeFile(file, randomBytes(prng.int(8192)));
        const old = new Date(Date.UTC(2020, 0, 2, 3, 4, f));
        await fs.utimes(file, old, old);
      }
    }
    await fs.symlink('dir-0/file-1.txt', path.join(src, 'link'));
    const into = path.join(a.dir, 'tree');
    await fs.mkdir(into);
    // Both tars must be silent: "file changed as we read it" means the mount's times moved
    // under a reader (a late commit at release once undid tar's utimens).
    const tar = (from: string, to: string): void => {
      const r = spawnSync('sh', ['-c', `set -e; tar -C ${from} -cf - . | tar -C ${to} -xf -`], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr, '', `tar from ${from} to ${to} warned`);
    };
    const t0 = performance.now();
    tar(src, into);
    const t1 = performance.now();
    tar(into, out);
    const t2 = performance.now();
    execFileSync('diff', ['-r', '--no-dereference', src, out]);
    // tar keeps modification times (to the second): through the mount and back.
    for (const name of ['dir-0/file-1.txt', 'dir-0/sub/file-0.txt', `dir-${treeFiles / 50 - 1}/file-49.txt`]) {
      const [a, b] = await Promise.all([fs.stat(path.join(src, name)), fs.stat(path.join(out, name))]);
      assert.equal(Math.floor(b.mtimeMs / 1000), Math.floor(a.mtimeMs / 1000), `${name}: mtime ${b.mtime.toISOString()} after the mount, ${a.mtime.toISOString()} before`);
    }
    t.diagnostic(`${treeFiles} files: tar in ${((t1 - t0) / 1000).toFixed(1)} s, out ${((t2 - t1) / 1000).toFixed(1)} s`);
  });

  await t.test('two mounts: a file closed in one is read whole in the other (close-to-open)', async () => {
    // Strict close-to-open needs the reader's attribute cache off (docs/fuse.md).
    const b = await mounts.mount('b', ['--attr-timeout-ms', '0']);
    const c = await mounts.mount('c', ['--attr-timeout-ms', '0']);
    for (let round = 0; round < 5; round++) {
      const [writer, reader] = round % 2 === 0 ? [b, c] : [c, b];
      const data = randomBytes(1000 + round * 300_000);
      await fs.writeFile(path.join(writer.dir, 'shared'), data);
      assert.ok((await fs.readFile(path.join(reader.dir, 'shared'))).equals(data), `round ${round}`);
    }
    // A new name is seen at once (no negative cache), whatever the attribute timeout.
    await fs.writeFile(path.join(a.dir, 'fresh'), 'new');
    assert.equal(await fs.readFile(path.join(b.dir, 'fresh'), 'utf8'), 'new');
    // ... also in a directory the reader's daemon has listed after a scan (docs/fuse.md).
    await fs.mkdir(path.join(b.dir, 'scanned'));
    for (let i = 0; i < 20; i++) await fs.writeFile(path.join(b.dir, 'scanned', `f${i}`), `${i}`);
    for (let i = 0; i < 20; i++) assert.equal((await fs.stat(path.join(a.dir, 'scanned', `f${i}`))).size, String(i).length);
    await fs.writeFile(path.join(b.dir, 'scanned', 'late'), 'made in b');
    assert.equal(await fs.readFile(path.join(a.dir, 'scanned', 'late'), 'utf8'), 'made in b');
    // O_EXCL holds across mounts: two processes, one in each, race to make the same lock files,
    // and each name has one winner. (Creates were not exclusive: a probe saw 21 of 150 names won
    // by both.)
    await fs.mkdir(path.join(b.dir, 'locks'));
    const race = (dir: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const code = `const fs=require('fs');const won=[];for(let i=0;i<100;i++){try{fs.closeSync(fs.openSync(process.argv[1]+'/l'+i,'wx'));won.push(i)}catch(e){if(e.code!=='EEXIST')throw e}}console.log(won.join(','))`;
        const child = spawn(process.execPath, ['-e', code, path.join(dir, 'locks')], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.once('exit', (status) => (status === 0 ? resolve(out.trim()) : reject(new Error(`the racing process exited with ${status}`))));
      });
    const [inB, inC] = await Promise.all([race(b.dir), race(c.dir)]);
    const wins = [...inB.split(','), ...inC.split(',')].filter((x) => x !== '').map(Number);
    assert.deepEqual(wins.sort((x, y) => x - y), Array.from({ length: 100 }, (_, i) => i), 'each lock file was made by exactly one process');

    // A directory one mount holds (it answers creates and unlinks there itself: docs/fuse.md):
    // the other mount sees each change at once all the same, in both directions.
    const held = (m: typeof b, ...names: string[]): string => path.join(m.dir, 'held', ...names);
    await fs.mkdir(held(b));
    for (let i = 0; i < 200; i++) await fs.writeFile(held(b, `f${i}`), i % 10 === 0 ? `data ${i}` : '');
    for (let i = 0; i < 200; i += 2) await fs.unlink(held(b, `f${i}`));
    const seen = (await fs.readdir(held(c))).sort();
    assert.deepEqual(seen, Array.from({ length: 100 }, (_, i) => `f${2 * i + 1}`).sort(), 'c lists what b made and removed');
    assert.equal(await fs.readFile(held(c, 'f11'), 'utf8'), '', 'an empty file b made');
    await fails(fs.stat(held(c, 'f10')), 'ENOENT');
    for (let i = 1; i < 200; i += 4) await fs.unlink(held(c, `f${i}`));
    await fs.writeFile(held(c, 'from-c'), 'c');
    assert.equal((await fs.readdir(held(b))).length, 51, 'b sees what c removed and made');
    assert.equal(await fs.readFile(held(b, 'from-c'), 'utf8'), 'c');
    // A file made in a held directory and written: the close of one descriptor commits it even
    // while a copy of that descriptor keeps the file open (a flush without a release; the addon
    // answers the flush of such a file itself until its first write).
    await fs.mkdir(path.join(b.dir, 'held2'));
    for (let i = 0; i < 8; i++) await fs.writeFile(path.join(b.dir, 'held2', `f${i}`), '');
    const keeper = spawn('sh', ['-c', 'exec 3>"$1"; printf "written in b" >&3; exec 4>&3; exec 3>&-; echo closed; read line', 'sh', path.join(b.dir, 'held2', 'kept')], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve) => keeper.stdout.once('data', () => resolve()));
      assert.equal(await fs.readFile(path.join(c.dir, 'held2', 'kept'), 'utf8'), 'written in b', 'c reads what b closed while b still has it open');
    } finally {
      keeper.stdin.end('\n');
      await new Promise((r) => keeper.once('exit', r));
    }
    // A client whose first request there is a change (no lookup before it) waits for the give-back
    // and is then applied: its refused tries are not kept as its answer (they were, and every retry
    // of that request was refused until its deadline).
    await new Promise((r) => setTimeout(r, 1_500)); // a recalled directory is not taken again for a second
    for (let i = 0; i < 8; i++) await fs.writeFile(held(b, `again${i}`), '');
    const direct = cluster!.masters.client({ deadlineMs: 4_000 });
    await direct.mutate('meta.mutate', { op: 'create', path: '/held/from-client', mode: 0o644, uid: 0, gid: 0, exclusive: true });
    assert.equal((await fs.stat(held(b, 'from-client'))).size, 0);
    // A file b made and fsynced is kept when b's daemon dies with the directory held; c waits for
    // the lease to lapse (seconds), then goes on.
    await new Promise((r) => setTimeout(r, 1_500));
    for (let i = 0; i < 8; i++) await fs.writeFile(held(b, `late${i}`), '');
    const dirHandle = await fs.open(held(b), 'r');
    await dirHandle.sync();
    await dirHandle.close();
    b.child.kill('SIGKILL');
    await new Promise((r) => b.child.once('exit', r));
    const names = await fs.readdir(held(c));
    for (let i = 0; i < 8; i++) assert.ok(names.includes(`late${i}`), `late${i} was fsynced in its directory`);
  });

  await t.test('kill -9 of the daemon: the mount point works again after cairn mount restarts; what was fsynced is intact', async () => {
    const d = await mounts.mount('d');
    const data = randomBytes(2 * 1024 * 1024 + 5);
    const h = await fs.open(path.join(d.dir, 'synced'), 'w');
    await h.write(data);
    await h.sync();
    d.child.kill('SIGKILL');
    await new Promise((r) => d.child.once('exit', r));
    await h.close().catch(() => undefined); // the daemon is gone: the close may fail
    await fails(fs.readdir(d.dir), 'ENOTCONN');
    const again = await mounts.mount('d', [], d.dir);
    assert.ok((await fs.readFile(path.join(again.dir, 'synced'))).equals(data));
  });

  await t.test('kill -9 of a worker while cp copies a file into the mount: the copy completes and reads back byte-exact', async () => {
    const mib = Number(process.env.CAIRN_FUSE_COPY_MIB ?? 128);
    const local = path.join(tmpdir(), `cairn-copy-${process.pid}`);
    t.after(() => fs.rm(local, { force: true }));
    const h = await fs.open(local, 'w');
    for (let i = 0; i < mib; i++) await h.write(randomBytes(1024 * 1024));
    await h.close();
    const cp = spawn('cp', [local, path.join(a.dir, 'copied')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    cp.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const done = new Promise<number | null>((r) => cp.once('exit', r));
    // Once a fifth has gone in, a worker dies; its chains carry on with the other two replicas.
    while ((await fs.stat(path.join(a.dir, 'copied')).then((s) => s.size, () => 0)) < (mib * 1024 * 1024) / 5 && cp.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    await cluster!.killWorker(2);
    assert.equal(await done, 0, `cp failed: ${stderr}`);
    execFileSync('cmp', [local, path.join(a.dir, 'copied')]);
    await cluster!.startWorker(2);
  });

  await t.test('seeded random operations on one file against a model', async () => {
    const seed = Number(process.env.CAIRN_FUSE_SEED ?? randomBytes(4).readUInt32LE(0) % 1_000_000);
    const ops = Number(process.env.CAIRN_FUSE_OPS ?? 2_000);
    t.diagnostic(`seed ${seed}, ${ops} operations (replay: CAIRN_FUSE_SEED=${seed} CAIRN_FUSE_OPS=${ops})`);
    const prng = new Prng(seed);
    const file = path.join(a.dir, `model-${seed}`);
    let model = Buffer.alloc(0);
    let h = await fs.open(file, 'w+');
    t.after(() => h.close().catch(() => undefined));
    const sizeMax = 3 * 1024 * 1024;
    let last = '';
    try {
      for (let i = 0; i < ops; i++) {
        const roll = prng.int(100);
        if (roll < 35) {
          // A write anywhere: inside, overlapping the end, or past it (a hole).
          const at = prng.int(Math.min(sizeMax, model.length + 256 * 1024));
          const len = 1 + prng.int(prng.int(4) === 0 ? 300_000 : 5_000);
          const data = randomBytes(len);
          last = `write ${len} at ${at}`;
          await h.write(data, 0, len, at);
          if (at + len > model.length) model = Buffer.concat([model, Buffer.alloc(at + len - model.length)]);
          data.copy(model, at);
        } else if (roll < 45) {
          const data = randomBytes(1 + prng.int(20_000));
          last = `append ${data.length} at ${model.length}`;
          await h.write(data, 0, data.length, model.length);
          model = Buffer.concat([model, data]);
        } else if (roll < 52) {
          const to = prng.int(Math.min(sizeMax, model.length + 100_000));
          last = `truncate to ${to}`;
          await h.truncate(to);
          model = to <= model.length ? Buffer.from(model.subarray(0, to)) : Buffer.concat([model, Buffer.alloc(to - model.length)]);
        } else if (roll < 90) {
          const at = prng.int(model.length + 1000);
          const len = 1 + prng.int(200_000);
          last = `read ${len} at ${at}`;
          const buf = Buffer.alloc(len);
          const { bytesRead } = await h.read(buf, 0, len, at);
          const want = model.subarray(Math.min(at, model.length), Math.min(at + len, model.length));
          assert.equal(bytesRead, want.length, `op ${i}: ${last}: read ${bytesRead} bytes, the model has ${want.length}`);
          if (!buf.subarray(0, bytesRead).equals(want)) assert.fail(`op ${i}: ${last}: bytes differ from the model: ${describeDifference(buf.subarray(0, bytesRead), want, at)}`);
        } else if (roll < 95) {
          last = 'fsync';
          await h.sync();
        } else {
          last = 'close and reopen';
          await h.close();
          h = await fs.open(file, 'r+');
        }
      }
      await h.close();
      assert.ok((await fs.readFile(file)).equals(model), `the whole file differs from the model after ${ops} operations (seed ${seed})`);
      assert.equal((await fs.stat(file)).size, model.length);
    } catch (err) {
      (err as Error).message = `seed ${seed}, after "${last}": ${(err as Error).message}`;
      throw err;
    }
  });
});

test('cairn local up --mount: the local cluster mounted as the README says; local down unmounts it', { skip, timeout: 180_000 }, async (t) => {
  const cairn = (...args: string[]) => spawnSync(process.execPath, [mainScript, ...args], { encoding: 'utf8', timeout: 120_000 });
  const dir = await fs.mkdtemp(path.join(tmpdir(), 'cairn-local-mount-'));
  const mnt = path.join(dir, 'mnt');
  await fs.mkdir(mnt);
  t.after(async () => {
    cairn('local', 'down', '--dir', path.join(dir, 'cluster'));
    spawnSync('fusermount', ['-uz', mnt]);
    await fs.rm(dir, { recursive: true, force: true });
  });
  const up = cairn('local', 'up', '--dir', path.join(dir, 'cluster'), '--mount', mnt);
  assert.equal(up.status, 0, up.stderr);
  assert.match(up.stdout, /mounted at /);
  const data = randomBytes(5 * 1024 * 1024);
  await fs.writeFile(path.join(mnt, 'through-the-mount'), data);
  const got = cairn('fs', 'stat', '/through-the-mount', '--json', '--dir', path.join(dir, 'cluster'));
  assert.equal((JSON.parse(got.stdout) as { sizeBytes: number }).sizeBytes, data.length);
  const down = cairn('local', 'down', '--dir', path.join(dir, 'cluster'));
  assert.match(down.stdout, /unmounted /);
  assert.deepEqual(await fs.readdir(mnt), [], 'the mount point is an empty directory again');
});

/** Where a read differs from the model, for a failure message: the ranges, and whether the read had zeros. */
function describeDifference(got: Buffer, want: Buffer, at: number): string {
  const ranges: string[] = [];
  let i = 0;
  while (i < got.length && ranges.length < 5) {
    if (got[i] === want[i]) {
      i++;
      continue;
    }
    const start = i;
    while (i < got.length && got[i] !== want[i]) i++;
    const zeros = got.subarray(start, i).every((b) => b === 0);
    ranges.push(`file bytes [${at + start}, ${at + i})${zeros ? ' read as zeros' : ''}`);
  }
  return ranges.join(', ');
}
