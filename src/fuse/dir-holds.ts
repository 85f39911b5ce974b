// The mount's side of directory leases (src/meta/dir-leases.ts). Once programs create or unlink
// several files in one directory, the mount takes the directory for itself and lists it: from then
// on it knows every name in it, so it answers lookups there, and creates and unlinks at once,
// sending them to the masters afterwards in batches (one journal entry for many). The kernel
// serializes creates and unlinks in one directory, so without this each waits for a journal
// commit; with it, for a map update.
//
// What the masters refuse to others meanwhile (CAIRN_DIR_LEASED, retried) makes the answers
// true: another client asking for the directory gets it once this mount's batches there landed
// and it gave the directory back (within a renewal, dirLeaseRenewMs). A directory not changed for
// idleMs is given back too. A create or unlink the masters refuse later (a lost lease: this mount
// cut off from them for half a lease) is logged, and the file's writes and fsync fail with EIO.
// fsync of a file, fsyncdir, and any other request about a name in the directory wait for its
// batch first.

import { randomBytes } from 'node:crypto';
import { dirBatchOpsMax, type Caller } from '../meta/commands.ts';
import { nameBytesMax } from '../meta/paths.ts';
import { MetaError, FsErrorCode, ResultErrorCode } from '../meta/errors.ts';
import type { CreateValue, DirBatchResult, DirEntry, InodeAttr, LeaseDirValue, ReaddirPage, UnlinkValue } from '../meta/namespace-state.ts';
import { dirLeaseRenewMs, type RenewDirLeasesReply } from '../master/dir-lease-renewals.ts';

/** What DirHolds needs of the masters (a MasterClient whose namespace requests name this holder). */
export interface HoldsMasters {
  query<T>(method: string, body: object): Promise<T>;
  mutate<T>(method: string, body: object): Promise<T>;
  call<T>(method: string, body: object): Promise<T>;
}

/**
 * A copy of the held directories' names kept elsewhere (the mount's addon, which answers lookups of
 * names they lack): told every change in the same step as the listing here changes, so that it never
 * holds a name as absent that this holds, and how long it may answer (a renewal's half lease).
 */
export interface NamesMirror {
  /** The held directory's names, with their attributes where known (the mirror may answer lookups from them). */
  hold(dir: string, entries: Iterable<[string, InodeAttr | undefined]>): void;
  /** A name comes (with its attributes, if known) or goes. */
  change(dir: string, name: string, present: boolean, attr?: InodeAttr): void;
  drop(dir: string): void;
  /** It may answer for `ms` more at most. */
  until(ms: number): void;
  /**
   * It may answer creates in `dir` itself with the inode ids [first, end), continuing those given
   * before if `first` is where they end (else replacing them; 0, 0: none), for `creatorUid` and
   * root (-1: nobody), telling this of each (createdElsewhere) before anything else reaches it.
   * It may also unlink there a file whose attributes it was given (unlinkedElsewhere).
   */
  createIds?(dir: string, first: number, end: number, creatorUid: number): void;
  /** Tells this now of the creates and unlinks it answered: before a change this makes on its own timers. */
  sync?(): void;
}

export interface DirHoldsOptions {
  meta: HoldsMasters;
  holder: string;
  /** Creates and unlinks in one directory within changeWindowMs after which the mount takes it; 0: never. */
  changesToHold?: number;
  /** A held directory with no change for this long is given back. */
  idleMs?: number;
  /** How long a batch waits for more changes to join it (batchLingerMsDefault). */
  lingerMs?: number;
  /**
   * Before a directory is given back: files created there that are still open get their write
   * sessions (Handle.lazy in cairn-fs.ts), so that they stay theirs once others may change it.
   */
  beforeGiveBack?: (dir: string) => Promise<void>;
  log?: (level: 'info' | 'warn' | 'error', message: string) => void;
}

/** A new holder token for a mount: unique per process and mount. */
export function newHolder(): string {
  return `m${process.pid}-${randomBytes(8).toString('hex')}`;
}

