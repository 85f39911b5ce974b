// Reading untrusted objects field by field (RPC bodies, log entries, config): each reader checks
// one field and names it in its message; `done()` refuses fields nobody read.

import { isPlainObject } from './plain-object.ts';

/** UTF-8 length of a string without encoding it. */
export function utf8Bytes(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** A short description of a value for error messages. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `string '${v.length > 40 ? `${v.slice(0, 40)}...` : v}'`;
  if (typeof v === 'number') return `number ${v}`;
  return typeof v;
}

/** How a component reports a bad field: its own error type and codes. */
export interface FieldErrors {
  invalid(message: string): Error;
  /** A string longer than its byte limit (ENAMETOOLONG for names and paths). */
  tooLong(message: string): Error;
}

/** Reads fields of one object; `done()` refuses any field nobody read, so typos fail loudly. */
export class Fields {
  readonly obj: Record<string, unknown>;
  readonly where: string;
  readonly errors: FieldErrors;
  private readonly seen = new Set<string>();

  constructor(x: unknown, where: string, errors: FieldErrors) {
    if (!isPlainObject(x)) throw errors.invalid(`${where} must be an object, not ${describe(x)}`);
    this.obj = x;
    this.where = where;
    this.errors = errors;
  }

  /** A reader for a nested object, reporting the same way. */
  nested(x: unknown, where: string): Fields {
    return new Fields(x, where, this.errors);
  }

  has(key: string): boolean {
    return this.obj[key] !== undefined;
  }

  raw(key: string): unknown {
    this.seen.add(key);
    return this.obj[key];
  }

  /** The field, or throws that it is missing. */
  req(key: string): unknown {
    const v = this.raw(key);
    if (v === undefined) throw this.errors.invalid(`${this.where}: missing field '${key}'`);
    return v;
  }

  int(key: string, min: number, max: number): number {
    return this.checkInt(key, this.req(key), min, max);
  }

  optInt(key: string, min: number, max: number): number | undefined {
    const v = this.raw(key);
    return v === undefined ? undefined : this.checkInt(key, v, min, max);
  }

  checkInt(key: string, v: unknown, min: number, max: number): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
      throw this.errors.invalid(`${this.where}: '${key}' must be an integer, not ${describe(v)}`);
    }
    if (v < min || v > max) throw this.errors.invalid(`${this.where}: '${key}' = ${v} is out of range [${min}, ${max}]`);
    return v;
  }

  bool(key: string, fallback?: boolean): boolean {
    const v = this.raw(key);
    if (v === undefined && fallback !== undefined) return fallback;
    if (typeof v !== 'boolean') throw this.errors.invalid(`${this.where}: '${key}' must be a boolean, not ${describe(v)}`);
    return v;
  }

  str(key: string, bytesMax: number): string {
    return this.checkStr(key, this.req(key), bytesMax);
  }

  optStr(key: string, bytesMax: number): string | undefined {
    const v = this.raw(key);
    return v === undefined ? undefined : this.checkStr(key, v, bytesMax);
  }

  checkStr(key: string, v: unknown, bytesMax: number): string {
    if (typeof v !== 'string') throw this.errors.invalid(`${this.where}: '${key}' must be a string, not ${describe(v)}`);
    if (v.length === 0) throw this.errors.invalid(`${this.where}: '${key}' is empty`);
    if (v.includes('\0')) throw this.errors.invalid(`${this.where}: '${key}' contains NUL`);
    if (!v.isWellFormed()) throw this.errors.invalid(`${this.where}: '${key}' is not valid Unicode (lone surrogate)`);
    const bytes = utf8Bytes(v);
    if (bytes > bytesMax) {
      throw this.errors.tooLong(`${this.where}: '${key}' of ${bytes} bytes is longer than ${bytesMax}`);
    }
    return v;
  }

  array(key: string, lengthMax: number): unknown[] {
    const v = this.req(key);
    if (!Array.isArray(v)) throw this.errors.invalid(`${this.where}: '${key}' must be an array, not ${describe(v)}`);
    if (v.length > lengthMax) throw this.errors.invalid(`${this.where}: '${key}' has ${v.length} items, more than ${lengthMax}`);
    return v;
  }

  done(): void {
    for (const key of Object.keys(this.obj)) {
      if (!this.seen.has(key)) throw this.errors.invalid(`${this.where}: unknown field '${key}'`);
    }
  }
}

