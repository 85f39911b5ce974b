// The metadata workload: the masters' real state machine (MetaStateMachine) replicated by the
// simulated nodes, with clients racing namespace operations over a handful of paths so that they
// conflict (mkdir, exclusive create, unlink, rmdir, rename, setattr, stat, readdir), checked against
// the namespace model as one history.

import type { MetaCommand, SetattrCommand } from '../meta/index.ts';
import type { InodeAttr, MetaResult } from '../meta/index.ts';
import { MetaStateMachine, encodeCommandEntry, rootCaller } from '../meta/index.ts';
import {
  describeNsInput,
  isNsRead,
  namespaceModel,
  type NsAttr,
  type NsErrorCode,
  type NsInput,
  type NsOutput,
  type NsState,
} from './namespace-model.ts';
import type { Prng } from './prng.ts';
import type { ReplicatedMachine, SimWorkload, WriteStamp } from './workload.ts';

/** Few enough paths that operations collide, nested so that walks, rmdir and rename into a subtree matter. */
const paths = ['/a', '/b', '/a/x', '/a/y', '/b/x', '/b/y'];
const dirs = ['/', '/a', '/b'];
const dirModes = [0o755, 0o700];
const fileModes = [0o644, 0o600];
const setModes = [0o600, 0o640, 0o644, 0o755];
const sizes = [0, 1, 4096, 1 << 20];
/** Larger than any directory here gets, so one page is the whole listing. */
const readdirLimit = 1000;

class MetaReplica implements ReplicatedMachine<NsInput, NsOutput> {
  private sm = new MetaStateMachine();

  apply(index: number, data: Uint8Array): MetaResult<unknown> {
    return this.sm.apply(index, data);
  }

  read(input: NsInput): NsOutput {
    const state = this.sm.state;
    if (input.kind === 'stat') return attrOutput(state.stat(input.path, rootCaller));
    if (input.kind !== 'readdir') throw new Error(`invariant violated: ${input.kind} is not a read`);
    const page = state.readdir(input.path, { limit: readdirLimit }, rootCaller);
    if (page.ok && page.value.next !== undefined) throw new Error(`invariant violated: readdir ${input.path} has more than ${readdirLimit} entries`);
    return nsReadOutput(input, page);
  }

  snapshot(): Iterable<Uint8Array> {
    return this.sm.snapshot();
  }

  restore(chunks: Iterable<Uint8Array>): void {
    this.sm = new MetaStateMachine();
    this.sm.restore(chunks);
  }

  stateHash(): string {
    return this.sm.state.stateHash();
  }
}

function errorOutput(r: { code: string }): NsOutput {
  return { code: r.code as NsErrorCode };
}

function attrOf(a: InodeAttr): NsAttr {
  if (a.type !== 'file' && a.type !== 'dir') throw new Error(`invariant violated: inode ${a.inodeId} is a ${a.type}, which nobody made`);
  return { type: a.type, mode: a.mode, sizeBytes: a.sizeBytes, nlink: a.nlink };
}

function attrOutput(r: MetaResult<InodeAttr>): NsOutput {
  return r.ok ? { code: 'ok', attr: attrOf(r.value) } : errorOutput(r);
}

/** What the client learns from the result of its write, in the model's terms. */
function writeOutput(input: NsInput, applied: unknown): NsOutput {
  const r = applied as MetaResult<unknown>;
  if (!r.ok) return errorOutput(r);
  switch (input.kind) {
    case 'mkdir':
    case 'setattr':
      return { code: 'ok', attr: attrOf(r.value as InodeAttr) };
    case 'create': {
      const v = r.value as { inode: InodeAttr; created: boolean };
      return { code: 'ok', attr: attrOf(v.inode), created: v.created };
    }
    case 'rename':
      return { code: 'ok', replaced: (r.value as { replaced: unknown }).replaced !== null };
    default:
      return { code: 'ok' };
  }
}

function command(input: NsInput, stamp: WriteStamp): MetaCommand {
  return { ...nsCommandBody(input), clientId: `c${stamp.clientId}`, seq: stamp.seq, nowMs: stamp.nowMs } as MetaCommand;
}

/**
 * A write as a metadata command without its stamp (the client and the leader add that). Clients act
 * as root: the model does not follow permissions (test/unit/namespace-permissions.test.ts does).
 */
export function nsCommandBody(input: NsInput): DistributiveOmit<MetaCommand, 'clientId' | 'seq' | 'nowMs'> {
  const caller = rootCaller;
  switch (input.kind) {
    case 'mkdir':
      return { op: 'mkdir', path: input.path, mode: input.mode, uid: 0, gid: 0, parents: false, caller };
    case 'create':
      return { op: 'create', path: input.path, mode: input.mode, uid: 0, gid: 0, exclusive: input.exclusive, caller };
    case 'unlink':
      return { op: 'unlink', path: input.path, caller };
    case 'rmdir':
      return { op: 'rmdir', path: input.path, caller };
    case 'rename':
      return { op: 'rename', from: input.from, to: input.to, caller };
    case 'setattr': {
      const cmd: Omit<SetattrCommand, 'clientId' | 'seq' | 'nowMs'> = { op: 'setattr', path: input.path, caller };
      if (input.mode !== undefined) cmd.mode = input.mode;
      if (input.sizeBytes !== undefined) cmd.sizeBytes = input.sizeBytes;
      return cmd;
    }
    default:
      throw new Error(`invariant violated: a ${input.kind} is not a write`);
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** What a stat or readdir answered (a result or an error code), in the model's terms. */
export function nsReadOutput(input: NsInput, r: MetaResult<unknown>): NsOutput {
  if (!r.ok) return errorOutput(r);
  if (input.kind === 'stat') return { code: 'ok', attr: attrOf(r.value as InodeAttr) };
  const page = r.value as { entries: { name: string; type: string }[] };
  return { code: 'ok', entries: page.entries.map((e) => `${e.name}:${e.type}`) };
}

export { nextInput as nsNextInput, writeOutput as nsWriteOutput, readdirLimit as nsReaddirLimit };

function nextInput(prng: Prng): NsInput {
  const roll = prng.int(100);
  const path = prng.pick(paths);
  if (roll < 10) return { kind: 'mkdir', path, mode: prng.pick(dirModes) };
  if (roll < 26) return { kind: 'create', path, mode: prng.pick(fileModes), exclusive: prng.chance(0.8) };
  if (roll < 35) return { kind: 'unlink', path };
  if (roll < 46) return { kind: 'rmdir', path };
  if (roll < 60) return { kind: 'rename', from: path, to: prng.pick(paths) };
  if (roll < 70) {
    const which = prng.int(3);
    const input: Extract<NsInput, { kind: 'setattr' }> = { kind: 'setattr', path };
    if (which !== 1) input.mode = prng.pick(setModes);
    if (which !== 0) input.sizeBytes = prng.pick(sizes);
    return input;
  }
  if (roll < 88) return { kind: 'stat', path };
  return { kind: 'readdir', path: prng.pick(dirs) };
}

export const metaWorkload: SimWorkload<NsState, NsInput, NsOutput> = {
  name: 'meta',
  model: namespaceModel,
  newMachine: () => new MetaReplica(),
  nextInput,
  isRead: isNsRead,
  entry: (input, stamp) => encodeCommandEntry(command(input, stamp)),
  writeOutput,
  describe: describeNsInput,
  readAfter: (input) => ({ kind: 'stat', path: input.kind === 'rename' ? input.to : input.path }),
};
