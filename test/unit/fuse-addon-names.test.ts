// The mount addon's copy of held directories' names (scripts/build-fuse-addon.ts, namesEdits): a
// seeded run of adds and removes against a model set, through the addon's own functions. A name the
// table wrongly says is absent would be answered ENOENT by the kernel's lookup, so after every step
// each name is asked. Needs the addon built by scripts/build-fuse-addon.ts (version 10 or later).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadFuseBinding } from '../../src/fuse/mount.ts';

interface NamesAddon {
  sizeof_fuse_thread_t: number;
  cairn_caller_context?: number;
  cairn_names_hold(thread: Buffer, dir: string, names: Buffer): void;
  cairn_names_change(thread: Buffer, dir: string, name: string, present: boolean): void;
  cairn_names_drop(thread: Buffer, dir: string): void;
  cairn_names_until(thread: Buffer, ms: number): void;
  cairn_names_absent(thread: Buffer, path: string): number;
}

function loadAddon(): NamesAddon | string {
  try {
    const binding = loadFuseBinding() as unknown as NamesAddon;
    if ((binding.cairn_caller_context ?? 0) < 10) return `fuse-native's addon is not cairn's version 10 or later (run: node scripts/build-fuse-addon.ts)`;
    return binding;
  } catch (err) {
    return `fuse-native's addon does not load: ${(err as Error).message.split('\n')[0]}`;
  }
}

const addon = loadAddon();
// In CI the addon is built by npm ci (postinstall): its absence fails there.
const skip = typeof addon === 'string' && process.env.CI !== 'true' ? addon : undefined;

/** A small seeded generator (mulberry32), so that a failing seed can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test("the addon's names table says absent exactly for the names the model lacks, through adds, removes and growth", { skip }, () => {
  if (typeof addon === 'string') assert.fail(addon);
  // The thread's state as fuse-native allocates it (zeroed: on Linux a zeroed mutex is an unlocked one).
  const thread = Buffer.alloc(addon.sizeof_fuse_thread_t);
  const seed = Number(process.env.CAIRN_SEED ?? Date.now() % 1_000_000);
  const rand = random(seed);
  const names = Array.from({ length: 600 }, (_, i) => `n${i}-${Math.floor(rand() * 1e9).toString(36)}`);
  const model = new Set(names.slice(0, 50));
  const absent = (name: string): boolean => addon.cairn_names_absent(thread, `/d/${name}`) === 1;
  addon.cairn_names_hold(thread, '/d', Buffer.from([...model].join('/')));
  assert.equal(absent('x'), false, 'nothing is answered before a time is given');
  addon.cairn_names_until(thread, 60_000);
  for (let step = 0; step < 20_000; step++) {
    const name = names[Math.floor(rand() * names.length)];
    const present = rand() < 0.55;
    addon.cairn_names_change(thread, '/d', name, present);
    if (present) model.add(name);
    else model.delete(name);
    if (step % 50 === 0 || step > 19_900) for (const n of names) assert.equal(absent(n), !model.has(n), `seed ${seed} (CAIRN_SEED=${seed} to replay), step ${step}: ${n}`);
  }
  assert.equal(absent('n0/x'), false, 'a path under a name: its directory is not held');
  assert.equal(absent(`${'x'.repeat(256)}`), false, 'a name too long is left to JavaScript (ENAMETOOLONG)');
  assert.equal(absent('é'), false, 'a name beyond ASCII is left to JavaScript');
  assert.equal(addon.cairn_names_absent(thread, '/e/x'), 0, 'another directory is not held');
  addon.cairn_names_hold(thread, '/', Buffer.from('a/b'));
  assert.equal(addon.cairn_names_absent(thread, '/c'), 1, 'the root held too');
  assert.equal(addon.cairn_names_absent(thread, '/a'), 0);
  addon.cairn_names_until(thread, 0);
  assert.equal(addon.cairn_names_absent(thread, '/c'), 0, 'past the time given: nothing answered');
  addon.cairn_names_until(thread, 60_000);
  addon.cairn_names_drop(thread, '/d');
  assert.equal(absent('never-added'), false, 'dropped');
  addon.cairn_names_drop(thread, '/');
});
