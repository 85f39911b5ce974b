// Group commit of directory fsyncs: one syncDir serves every caller that asked for that directory
// before it started. A caller arriving while a sync runs cannot ride on it (its rename may have come
// too late for it), so it waits for the next one, which then serves everyone who queued meanwhile:
// at most two syncs per directory are ever in flight or queued, however many callers there are.

import type { Disk } from '../io/index.ts';

/** A directory is in the map while a sync of it runs. */
interface DirState {
  /** The sync that starts when the running one ends: every caller that arrived meanwhile shares it. */
  next: PromiseWithResolvers<void> | undefined;
}

export class DirSyncGroup {
  private readonly disk: Disk;
  private readonly dirs = new Map<string, DirState>();
  /** syncDir calls made: a test checks that concurrent callers share them. */
  syncs = 0;

  constructor(disk: Disk) {
    this.disk = disk;
  }

  /** Resolves once a syncDir of `dir` that started after this call has completed. */
  sync(dir: string): Promise<void> {
    const s = this.dirs.get(dir);
    if (s === undefined) {
      const state: DirState = { next: undefined };
      this.dirs.set(dir, state);
      return this.start(dir, state);
    }
    s.next ??= Promise.withResolvers<void>();
    return s.next.promise;
  }

  private start(dir: string, s: DirState): Promise<void> {
    this.syncs++;
    const p = this.disk.syncDir(dir);
    // Hand over to the queued sync in the same turn, so no caller can slip in between.
    const done = () => {
      const next = s.next;
      if (next === undefined) {
        this.dirs.delete(dir);
        return;
      }
      s.next = undefined;
      this.start(dir, s).then(next.resolve, next.reject);
    };
    p.then(done, done);
    return p;
  }
}
