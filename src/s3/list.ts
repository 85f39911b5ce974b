// ListObjects over a directory tree: keys come out in S3's order (by key), so a directory named
// "a" sorts as "a/", after "a-b" and "a.txt" and before "a0". Directories are read a page at a time
// in name order, and merged with the directories waiting to be entered; a listing that starts
// after a key skips, in each directory on its path, the names that cannot follow it. With the
// delimiter '/', directories are not entered: each is one common prefix. Any other delimiter
// groups the keys of the full walk. Pure: the caller passes how to read a directory.

import type { DirEntry } from '../meta/namespace-state.ts';

/** One directory's entries in name order, from after `after` (exclusive) when given; none when it is not there. */
export type ReadDir = (path: string, after: string | undefined) => AsyncIterable<DirEntry>;

export interface ListRequest {
  /** The bucket's directory ('/bucket'). */
  root: string;
  prefix: string;
  delimiter: string;
  /** Keys up to and including this one are skipped (start-after, or a continuation). */
  startAfter: string;
  maxKeys: number;
  /** Whether a directory is listed as an object (its key with a trailing '/'): markers and empty ones. */
  isMarker: (entry: DirEntry) => boolean;
  /** Names never listed (a put's temporary files). */
  hidden: (name: string) => boolean;
  /** The entry of one directory, if it is there (a prefix ending in '/' names a marker too). */
  dirEntry: (path: string) => Promise<DirEntry | undefined>;
}

export interface Listed {
  objects: { key: string; entry: DirEntry }[];
  commonPrefixes: string[];
  truncated: boolean;
  /** The last key or common prefix returned: where the next page starts. */
  last?: string;
}

type Item = { key: string; entry: DirEntry; prefix?: false } | { key: string; prefix: true };

export async function listObjects(readDir: ReadDir, req: ListRequest): Promise<Listed> {
  const out: Listed = { objects: [], commonPrefixes: [], truncated: false };
  if (req.maxKeys === 0) return out;
  // Start in the deepest directory the prefix names entirely.
  const slash = req.prefix.lastIndexOf('/');
  const base = slash === -1 ? '' : req.prefix.slice(0, slash + 1);
  // A prefix whose directory part no path can have ('/x', 'a//b', '../') matches no key.
  if (base !== '' && base.slice(0, -1).split('/').some((n) => n === '' || n === '.' || n === '..')) return out;
  const start = base === '' ? req.root : `${req.root}/${base.slice(0, -1)}`;
  let skipTo: string | undefined;
  if (req.startAfter.startsWith(base)) skipTo = req.startAfter.slice(base.length);
  // Past `base` without starting with it: past every key under it.
  else if (req.startAfter > base) return out;
  let lastPrefix: string | undefined;
  const items = walk(readDir, req, start, base, skipTo, req.prefix.slice(base.length));
  for await (const item of base !== '' && base === req.prefix ? withMarker(req, start, base, items) : items) {
    if (!item.key.startsWith(req.prefix) || item.key <= req.startAfter) continue;
    let key = item.key;
    let prefix = item.prefix === true;
    if (req.delimiter !== '') {
      const at = key.indexOf(req.delimiter, req.prefix.length);
      if (at !== -1) {
        key = key.slice(0, at + req.delimiter.length);
        prefix = true;
      }
    }
    if (prefix && key === lastPrefix) continue;
    if (out.objects.length + out.commonPrefixes.length === req.maxKeys) {
      out.truncated = true;
      return out;
    }
    if (prefix) {
      // A continuation from inside a common prefix must not return it again.
      if (key <= req.startAfter) continue;
      out.commonPrefixes.push(key);
      lastPrefix = key;
    } else out.objects.push({ key, entry: (item as { entry: DirEntry }).entry });
    out.last = key;
  }
  return out;
}

/** The items of a directory the prefix names whole, after its own key if it is listed as an object. */
async function* withMarker(req: ListRequest, path: string, key: string, items: AsyncGenerator<Item>): AsyncGenerator<Item> {
  const entry = await req.dirEntry(path);
  if (entry !== undefined && entry.type === 'dir' && req.isMarker(entry)) yield { key, entry };
  yield* items;
}

/**
 * The keys under directory `path` (whose keys start with `base`) in key order; `skipTo`, relative
 * to `base`, lets each directory skip names that cannot come after it, and `namePrefix` (in the
 * first directory only: the rest of the prefix) names that cannot match.
 */
async function* walk(readDir: ReadDir, req: ListRequest, path: string, base: string, skipTo: string | undefined, namePrefix = ''): AsyncGenerator<Item> {
  const first = skipTo === undefined || skipTo === '' ? undefined : skipTo.split('/')[0];
  const waiting: DirEntry[] = []; // directories met, to enter once the names before "name/" are out
  const enter = async function* (dir: DirEntry): AsyncGenerator<Item> {
    const key = `${base}${dir.name}/`;
    if (req.delimiter === '/' && key.startsWith(req.prefix)) {
      yield { key, prefix: true };
      return;
    }
    if (req.isMarker(dir)) yield { key, entry: dir };
    const inner = skipTo !== undefined && dir.name === first && skipTo.length > first.length ? skipTo.slice(first.length + 1) : undefined;
    yield* walk(readDir, req, `${path}/${dir.name}`, key, inner);
  };
  const afters = [first === undefined ? undefined : afterFor(first), namePrefix.length > 1 ? namePrefix.slice(0, -1) : undefined].filter((a) => a !== undefined);
  const after = afters.length === 0 ? undefined : afters.reduce((a, b) => (a > b ? a : b));
  for await (const e of readDir(path, after)) {
    // Names come in order: once past the prefix's range, nothing further matches.
    if (!e.name.startsWith(namePrefix)) {
      if (e.name > namePrefix) break;
      continue;
    }
    if (req.hidden(e.name)) continue;
    const sortKey = e.type === 'dir' ? `${e.name}/` : e.name;
    while (waiting.length > 0 && `${waiting[0].name}/` < sortKey) yield* enter(waiting.shift()!);
    if (e.type === 'dir') insertSorted(waiting, e);
    else if (e.type === 'file') yield { key: base + e.name, entry: e };
  }
  while (waiting.length > 0) yield* enter(waiting.shift()!);
}

/**
 * The readdir cursor for a directory whose listing resumes after name `c`: every name from the
 * first one whose directory key ("n/") could follow `c` (a prefix of `c` cut before a character
 * below '/') is still needed; the caller drops the few extra keys.
 */
function afterFor(c: string): string | undefined {
  let j = 0;
  while (j < c.length && c[j] >= '/') j++;
  return j <= 1 ? undefined : c.slice(0, j - 1);
}

/** Keeps `list` in the order of the directories' keys ("name/"), which is not always the names' order. */
function insertSorted(list: DirEntry[], e: DirEntry): void {
  let i = list.length;
  while (i > 0 && `${list[i - 1].name}/` > `${e.name}/`) i--;
  list.splice(i, 0, e);
}
