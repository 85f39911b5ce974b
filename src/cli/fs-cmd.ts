// `cairn fs ...`: namespace commands against the leading master (metadata only until workers land).

import type { Command } from 'commander';
import type { MasterClient } from '../client/index.ts';
import { FsErrorCode, MetaError, type DirEntry, type InodeAttr, type ReaddirPage } from '../meta/index.ts';
import { withClient as run, type TargetFlags } from './cluster-target.ts';
import { configError } from './config.ts';

type Flags = TargetFlags & { json?: boolean };

const readdirPageLimit = 1000;
const uid = process.getuid?.() ?? 0;
const gid = process.getgid?.() ?? 0;

export function registerFsCommands(program: Command, addTargetOptions: (c: Command) => Command): void {
  const fs = program.command('fs').description('file system commands (metadata only until workers land)');

  addTargetOptions(fs.command('ls').argument('[path]', 'directory or file', '/').option('-l, --long', 'show type, mode, size and time').option('--json', 'print JSON'))
    .description('list a directory')
    .action((p: string, o: Flags & { long?: boolean }) => run(o, (c) => ls(c, p, o)));

  addTargetOptions(fs.command('mkdir').argument('<paths...>').option('-p, --parents', 'create missing parents, no error if it exists').option('-m, --mode <octal>', 'permission bits', '755').option('--json', 'print JSON'))
    .description('create directories')
    .action((paths: string[], o: Flags & { parents?: boolean; mode: string }) =>
      run(o, async (c) => {
        const mode = parseMode(o.mode);
        for (const p of paths) print(o, await c.mutate<InodeAttr>('meta.mutate', { op: 'mkdir', path: p, mode, uid, gid, parents: o.parents === true }), () => '');
      }),
    );

  addTargetOptions(fs.command('touch').argument('<paths...>').option('--json', 'print JSON'))
    .description('create empty files, or update the times of existing ones')
    .action((paths: string[], o: Flags) => run(o, async (c) => { for (const p of paths) print(o, await touch(c, p), () => ''); }));

  addTargetOptions(fs.command('stat').argument('<path>').option('--json', 'print JSON'))
    .description('show an inode\'s attributes')
    .action((p: string, o: Flags) => run(o, async (c) => print(o, await c.query<InodeAttr>('meta.query', { op: 'stat', path: p }), (a) => formatStat(p, a))));

  addTargetOptions(fs.command('rm').argument('<paths...>').option('-r, --recursive', 'remove directories and their contents').option('--json', 'print JSON'))
    .description('remove files, symlinks and (with -r) directories')
    .action((paths: string[], o: Flags & { recursive?: boolean }) => run(o, async (c) => { for (const p of paths) await rm(c, p, o.recursive === true); }));

  addTargetOptions(fs.command('mv').argument('<from>').argument('<to>').option('--json', 'print JSON'))
    .description('rename atomically (across directories too)')
    .action((from: string, to: string, o: Flags) => run(o, async (c) => print(o, await c.mutate('meta.mutate', { op: 'rename', from, to }), () => '')));

  addTargetOptions(fs.command('ln').argument('<target>').argument('<path>').option('-s, --symbolic', 'make a symbolic link').option('--json', 'print JSON'))
    .description('make a hard link (or with -s a symbolic link) at <path>')
    .action((target: string, p: string, o: Flags & { symbolic?: boolean }) =>
      run(o, async (c) => {
        const cmd = o.symbolic ? { op: 'symlink', path: p, target, uid, gid } : { op: 'link', existing: target, path: p };
        print(o, await c.mutate('meta.mutate', cmd), () => '');
      }),
    );

  addTargetOptions(fs.command('du').argument('[path]', 'file or directory', '/').option('--json', 'print JSON'))
    .description('sum the logical size of a tree')
    .action((p: string, o: Flags) => run(o, async (c) => print(o, await du(c, p), (s) => `${s.bytes}\t${s.files} files\t${s.dirs} dirs\t${p}`)));
}

