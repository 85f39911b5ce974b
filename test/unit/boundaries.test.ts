// Module boundaries that keep backends interchangeable: the master process depends on the Journal
// interface only (the backend is chosen in src/journal/open-journal.ts), never on the Raft one.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

const repoRoot = path.resolve(import.meta.dirname, '../..');

test('src/master/ names no journal backend (its error codes excepted: a refusal to start names them)', () => {
  const dir = path.join(repoRoot, 'src/master');
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
  assert.ok(files.includes('server.ts'), 'src/master/server.ts is missing: update this test');
  const offenders = files.filter((f) => /RaftJournal|journal\/raft\/(?!errors\.ts)/.test(readFileSync(path.join(dir, f), 'utf8')));
  assert.deepEqual(offenders, [], 'the master must use the Journal interface (open it with openJournal)');
});
