// `cairn fs ...`: namespace commands against the leading master, and file data through the workers
// (put, get, cat, cp) with progress bars on long transfers.

import type { Command } from 'commander';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, chown, lstat, realpath, rename, rm, stat as localStat } from 'node:fs/promises';
import { constants } from 'node:os';
import path from 'node:path';
import { addAbortSignal } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SingleBar } from 'cli-progress';
import { getFile, putFile, transferTempName, truncateFile, type DataClient, type MasterClient } from '../client/index.ts';
import { CairnError, ErrorCode } from '../errors.ts';
import { FsErrorCode, type DirEntry, type InodeAttr, type Layout, type ReaddirPage, type Routing } from '../meta/index.ts';
import { fileChains } from '../placement/index.ts';
import { withClient as run, withClients, type TargetFlags } from './cluster-target.ts';
import { configError, parseNonNegativeInt, parsePositiveInt } from './config.ts';
import { jsonLine, modeString, printable } from './format.ts';
import { findInode, parseInodeId, type FindProgress } from './fs-find.ts';
import { join, rmConfirmEntriesMin, rmPaths, type RmFlags } from './fs-rm.ts';
import { addIdentityOptions } from './identity.ts';

type Flags = TargetFlags & { json?: boolean };

const readdirPageLimit = 1000;

