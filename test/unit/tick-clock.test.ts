// TickClock: the real time behind a lease counted in ticks.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TickClock } from '../../src/journal/raft/tick-clock.ts';

test('a lease window holds while ticks keep pace with real time, and not after a stall', () => {
  let now = 1000;
  const clock = new TickClock(25, 8, () => now);
  for (let i = 0; i < 5; i++) {
    clock.tick();
    now += 25;
  }
  // The latest tick was at 1100; now is 1125.
  assert.equal(clock.within(0, 10), true);
  assert.equal(clock.within(4, 10), true, 'tick 4 back was at 1000: 125 ms < 250 ms');
  assert.equal(clock.within(4, 5), false, '125 ms is not less than 5 ticks (125 ms)');
  now += 1000; // the process stalled: no ticks for a second
  assert.equal(clock.within(0, 10), false, 'the latest tick is a second old');
});

test('ticks older than the clock remembers, or not yet taken, never hold a lease', () => {
  let now = 0;
  const clock = new TickClock(25, 4, () => now);
  assert.equal(clock.within(0, 10), false, 'no tick yet');
  for (let i = 0; i < 10; i++) {
    clock.tick();
    now += 1;
  }
  assert.equal(clock.within(3, 10), true);
  assert.equal(clock.within(4, 10), false, 'beyond the 4 remembered ticks');
  assert.equal(clock.within(-1, 10), false);
  assert.equal(clock.within(1.5, 10), false);
});
