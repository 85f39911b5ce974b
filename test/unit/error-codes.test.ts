// Keeps the error codes in their registries: every code is listed in exactly one registry (a
// component's errors.ts), and no file under src/ writes a CAIRN_ code as a string of its own, so a
// code cannot drift from its one documented meaning.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

const repoRoot = path.resolve(import.meta.dirname, '../..');
/** The registries that must exist, so that a moved tree cannot make these tests pass by finding nothing. */
const requiredRegistries = ['src/errors.ts', 'src/rpc/errors.ts', 'src/journal/raft/errors.ts', 'src/meta/errors.ts', 'src/sim/errors.ts', 'src/worker/errors.ts'];

function sourceFiles(dir: string): string[] {
  return readdirSync(path.join(repoRoot, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(rel);
    return e.isFile() && e.name.endsWith('.ts') ? [rel] : [];
  });
}

function isRegistry(file: string): boolean {
  return path.basename(file) === 'errors.ts';
}

/** The lines of `file` with their numbers, comment lines left out (a comment may name a code). */
function codeLines(file: string): { line: number; text: string }[] {
  return readFileSync(path.join(repoRoot, file), 'utf8')
    .split('\n')
    .map((text, i) => ({ line: i + 1, text }))
    .filter(({ text }) => !/^\s*(\/\/|\/\*|\*)/.test(text));
}

/** `Key: 'CODE'` entries: the codes a registry lists as literals (aliases of another registry's code are not literals). */
function listedCodes(file: string): { code: string; line: number }[] {
  return codeLines(file).flatMap(({ line, text }) => [...text.matchAll(/^\s*\w+:\s*'([A-Z][A-Z0-9_]+)',/g)].map((m) => ({ code: m[1], line })));
}

const files = sourceFiles('src');
const registries = files.filter(isRegistry);

test('the registries are where the tests look for them', () => {
  for (const r of requiredRegistries) assert.ok(registries.includes(r), `${r} is missing: move the test's list along with it`);
  for (const r of requiredRegistries) assert.ok(listedCodes(r).length > 0, `${r} lists no codes`);
});

test('no code is listed twice, in one registry or in two', () => {
  const seen = new Map<string, string>();
  const twice: string[] = [];
  for (const file of registries) {
    for (const { code, line } of listedCodes(file)) {
      const first = seen.get(code);
      if (first !== undefined) twice.push(`${code} at ${file}:${line}, already at ${first}`);
      else seen.set(code, `${file}:${line}`);
    }
  }
  assert.deepEqual(twice, [], 'each code has one meaning and one registry: refer to the first one instead');
});

test("no CAIRN_ code is written as a string outside the registries", () => {
  const literals: string[] = [];
  for (const file of files.filter((f) => !isRegistry(f))) {
    for (const { line, text } of codeLines(file)) {
      for (const m of text.matchAll(/(['"`])(CAIRN_[A-Z0-9_]+)\1/g)) literals.push(`${file}:${line}: ${m[2]}`);
    }
  }
  assert.deepEqual(literals, [], 'use the registry constant (ErrorCode.X, RpcErrorCode.X, ...) instead of the string');
});

test('the checks see what they look for', () => {
  const code = "  Sample: 'CAIRN_SAMPLE',";
  assert.equal([...code.matchAll(/^\s*\w+:\s*'([A-Z][A-Z0-9_]+)',/g)].length, 1);
  assert.equal([..."if (c === 'CAIRN_SAMPLE') x();".matchAll(/(['"`])(CAIRN_[A-Z0-9_]+)\1/g)].length, 1);
  assert.equal([..."const env = `CAIRN_${key}`;".matchAll(/(['"`])(CAIRN_[A-Z0-9_]+)\1/g)].length, 0);
});