/** Every `fs` command acts as the invoking user (its uid, gid and groups), or as --uid, --gid and --groups say. */
export function registerFsCommands(program: Command, addClusterOptions: (c: Command) => Command): void {
  const fs = program.command('fs').description('file system commands; each acts as you (your uid, gid and groups) unless --uid, --gid or --groups say otherwise, and the masters check file permissions against that');
  const addTargetOptions = (c: Command): Command => addIdentityOptions(addClusterOptions(c));

  addTargetOptions(fs.command('put').argument('<local>', 'local file, or - for standard input').argument('<path>', 'cairn path (a directory: the file keeps its name)').option('-q, --quiet', 'no progress bar').option('--chunk-size <bytes>', 'chunk size, a power of two in 64 KiB..64 MiB').option('--stripe <n>', 'chains to stripe the file over').option('--json', 'print JSON'))
    .description('store a local file (written under a temporary name, then renamed into place; Ctrl-C or SIGTERM removes it)')
    .action((local: string, p: string, o: Flags & TransferFlags & { chunkSize?: string; stripe?: string }) =>
      withClients(o, async (meta, data) => {
        // The path it was stored at: into a directory, the file keeps its name.
        const { attr, stored } = await put(meta, data, local, p, o);
        print(o, attr, (a) => `${printable(stored)}: ${a.sizeBytes} bytes`);
      }),
    );

  addTargetOptions(fs.command('get').argument('<path>').argument('<local>', 'local file, or - for standard output').option('-q, --quiet', 'no progress bar'))
    .description('read a file into a local file')
    .action((p: string, local: string, o: Flags & TransferFlags) => withClients(o, (meta, data) => get(meta, data, p, local, o)));

  addTargetOptions(fs.command('truncate').argument('<path>').argument('<size>', 'new length in bytes').option('--json', 'print JSON'))
    .description('set a file\'s length: cutting removes the data past the new end from the workers; growing adds a hole')
    .action((p: string, size: string, o: Flags) =>
      withClients(o, async (meta, data) => print(o, await truncateFile(meta, data, p, parseNonNegativeInt(size, 'size')), (a) => `${printable(p)}: ${a.sizeBytes} bytes`)),
    );

  addTargetOptions(fs.command('cat').argument('<paths...>'))
    .description('write files to standard output')
    .action((paths: string[], o: Flags) => withClients(o, async (meta, data) => { for (const p of paths) await get(meta, data, p, '-', { quiet: true }); }));

  addTargetOptions(fs.command('cp').argument('<from>').argument('<to>').option('-q, --quiet', 'no progress bar').option('--json', 'print JSON'))
    .description('copy a file within cairn')
    .action((from: string, to: string, o: Flags & TransferFlags) =>
      withClients(o, async (meta, data) => {
        const { attr, chunks } = await getFollowing(meta, data, from);
        const bar = progress(o, attr.sizeBytes, `${from} -> ${to}`);
        const stored = await intoDir(meta, to, from);
        const copied = await putFile(meta, data, stored, chunks, { mode: attr.mode, layout: { chunkSizeBytes: attr.layout!.chunkSizeBytes }, onProgress: (n) => bar?.update(n) });
        bar?.stop();
        print(o, copied, (a) => `${printable(stored)}: ${a.sizeBytes} bytes`);
      }),
    );

  addTargetOptions(fs.command('ls').argument('[path]', 'directory or file', '/').option('-l, --long', 'show type, mode (as -rw-r--r--), links, uid, gid, size and time').option('--json', 'print JSON (names exact)'))
    .description('list a directory (control characters in names are shown escaped: \\n, \\x1b, \\\\ for a backslash)')
    .action((p: string, o: Flags & { long?: boolean }) => run(o, (c) => ls(c, p, o)));

  addTargetOptions(fs.command('mkdir').argument('<paths...>').option('-p, --parents', 'create missing parents, no error if it exists').option('-m, --mode <octal>', 'permission bits', '755').option('--json', 'print JSON'))
    .description('create directories')
    .action((paths: string[], o: Flags & { parents?: boolean; mode: string }) =>
      run(o, async (c) => {
        const mode = parseMode(o.mode);
        for (const p of paths) print(o, await c.mutate<InodeAttr>('meta.mutate', { op: 'mkdir', path: p, mode, uid: c.caller.uid, gid: c.caller.gid, parents: o.parents === true }), () => '');
      }),
    );

  addTargetOptions(fs.command('touch').argument('<paths...>').option('--json', 'print JSON'))
    .description('create empty files, or update the times of existing ones')
    .action((paths: string[], o: Flags) => run(o, async (c) => { for (const p of paths) print(o, await touch(c, p), () => ''); }));

  addTargetOptions(fs.command('stat').argument('<path>').option('--json', 'print JSON'))
    .description('show an inode\'s attributes, and for a file its layout and the chains it is striped over')
    .action((p: string, o: Flags) =>
      withClients(o, async (meta, data) => {
        const a = await meta.query<InodeAttr>('meta.query', { op: 'stat', path: p });
        const chains = a.layout === undefined ? undefined : stripeOf(await data.routing(), a.layout);
        print(o, chains === undefined ? a : { ...a, chains }, () => formatStat(p, a, chains));
      }),
    );

  addTargetOptions(
    fs
      .command('rm')
      .argument('<paths...>')
      .option('-r, --recursive', 'remove directories and their contents')
      .option('-y, --yes', `remove a tree of more than ${rmConfirmEntriesMin} entries without asking`)
      .option('-f, --force', 'never ask (as --yes), and no error for a path that does not exist')
      .option('--json', 'print JSON'),
  )
    .description(`remove files, symlinks and (with -r) directories; never the root '/'. A recursive removal of more than ${rmConfirmEntriesMin} entries asks first on a terminal, and without one is refused unless --yes or --force`)
    .action((paths: string[], o: Flags & RmFlags) => run(o, (c) => rmPaths(c, (dir) => listAll(c, dir), paths, o)));

  addTargetOptions(fs.command('mv').argument('<from>').argument('<to>').option('--json', 'print JSON'))
    .description('rename atomically (across directories too); into <to> when it is a directory, as mv')
    .action((from: string, to: string, o: Flags) => run(o, async (c) => print(o, await c.mutate('meta.mutate', { op: 'rename', from, to: await intoDir(c, to, from) }), () => '')));

  addTargetOptions(fs.command('ln').argument('<target>').argument('<path>').option('-s, --symbolic', 'make a symbolic link').option('--json', 'print JSON'))
    .description('make a hard link (or with -s a symbolic link) at <path>')
    .action((target: string, p: string, o: Flags & { symbolic?: boolean }) =>
      run(o, async (c) => {
        const cmd = o.symbolic ? { op: 'symlink', path: p, target, uid: c.caller.uid, gid: c.caller.gid } : { op: 'link', existing: target, path: p };
        print(o, await c.mutate('meta.mutate', cmd), () => '');
      }),
    );

  addTargetOptions(fs.command('find').argument('[path]', 'directory to search under', '/').requiredOption('--inode <id>', 'the inode: decimal, 0x hex, or a chunk name INODE-INDEX in hex as workers log them').option('--json', 'print JSON'))
    .description('print the paths of an inode (several for a hard-linked file) by walking the tree: to find the file of a chunk a worker names')
    .action((p: string, o: Flags & { inode: string }) => run(o, (c) => find(c, p, parseInodeId(o.inode), o)));

  addTargetOptions(fs.command('du').argument('[path]', 'file or directory', '/').option('--json', 'print JSON'))
    .description('sum the logical size of a tree')
    .action((p: string, o: Flags) => run(o, async (c) => print(o, await du(c, p), (s) => `${s.bytes}\t${s.files} files\t${s.dirs} dirs\t${printable(p)}`)));
}