function print<T>(flags: Flags, value: T, text: (v: T) => string): void {
  if (flags.json) console.log(JSON.stringify(value));
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
    print(o, [{ name: path, ...attr }], () => (o.long ? formatLong(path, attr) : path));
    return;
  }
  const rows: (DirEntry & { attr?: InodeAttr })[] = [];
  for await (const e of listAll(c, path)) {
    rows.push(o.long || o.json ? { ...e, attr: await c.query<InodeAttr>('meta.query', { op: 'stat', path: join(path, e.name) }) } : e);
  }
  if (o.json) console.log(JSON.stringify(rows));
  else for (const r of rows) console.log(o.long && r.attr !== undefined ? formatLong(r.name, r.attr) : r.type === 'dir' ? `${r.name}/` : r.name);
}

async function touch(c: MasterClient, path: string): Promise<unknown> {
  try {
    return await c.mutate('meta.mutate', { op: 'create', path, mode: 0o644, uid, gid, exclusive: true });
  } catch (err) {
    if ((err as { code?: string }).code !== FsErrorCode.EEXIST) throw err;
    const now = Date.now();
    return c.mutate('meta.mutate', { op: 'setattr', path, atimeMs: now, mtimeMs: now });
  }
}

async function rm(c: MasterClient, path: string, recursive: boolean): Promise<void> {
  const attr = await c.query<InodeAttr>('meta.query', { op: 'stat', path });
  if (attr.type !== 'dir') {
    await c.mutate('meta.mutate', { op: 'unlink', path });
    return;
  }
  if (!recursive) throw new MetaError(FsErrorCode.EISDIR, `${path} is a directory (use rm -r)`);
  for (;;) {
    const children: DirEntry[] = [];
    for await (const e of listAll(c, path)) children.push(e);
    if (children.length === 0) break;
    for (const e of children) await rm(c, join(path, e.name), true);
  }
  if (path !== '/') await c.mutate('meta.mutate', { op: 'rmdir', path });
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

function join(dir: string, name: string): string {
  return dir.endsWith('/') ? `${dir}${name}` : `${dir}/${name}`;
}

function parseMode(s: string): number {
  if (!/^[0-7]{1,4}$/.test(s)) throw configError(`--mode must be octal permission bits like 755, got '${s}'`);
  return parseInt(s, 8);
}

const typeChar: Record<string, string> = { file: '-', dir: 'd', symlink: 'l' };

function formatLong(name: string, a: InodeAttr): string {
  const mode = a.mode.toString(8).padStart(4, '0');
  const time = new Date(a.mtimeMs).toISOString();
  const link = a.type === 'symlink' && a.target !== undefined ? ` -> ${a.target}` : '';
  return `${typeChar[a.type] ?? '?'}${mode} ${String(a.nlink).padStart(3)} ${String(a.uid).padStart(5)} ${String(a.gid).padStart(5)} ${String(a.sizeBytes).padStart(12)} ${time} ${name}${a.type === 'dir' ? '/' : ''}${link}`;
}

function formatStat(path: string, a: InodeAttr): string {
  const lines = [
    `path:   ${path}`,
    `inode:  ${a.inodeId}  type: ${a.type}  links: ${a.nlink}`,
    `mode:   ${a.mode.toString(8).padStart(4, '0')}  uid: ${a.uid}  gid: ${a.gid}`,
    `size:   ${a.sizeBytes} bytes`,
    `atime:  ${new Date(a.atimeMs).toISOString()}`,
    `mtime:  ${new Date(a.mtimeMs).toISOString()}`,
    `ctime:  ${new Date(a.ctimeMs).toISOString()}`,
  ];
  if (a.layout !== undefined) lines.push(`layout: chunk ${a.layout.chunkSizeBytes} bytes, stripe ${a.layout.stripeWidth}, chain table ${a.layout.chainTableId} v${a.layout.chainTableVersion}`);
  if (a.target !== undefined) lines.push(`target: ${a.target}`);
  return lines.join('\n');
}
