// Tests of how the CLI shows names and modes (src/cli/format.ts): control characters escaped in
// human-readable output, JSON exact, modes as ls -l shows them.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jsonLine, modeString, printable } from '../../src/cli/format.ts';

test('printable escapes newlines, ESC and every other C0, C1 and DEL control, and doubles backslashes', () => {
  assert.equal(printable('x\nfake'), 'x\\nfake');
  assert.equal(printable('\x1b[31mred'), '\\x1b[31mred');
  assert.equal(printable('a\tb\rc'), 'a\\tb\\rc');
  assert.equal(printable('nul\0 bell\x07 del\x7f csi\x9b'), 'nul\\x00 bell\\x07 del\\x7f csi\\x9b');
  assert.equal(printable('back\\slash'), 'back\\\\slash');
  assert.equal(printable('rtl\u202eexe.txt line\u2028sep'), 'rtl\\u202eexe.txt line\\u2028sep');
  for (let c = 0; c < 0x20; c++) assert.doesNotMatch(printable(`a${String.fromCharCode(c)}b`), /[\x00-\x1f]/, `code ${c}`);
  for (let c = 0x7f; c <= 0x9f; c++) assert.equal(printable(String.fromCharCode(c)), `\\x${c.toString(16)}`);
});

test('printable leaves ordinary names alone, including non-ASCII letters and emoji', () => {
  for (const name of ['/data/set1/a', 'résumé.pdf', '日本語', 'a b', '🙂', 'ÿ']) assert.equal(printable(name), name);
});

test('distinct names print distinct: a name cannot pass for an escaped one', () => {
  assert.notEqual(printable('a\nb'), printable('a\\nb'));
  assert.equal(printable('a\\nb'), 'a\\\\nb');
});

test('jsonLine keeps names exact and writes no raw control a terminal acts on', () => {
  const names = ['x\nfake', '\x1b[2J', 'csi\x9b', 'del\x7f', 'rtl\u202e', 'sep\u2028', 'back\\slash', 'plain'];
  const text = jsonLine(names);
  assert.deepEqual(JSON.parse(text), names);
  assert.doesNotMatch(text, /[\x00-\x1f\x7f-\x9f\u202e\u2028]/);
});

test('modeString shows the type letter and rwx bits as ls -l does', () => {
  assert.equal(modeString('file', 0o644), '-rw-r--r--');
  assert.equal(modeString('dir', 0o755), 'drwxr-xr-x');
  assert.equal(modeString('symlink', 0o777), 'lrwxrwxrwx');
  assert.equal(modeString('file', 0), '----------');
  assert.equal(modeString('file', 0o4755), '-rwsr-xr-x');
  assert.equal(modeString('file', 0o2644), '-rw-r-Sr--');
  assert.equal(modeString('dir', 0o1777), 'drwxrwxrwt');
  assert.equal(modeString('dir', 0o1776), 'drwxrwxrwT');
  assert.equal(modeString('other', 0o600), '?rw-------');
});