export const changesToHoldDefault = 4;
const changeWindowMs = 1_000;
export const holdIdleMsDefault = 1_000;
/**
 * A directory with more entries is not held (or given back once it grows past it): about 300
 * bytes of heap an entry, so the held directories' listings take some 80 MiB at most.
 */
export const heldEntriesMax = 32_768;
/** Directories a mount holds at once at most; the least recently changed goes back first. */
const heldDirsMax = 8;
/** After a directory could not be held (refused, too big), this long before trying it again. */
const retryHoldMs = 2_000;
/**
 * How long a batch waits for more changes to join it, unless it fills (batchFillOps) or someone
 * waits for it (fsync, a give-back, a first write). What a batch costs the masters is mostly per
 * batch (a journal round: messages, fsyncs, wake-ups on three machines), so a longer wait makes
 * each change cheaper: 4 processes creating in one directory cost the masters 80-160 us of CPU a
 * file at 5 ms, 35-90 us at 20-40 ms (docs/benchmarks.md). A mount killed loses what it answered
 * and had not sent: this long, and a batch in flight, at most.
 */
export const batchLingerMsDefault = 20;
const batchFillOps = 256;
/** Inode ids handed to the mirror at a time for the creates it answers, once fewer than mirrorIdsLow are left. */
const mirrorIds = 256;
const mirrorIdsLow = 64;
/** Entries per readdir call while listing a held directory. */
const listPageEntries = 1_000;
/** Directories whose refused changes wait for an fsyncdir to report them, at most (the oldest are dropped). */
const unreportedMax = 64;

/** What became of an entry: these attributes, gone (null), there with attributes to ask for ('unknown'), or the same entry with attributes to ask for ('stale'). */
type Change = InodeAttr | null | 'unknown' | 'stale';

interface PendingOp {
  /** Its number among the directory's answered changes. */
  mark: number;
  wire: object;
  name: string;
  resolve: (v: CreateValue | UnlinkValue) => void;
  reject: (err: unknown) => void;
}

interface Held {
  dir: string;
  dirInodeId: number;
  /** The directory's own attributes, as its changes here leave them (undefined: ask the masters). */
  attr?: InodeAttr;
  /**
   * Every entry of the directory with its attributes (undefined: changed through the masters since,
   * ask them); the map is undefined while the directory is being listed.
   */
  names?: Map<string, InodeAttr | undefined>;
  /** Changes this mount made there while it was being listed: applied over the listing. */
  replay: [string, Change][];
  idNext: number;
  idEnd: number;
  /** Ids handed to the mirror for its creates (NamesMirror.createIds): the next it takes, as far as this knows, and the end. */
  mirrorIdNext: number;
  mirrorIdEnd: number;
  queue: PendingOp[];
  sending?: Promise<void>;
  /** Changes answered here so far, and how many of them have landed (or failed): settle's marks. */
  answered: number;
  landed: number;
  /** Ends the wait of a batch for more changes (someone waits for it to land). */
  hurry?: () => void;
  /** settle() calls waiting for `landed` to reach their mark. */
  waiters: { mark: number; resolve: () => void }[];
  lastChangeMs: number;
  /** Being given back (recalled, idle, a batch failed): no new change is answered from it. */
  leaving?: Promise<void>;
}

export interface CreatedHere {
  attr: InodeAttr;
  /** Settles once the masters applied the create: with its value, or its failure. */
  landed: Promise<CreateValue>;
}

