// `npm run bench -- NAME [args]`: runs bench/NAME.ts's exported `run(args)`; with no name, lists
// the benchmarks. Every bench/*.ts other than this entry point and its helpers is a benchmark.

import { readdirSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ErrorCode } from '../src/errors.ts';

/** What a benchmark module exports. */
export interface Benchmark {
  description: string;
  run(args: string[]): void | Promise<void>;
}

const notBenchmarks = new Set(['main', 'report', 'cluster', 'cpuprofile', 'args']);
const namePattern = /^[a-z0-9][a-z0-9-]*$/;

function benchmarkNames(): string[] {
  return readdirSync(import.meta.dirname)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => f.slice(0, -'.ts'.length))
    .filter((n) => !notBenchmarks.has(n) && namePattern.test(n))
    .sort();
}

async function load(name: string): Promise<Benchmark> {
  const mod: Partial<Benchmark> = await import(pathToFileURL(path.join(import.meta.dirname, `${name}.ts`)).href);
  if (typeof mod.run !== 'function') throw new Error(`bench/${name}.ts does not export run(args)`);
  return { description: mod.description ?? '', run: mod.run };
}

async function list(): Promise<void> {
  const names = benchmarkNames();
  console.log('usage: npm run bench -- NAME [args]   (NAME --help for its options)');
  console.log('benchmarks:');
  const width = Math.max(0, ...names.map((n) => n.length));
  for (const n of names) console.log(`  ${n.padEnd(width)}  ${(await load(n)).description}`);
}

async function main(): Promise<void> {
  const [name, ...args] = process.argv.slice(2);
  if (name === undefined || name === '--help' || name === '-h') {
    await list();
    return;
  }
  if (!benchmarkNames().includes(name)) {
    console.error(`unknown benchmark "${name}"; run \`npm run bench\` to list them`);
    process.exitCode = 2;
    return;
  }
  try {
    await (await load(name)).run(args);
  } catch (err) {
    if (!isUsageError(err)) throw err; // a broken invariant keeps its stack
    console.error(`${name}: ${err.message}; see npm run bench -- ${name} --help`);
    process.exitCode = 2;
  }
}

/** Bad command-line arguments: one line for the user, not a stack trace. */
function isUsageError(err: unknown): err is Error & { code: string } {
  if (!(err instanceof Error) || !('code' in err) || typeof err.code !== 'string') return false;
  return err.code.startsWith('ERR_PARSE_ARGS_') || err.code === ErrorCode.BadOption;
}

await main();
