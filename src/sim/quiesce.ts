// Runs the simulation's events so that the production code running in it has nothing left to do
// before the next one: every promise continuation an event set off has run. Each event runs in a
// setImmediate callback of its own, and Node drains the microtask queue after each such callback,
// so virtual time never moves while awaited work is still pending. No virtual time or outcome
// depends on this; it only orders the real event loop.

/**
 * Callbacks queued per turn of the event loop. Each one picks the next event only when it runs,
 * so a batch keeps the order one callback per turn would give, with far fewer turns (each turn
 * polls for I/O, which the simulation never does).
 */
const eventsPerTurn = 64;

/** Calls `runNext` (which returns false when no event is left) until it returns false or throws. */
export async function runEventsQuiescing(runNext: () => boolean): Promise<void> {
  // The first event runs before the nodes' start-up continuations, as it always has: the seeds
  // pinned in the tests were found with this order.
  let more = runNext();
  while (more) {
    await new Promise<void>((resolve, reject) => {
      let left = eventsPerTurn;
      const one = (): void => {
        if (more) {
          try {
            more = runNext();
          } catch (err) {
            more = false;
            reject(err);
          }
        }
        if (--left === 0) resolve();
      };
      for (let i = 0; i < eventsPerTurn; i++) setImmediate(one);
    });
  }
}
