// `npm run chaos`: the chaos tests at full length. Whole-cluster schedules (cluster-chaos.test.ts)
// and the masters' chaos (masters-chaos.test.ts), through node:test.
//   npm run chaos                      5 whole-cluster schedules of 60 s from a random first seed
//   npm run chaos -- --schedules 50    the full run
//   npm run chaos -- --seed S          schedule S again (and the masters' chaos with seed S)
//   --seconds N                        length of each schedule (default 60)
//   --first-seed F                     schedules F, F+1, ... (default: random, printed)

import { spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    schedules: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '60' },
    'first-seed': { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log('usage: npm run chaos -- [--schedules N] [--seconds S] [--first-seed F] [--seed S]');
  process.exit(0);
}
const positive = (v: string, what: string): number => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) {
    console.error(`cairn chaos: ${what} must be a positive integer, got "${v}"`);
    process.exit(2);
  }
  return n;
};
const seconds = positive(values.seconds, '--seconds');
let seeds: number[];
if (values.seed !== undefined) seeds = [positive(values.seed, '--seed')];
else {
  const first = values['first-seed'] === undefined ? randomInt(1, 1_000_000) : positive(values['first-seed'], '--first-seed');
  seeds = Array.from({ length: positive(values.schedules, '--schedules') }, (_, i) => first + i);
}
console.log(`cairn chaos: ${seeds.length} whole-cluster schedule(s) of ${seconds} s, seeds ${seeds.length > 3 ? `${seeds[0]}-${seeds[seeds.length - 1]}` : seeds.join(', ')}`);
const dir = fileURLToPath(new URL('.', import.meta.url));
const r = spawnSync(process.execPath, ['--test', '--test-timeout=3600000', `${dir}cluster-chaos.test.ts`, `${dir}masters-chaos.test.ts`], {
  stdio: 'inherit',
  env: {
    ...process.env,
    CAIRN_CLUSTER_CHAOS_SEEDS: seeds.join(','),
    CAIRN_CLUSTER_CHAOS_SECONDS: String(seconds),
    CAIRN_CHAOS_SEEDS: process.env.CAIRN_CHAOS_SEEDS ?? seeds.slice(0, 3).join(','),
    CAIRN_CHAOS_SECONDS: process.env.CAIRN_CHAOS_SECONDS ?? String(seconds),
  },
});
process.exit(r.status ?? 1);
