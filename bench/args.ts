// Parsing of benchmark flags, with one-line errors that name the flag.

import { CairnError, ErrorCode } from '../src/errors.ts';

function parsed(text: string, flag: string, ok: (n: number) => boolean, what: string): number {
  const n = Number(text);
  if (!ok(n)) throw new CairnError(ErrorCode.BadOption, `${flag} must be ${what}, got "${text}"`);
  return n;
}

export function positiveInt(text: string, flag: string): number {
  return parsed(text, flag, (n) => Number.isSafeInteger(n) && n > 0, 'a positive integer');
}

export function nonNegativeInt(text: string, flag: string): number {
  return parsed(text, flag, (n) => Number.isSafeInteger(n) && n >= 0, 'an integer >= 0');
}

export function positiveNumber(text: string, flag: string): number {
  return parsed(text, flag, (n) => Number.isFinite(n) && n > 0, 'a positive number');
}

/** A comma-separated list of positive integers (`1,16,64`). */
export function positiveIntList(text: string, flag: string): number[] {
  return text.split(',').map((item) => positiveInt(item.trim(), flag));
}

export function nonNegativeNumber(text: string, flag: string): number {
  return parsed(text, flag, (n) => Number.isFinite(n) && n >= 0, 'a number >= 0');
}
