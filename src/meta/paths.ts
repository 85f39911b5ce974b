// Names and paths of the namespace: their rules and limits, checked once at the boundary so that
// apply can split a path without checking it again.
//
// A path is canonical: "/" or "/" followed by names joined by single slashes. No trailing slash,
// no empty, "." or ".." components (the client normalizes, and resolves symlinks: the master
// never follows them).

import { MetaError, MetaErrorCode } from './errors.ts';
import { utf8Bytes } from '../fields.ts';

export const nameBytesMax = 255;
/**
 * A program's path is at most PATH_MAX (4096) bytes, but relative to its working directory: the
 * whole path from the root that a FUSE mount sends may be longer, so the namespace takes 16 KiB.
 */
export const pathBytesMax = 16384;
export const symlinkTargetBytesMax = 4096;

/** UTF-8 length of a well-formed string, without encoding it. */
/** The problem with `name` as a directory entry name, or undefined if it is valid. */
export function nameProblem(name: string): MetaError | undefined {
  if (name.length === 0) return new MetaError(MetaErrorCode.EINVAL, 'empty name');
  if (name === '.' || name === '..') return new MetaError(MetaErrorCode.EINVAL, `name '${name}' is reserved`);
  if (name.includes('/')) return new MetaError(MetaErrorCode.EINVAL, `name '${name}' contains '/'`);
  if (name.includes('\0')) return new MetaError(MetaErrorCode.EINVAL, 'name contains NUL');
  if (!name.isWellFormed()) return new MetaError(MetaErrorCode.EINVAL, 'name is not valid Unicode (lone surrogate)');
  const bytes = utf8Bytes(name);
  if (bytes > nameBytesMax) {
    return new MetaError(MetaErrorCode.ENAMETOOLONG, `name of ${bytes} bytes is longer than ${nameBytesMax}`);
  }
  return undefined;
}

/** Throws a MetaError (EINVAL or ENAMETOOLONG) unless `path` is a canonical absolute path. */
export function checkPath(path: string, what = 'path'): void {
  if (!path.startsWith('/')) throw new MetaError(MetaErrorCode.EINVAL, `${what} '${path}' is not absolute`);
  if (!path.isWellFormed()) throw new MetaError(MetaErrorCode.EINVAL, `${what} is not valid Unicode (lone surrogate)`);
  const bytes = utf8Bytes(path);
  if (bytes > pathBytesMax) {
    throw new MetaError(MetaErrorCode.ENAMETOOLONG, `${what} of ${bytes} bytes is longer than ${pathBytesMax}`);
  }
  if (path === '/') return;
  if (path.endsWith('/')) throw new MetaError(MetaErrorCode.EINVAL, `${what} '${path}' ends with '/'`);
  for (const name of path.slice(1).split('/')) {
    const problem = nameProblem(name);
    if (problem !== undefined) throw new MetaError(problem.code, `${what} '${path}': ${problem.message}`);
  }
}

/** The names along a checked path; [] for the root. */
export function pathNames(path: string): string[] {
  return path === '/' ? [] : path.slice(1).split('/');
}
