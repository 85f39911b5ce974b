// The key-value workload: clients append unique strings to three keys and read them back, checked
// against the append-only model per key, so lost or duplicated writes show.

import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { KvMachine, decodeCommand, encodeCommand } from './kv-machine.ts';
import { appendModel, type AppendInput, type AppendOutput, type AppendState } from './models.ts';
import type { ReplicatedMachine, SimWorkload } from './workload.ts';

const clientKeys = ['a', 'b', 'c'];

class KvReplica implements ReplicatedMachine<AppendInput, AppendOutput> {
  private sm = new KvMachine();

  apply(_index: number, data: Uint8Array): boolean {
    return this.sm.apply(decodeCommand(data));
  }

  read(input: AppendInput): AppendOutput {
    return { value: this.sm.get(input.key) };
  }

  snapshot(): Iterable<Uint8Array> {
    return [this.sm.snapshot()];
  }

  restore(chunks: Iterable<Uint8Array>): void {
    this.sm = new KvMachine();
    this.sm.restore(Buffer.concat([...chunks]));
  }

  stateHash(): string {
    return createHash('sha256').update(this.sm.digest()).digest('hex');
  }
}

/** Each append's value names its client and seq, so every value is unique and a lost or repeated one shows. */
export const kvWorkload: SimWorkload<AppendState, AppendInput, AppendOutput> = {
  name: 'kv',
  model: appendModel,
  newMachine: () => new KvReplica(),
  nextInput(prng, client) {
    const key = prng.pick(clientKeys);
    return prng.chance(0.6) ? { kind: 'append', key, value: `${client.id}.${client.seq + 1};` } : { kind: 'get', key };
  },
  isRead: (input) => input.kind === 'get',
  entry(input, stamp) {
    if (input.kind !== 'append') throw new Error(`invariant violated: a ${input.kind} is not a write`);
    return encodeCommand({ client: stamp.clientId, seq: stamp.seq, key: input.key, value: input.value });
  },
  writeOutput: () => ({ ok: true }),
  describe: (input) => `${input.kind} ${input.key}`,
  readAfter: (input) => ({ kind: 'get', key: input.key }),
};
