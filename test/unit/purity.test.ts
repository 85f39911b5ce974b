// Keeps the pure folders pure: no file under src/raft/, src/meta/, src/placement/ or src/sim/ may import I/O
// or timer modules or read the clock or Math.random, so the simulator can always drive them.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const pureDirs = ['src/raft', 'src/meta', 'src/placement', 'src/sim'];
/** A pure folder that must exist, so that a moved tree cannot make this test pass by finding nothing. */
const requiredDirs = ['src/raft', 'src/meta', 'src/sim'];

/** Module specifiers a pure file may not import, with their subpaths (`node:fs/promises`). */
const forbiddenModules = ['node:fs', 'node:net', 'node:child_process', 'node:timers', 'fs', 'net', 'child_process', 'timers'];

interface CallRule {
  name: string;
  pattern: RegExp;
}

// Not preceded by an identifier character or a member access (`clock.now(`, `sim.setTimeout(` are
// the virtual ones), except through the global object.
const globalRef = String.raw`(?<=^|[^\w$.]|\bglobalThis\.|\bglobal\.)`;
const forbiddenCalls: CallRule[] = [
  { name: 'Date.now(', pattern: new RegExp(String.raw`${globalRef}Date\s*\.\s*now\s*\(`) },
  { name: 'new Date(', pattern: new RegExp(String.raw`\bnew\s+(?:globalThis\.|global\.)?Date\s*\(`) },
  { name: 'Math.random(', pattern: new RegExp(String.raw`${globalRef}Math\s*\.\s*random\s*\(`) },
  { name: 'setTimeout(', pattern: new RegExp(String.raw`${globalRef}setTimeout\s*\(`) },
  { name: 'setInterval(', pattern: new RegExp(String.raw`${globalRef}setInterval\s*\(`) },
  { name: 'setImmediate(', pattern: new RegExp(String.raw`${globalRef}setImmediate\s*\(`) },
  { name: 'performance.now(', pattern: new RegExp(String.raw`${globalRef}performance\s*\.\s*now\s*\(`) },
];

/** Files allowed one named rule, with the reason. Keep this list short and explicit. */
const exceptions: { file: string; rule: string; why: string }[] = [
  { file: 'src/sim/main.ts', rule: 'performance.now(', why: 'the CLI reports how long the seeds took; simulations never see it' },
  { file: 'src/sim/quiesce.ts', rule: 'setImmediate(', why: 'waits for the microtask queue to drain between virtual events; no virtual time depends on it' },
];

