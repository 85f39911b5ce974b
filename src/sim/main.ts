// `npm run sim`: runs many seeded simulations, or replays one with a readable trace.
//   npm run sim -- --seeds 500            runs seeds 1..500 (or --from N); odd seeds kv, even seeds meta
//   npm run sim -- --seeds 500 --workload meta   every seed runs the metadata state machine (or kv)
//   npm run sim -- --seed 42 --trace      replays one run and prints every event
//   npm run sim -- --seeds 200 --bug vote-twice   must fail: proves the checkers catch that bug

import { parseArgs } from 'node:util';
import { runSimulation, simBugs, type SimBug, type SimResult } from './simulation.ts';
import { workloadNames, type WorkloadName } from './workload.ts';

const help = `usage: npm run sim -- [options]
  --seeds N          run N seeds (default 100), starting at --from (default 1)
  --seed S           replay one seed (add --trace to print every event)
  --workload NAME    ${workloadNames.join(', ')} (default: odd seeds kv, even seeds meta)
  --bug NAME         plant a known bug; the checkers must catch it: ${simBugs.join(', ')}
  --fault-ms N       length of the fault phase; --calm-ms N: of the calm phase after it
  --keep-going       run every seed even after a failure
  --help             this text`;

function parseOptions(): ReturnType<typeof parseSimArgs> {
  try {
    return parseSimArgs();
  } catch (err) {
    usage(`${(err as Error).message}\n${help}`);
  }
}

function parseSimArgs() {
  return parseArgs({
    options: {
      seeds: { type: 'string' },
      seed: { type: 'string' },
      from: { type: 'string', default: '1' },
      bug: { type: 'string' },
      workload: { type: 'string' },
      trace: { type: 'boolean', default: false },
      'fault-ms': { type: 'string' },
      'calm-ms': { type: 'string' },
      'keep-going': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
}

async function main(): Promise<void> {
  const { values } = parseOptions();
  if (values.help) {
    console.log(help);
    return;
  }
  const bug = values.bug;
  if (bug !== undefined && !simBugs.includes(bug as SimBug)) usage(`unknown --bug ${bug}; one of: ${simBugs.join(', ')}`);
  const workload = values.workload;
  if (workload !== undefined && !workloadNames.includes(workload as WorkloadName)) {
    usage(`unknown --workload ${workload}; one of: ${workloadNames.join(', ')} (default: odd seeds kv, even seeds meta)`);
  }
  const faultMs = optionalInt(values['fault-ms'], '--fault-ms');
  const calmMs = optionalInt(values['calm-ms'], '--calm-ms');
  const common = { bug: bug as SimBug | undefined, workload: workload as WorkloadName | undefined, faultMs, calmMs };

  if (values.seed !== undefined) {
    const seed = parseInteger(values.seed, '--seed');
    const r = await runSimulation({ ...common, seed, trace: values.trace ? (line) => console.log(line) : undefined });
    report(r, true);
    process.exitCode = r.ok ? 0 : 1;
    return;
  }
  const count = parseInteger(values.seeds ?? '100', '--seeds');
  const from = parseInteger(values.from, '--from');
  let passed = 0;
  let failed = 0;
  const started = performance.now();
  const perWorkload = new Map<WorkloadName, number>();
  for (let seed = from; seed < from + count; seed++) {
    const r = await runSimulation({ ...common, seed });
    perWorkload.set(r.workload, (perWorkload.get(r.workload) ?? 0) + 1);
    if (r.ok) passed++;
    else {
      failed++;
      report(r, false);
      if (!values['keep-going']) break;
    }
    if ((seed - from + 1) % 100 === 0) console.error(`... ${seed - from + 1}/${count} seeds, ${((performance.now() - started) / 1000).toFixed(1)}s`);
  }
  const mix = [...perWorkload].map(([w, n]) => `${n} ${w}`).join(', ');
  console.log(`workloads: ${mix}; ${((performance.now() - started) / 1000).toFixed(1)} s`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed === 0 ? 0 : 1;
}

function report(r: SimResult, verbose: boolean): void {
  const head = `seed ${r.seed}: ${r.ok ? 'ok' : 'FAILED'} (${r.workload}, ${r.nodes} nodes, ${r.events} events, ${r.committed} committed, ${r.clientOps} client ops, trace ${r.traceHash})`;
  console.log(head);
  if (r.ok) return;
  console.log(`  violated: ${r.violation}`);
  const bug = process.argv.includes('--bug') ? ` --bug ${process.argv[process.argv.indexOf('--bug') + 1]}` : '';
  const workload = process.argv.includes('--workload') ? ` --workload ${r.workload}` : '';
  console.log(`  replay: npm run sim -- --seed ${r.seed} --trace${workload}${bug}`);
  if (!verbose) {
    console.log('  last events:');
    for (const line of r.lastEvents) console.log(`    ${line}`);
  }
}

function parseInteger(s: string, flag: string): number {
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < 0) usage(`${flag} wants a whole number, got '${s}'`);
  return n;
}

function optionalInt(s: string | undefined, flag: string): number | undefined {
  return s === undefined ? undefined : parseInteger(s, flag);
}

function usage(message: string): never {
  console.error(`sim: ${message}`);
  process.exit(2);
}

await main();
