// The resync byte-rate bound (src/worker/pacer.ts) on a hand-moved clock: bursts within the slack
// pass, anything longer keeps to the rate, concurrent senders share it, idle time is not banked.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Clock } from '../../src/io/index.ts';
import { Pacer, pacerSlackMs } from '../../src/worker/pacer.ts';

/** A clock whose sleeps move time forward at once, and count. */
function manualClock(): Clock & { t: number; sleeps: number[] } {
  const c = {
    t: 0,
    sleeps: [] as number[],
    now: () => c.t,
    wallNow: () => c.t,
    after: () => ({ cancel() {} }),
    every: () => ({ cancel() {} }),
    sleep: async (ms: number) => {
      c.sleeps.push(ms);
      c.t += ms;
    },
    randomInt: () => 0,
  };
  return c;
}

/** 1 KiB a millisecond. */
const kibPerMs = 1024 * 1000;

test('a burst within the slack does not wait; a long run keeps to the rate', async () => {
  const clock = manualClock();
  const pacer = new Pacer(clock, kibPerMs);
  await pacer.sent(10 * 1024); // 10 ms worth
  assert.deepEqual(clock.sleeps, []);
  for (let i = 0; i < 100; i++) await pacer.sent(64 * 1024);
  // 10 KiB + 6400 KiB at 1 KiB/ms, less the slack the last send may run ahead.
  assert.equal(clock.t, 10 + 6400 - pacerSlackMs);
});

test('senders share one rate', async () => {
  const clock = manualClock();
  const pacer = new Pacer(clock, kibPerMs);
  await Promise.all([0, 1, 2, 3].map(async () => {
    for (let i = 0; i < 10; i++) await pacer.sent(100 * 1024);
  }));
  assert.ok(clock.t >= 4000 - pacerSlackMs - 1, `4000 KiB at 1 KiB/ms took ${clock.t} ms`);
});

test('idle time is not saved up for a later burst', async () => {
  const clock = manualClock();
  const pacer = new Pacer(clock, kibPerMs);
  await pacer.sent(1024);
  clock.t += 60_000;
  const before = clock.t;
  await pacer.sent(200 * 1024);
  assert.equal(clock.t - before, 200 - pacerSlackMs);
});

test('a rate must be positive', () => {
  assert.throws(() => new Pacer(manualClock(), 0), RangeError);
  assert.throws(() => new Pacer(manualClock(), Number.NaN), RangeError);
});