export class DirHolds {
  private readonly meta: HoldsMasters;
  readonly holder: string;
  private readonly changesToHold: number;
  private readonly idleMs: number;
  private readonly lingerMs: number;
  private readonly log: NonNullable<DirHoldsOptions['log']>;
  /** By directory path, in order of last change. */
  private readonly held = new Map<string, Held>();
  private readonly changes = new Map<string, { count: number; sinceMs: number }>();
  private readonly notBefore = new Map<string, number>();
  /** Directories where the masters refused changes this mount had answered, until an fsyncdir there reports it. */
  private readonly unreported = new Map<string, string>();
  private readonly beforeGiveBack: NonNullable<DirHoldsOptions['beforeGiveBack']>;
  private timer: NodeJS.Timeout | undefined;
  /** When the last renewal that the leader answered was sent (performance.now()). */
  private renewedAtMs = -Infinity;
  private leaseMs = 0;
  private renewing = false;
  /** Renewals are failing: logged once, and again when they work again. */
  private renewFailing = false;
  private closed = false;
  /** Set by the mount once its addon can keep names (version 10). */
  mirror: NamesMirror | undefined;
  /** For /metrics. */
  readonly stats = { held: 0, given: 0, created: 0, createdElsewhere: 0, unlinked: 0, unlinkedElsewhere: 0, batches: 0, failed: 0 };

  constructor(opts: DirHoldsOptions) {
    this.meta = opts.meta;
    this.holder = opts.holder;
    this.changesToHold = opts.changesToHold ?? changesToHoldDefault;
    this.idleMs = opts.idleMs ?? holdIdleMsDefault;
    this.lingerMs = opts.lingerMs ?? batchLingerMsDefault;
    this.log = opts.log ?? (() => undefined);
    this.beforeGiveBack = opts.beforeGiveBack ?? (async () => undefined);
  }

  /** The held directory `dir`, if this mount may answer from it now. */
  private usable(dir: string): Held | undefined {
    const h = this.held.get(dir);
    if (h === undefined || h.names === undefined || h.leaving !== undefined) return undefined;
    // Half a lease without an answered renewal: the leader may soon end it, so stop answering.
    if (performance.now() - this.renewedAtMs > this.leaseMs / 2) return undefined;
    return h;
  }

  /** Whether the directory holding `path` is held here now: no other client can change its names. */
  holdsDirOf(path: string): boolean {
    return this.usable(split(path)[0]) !== undefined;
  }

  /** A name's attributes in a held directory, 'absent' if it has no such name, undefined if not held. */
  lookup(path: string): InodeAttr | 'absent' | undefined {
    if (this.held.size === 0 || path === '/') return undefined;
    const [dir, name] = split(path);
    const h = this.usable(dir);
    // A name too long for any directory: the masters' ENAMETOOLONG, not ENOENT.
    if (h === undefined || (name.length > nameBytesMax / 3 && Buffer.byteLength(name) > nameBytesMax)) return undefined;
    return h.names!.has(name) ? h.names!.get(name) : 'absent';
  }

  /** A held directory's own attributes, if this mount knows them (the kernel asks after each change in it). */
  dirAttr(dir: string): InodeAttr | undefined {
    return this.usable(dir)?.attr;
  }

  /** A change in the directory: its times move, as the masters' will when the batch lands. */
  private touched(h: Held, now = Date.now()): void {
    if (h.attr === undefined) return;
    h.attr = { ...h.attr, mtimeMs: now, ctimeMs: now };
  }

  /**
   * Creates a file in a held directory now, to be sent with the next batch; undefined if the
   * directory is not held (the caller asks the masters), 'exists' if the name is taken.
   */
  create(path: string, mode: number, owner: { uid: number; gid: number }, caller: Caller): CreatedHere | 'exists' | undefined {
    const [dir, name] = split(path);
    const h = this.usable(dir);
    if (h === undefined) return undefined;
    if (h.names!.has(name)) return 'exists';
    if (h.idNext >= h.idEnd || h.names!.size >= heldEntriesMax) {
      // Out of reserved ids, or grown too big: given back, and taken anew (with new ids) later.
      void this.giveBack(h);
      return undefined;
    }
    // The masters take a lease's ids in increasing order: the mirror's are void once this takes a
    // later one (the kernel lets no other create in the directory run meanwhile).
    this.voidMirrorIds(h);
    const created = this.answered(h, name, h.idNext++, mode, owner, caller, Date.now());
    this.handIds(h);
    return created;
  }