function print<T>(flags: Flags, value: T, text: (v: T) => string): void {
  if (flags.json) console.log(jsonLine(value));
  else {
    const t = text(value);
    if (t !== '') console.log(t);
  }
}

async function* listAll(c: MasterClient, path: string): AsyncGenerator<DirEntry> {
  let after: string | undefined;
  do {
    const page: ReaddirPage = await c.query('meta.query', { op: 'readdir', path, limit: readdirPageLimit, ...(after === undefined ? {} : { after }) });
    yield* page.entries;
    after = page.next;
  } while (after !== undefined);
}

async function ls(c: MasterClient, path: string, o: Flags & { long?: boolean }): Promise<void> {
  const attr = await c.query<InodeAttr>('meta.query', { op: 'stat', path });
  if (attr.type !== 'dir') {
    print(o, [{ name: path, ...attr }], () => (o.long ? formatLong(path, attr) : printable(path)));
    return;
  }
  const rows: (DirEntry & { attr?: InodeAttr })[] = [];
  for await (const e of listAll(c, path)) {
    rows.push(o.long || o.json ? { ...e, attr: await c.query<InodeAttr>('meta.query', { op: 'stat', path: join(path, e.name) }) } : e);
  }
  if (o.json) console.log(jsonLine(rows));
  else for (const r of rows) console.log(o.long && r.attr !== undefined ? formatLong(r.name, r.attr) : `${printable(r.name)}${r.type === 'dir' ? '/' : ''}`);
}

async function touch(c: MasterClient, path: string): Promise<unknown> {
  try {
    return await c.mutate('meta.mutate', { op: 'create', path, mode: 0o644, uid: c.caller.uid, gid: c.caller.gid, exclusive: true });
  } catch (err) {
    if ((err as { code?: string }).code !== FsErrorCode.EEXIST) throw err;
    // The masters' clock: setting times to now needs only write permission, given times the owner.
    return c.mutate('meta.mutate', { op: 'setattr', path, timesNow: true });
  }
}

async function find(c: MasterClient, root: string, inodeId: number, o: Flags): Promise<void> {
  const paths: string[] = [];
  const progress: FindProgress = { dirs: 0, entries: 0, skipped: [] };
  const found = (p: string): void => {
    paths.push(p);
    if (!o.json) console.log(printable(p));
  };
  const attr = await c.query<InodeAttr>('meta.query', { op: 'stat', path: root });
  if (attr.inodeId === inodeId) found(root);
  if (attr.type === 'dir') {
    // A long walk says how far it got, on a terminal.
    const ticker = process.stderr.isTTY ? setInterval(() => process.stderr.write(`\rsearched ${progress.dirs} directories, ${progress.entries} entries`), 1000) : undefined;
    try {
      await findInode((dir) => listAll(c, dir), root, inodeId, found, progress);
    } finally {
      clearInterval(ticker);
      if (ticker !== undefined) process.stderr.write('\n');
    }
  }
  for (const s of progress.skipped) console.error(`cairn fs find: ${printable(s.path)} not searched: ${s.error}`);
  if (o.json) console.log(jsonLine({ inodeId, paths, searched: { dirs: progress.dirs, entries: progress.entries }, skipped: progress.skipped }));
  if (paths.length === 0) {
    console.error(`cairn fs find: no path under ${printable(root)} is inode ${inodeId} (0x${inodeId.toString(16)})${progress.skipped.length > 0 ? ', in what could be searched' : ''}`);
    process.exitCode = 1;
  }
}

