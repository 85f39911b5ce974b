// ListObjects over a directory tree (src/s3/list.ts) against a model: the sorted list of keys, cut
// by prefix, grouped by delimiter, started after a key and paged. Names are chosen so that
// directories sort among files with characters below and above '/'.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { listObjects, type ListRequest, type ReadDir } from '../../src/s3/list.ts';
import type { DirEntry } from '../../src/meta/namespace-state.ts';

interface Dir {
  files: Set<string>;
  dirs: Map<string, Dir>;
}

/** A tree from keys (a key ending in '/' is an empty directory); keys a file blocks are dropped. */
function treeOf(keys: string[]): { root: Dir } {
  const root: Dir = { files: new Set(), dirs: new Map() };
  for (const key of keys) {
    const names = (key.endsWith('/') ? key.slice(0, -1) : key).split('/');
    let d = root;
    let ok = true;
    for (let i = 0; i < names.length; i++) {
      const last = i === names.length - 1;
      const n = names[i];
      if (last && !key.endsWith('/')) {
        if (d.dirs.has(n)) ok = false;
        else d.files.add(n);
        break;
      }
      if (d.files.has(n)) {
        ok = false;
        break;
      }
      if (!d.dirs.has(n)) d.dirs.set(n, { files: new Set(), dirs: new Map() });
      d = d.dirs.get(n)!;
    }
    void ok;
  }
  return { root };
}

/** Every object key of the tree: files, and empty directories as "dir/". */
function keysOf(d: Dir, base = ''): string[] {
  const out = [...d.files].map((f) => base + f);
  for (const [n, sub] of d.dirs) {
    if (sub.files.size === 0 && sub.dirs.size === 0) out.push(`${base}${n}/`);
    out.push(...keysOf(sub, `${base}${n}/`));
  }
  return out;
}

function readDirOf(root: Dir, reads: { n: number }): ReadDir {
  return async function* (path: string, after: string | undefined): AsyncGenerator<DirEntry> {
    let d: Dir | undefined = root;
    for (const n of path.split('/').slice(2)) d = d?.dirs.get(n);
    if (d === undefined) return; // as the gateway's: a directory that is not there lists nothing
    const entries: DirEntry[] = [...[...d.files].map((name) => ({ name, inodeId: 1, type: 'file' as const })), ...[...d.dirs].map(([name, sub]) => ({ name, inodeId: 2, type: 'dir' as const, empty: sub.files.size === 0 && sub.dirs.size === 0 }))];
    entries.sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      if (after !== undefined && e.name <= after) continue;
      reads.n++;
      yield e;
    }
  };
}

/** S3's answer from the sorted keys. */
function model(keys: string[], prefix: string, delimiter: string, startAfter: string, maxKeys: number): { objects: string[]; prefixes: string[]; truncated: boolean } {
  const out = { objects: [] as string[], prefixes: [] as string[], truncated: false };
  for (const key of [...keys].sort()) {
    if (!key.startsWith(prefix) || key <= startAfter) continue;
    const at = delimiter === '' ? -1 : key.indexOf(delimiter, prefix.length);
    const cp = at === -1 ? undefined : key.slice(0, at + delimiter.length);
    if (cp !== undefined && (out.prefixes.at(-1) === cp || cp <= startAfter)) continue;
    if (out.objects.length + out.prefixes.length === maxKeys) {
      out.truncated = true;
      break;
    }
    if (cp !== undefined) out.prefixes.push(cp);
    else out.objects.push(key);
  }
  return out;
}

const name = fc.constantFrom('a', 'a-b', 'a.c', 'a0', 'ab', 'b', 'a!');
const key = fc.tuple(fc.array(name, { minLength: 1, maxLength: 3 }), fc.boolean()).map(([names, dir]) => names.join('/') + (dir ? '/' : ''));
let tree: Dir = { files: new Set(), dirs: new Map() };
/** As the gateway's: the entry of a directory, looked up by path. */
async function dirEntry(path: string): Promise<DirEntry | undefined> {
  let d: Dir | undefined = tree;
  const names = path.split('/').slice(2);
  for (const n of names) d = d?.dirs.get(n);
  return d === undefined ? undefined : { name: names.at(-1)!, inodeId: 2, type: 'dir', empty: d.files.size === 0 && d.dirs.size === 0 };
}
const req = (over: Partial<ListRequest>): ListRequest => ({ root: '/bkt', prefix: '', delimiter: '', startAfter: '', maxKeys: 1000, isMarker: (e) => e.empty === true, hidden: () => false, dirEntry, ...over });

test('listings match the model: prefix, delimiter, start-after, max-keys', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(key, { maxLength: 25 }),
      fc.constantFrom('', 'a', 'a/', 'a-', 'a/a', 'a.c/', 'b'),
      fc.constantFrom('', '/', '-', '.'),
      fc.constantFrom('', 'a', 'a-b', 'a/', 'a/a-b', 'a/a/', 'a0', 'ab/a', 'zz'),
      fc.integer({ min: 1, max: 8 }),
      async (keys, prefix, delimiter, startAfter, maxKeys) => {
        const { root } = treeOf(keys);
        tree = root;
        const all = keysOf(root);
        const got = await listObjects(readDirOf(root, { n: 0 }), req({ prefix, delimiter, startAfter, maxKeys }));
        const want = model(all, prefix, delimiter, startAfter, maxKeys);
        assert.deepEqual({ objects: got.objects.map((o) => o.key), prefixes: got.commonPrefixes, truncated: got.truncated }, want);
      },
    ),
    { numRuns: 400 },
  );
});

test('paging with the last key returned walks every key once', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(key, { maxLength: 30 }), fc.constantFrom('', '/'), fc.integer({ min: 1, max: 4 }), async (keys, delimiter, maxKeys) => {
      const { root } = treeOf(keys);
      tree = root;
      const seen: string[] = [];
      let after = '';
      for (let page = 0; page < 100; page++) {
        const got = await listObjects(readDirOf(root, { n: 0 }), req({ delimiter, startAfter: after, maxKeys }));
        seen.push(...got.objects.map((o) => o.key), ...got.commonPrefixes);
        if (!got.truncated) break;
        after = got.last!;
      }
      const want = model(keysOf(root), '', delimiter, '', 1_000_000);
      assert.deepEqual(seen.sort(), [...want.objects, ...want.prefixes].sort());
    }),
    { numRuns: 200 },
  );
});

test('a prefix reads only its own names, not the whole directory', async () => {
  const keys = Array.from({ length: 500 }, (_, i) => `f${String(i).padStart(4, '0')}`);
  const { root } = treeOf(keys);
  const reads = { n: 0 };
  const got = await listObjects(readDirOf(root, reads), req({ prefix: 'f0400', maxKeys: 1000 }));
  assert.deepEqual(got.objects.map((o) => o.key), ['f0400']);
  assert.ok(reads.n <= 3, `read ${reads.n} entries`);
  reads.n = 0;
  await listObjects(readDirOf(root, reads), req({ startAfter: 'f0490', maxKeys: 5 }));
  assert.ok(reads.n <= 20, `a continuation read ${reads.n} entries`);
});
