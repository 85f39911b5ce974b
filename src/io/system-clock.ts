// The Clock of a real process: performance.now, Date.now, Node's timers and Math.random.

import type { Clock, Timer } from './clock.ts';

export const systemClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  after(ms, fn): Timer {
    const t = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(t), unref: () => void t.unref() };
  },
  every(ms, fn): Timer {
    const t = setInterval(fn, ms);
    return { cancel: () => clearInterval(t), unref: () => void t.unref() };
  },
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  randomInt: (n) => Math.floor(Math.random() * n),
};