async function du(c: MasterClient, path: string): Promise<{ bytes: number; files: number; dirs: number }> {
  const attr = await c.query<InodeAttr>('meta.query', { op: 'stat', path });
  if (attr.type === 'file') return { bytes: attr.sizeBytes, files: 1, dirs: 0 };
  if (attr.type !== 'dir') return { bytes: 0, files: 0, dirs: 0 };
  const total = { bytes: 0, files: 0, dirs: 1 };
  for await (const e of listAll(c, path)) {
    const s = await du(c, join(path, e.name));
    total.bytes += s.bytes;
    total.files += s.files;
    total.dirs += s.dirs;
  }
  return total;
}

function parseMode(s: string): number {
  if (!/^[0-7]{1,4}$/.test(s)) throw configError(`--mode must be octal permission bits like 755, got '${s}'`);
  return parseInt(s, 8);
}

/** One `ls -l` line; the name and a symlink's target escaped (see format.ts). */
function formatLong(name: string, a: InodeAttr): string {
  const time = new Date(a.mtimeMs).toISOString();
  const link = a.type === 'symlink' && a.target !== undefined ? ` -> ${printable(a.target)}` : '';
  return `${modeString(a.type, a.mode)} ${String(a.nlink).padStart(3)} ${String(a.uid).padStart(5)} ${String(a.gid).padStart(5)} ${String(a.sizeBytes).padStart(12)} ${time} ${printable(name)}${a.type === 'dir' ? '/' : ''}${link}`;
}

interface TransferFlags {
  quiet?: boolean;
}

/** A progress bar on standard error for a long transfer; none when quiet, not a terminal, or small. */
function progress(o: TransferFlags, total: number, label: string): SingleBar | undefined {
  if (o.quiet === true || !process.stderr.isTTY || total < progressBytesMin) return undefined;
  const bar = new SingleBar({ stream: process.stderr, format: `${printable(label)} [{bar}] {percentage}% {value}/{total} bytes {speed} | eta {eta}s`, hideCursor: true }, undefined);
  const started = Date.now();
  bar.start(total, 0, { speed: '' });
  const update = bar.update.bind(bar);
  bar.update = ((n: number) => update(n, { speed: `${((n / Math.max(1, Date.now() - started)) * 1000 / 2 ** 20).toFixed(1)} MiB/s` })) as typeof bar.update;
  return bar;
}

const progressBytesMin = 8 * 2 ** 20;

/** `to` itself, or `to/<name of from>` when `to` is a directory. */
async function intoDir(meta: MasterClient, to: string, from: string): Promise<string> {
  // A trailing '/' says "into this directory": it must be one.
  const wantsDir = to.length > 1 && to.endsWith('/');
  const base = wantsDir ? to.replace(/\/+$/, '') || '/' : to;
  try {
    const a = await meta.query<InodeAttr>('meta.query', { op: 'stat', path: base });
    if (a.type === 'dir') return join(base, path.posix.basename(from));
  } catch (err) {
    if ((err as { code?: string }).code !== FsErrorCode.ENOENT) throw err;
  }
  if (wantsDir) throw new CairnError(ErrorCode.InvalidArgument, `${printable(to)} is not a directory (a destination ending in '/' names one)`, { errno: 'ENOTDIR' });
  return base;
}