  /**
   * A create the mirror answered in a held directory (NamesMirror.createIds), with the id and time
   * it gave: sent with the next batch as if answered here; undefined if the directory is no longer
   * held here (it cannot be: the mirror is told first, and tells this first).
   */
  createdElsewhere(path: string, mode: number, owner: { uid: number; gid: number }, caller: Caller, inodeId: number, timeMs: number): CreatedHere | undefined {
    const [dir, name] = split(path);
    const h = this.held.get(dir);
    if (h?.names === undefined) return undefined;
    h.mirrorIdNext = Math.max(h.mirrorIdNext, inodeId + 1);
    this.stats.createdElsewhere++;
    const created = this.answered(h, name, inodeId, mode, owner, caller, timeMs);
    this.handIds(h);
    return created;
  }

  /** The mirror creates nothing more in `h` until handIds gives it ids again. */
  private voidMirrorIds(h: Held): void {
    if (h.mirrorIdEnd > 0) this.mirror?.createIds?.(h.dir, 0, 0, -1);
    h.mirrorIdNext = h.mirrorIdEnd = 0;
  }

  /** Gives the mirror more ids for its creates in `h` when it runs low (and `h` has an owner to create for). */
  private handIds(h: Held): void {
    if (this.mirror?.createIds === undefined || h.leaving !== undefined || h.names === undefined || h.mirrorIdEnd - h.mirrorIdNext >= mirrorIdsLow || h.idNext >= h.idEnd) return;
    const first = h.idNext;
    h.idNext = Math.min(h.idEnd, first + mirrorIds);
    if (h.mirrorIdEnd !== first) h.mirrorIdNext = first;
    h.mirrorIdEnd = h.idNext;
    this.mirror.createIds(h.dir, first, h.idNext, h.attr?.uid ?? -1);
  }

  /** A file created in `h` now (by this or the mirror), queued for the next batch. */
  private answered(h: Held, name: string, inodeId: number, mode: number, owner: { uid: number; gid: number }, caller: Caller, now: number): CreatedHere {
    const attr: InodeAttr = { inodeId, type: 'file', mode, uid: owner.uid, gid: owner.gid, nlink: 1, sizeBytes: 0, atimeMs: now, mtimeMs: now, ctimeMs: now };
    h.names!.set(name, attr);
    this.mirror?.change(h.dir, name, true, attr);
    this.touched(h, now);
    const landed = this.enqueue<CreateValue>(h, name, { op: 'create', name, inodeId: attr.inodeId, mode, uid: owner.uid, gid: owner.gid, openSession: false, caller });
    landed.then((v) => {
      this.mirror?.sync?.(); // an unlink of it the mirror answered comes first
      // The masters' attributes (their clock's times), unless the name changed since.
      if (h.names?.get(name)?.inodeId !== attr.inodeId) return;
      const masters = withoutChunks(v.inode);
      h.names.set(name, masters);
      if (this.held.get(h.dir) === h) this.mirror?.change(h.dir, name, true, masters);
    }, () => undefined);
    this.stats.created++;
    return { attr, landed };
  }

  /** Unlinks a file in a held directory now; false if not held, or not a file this can unlink (ask the masters). */
  unlink(path: string, caller: Caller): boolean {
    const [dir, name] = split(path);
    const h = this.usable(dir);
    if (h === undefined) return false;
    if (!h.names!.has(name)) throw new MetaError(FsErrorCode.ENOENT, `'${path}' does not exist`);
    const attr = h.names!.get(name);
    if (attr === undefined || attr.type === 'dir') return false;
    this.unlinked(h, name, attr, caller, Date.now());
    return true;
  }

  /**
   * An unlink the mirror answered in a held directory (a file whose attributes it was given): sent
   * with the next batch as if answered here; false if the directory is no longer held here or the
   * name not there (neither can be: the mirror is told first, and tells this first).
   */
  unlinkedElsewhere(path: string, caller: Caller, timeMs: number): boolean {
    const [dir, name] = split(path);
    const h = this.held.get(dir);
    if (h?.names?.has(name) !== true) return false;
    this.stats.unlinkedElsewhere++;
    this.unlinked(h, name, h.names.get(name), caller, timeMs);
    return true;
  }

