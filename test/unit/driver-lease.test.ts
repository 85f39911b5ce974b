// The driver's lease check in real time: a leader whose process stalled (no ticks, no messages)
// must not serve a read on its lease when it resumes, since its followers' clocks ran on and may
// have elected another leader. The driver runs here on the simulator's disk and a hand-driven
// clock, so the stall is exact. With the bug 'lease-ticks-only' (the lease counted in ticks alone)
// the stalled leader answers at once: the test catches it.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RaftDriver, type DriverBug } from '../../src/journal/raft/driver.ts';
import { MessageType, type Message, type ReadState } from '../../src/raft/index.ts';
import { Prng } from '../../src/sim/prng.ts';
import { SimClock } from '../../src/sim/sim-clock.ts';
import { SimFs } from '../../src/sim/sim-fs.ts';

const tickMs = 10;

/** Virtual time moved by hand: due timers fire only when asked, so a "stall" is time without them. */
class HandClock {
  nowMs = 0;
  private timers: { at: number; fn: () => void }[] = [];

  later(ms: number, fn: () => void): void {
    this.timers.push({ at: this.nowMs + ms, fn });
  }

  /** Fires timers due by `untilMs` in time order, letting promise continuations run after each. */
  async runUntil(untilMs: number): Promise<void> {
    for (;;) {
      await new Promise((r) => setImmediate(r));
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers[0];
      if (next === undefined || next.at > untilMs) break;
      this.timers.shift();
      this.nowMs = Math.max(this.nowMs, next.at);
      next.fn();
    }
    this.nowMs = Math.max(this.nowMs, untilMs);
  }
}

async function leaderOfThree(bugs: DriverBug[]): Promise<{ driver: RaftDriver; clock: HandClock; sent: Message[]; reads: ReadState[] }> {
  const clock = new HandClock();
  const fs = new SimFs();
  // The disk completes its syncs on the real event loop: only the clock's timers are held back.
  const disk = fs.attach({ later: (_ms, fn) => setImmediate(fn), syncLatencyMs: () => 0, syncFails: () => false, syncLies: () => false, onOp: () => undefined });
  const simClock = new SimClock({ nowMs: () => clock.nowMs, later: (ms, fn) => clock.later(ms, fn) }, 1, 0, new Prng(1));
  const sent: Message[] = [];
  const reads: ReadState[] = [];
  const driver = await RaftDriver.start({
    disk,
    clock: simClock,
    dir: '/n1',
    raft: { id: 1, voters: [1, 2, 3], electionTicks: 10, heartbeatTicks: 2, leaseRead: true, preVote: false, voteHoldTicks: 0 },
    tickMs,
    send: (m) => void sent.push(m),
    apply: () => undefined,
    onReadState: (r) => void reads.push(r),
    onError: (err) => assert.fail(`driver failed: ${String(err)}`),
    bugs: new Set(bugs),
  });
  driver.kick();
  driver.raft.campaign();
  driver.kick();
  await clock.runUntil(clock.nowMs + 5);
  const term = driver.raft.term;
  driver.step({ type: MessageType.VoteResp, from: 2, to: 1, term });
  await clock.runUntil(clock.nowMs + 5);
  assert.equal(driver.raft.role, 'leader');
  // Both followers hold the leader's entries and answer its heartbeats: its term commits and its lease starts.
  const last = driver.raft.log.lastIndex();
  for (const from of [2, 3]) driver.step({ type: MessageType.AppResp, from, to: 1, term, index: last });
  await clock.runUntil(clock.nowMs + 3 * tickMs);
  for (const m of sent.filter((x) => x.type === MessageType.Heartbeat)) driver.step({ type: MessageType.HeartbeatResp, from: m.to, to: 1, term, hbTick: m.hbTick, readSeq: m.readSeq });
  await clock.runUntil(clock.nowMs + 1);
  return { driver, clock, sent, reads };
}

async function readNow(l: { driver: RaftDriver; clock: HandClock; reads: ReadState[] }): Promise<boolean> {
  const before = l.reads.length;
  l.driver.raft.readIndex(new Uint8Array([l.reads.length + 1]));
  l.driver.kick();
  // No tick fires and no message arrives: only the driver's own work (and its disk) runs.
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  return l.reads.length > before;
}

for (const bug of [undefined, 'lease-ticks-only'] as const) {
  test(`a leader that stalled longer than its lease serves no read on it when it resumes${bug ? ` (bug '${bug}': it does)` : ''}`, async () => {
    const l = await leaderOfThree(bug ? [bug] : []);
    assert.ok(await readNow(l), 'a fresh lease answers a read at once');
    // The process stalls for ten election timeouts: real time passes, no tick fires.
    l.clock.nowMs += 10 * 10 * tickMs;
    const answered = await readNow(l);
    if (bug === undefined) assert.equal(answered, false, 'a stalled leader must confirm its leadership with a heartbeat round first');
    else assert.equal(answered, true, 'the broken rule should answer at once (else this test proves nothing)');
    await l.driver.stop();
  });
}
