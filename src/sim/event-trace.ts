// A simulation's record of its events: a count, a hash of every event (two runs of a seed must hash
// the same), the trace when asked for, and the last events for a failure report. An event's text
// may be a function, built only when a trace or report prints it.

/** An event's text for traces and reports; a function builds it only when one is printed. */
export type EventText = string | (() => string);

/** How many of the last events a failure report shows. */
const recentEventsMax = 30;

function traceLine(atMs: number, what: EventText): string {
  return `${atMs.toString().padStart(6)}ms ${typeof what === 'string' ? what : what()}`;
}

export class EventTrace {
  events = 0;
  private hash = 0x811c9dc5;
  private readonly now: () => number;
  private readonly trace: ((line: string) => void) | undefined;
  private readonly recentAt: number[] = [];
  private readonly recentText: EventText[] = [];
  private recentNext = 0;

  constructor(now: () => number, trace?: (line: string) => void) {
    this.now = now;
    this.trace = trace;
  }

  /** Counts and hashes an event: by its text, or (a lazy text) by `key` when given. */
  event(what: EventText, key?: number): void {
    this.events++;
    this.mix(this.now());
    if (typeof what === 'string') this.mixString(what);
    else if (key !== undefined) this.mix(key);
    this.remember(what);
  }

  /** Traces and keeps a line that is not an event (a fault, a note). */
  remember(what: EventText): void {
    if (this.trace !== undefined) this.trace(traceLine(this.now(), what));
    const i = this.recentNext;
    this.recentAt[i] = this.now();
    this.recentText[i] = what;
    this.recentNext = (i + 1) % recentEventsMax;
  }

  mix(n: number): void {
    this.hash = Math.imul(this.hash ^ (n | 0), 0x01000193);
  }

  mixString(s: string): void {
    for (let i = 0; i < s.length; i++) this.mix(s.charCodeAt(i));
  }

  hashHex(): string {
    return (this.hash >>> 0).toString(16).padStart(8, '0');
  }

  recentEvents(): string[] {
    const n = this.recentText.length;
    const start = n < recentEventsMax ? 0 : this.recentNext;
    return Array.from({ length: n }, (_, k) => traceLine(this.recentAt[(start + k) % n], this.recentText[(start + k) % n]));
  }
}
