// What the simulated clients do and what the nodes replicate: a workload bundles a replicated state
// machine, how a client operation becomes a log entry or a read of local state, the sequential model
// the history is checked against, and the generator of client operations. The simulator runs one
// workload per run; the Raft core, the faults and the checkers do not depend on which.

import type { StateMachine } from '../journal/journal.ts';
import type { Model } from './linearizability.ts';
import type { Prng } from './prng.ts';

/** `data` runs the data path (data-simulation.ts) and only when asked for: seeds pick kv or meta. */
export const workloadNames = ['kv', 'meta', 'data'] as const;
export type WorkloadName = (typeof workloadNames)[number];

/** Stamped on every write by the node that proposes it: exactly-once identity and the virtual clock. */
export interface WriteStamp {
  clientId: number;
  seq: number;
  nowMs: number;
}

/** The state every node replicates (the journal's StateMachine), readable by clients and hashed to compare replicas. */
export interface ReplicatedMachine<I, O> extends StateMachine {
  /** The answer to a read from local state; the node calls it once it has applied the read index. */
  read(input: I): O;
  /** Equal on replicas that applied the same entries. */
  stateHash(): string;
}

export interface SimWorkload<S, I, O> {
  readonly name: WorkloadName;
  readonly model: Model<S, I, O>;
  newMachine(): ReplicatedMachine<I, O>;
  /** The next operation a client issues; `seq` is that of its last write. */
  nextInput(prng: Prng, client: { id: number; seq: number }): I;
  /** Reads are answered from local state after ReadIndex; everything else is proposed as an entry. */
  isRead(input: I): boolean;
  /** The log entry of a write; a retry carries the same clientId and seq. */
  entry(input: I, stamp: WriteStamp): Uint8Array;
  /** The client's answer to a write, from what applying its entry returned. */
  writeOutput(input: I, applied: unknown): O;
  /** A few words for traces. */
  describe(input: I): string;
  /** A read that would see what the write `input` did: the simulator's probes read it from a deposed leader. */
  readAfter(input: I): I;
}

/** Without --workload, a seed picks its own: odd seeds run kv, even seeds meta, so any range covers both. */
export function workloadForSeed(seed: number): 'kv' | 'meta' {
  return seed % 2 === 1 ? 'kv' : 'meta';
}