const importPattern = /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)(['"])([^'"]+)\1/g;
/** Value imports and re-exports (not `import type`), possibly over several lines: what loads a module at run time. */
const valueImportPattern = /(?:^|;|\n)\s*(?:import|export)\s+(?!type\b)(?:[^'";]*?\bfrom\s*)?(['"])([^'"]+)\1/g;

interface Violation {
  file: string;
  line: number;
  rule: string;
  text: string;
}

/** Blanks comments (keeping line breaks) so a comment may mention what the code must not do. */
function stripComments(source: string): string {
  let out = '';
  let i = 0;
  while (i < source.length) {
    const c = source[i];
    const next = source[i + 1];
    if (c === '/' && next === '/') {
      while (i < source.length && source[i] !== '\n') i++;
    } else if (c === '/' && next === '*') {
      const end = source.indexOf('*/', i + 2);
      const stop = end === -1 ? source.length : end + 2;
      out += source.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
    } else if (c === "'" || c === '"' || c === '`') {
      const start = i++;
      while (i < source.length && source[i] !== c) i += source[i] === '\\' ? 2 : 1;
      i++;
      out += source.slice(start, i);
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

function isForbiddenModule(specifier: string): boolean {
  return forbiddenModules.some((m) => specifier === m || specifier.startsWith(`${m}/`));
}

/** The violations in one file's source; `file` is relative to the repository root, with `/`. */
function checkSource(file: string, source: string): Violation[] {
  const allowed = new Set(exceptions.filter((e) => e.file === file).map((e) => e.rule));
  const found: Violation[] = [];
  const lines = source.split('\n');
  stripComments(source)
    .split('\n')
    .forEach((code, i) => {
      const at = { file, line: i + 1, text: lines[i].trim() };
      for (const m of code.matchAll(importPattern)) {
        if (isForbiddenModule(m[2])) found.push({ ...at, rule: `import '${m[2]}'` });
      }
      for (const rule of forbiddenCalls) {
        if (!allowed.has(rule.name) && rule.pattern.test(code)) found.push({ ...at, rule: rule.name });
      }
    });
  return found;
}

function tsFilesUnder(dir: string): string[] {
  const abs = path.join(repoRoot, dir);
  if (!existsSync(abs)) return [];
  return readdirSync(abs, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile() && d.name.endsWith('.ts'))
    .map((d) => path.relative(repoRoot, path.join(d.parentPath, d.name)).split(path.sep).join('/'))
    .sort();
}

function describe(v: Violation): string {
  return `${v.file}:${v.line}: uses ${v.rule} in a pure module: ${v.text}`;
}

test('pure folders import no I/O or timers and read no clock or Math.random', () => {
  for (const dir of requiredDirs) assert.ok(existsSync(path.join(repoRoot, dir)), `${dir} is missing: update pureDirs`);
  const files = pureDirs.flatMap(tsFilesUnder);
  assert.ok(files.includes('src/raft/raft.ts'), `the scan did not find src/raft/raft.ts (found ${files.length} files)`);
  const violations = files.flatMap((f) => checkSource(f, readFileSync(path.join(repoRoot, f), 'utf8')));
  assert.deepEqual(violations.map(describe), [], `impure code in a pure folder:\n${violations.map(describe).join('\n')}`);
});

/** The relative modules `file` loads at run time, as repository paths. */
function valueImports(file: string, source: string): string[] {
  const out: string[] = [];
  for (const m of stripComments(source).matchAll(valueImportPattern)) {
    if (!m[2].startsWith('.')) continue;
    out.push(path.posix.normalize(path.posix.join(path.posix.dirname(file), m[2])));
  }
  return out;
}

/** Every file a pure folder loads, directly or through other modules (type-only imports load nothing). */
function reachedFrom(roots: string[]): Map<string, string> {
  const via = new Map<string, string>(roots.map((f) => [f, f]));
  const queue = [...roots];
  while (queue.length > 0) {
    const file = queue.shift()!;
    for (const dep of valueImports(file, readFileSync(path.join(repoRoot, file), 'utf8'))) {
      if (via.has(dep)) continue;
      via.set(dep, `${via.get(file)} -> ${dep}`);
      queue.push(dep);
    }
  }
  return via;
}

test('nothing a pure folder loads, however indirectly, does I/O, reads the clock or draws random numbers', () => {
  const reached = reachedFrom(pureDirs.flatMap(tsFilesUnder));
  assert.ok(reached.has('src/journal/raft/driver.ts'), 'the simulator should load the real Raft driver');
  assert.ok(reached.has('src/journal/raft/wal.ts'), 'the simulator should load the real WAL');
  const violations = [...reached.keys()].flatMap((f) => checkSource(f, readFileSync(path.join(repoRoot, f), 'utf8')).map((v) => ({ ...v, via: reached.get(f)! })));
  const lines = violations.map((v) => `${describe(v)}\n    loaded by ${v.via}`);
  assert.deepEqual(lines, [], `impure code reached from a pure folder:\n${lines.join('\n')}`);
});

test('the import scan sees value imports and re-exports, not type-only ones', () => {
  const src = "import { a } from './a.ts';\nimport type { B } from './b.ts';\nexport { c } from '../c.ts';\nexport type { D } from './d.ts';\nimport {\n  e,\n} from './e.ts';\nimport './f.ts';";
  assert.deepEqual(valueImports('src/sim/x.ts', src), ['src/sim/a.ts', 'src/c.ts', 'src/sim/e.ts', 'src/sim/f.ts']);
});

test('every exception names an existing file and a known rule', () => {
  for (const e of exceptions) {
    assert.ok(existsSync(path.join(repoRoot, e.file)), `exception for missing file ${e.file}`);
    assert.ok(forbiddenCalls.some((r) => r.name === e.rule), `exception for unknown rule ${e.rule}`);
  }
});

test('the checker flags each forbidden import and call, with file and line', () => {
  const cases: [string, string][] = [
    ["import { readFileSync } from 'node:fs';", "import 'node:fs'"],
    ['import fs from "fs";', "import 'fs'"],
    ["import { writeFile } from 'node:fs/promises';", "import 'node:fs/promises'"],
    ["import {\n  connect,\n} from 'node:net';", "import 'node:net'"],
    ["import net from 'net';", "import 'net'"],
    ["import { spawn } from 'node:child_process';", "import 'node:child_process'"],
    ["import { setTimeout as sleep } from 'node:timers/promises';", "import 'node:timers/promises'"],
    ["const fs = await import('node:fs');", "import 'node:fs'"],
    ["export { readFile } from 'node:fs';", "import 'node:fs'"],
    ["import 'node:net';", "import 'node:net'"],
    ['const t = Date.now();', 'Date.now('],
    ['const d = new Date();', 'new Date('],
    ['const r = Math.random() * 2;', 'Math.random('],
    ['setTimeout(() => tick(), 10);', 'setTimeout('],
    ['const h = globalThis.setInterval(f, 5);', 'setInterval('],
    ['setImmediate(f);', 'setImmediate('],
    ['const t0 = performance.now();', 'performance.now('],
  ];
  for (const [source, rule] of cases) {
    const found = checkSource('src/raft/sample.ts', `// line 1\n${source}\n`);
    assert.ok(found.length > 0, `not flagged: ${source}`);
    assert.equal(found[0].rule, rule, `wrong rule for: ${source}`);
    assert.equal(found[0].file, 'src/raft/sample.ts');
    assert.ok(found[0].line >= 2, `line of ${source}`);
  }
  const [v] = checkSource('src/raft/sample.ts', "// line 1\n\nimport { open } from 'node:fs';\n");
  assert.equal(describe(v), "src/raft/sample.ts:3: uses import 'node:fs' in a pure module: import { open } from 'node:fs';");
});

test('the checker leaves comments, virtual clocks and look-alike names alone', () => {
  const clean = [
    '// No Date.now() or Math.random() here: the caller passes a clock.',
    '/* setTimeout(x) would break determinism */',
    "/**\n * import { readFileSync } from 'node:fs';\n */",
    'const t = clock.now();',
    'sim.setTimeout(5, fire);',
    'const r = this.prng.random();',
    "import { Prng } from './prng.ts';",
    "import { parseArgs } from 'node:util';",
    "import { fsync } from '../journal/fs-util.ts';",
    "const s = 'see https://example.com // not a comment';",
    'const updated = lastDate.now;',
  ];
  for (const source of clean) assert.deepEqual(checkSource('src/raft/sample.ts', source), [], `flagged: ${source}`);
});

test('an exception allows only its rule in only its file', () => {
  assert.deepEqual(checkSource('src/sim/main.ts', 'const t0 = performance.now();'), []);
  assert.equal(checkSource('src/sim/main.ts', 'const t0 = Date.now();').length, 1);
  assert.equal(checkSource('src/sim/simulation.ts', 'const t0 = performance.now();').length, 1);
});