  private unlinked(h: Held, name: string, attr: InodeAttr | undefined, caller: Caller, now: number): void {
    for (const other of this.linksOf(attr)) this.forget(other); // their link count
    h.names!.delete(name);
    this.mirror?.change(h.dir, name, false);
    this.touched(h, now);
    this.enqueue<UnlinkValue>(h, name, { op: 'unlink', name, caller }).catch(() => undefined);
    this.stats.unlinked++;
  }

  /** A name whose attributes are no longer known here (ask the masters), nor to the mirror. */
  private forget(link: { dir: string; names: Map<string, InodeAttr | undefined>; name: string }): void {
    link.names.set(link.name, undefined);
    this.mirror?.change(link.dir, link.name, true);
  }

  /**
   * A file at `path` was opened here (the first descriptor of its inode) or closed (the last): while
   * it is open its attributes are the mount's (written data), so the mirror does not answer for it.
   */
  openChanged(path: string, open: boolean): void {
    if (this.held.size === 0 || this.mirror === undefined) return;
    if (!open) this.mirror.sync?.();
    const [dir, name] = split(path);
    const h = this.held.get(dir);
    if (h?.names?.has(name) !== true) return;
    this.mirror.change(dir, name, true, open ? undefined : h.names.get(name));
  }

  private enqueue<V extends CreateValue | UnlinkValue>(h: Held, name: string, wire: object): Promise<V> {
    h.lastChangeMs = performance.now();
    this.held.delete(h.dir); // most recently changed last
    this.held.set(h.dir, h);
    return new Promise<V>((resolve, reject) => {
      h.queue.push({ mark: ++h.answered, wire, name, resolve: resolve as PendingOp['resolve'], reject });
      h.sending ??= this.send(h);
      if (h.queue.length >= batchFillOps) h.hurry?.();
    });
  }

