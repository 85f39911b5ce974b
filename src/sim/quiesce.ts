// Waits until the production code running in the simulation has nothing left to do now: every
// promise continuation an event set off has run. setImmediate fires only once the microtask queue
// is empty, so virtual time never moves while awaited work is still pending. No virtual time or
// outcome depends on it; it only orders the real event loop.

export function quiesce(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
