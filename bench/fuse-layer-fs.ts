// The FUSE layer alone, for `npm run bench -- fuse`: the addon `cairn mount` uses (fuse-native,
// rebuilt on libfuse 3 by scripts/build-fuse-addon.ts) serving files whose bytes come from memory,
// with no cairn behind it. What fio gets through it is the most any daemon on this addon and this
// kernel could give; its CPU a request is the least the mount's daemon spends on one.
//   node bench/fuse-layer-fs.ts MOUNTPOINT
// Every name `f<digits>` in the root is a file of `fileBytes`, its bytes a constant. It prints
// `mounted` once mounted, and unmounts and exits on SIGTERM or SIGINT.

import { createRequire } from 'node:module';

const fileBytes = 2 ** 40; // large enough that fio's random reads almost never meet a page they read before
const fileName = /^\/f\d{1,6}$/;
const mountpoint = process.argv[2];
if (mountpoint === undefined) {
  console.error('usage: node bench/fuse-layer-fs.ts MOUNTPOINT');
  process.exit(2);
}

type Callback = (code: number, ...results: unknown[]) => void;
interface Fuse {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
}
const Fuse = createRequire(import.meta.url)('fuse-native') as (new (mnt: string, ops: Record<string, unknown>, opts: Record<string, unknown>) => Fuse) & { ENOENT: number };

const epoch = new Date(0);
const stat = (mode: number, size: number): Record<string, unknown> => ({ mtime: epoch, atime: epoch, ctime: epoch, nlink: 1, size, mode, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 });
const ops = {
  getattr: (p: string, cb: Callback) => (p === '/' ? cb(0, stat(0o40755, 4096)) : fileName.test(p) ? cb(0, stat(0o100444, fileBytes)) : cb(Fuse.ENOENT)),
  readdir: (_p: string, cb: Callback) => cb(0, []),
  open: (p: string, _flags: number, cb: Callback) => (fileName.test(p) ? cb(0, 1) : cb(Fuse.ENOENT)),
  release: (_p: string, _fd: number, cb: Callback) => cb(0),
  read: (_p: string, _fd: number, buf: Buffer, len: number, _pos: number, cb: Callback) => {
    buf.fill(7, 0, len);
    cb(len);
  },
};
const fuse = new Fuse(mountpoint, ops, { force: true });
fuse.mount((err) => {
  if (err !== null) {
    console.error(`mount failed: ${err.message}`);
    process.exit(1);
  }
  console.log('mounted');
});
const stop = (): void => fuse.unmount(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