  /** Sends the directory's queue in batches, one at a time, until it is empty. */
  private async send(h: Held): Promise<void> {
    let failed = false;
    while (h.queue.length > 0) {
      // A moment for more changes to join: each batch is a journal entry on every master, and
      // what they cost is mostly per entry. Nobody waits for it but fsync and settle.
      if (h.queue.length < batchFillOps && h.waiters.length === 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.lingerMs);
          h.hurry = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        h.hurry = undefined;
      }
      const batch = h.queue.splice(0, dirBatchOpsMax);
      this.stats.batches++;
      try {
        const r = await this.meta.mutate<{ results: DirBatchResult[]; parent: InodeAttr }>('meta.mutate', { op: 'dirBatch', dirInodeId: h.dirInodeId, ops: batch.map((o) => o.wire) });
        // The masters' times, unless more changes wait (then they move on again).
        if (h.queue.length === 0) h.attr = r.parent;
        for (const [i, o] of batch.entries()) {
          const res = r.results[i];
          if (res.ok) o.resolve(res.value);
          else {
            failed = true;
            this.stats.failed++;
            this.refused(h.dir, `${o.name}: ${res.code} ${res.message}`);
            this.log('error', `${h.dir}/${o.name}: the masters refused a change this mount had answered: ${res.code} ${res.message}`);
            o.reject(new MetaError(FsErrorCode.EINVAL, `${h.dir}/${o.name}: the masters refused it after the mount answered (${res.code}: ${res.message})`, { errno: 'EIO' }));
          }
        }
      } catch (err) {
        failed = true;
        this.stats.failed += batch.length;
        this.refused(h.dir, `${batch.length} changes: ${(err as Error).message}`);
        this.log('error', `${h.dir}: ${batch.length} changes this mount had answered were not applied: ${(err as Error).message}`);
        const lost = new MetaError(FsErrorCode.EINVAL, `${h.dir}: not applied by the masters (${(err as Error).message})`, { errno: 'EIO' });
        for (const o of batch) o.reject(lost);
      }
      h.landed = batch[batch.length - 1].mark;
      h.waiters = h.waiters.filter((w) => (w.mark <= h.landed ? (w.resolve(), false) : true));
    }
    h.sending = undefined;
    // What this mount answered there is not what the masters hold: forget the directory.
    if (failed) void this.giveBack(h);
  }

  /** Remembers, for the next fsyncdir of `dir`, that changes answered there were refused. */
  private refused(dir: string, what: string): void {
    this.unreported.delete(dir);
    this.unreported.set(dir, what);
    if (this.unreported.size > unreportedMax) this.unreported.delete(this.unreported.keys().next().value!);
  }

  /**
   * fsyncdir: waits for the changes answered in `dir` so far, and fails with EIO if the masters
   * refused any answered there since the last fsyncdir of it (once, as fsync reports a lost write).
   */
  async sync(dir: string): Promise<void> {
    await this.settle(dir);
    const what = this.unreported.get(dir);
    if (what === undefined) return;
    this.unreported.delete(dir);
    throw new MetaError(FsErrorCode.EINVAL, `${dir}: the masters refused changes this mount had answered there (${what})`, { errno: 'EIO' });
  }

  /**
   * Has the create of `path` (inode `inodeId`), answered here and not yet sent, open a write
   * session in the same step, so that the file's first write needs no journal round of its own
   * (its landed value then holds the session id); false if that create has left the queue. A
   * create that cannot open its session (the masters' session limit) then fails whole.
   */
  openWithCreate(path: string, inodeId: number): boolean {
    const [dir, name] = split(path);
    const op = this.held.get(dir)?.queue.find((o) => o.name === name && (o.wire as { inodeId?: number }).inodeId === inodeId);
    const wire = op?.wire as { op: string; openSession?: boolean } | undefined;
    if (wire?.op !== 'create') return false;
    wire.openSession = true;
    return true;
  }

  /**
   * Waits until every change this mount answered so far in the directory holding `path` (or in
   * `path`, a directory) landed; not for those answered meanwhile, so that a stream of creates
   * there does not hold it up.
   */
  async settle(path: string): Promise<void> {
    if (this.held.size === 0) return;
    for (const dir of [split(path)[0], path]) {
      const h = this.held.get(dir);
      if (h === undefined || h.landed >= h.answered) continue;
      const mark = h.answered;
      const landed = new Promise<void>((resolve) => h.waiters.push({ mark, resolve }));
      h.hurry?.();
      await landed;
    }
  }

  /**
   * A change this mount made through the masters at `path` (see Change): a held directory's
   * listing follows it.
   */
  changed(path: string, change: Change): void {
    if (this.held.size === 0) return;
    const self = this.held.get(path);
    if (self !== undefined) {
      self.attr = undefined; // a held directory's own chmod, chown, times
      // Its owner may have changed: the mirror's creates stop (see NamesMirror.createIds).
      this.voidMirrorIds(self);
    }
    if (path === '/') return;
    const [dir, name] = split(path);
    const h = this.held.get(dir);
    if (h === undefined) return;
    if (h.names === undefined) h.replay.push([name, change]);
    else {
      // A file with several links: a change through one name is seen through the others.
      if (change === 'stale') for (const other of this.linksOf(h.names.get(name))) this.forget(other);
      apply(h.names, name, change);
      this.mirror?.change(dir, name, h.names.has(name), h.names.get(name));
    }
    if (change !== 'stale') h.attr = undefined; // its times, and its link count for a directory made or removed
  }

  /** Every name in the held directories of the inode `attr` describes, if it has several links. */
  private linksOf(attr: InodeAttr | undefined): { dir: string; names: Map<string, InodeAttr | undefined>; name: string }[] {
    const out: { dir: string; names: Map<string, InodeAttr | undefined>; name: string }[] = [];
    for (const h of this.held.values()) if (h.names !== undefined) for (const name of otherLinks(h.names, attr)) out.push({ dir: h.dir, names: h.names, name });
    return out;
  }

  /** Gives back every held directory at or below `path` (it was moved or removed: their paths are stale). */
  async releaseUnder(path: string): Promise<void> {
    const prefix = path === '/' ? '/' : `${path}/`;
    await Promise.all([...this.held.values()].filter((h) => h.dir === path || h.dir.startsWith(prefix)).map((h) => this.giveBack(h)));
  }

  /** A create or unlink went to the masters in `dir`: after enough of them, the mount takes it. */
  noteChange(path: string): void {
    if (this.changesToHold === 0 || this.closed) return;
    const dir = split(path)[0];
    if (this.held.has(dir)) return;
    const now = performance.now();
    if ((this.notBefore.get(dir) ?? 0) > now) return;
    const seen = this.changes.get(dir);
    if (seen === undefined || now - seen.sinceMs > changeWindowMs) {
      this.changes.delete(dir);
      this.changes.set(dir, { count: 1, sinceMs: now });
      if (this.changes.size > heldDirsMax) this.changes.delete(this.changes.keys().next().value!);
      return;
    }
    if (++seen.count < this.changesToHold) return;
    this.changes.delete(dir);
    void this.take(dir);
  }

  /** Takes the directory and lists it, in the background. */
  private async take(dir: string): Promise<void> {
    const h: Held = { dir, dirInodeId: 0, replay: [], idNext: 0, idEnd: 0, mirrorIdNext: 0, mirrorIdEnd: 0, queue: [], answered: 0, landed: 0, waiters: [], lastChangeMs: performance.now() };
    this.held.set(dir, h);
    if (this.held.size > heldDirsMax) void this.giveBack(this.held.values().next().value!);
    try {
      const lease = await this.meta.mutate<LeaseDirValue>('meta.mutate', { op: 'leaseDir', path: dir });
      Object.assign(h, { dirInodeId: lease.dir.inodeId, attr: lease.dir, idNext: lease.idNext, idEnd: lease.idEnd });
      this.stats.held++;
      this.startRenewing();
      await this.renew(); // the renewal clock starts now, before anything is answered from it
      const names = new Map<string, InodeAttr | undefined>();
      let after: string | undefined;
      do {
        const page = await this.meta.query<ReaddirPage>('meta.query', { op: 'readdir', path: dir, limit: listPageEntries, attrs: true, ...(after === undefined ? {} : { after }) });
        for (const e of page.entries as DirEntry[]) if (e.attr !== undefined) names.set(e.name, e.attr);
        after = page.next;
        if (names.size > heldEntriesMax) throw new Error(`more than ${heldEntriesMax} entries`);
      } while (after !== undefined);
      for (const [name, change] of h.replay) apply(names, name, change);
      h.replay = [];
      if (this.held.get(dir) === h && h.leaving === undefined) {
        h.names = names;
        this.mirror?.hold(dir, names.entries());
        this.handIds(h);
      }
    } catch (err) {
      const now = performance.now();
      for (const [d, until] of this.notBefore) if (until <= now) this.notBefore.delete(d);
      this.notBefore.set(dir, now + retryHoldMs);
      if (this.held.get(dir) === h) {
        if (h.dirInodeId !== 0) await this.giveBack(h);
        else {
          this.held.delete(dir);
          if (this.held.size === 0) this.stopRenewing();
        }
      }
      const code = (err as { code?: string }).code;
      if (code !== FsErrorCode.EAGAIN && code !== ResultErrorCode.DirLeased) this.log('info', `${dir}: not held (${(err as Error).message}); creates and unlinks there go to the masters one by one`);
    }
  }

  /** Stops answering from the directory, waits for its batches, and gives it back. */
  private giveBack(h: Held): Promise<void> {
    if (h.leaving === undefined) this.mirror?.drop(h.dir);
    h.leaving ??= (async () => {
      await this.beforeGiveBack(h.dir).catch(() => undefined);
      // Others wait for the directory (a recall, an unmount): the batch goes now.
      while (h.sending !== undefined) {
        h.hurry?.();
        await h.sending.catch(() => undefined);
      }
      if (h.dirInodeId !== 0) {
        await this.meta.mutate('meta.mutate', { op: 'releaseDir', dirInodeId: h.dirInodeId }).catch((err: unknown) => {
          this.log('warn', `${h.dir}: could not give the directory back (${(err as Error).message}); the masters end its lease once this mount stops renewing it`);
        });
        this.stats.given++;
      }
      if (this.held.get(h.dir) === h) this.held.delete(h.dir);
      if (this.held.size === 0) this.stopRenewing();
    })();
    return h.leaving;
  }

  private startRenewing(): void {
    this.timer ??= setInterval(() => void this.tick(), dirLeaseRenewMs);
    this.timer.unref?.();
  }

  private stopRenewing(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** A renewal: directories recalled or lost are given back; idle ones too. */
  private async tick(): Promise<void> {
    if (this.renewing) return;
    this.renewing = true;
    try {
      await this.renew();
      if (this.renewFailing) this.log('info', 'directory leases renewed again');
      this.renewFailing = false;
    } catch (err) {
      if (!this.renewFailing) this.log('warn', `directory leases not renewed (creates and unlinks there go to the masters after ${this.leaseMs / 2} ms of this): ${(err as Error).message}`);
      this.renewFailing = true;
    } finally {
      this.renewing = false;
    }
    const now = performance.now();
    for (const h of [...this.held.values()]) {
      if (h.names !== undefined && h.queue.length === 0 && h.sending === undefined && now - h.lastChangeMs > this.idleMs) void this.giveBack(h);
    }
  }

  private async renew(): Promise<void> {
    const dirs = [...this.held.values()].filter((h) => h.dirInodeId !== 0).map((h) => h.dirInodeId);
    if (dirs.length === 0) return;
    const sentAt = performance.now();
    const r = await this.meta.call<RenewDirLeasesReply>('meta.renewDirLeases', { holder: this.holder, dirs });
    this.renewedAtMs = sentAt;
    this.leaseMs = r.leaseMs;
    this.mirror?.until(sentAt + r.leaseMs / 2 - performance.now());
    const byId = new Map([...this.held.values()].map((h) => [h.dirInodeId, h]));
    for (const id of r.lost) {
      const h = byId.get(id);
      if (h === undefined) continue;
      this.log('warn', `${h.dir}: this mount's lease on the directory ended (cut off from the masters for too long): changes it answered there and had not sent are lost`);
      h.dirInodeId = 0; // nothing to give back
      void this.giveBack(h);
    }
    for (const id of r.recalled) {
      const h = byId.get(id);
      if (h !== undefined) void this.giveBack(h);
    }
  }

  /** Gives every directory back (unmount): their batches land first. */
  async releaseAll(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.held.values()].map((h) => this.giveBack(h)));
    this.stopRenewing();
  }
}

/** A mount path's directory and last name ('/' for a name in the root). */
export function split(path: string): [string, string] {
  const slash = path.lastIndexOf('/');
  return [slash === 0 ? '/' : path.slice(0, slash), path.slice(slash + 1)];
}

function apply(names: Map<string, InodeAttr | undefined>, name: string, change: Change): void {
  if (change === null) names.delete(name);
  else if (change === 'unknown') names.set(name, undefined);
  else if (change === 'stale') {
    if (names.has(name)) names.set(name, undefined);
  } else names.set(name, withoutChunks(change));
}

/** The names of the inode in `names`, when it has other links: their attributes are its too. */
function otherLinks(names: Map<string, InodeAttr | undefined>, attr: InodeAttr | undefined): string[] {
  if (attr === undefined || attr.type === 'dir' || attr.nlink < 2) return [];
  const out: string[] = [];
  for (const [name, a] of names) if (a?.inodeId === attr.inodeId) out.push(name);
  return out;
}

function withoutChunks(attr: InodeAttr): InodeAttr {
  if (attr.chunks === undefined) return attr;
  const { chunks: _chunks, ...rest } = attr;
  return rest;
}
