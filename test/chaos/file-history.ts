// What the whole-cluster chaos test checks file data against. Each file belongs to one client,
// which works on it one operation at a time, so what a file may hold is a small set of candidate
// contents: an acknowledged write leaves exactly one; a write whose outcome is unknown (an error,
// a timeout) adds its result beside the old ones, since it may have taken effect, or may still.
// A read must return one of the candidates: anything else is bytes never written, or bytes an
// acknowledged write had already replaced.

import { createHash } from 'node:crypto';

/** A file's possible contents; null is "no file there". */
export type Content = Buffer | null;

/** Candidates beyond which the workload replaces a file whole (the list only grows by unknown outcomes). */
const crowdedAt = 8;

function key(c: Content): string {
  return c === null ? 'absent' : `${c.length}:${createHash('sha256').update(c).digest('hex')}`;
}

export function describe(c: Content): string {
  return c === null ? 'no file' : `${c.length} bytes, sha256 ${key(c).split(':')[1].slice(0, 12)}`;
}

export class FileHistory {
  private readonly files = new Map<string, Content[]>();
  /** Operations answered, failed with an unknown outcome, reads checked, and what went wrong. */
  acknowledged = 0;
  unknown = 0;
  readsChecked = 0;
  readonly violations: string[] = [];

  candidates(path: string): readonly Content[] {
    return this.files.get(path) ?? [null];
  }

  /** Whether `path` has one known content (so a partial overwrite of it has one known result). */
  known(path: string): Content | undefined {
    const c = this.candidates(path);
    return c.length === 1 ? c[0] : undefined;
  }

  /** Whether so many outcomes are unknown that the next operation on `path` should replace it whole. */
  crowded(path: string): boolean {
    return this.candidates(path).length >= crowdedAt;
  }

  /** A write of `next` to `path`: acknowledged (`ok`), or of unknown outcome. */
  wrote(path: string, next: Content, ok: boolean): void {
    if (ok) {
      this.acknowledged++;
      this.files.set(path, [next]);
      return;
    }
    this.unknown++;
    this.add(path, [next]);
  }

  /** A rename of `from` over `to`. */
  renamed(from: string, to: string, ok: boolean): void {
    const moving = this.candidates(from);
    if (ok) {
      this.acknowledged++;
      this.files.set(to, [...moving]);
      this.files.set(from, [null]);
      return;
    }
    this.unknown++;
    this.add(to, moving);
    this.add(from, [null]);
  }

  /** A read of `path` that answered `got` (null: no such file), made `when` (for the report). */
  read(path: string, got: Content, when: string): void {
    this.readsChecked++;
    const cands = this.candidates(path);
    if (cands.some((c) => key(c) === key(got))) return;
    this.violations.push(`${when}: read of ${path} returned ${describe(got)}, which is none of the ${cands.length} possible contents (${cands.map(describe).join('; ')})`);
  }

  paths(): string[] {
    return [...this.files.keys()];
  }

  private add(path: string, more: readonly Content[]): void {
    const list = [...this.candidates(path)];
    for (const c of more) if (!list.some((x) => key(x) === key(c))) list.push(c);
    this.files.set(path, list);
  }
}
