// A simulated network between nodes: per-message delay (so messages reorder), loss, duplication,
// and partitions that cut links in one direction or both.

import type { EventQueue } from './event-queue.ts';
import type { Prng } from './prng.ts';

export interface NetworkConditions {
  delayMinMs: number;
  delayMaxMs: number;
  dropRate: number;
  dupRate: number;
}

export const calmNetwork: NetworkConditions = { delayMinMs: 1, delayMaxMs: 8, dropRate: 0, dupRate: 0 };

export class SimNetwork {
  conditions: NetworkConditions = calmNetwork;
  /** Cut links, as "from>to". */
  private cut = new Set<string>();
  private readonly queue: EventQueue;
  private readonly prng: Prng;
  sent = 0;
  dropped = 0;

  constructor(queue: EventQueue, prng: Prng) {
    this.queue = queue;
    this.prng = prng;
  }

  /** Delivers by calling `deliver` later, unless the link is cut at send or at arrival time. */
  send(from: number, to: number, deliver: () => void): void {
    this.sent++;
    const c = this.conditions;
    if (!this.linked(from, to) || this.prng.chance(c.dropRate)) {
      this.dropped++;
      return;
    }
    const copies = this.prng.chance(c.dupRate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      this.queue.after(this.prng.range(c.delayMinMs, c.delayMaxMs), () => {
        if (this.linked(from, to)) deliver();
        else this.dropped++;
      });
    }
  }

  linked(from: number, to: number): boolean {
    return !this.cut.has(`${from}>${to}`);
  }

  cutLink(from: number, to: number): void {
    this.cut.add(`${from}>${to}`);
  }

  /** Splits the nodes into two sides that cannot talk to each other. */
  partition(sideA: number[], sideB: number[]): void {
    for (const a of sideA) {
      for (const b of sideB) {
        this.cutLink(a, b);
        this.cutLink(b, a);
      }
    }
  }

  joinLink(from: number, to: number): void {
    this.cut.delete(`${from}>${to}`);
  }

  /** Joins two sides again, leaving other cuts as they are. */
  join(sideA: number[], sideB: number[]): void {
    for (const a of sideA) {
      for (const b of sideB) {
        this.joinLink(a, b);
        this.joinLink(b, a);
      }
    }
  }

  heal(): void {
    this.cut.clear();
  }

  describeCuts(): string {
    return [...this.cut].sort().join(' ');
  }
}