async function put(meta: MasterClient, data: DataClient, local: string, p: string, o: TransferFlags & { chunkSize?: string; stripe?: string }): Promise<{ attr: InodeAttr; stored: string }> {
  const st = local === '-' ? undefined : await localStat(local);
  const size = st?.size ?? 0;
  const target = await intoDir(meta, p, local === '-' ? 'stdin' : local);
  const layout: { chunkSizeBytes?: number; stripeWidth?: number } = {};
  if (o.chunkSize !== undefined) layout.chunkSizeBytes = parsePositiveInt(o.chunkSize, '--chunk-size');
  if (o.stripe !== undefined) layout.stripeWidth = parsePositiveInt(o.stripe, '--stripe');
  const bar = progress(o, size, target);
  try {
    // An interrupted put stops reading its source; putFile then removes its temporary file.
    const attr = await untilSignal((signal) => {
      const source = addAbortSignal(signal, local === '-' ? process.stdin : createReadStream(local, { highWaterMark: 4 * 2 ** 20 }));
      return putFile(meta, data, target, source, { mode: 0o644, ...(Object.keys(layout).length === 0 ? {} : { layout }), onProgress: (n) => bar?.update(n) });
    });
    // A file that shrank or grew while it was read is stored as read, which may be no state it was ever in (tar warns so too).
    if (st?.isFile() === true && attr.sizeBytes !== size) {
      console.error(`cairn: warning: ${printable(local)} changed while it was read (${size} bytes when the put started, ${attr.sizeBytes} stored)`);
      process.exitCode = 1;
    }
    return { attr, stored: target };
  } finally {
    bar?.stop();
  }
}

/** Symlinks followed hops at most, as Linux's ELOOP bound. */
const symlinkHopsMax = 40;

/**
 * getFile of `p`, a symlink at its end followed (to the file it names), as cat and cp follow one.
 * The masters refuse to open a symlink (EINVAL): only then is `p` looked at, so a file costs no
 * extra round trip.
 */
async function getFollowing(meta: MasterClient, data: DataClient, p: string): ReturnType<typeof getFile> {
  for (let hops = 0; ; hops++) {
    try {
      return await getFile(meta, data, p);
    } catch (err) {
      if ((err as { code?: string }).code !== FsErrorCode.EINVAL) throw err;
      const a = await meta.query<InodeAttr>('meta.query', { op: 'stat', path: p });
      if (a.type !== 'symlink' || a.target === undefined) throw err;
      if (hops === symlinkHopsMax) throw new CairnError(ErrorCode.InvalidArgument, `${printable(p)}: more than ${symlinkHopsMax} symlinks on the way`, { errno: 'ELOOP' });
      p = path.posix.resolve(path.posix.dirname(p), a.target);
    }
  }
}

async function get(meta: MasterClient, data: DataClient, p: string, local: string, o: TransferFlags): Promise<void> {
  const { attr, chunks } = await getFollowing(meta, data, p);
  const bar = progress(o, attr.sizeBytes, p);
  let done = 0;
  async function* counted(): AsyncGenerator<Buffer> {
    for await (const c of chunks) {
      done += c.length;
      bar?.update(done);
      yield c;
    }
  }
  if (local === '-') {
    try {
      await pipeline(counted(), process.stdout);
    } catch (err) {
      // The reader went away (| head): that ends the output, as for cat, and is no error.
      if ((err as NodeJS.ErrnoException).code !== 'EPIPE') throw err;
    } finally {
      bar?.stop();
    }
    return;
  }
  const to = await localTarget(local, p);
  if (to.kind === 'stream') {
    // A device, FIFO or socket (/dev/null, /dev/stdout, a named pipe): written to, as cp does, never replaced.
    try {
      await untilSignal((signal) => pipeline(counted(), createWriteStream(to.path, { flags: 'w' }), { signal }));
    } finally {
      bar?.stop();
    }
    return;
  }
  // Into a temporary file beside the target, which takes its name once complete: a read that
  // fails leaves a file already there as it was (it was emptied before the first byte came).
  // The new file keeps the mode (and, as root, the owner) of the one it replaces; a new one takes
  // the cairn file's mode, less the umask, as cp gives.
  const temp = path.join(path.dirname(to.path), transferTempName(path.basename(to.path), 'get'));
  try {
    await untilSignal(async (signal) => {
      await pipeline(counted(), createWriteStream(temp, { flags: 'wx', mode: to.replaces === undefined ? attr.mode & 0o777 : 0o600 }), { signal });
      if (to.replaces !== undefined) {
        if (process.getuid?.() === 0) await chown(temp, to.replaces.uid, to.replaces.gid);
        await chmod(temp, to.replaces.mode & 0o7777);
      }
      await rename(temp, to.path);
    });
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  } finally {
    bar?.stop();
  }
}

