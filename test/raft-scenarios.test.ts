// Runs the Raft interaction scenarios in test/testdata/raft/*.txt, one test per file, against the
// in-memory cluster of test/raft-harness.ts.
//
// A file is a list of blocks separated by blank lines. A block is one or more command lines, a
// line `----`, and the trace those commands must print. Lines starting with `#` before a block are
// comments. A file whose first line is `# todo: REASON` runs as a todo test (a known core bug).
//
// Rewrite: after an intended change of behaviour, regenerate the expected traces with
//   CAIRN_REWRITE=1 npx node --test test/raft-scenarios.test.ts
// then read the diff (`git diff test/testdata/raft`) line by line before committing it.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Harness, type Arg } from './raft-harness.ts';

const dir = path.join(import.meta.dirname, 'testdata', 'raft');
const rewrite = process.env.CAIRN_REWRITE === '1';

interface Block {
  /** Comment and blank lines before the commands, kept as they are on rewrite. */
  preamble: string[];
  commands: string[];
  /** 1-based line of the first command, for failure messages. */
  line: number;
  expected: string;
}

function parse(text: string): Block[] {
  const lines = text.replace(/\n+$/, '').split('\n');
  const blocks: Block[] = [];
  let i = 0;
  while (i < lines.length) {
    const preamble: string[] = [];
    while (i < lines.length && (lines[i].trim() === '' || lines[i].startsWith('#'))) {
      if (preamble.length > 0 || lines[i].trim() !== '') preamble.push(lines[i]);
      i++;
    }
    if (i >= lines.length) break;
    const line = i + 1;
    const commands: string[] = [];
    while (i < lines.length && lines[i] !== '----') {
      if (lines[i].trim() === '') throw new Error(`line ${i + 1}: blank line before ----`);
      commands.push(lines[i++]);
    }
    if (i >= lines.length) throw new Error(`line ${line}: block without ----`);
    i++;
    const out: string[] = [];
    while (i < lines.length && lines[i] !== '') out.push(lines[i++]);
    blocks.push({ preamble, commands, line, expected: out.join('\n') });
  }
  return blocks;
}

/** `cmd a b=c d=(1,2)` into the command and its arguments. */
function parseCommand(line: string): { command: string; args: Arg[] } {
  const [command, ...words] = line.trim().split(/\s+/);
  const args = words.map((w): Arg => {
    const eq = w.indexOf('=');
    if (eq < 0) return { key: w, values: [] };
    const v = w.slice(eq + 1);
    const values = v.startsWith('(') && v.endsWith(')') ? v.slice(1, -1).split(',').filter((x) => x !== '') : [v];
    return { key: w.slice(0, eq), values };
  });
  return { command, args };
}

function render(blocks: Block[], outputs: string[]): string {
  return (
    blocks
      .map((b, i) => [...b.preamble, ...b.commands, '----', outputs[i]].join('\n'))
      .join('\n\n') + '\n'
  );
}

for (const file of readdirSync(dir).filter((f) => f.endsWith('.txt')).sort()) {
  const full = path.join(dir, file);
  const text = readFileSync(full, 'utf8');
  const todo = /^# todo: (.*)$/m.exec(text.split('\n')[0])?.[1];
  test(file, todo !== undefined && !rewrite ? { todo } : {}, () => {
    const blocks = parse(text);
    const harness = new Harness();
    const outputs: string[] = [];
    for (const b of blocks) {
      const out = b.commands.map((c) => {
        const { command, args } = parseCommand(c);
        return harness.run(command, args);
      });
      const actual = out.join('\n');
      outputs.push(actual);
      if (!rewrite) assert.equal(actual, b.expected, `${file}:${b.line}: ${b.commands.join('; ')}`);
    }
    if (rewrite) writeFileSync(full, render(blocks, outputs));
  });
}
