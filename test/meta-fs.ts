// A MetaState driven the way the journal drives it, for unit tests: each command gets the next log
// index, the next seq of one client, and a clock that moves on by a fixed step; namespace commands
// and queries act as one caller (root unless told), or as the one a body names.

import assert from 'node:assert/strict';
import { MetaState, namespaceCommandOps, readdirLimitMax, rootCaller, type ResultErrorCode } from '../src/meta/index.ts';
import type { Caller, ClientStamp, InodeAttr, MetaCommand, MetaCommandOp, MetaQuery, MetaResult, MetaValues, NamespaceStamp } from '../src/meta/index.ts';
import { MetaError } from '../src/meta/errors.ts';
import { DirLeaseRenewals } from '../src/master/dir-lease-renewals.ts';
import type { DataClient } from '../src/client/data-client.ts';

/** A command without the stamp (client id, seq, clock) that the log adds; the caller is optional. */
export type Body<C = MetaCommand> = C extends MetaCommand ? (C extends NamespaceStamp ? Omit<C, keyof NamespaceStamp> & { caller?: Caller } : Omit<C, keyof ClientStamp>) : never;

export class MetaFs {
  readonly state: MetaState;
  readonly clientId: string;
  readonly stepMs: number;
  readonly caller: Caller;
  index = 0;
  seq = 0;
  nowMs = 1_000;

  constructor(opts: { clientId: string; stepMs: number; state?: MetaState; caller?: Caller }) {
    this.clientId = opts.clientId;
    this.stepMs = opts.stepMs;
    this.state = opts.state ?? new MetaState();
    this.caller = opts.caller ?? rootCaller;
  }

  run(body: Body): MetaResult {
    this.nowMs += this.stepMs;
    const caller = namespaceCommandOps.has(body.op) && !('caller' in body) ? { caller: this.caller } : {};
    return this.state.apply(++this.index, { ...caller, ...body, clientId: this.clientId, seq: ++this.seq, nowMs: this.nowMs } as MetaCommand);
  }

  ok<K extends MetaCommandOp>(body: Body & { op: K }): MetaValues[K] {
    const r = this.run(body);
    assert.ok(r.ok, `${body.op} failed: ${r.ok ? '' : `${r.code} ${r.message}`}`);
    return r.value as MetaValues[K];
  }

  fails(body: Body, code: ResultErrorCode): string {
    const r = this.run(body);
    assert.ok(!r.ok, `${body.op} should fail with ${code}`);
    assert.equal(r.code, code, r.message);
    assert.ok(r.message.length > 0);
    return r.message;
  }

  stat(path: string): InodeAttr {
    const r = this.state.stat(path, this.caller);
    assert.ok(r.ok, `stat ${path}: ${r.ok ? '' : r.message}`);
    return r.value;
  }

  statCode(path: string): ResultErrorCode | 'ok' {
    const r = this.state.stat(path, this.caller);
    return r.ok ? 'ok' : r.code;
  }

  names(path: string): string[] {
    const r = this.state.readdir(path, { limit: readdirLimitMax }, this.caller);
    assert.ok(r.ok);
    return r.value.entries.map((e) => e.name);
  }

  /** Restoring a snapshot runs every structural check: nlink counts, dentries, reachability. */
  checkInvariants(): void {
    assert.equal(MetaState.restore(this.state.snapshot()).stateHash(), this.state.stateHash());
  }
}

/** A MasterClient's query and mutate over a MetaFs, for a mount's unit tests: every query is recorded, as `op path`. */
export class FakeMasters {
  readonly fs = new MetaFs({ clientId: 'mount', stepMs: 10 });
  readonly queries: string[] = [];
  /** Mutations, as `op path` (dirBatch: `dirBatch N`, its op count). */
  readonly mutations: string[] = [];
  /** The leader's side of directory leases (meta.renewDirLeases), on the real clock. */
  readonly renewals = new DirLeaseRenewals();

  query<T>(_method: string, body: MetaQuery & { path?: string }): Promise<T> {
    this.queries.push(`${body.op} ${body.path ?? ''}`);
    return this.answer(this.fs.state.query({ caller: rootCaller, ...body } as MetaQuery));
  }

  mutate<T>(_method: string, body: Body): Promise<T> {
    const b = body as { op: string; path?: string; ops?: unknown[] };
    this.mutations.push(b.op === 'dirBatch' ? `dirBatch ${b.ops!.length}` : `${b.op} ${b.path ?? ''}`);
    const r = this.fs.run(body);
    if (r.ok && b.op === 'leaseDir') this.renewals.granted((r.value as { dir: InodeAttr }).dir.inodeId, performance.now());
    return this.answer(r);
  }

  call<T>(method: string, body: { holder: string; dirs: number[] }): Promise<T> {
    assert.equal(method, 'meta.renewDirLeases');
    return Promise.resolve(this.renewals.renewHolder(body.holder, body.dirs, this.fs.state.dirLeases(), performance.now()) as T);
  }

  /** As the leader answers: a refusal for a held directory recalls it. */
  private answer<T>(r: MetaResult<unknown>): Promise<T> {
    if (r.ok) return Promise.resolve(r.value as T);
    if (r.leasedDirId !== undefined) this.renewals.recall(r.leasedDirId, performance.now());
    return Promise.reject(new MetaError(r.code, r.message));
  }
}

/** A data client for CairnFs tests that move no bytes: what it must answer, and `more` (writeChunk...). */
export function dataStub(more: object = {}): DataClient {
  return { forgetLocal: () => undefined, localReadStats: () => undefined, ...more } as unknown as DataClient;
}