/**
 * Where `fs get` writes, deciding as cp does: into a directory under the source's name; through a
 * symlink to its target (never through a dangling one); into a device, FIFO or socket as a stream;
 * else a regular file, new or replacing one (whose mode and owner it then keeps).
 */
async function localTarget(local: string, from: string, inDir = false): Promise<{ kind: 'stream'; path: string } | { kind: 'file'; path: string; replaces?: { mode: number; uid: number; gid: number } }> {
  const st = await localStat(local).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
    throw err;
  });
  if (st === undefined) {
    if ((await lstat(local).catch(() => undefined))?.isSymbolicLink() === true) throw configError(`not writing through the dangling symlink ${local}`);
    return { kind: 'file', path: local };
  }
  if (st.isDirectory()) {
    if (inDir) throw configError(`${local} is a directory: give the file's local name`);
    return localTarget(path.join(local, path.posix.basename(from)), from, true);
  }
  if (!st.isFile()) return { kind: 'stream', path: local };
  // The file itself takes the new bytes' place, not a symlink on the way to it.
  return { kind: 'file', path: await realpath(local), replaces: { mode: st.mode, uid: st.uid, gid: st.gid } };
}

/** The status a shell gives a program a signal stopped (128 + its number): 130 for SIGINT, 143 for SIGTERM. */
export function signalExitCode(name: string): number {
  return 128 + (constants.signals[name as NodeJS.Signals] ?? 15);
}

/**
 * Runs a transfer that SIGINT or SIGTERM stops cleanly: the signal aborts it, so that it removes
 * its temporary file on the way out (a second signal exits at once). Fails with the signal's name.
 */
async function untilSignal<T>(transfer: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  let caught: NodeJS.Signals | undefined;
  const onSignal = (name: NodeJS.Signals): void => {
    if (caught !== undefined) process.exit(signalExitCode(name));
    caught = name;
    abort.abort(new CairnError(ErrorCode.Interrupted, `interrupted by ${name}: the partial file was removed`, { signal: name }));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await transfer(abort.signal);
  } catch (err) {
    throw caught !== undefined ? abort.signal.reason : err;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

/** The chains a file's chunks go to, in stripe order, with their members. */
function stripeOf(routing: Routing, layout: Layout): { chainId: number; version: number; targets: string }[] | undefined {
  const chains = routing.tableChains(layout.chainTableId, layout.chainTableVersion);
  if (chains === undefined || chains.length === 0) return undefined;
  return fileChains(chains, layout.stripeWidth, layout.shuffleSeed).map((id) => {
    const chain = routing.chain(id);
    return { chainId: id, version: chain?.version ?? 0, targets: (chain?.targetIds ?? []).map((t) => `${t}:${routing.target(t)?.state ?? '?'}`).join(' ') };
  });
}

function formatStat(path: string, a: InodeAttr, chains?: { chainId: number; version: number; targets: string }[]): string {
  const lines = [
    `path:   ${printable(path)}`,
    `inode:  ${a.inodeId}  type: ${a.type}  links: ${a.nlink}`,
    `mode:   ${a.mode.toString(8).padStart(4, '0')} (${modeString(a.type, a.mode)})  uid: ${a.uid}  gid: ${a.gid}`,
    `size:   ${a.sizeBytes} bytes`,
    `atime:  ${new Date(a.atimeMs).toISOString()}`,
    `mtime:  ${new Date(a.mtimeMs).toISOString()}`,
    `ctime:  ${new Date(a.ctimeMs).toISOString()}`,
  ];
  if (a.layout !== undefined) lines.push(`layout: chunk ${a.layout.chunkSizeBytes} bytes, stripe ${a.layout.stripeWidth}, chain table ${a.layout.chainTableId} v${a.layout.chainTableVersion}`);
  if (a.target !== undefined) lines.push(`target: ${printable(a.target)}`);
  for (const [i, c] of (chains ?? []).entries()) lines.push(`${i === 0 ? 'chains: ' : '        '}${c.chainId} v${c.version}: ${c.targets}`);
  return lines.join('\n');
}
