// The simulator's replicated state machine: a key-value store with append and get, and
// exactly-once application of retried writes through (client, seq).

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface KvCommand {
  client: number;
  seq: number;
  key: string;
  value: string;
}

export function encodeCommand(cmd: KvCommand): Uint8Array {
  return encoder.encode(JSON.stringify(cmd));
}

export function decodeCommand(data: Uint8Array): KvCommand {
  return JSON.parse(decoder.decode(data)) as KvCommand;
}

export class KvMachine {
  private data = new Map<string, string>();
  /** The last applied seq of each client; a retry of it is not applied again. */
  private lastSeq = new Map<number, number>();

  /** Applies one append; returns whether it took effect (false for a duplicate). */
  apply(cmd: KvCommand): boolean {
    const last = this.lastSeq.get(cmd.client) ?? 0;
    if (cmd.seq <= last) return false;
    this.lastSeq.set(cmd.client, cmd.seq);
    this.data.set(cmd.key, (this.data.get(cmd.key) ?? '') + cmd.value);
    return true;
  }

  get(key: string): string | undefined {
    return this.data.get(key);
  }

  snapshot(): Uint8Array {
    return encoder.encode(JSON.stringify({ data: [...this.data], lastSeq: [...this.lastSeq] }));
  }

  restore(bytes: Uint8Array): void {
    const s = JSON.parse(decoder.decode(bytes)) as { data: [string, string][]; lastSeq: [number, number][] };
    this.data = new Map(s.data);
    this.lastSeq = new Map(s.lastSeq);
  }

  /** A digest of the state (values and the exactly-once table), to compare replicas. */
  digest(): string {
    return JSON.stringify([[...this.data].sort(), [...this.lastSeq].sort()]);
  }
}
