// A sequential model of a small POSIX namespace for the linearizability checker: which paths exist,
// as file or directory, with their mode and size, and what each operation answers (a value or an
// error code), with the metadata state machine's order of checks. Pure; states are values.

import type { Model, Operation } from './linearizability.ts';

export type NsType = 'file' | 'dir';
/** The error codes namespace operations answer with (those of src/meta/errors.ts they can reach). */
export type NsErrorCode = 'ENOENT' | 'EEXIST' | 'ENOTDIR' | 'EISDIR' | 'ENOTEMPTY' | 'EINVAL';

export type NsInput =
  | { kind: 'mkdir'; path: string; mode: number }
  | { kind: 'create'; path: string; mode: number; exclusive: boolean }
  | { kind: 'unlink'; path: string }
  | { kind: 'rmdir'; path: string }
  | { kind: 'rename'; from: string; to: string }
  | { kind: 'setattr'; path: string; mode?: number; sizeBytes?: number }
  | { kind: 'stat'; path: string }
  | { kind: 'readdir'; path: string };

/** The attributes the model can predict; times and inode ids it cannot, so they are left out. */
export interface NsAttr {
  type: NsType;
  mode: number;
  sizeBytes: number;
  /** Files: 1 (no hard links here). Directories: 2 + subdirectories. */
  nlink: number;
}

/**
 * What an operation answered, reduced to what the model predicts: an error code, or success with the
 * fields its kind returns (attr for mkdir, create, setattr, stat; created for create; replaced for
 * rename; entries as `name:type`, sorted, for readdir).
 */
export interface NsOutput {
  code: 'ok' | NsErrorCode;
  attr?: NsAttr;
  created?: boolean;
  replaced?: boolean;
  entries?: string[];
}

interface NsNode {
  readonly type: NsType;
  readonly mode: number;
  readonly sizeBytes: number;
}

/** Every path below the root, with its node. A path is present only if its parent is a directory. */
export type NsState = ReadonlyMap<string, NsNode>;

const rootNode: NsNode = { type: 'dir', mode: 0o755, sizeBytes: 0 };

function nodeAt(state: NsState, path: string): NsNode | undefined {
  return path === '/' ? rootNode : state.get(path);
}

function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash === 0 ? '/' : path.slice(0, slash);
}

function isBelow(path: string, dir: string): boolean {
  return dir === '/' ? path !== '/' : path.startsWith(`${dir}/`);
}

function childrenOf(state: NsState, dir: string): string[] {
  const out: string[] = [];
  for (const path of state.keys()) if (parentOf(path) === dir) out.push(path);
  return out;
}

function fail(code: NsErrorCode): NsOutput {
  return { code };
}

/** The error walking to the first `count` names of `path` meets, or undefined (the real walk's order). */
function walkError(state: NsState, path: string, count: number): NsErrorCode | undefined {
  const names = path === '/' ? [] : path.slice(1).split('/');
  let at = '/';
  for (let i = 0; i < count; i++) {
    if (nodeAt(state, at)?.type !== 'dir') return 'ENOTDIR';
    at = at === '/' ? `/${names[i]}` : `${at}/${names[i]}`;
    if (nodeAt(state, at) === undefined) return 'ENOENT';
  }
  return undefined;
}

function depth(path: string): number {
  return path === '/' ? 0 : path.split('/').length - 1;
}

/** Resolving the whole path (stat, setattr, readdir). */
function resolveError(state: NsState, path: string): NsErrorCode | undefined {
  return walkError(state, path, depth(path));
}

/** Resolving the directory that holds the last name (every mutation that adds or removes a name). */
function parentError(state: NsState, path: string): NsErrorCode | undefined {
  const err = walkError(state, path, depth(path) - 1);
  if (err !== undefined) return err;
  return nodeAt(state, parentOf(path))?.type === 'dir' ? undefined : 'ENOTDIR';
}

function attrOf(state: NsState, path: string): NsAttr {
  const node = nodeAt(state, path)!;
  const nlink = node.type === 'file' ? 1 : 2 + childrenOf(state, path).filter((p) => state.get(p)!.type === 'dir').length;
  return { type: node.type, mode: node.mode, sizeBytes: node.sizeBytes, nlink };
}

function withNode(state: NsState, path: string, node: NsNode | undefined): NsState {
  const next = new Map(state);
  if (node === undefined) next.delete(path);
  else next.set(path, node);
  return next;
}

interface Outcome {
  state: NsState;
  output: NsOutput;
}

/** What `input` answers in `state`, and the state after it: the specification. */
export function runNsOp(state: NsState, input: NsInput): Outcome {
  const same = (output: NsOutput): Outcome => ({ state, output });
  switch (input.kind) {
    case 'mkdir': {
      const err = parentError(state, input.path);
      if (err !== undefined) return same(fail(err));
      if (state.has(input.path)) return same(fail('EEXIST'));
      const next = withNode(state, input.path, { type: 'dir', mode: input.mode, sizeBytes: 0 });
      return { state: next, output: { code: 'ok', attr: attrOf(next, input.path) } };
    }
    case 'create': {
      const err = parentError(state, input.path);
      if (err !== undefined) return same(fail(err));
      const existing = state.get(input.path);
      if (existing?.type === 'dir') return same(fail('EISDIR'));
      if (existing !== undefined) {
        return same(input.exclusive ? fail('EEXIST') : { code: 'ok', attr: attrOf(state, input.path), created: false });
      }
      const next = withNode(state, input.path, { type: 'file', mode: input.mode, sizeBytes: 0 });
      return { state: next, output: { code: 'ok', attr: attrOf(next, input.path), created: true } };
    }
    case 'unlink': {
      const err = parentError(state, input.path);
      if (err !== undefined) return same(fail(err));
      const node = state.get(input.path);
      if (node === undefined) return same(fail('ENOENT'));
      if (node.type === 'dir') return same(fail('EISDIR'));
      return { state: withNode(state, input.path, undefined), output: { code: 'ok' } };
    }
    case 'rmdir': {
      const err = parentError(state, input.path);
      if (err !== undefined) return same(fail(err));
      const node = state.get(input.path);
      if (node === undefined) return same(fail('ENOENT'));
      if (node.type !== 'dir') return same(fail('ENOTDIR'));
      if (childrenOf(state, input.path).length > 0) return same(fail('ENOTEMPTY'));
      return { state: withNode(state, input.path, undefined), output: { code: 'ok' } };
    }
    case 'rename':
      return rename(state, input.from, input.to);
    case 'setattr': {
      const err = resolveError(state, input.path);
      if (err !== undefined) return same(fail(err));
      const node = nodeAt(state, input.path)!;
      if (input.sizeBytes !== undefined && node.type === 'dir') return same(fail('EISDIR'));
      const next = withNode(state, input.path, {
        type: node.type,
        mode: input.mode ?? node.mode,
        sizeBytes: input.sizeBytes ?? node.sizeBytes,
      });
      return { state: next, output: { code: 'ok', attr: attrOf(next, input.path) } };
    }
    case 'stat': {
      const err = resolveError(state, input.path);
      return same(err !== undefined ? fail(err) : { code: 'ok', attr: attrOf(state, input.path) });
    }
    case 'readdir': {
      const err = resolveError(state, input.path);
      if (err !== undefined) return same(fail(err));
      if (nodeAt(state, input.path)!.type !== 'dir') return same(fail('ENOTDIR'));
      const entries = childrenOf(state, input.path)
        .map((p) => `${p.slice(p.lastIndexOf('/') + 1)}:${state.get(p)!.type}`)
        .sort();
      return same({ code: 'ok', entries });
    }
  }
}

/** POSIX rename with the state machine's checks in its order; a directory moves with its subtree. */
function rename(state: NsState, from: string, to: string): Outcome {
  const same = (output: NsOutput): Outcome => ({ state, output });
  if (from === '/' || to === '/') return same(fail('EINVAL'));
  const fromErr = parentError(state, from);
  if (fromErr !== undefined) return same(fail(fromErr));
  const source = state.get(from);
  if (source === undefined) return same(fail('ENOENT'));
  const toErr = parentError(state, to);
  if (toErr !== undefined) return same(fail(toErr));
  if (from === to) return same({ code: 'ok', replaced: false });
  const toParent = parentOf(to);
  if (source.type === 'dir' && (toParent === from || isBelow(toParent, from))) return same(fail('EINVAL'));
  const victim = state.get(to);
  if (victim !== undefined) {
    if (source.type === 'dir' && victim.type !== 'dir') return same(fail('ENOTDIR'));
    if (source.type !== 'dir' && victim.type === 'dir') return same(fail('EISDIR'));
    if (victim.type === 'dir' && childrenOf(state, to).length > 0) return same(fail('ENOTEMPTY'));
  }
  const next = new Map<string, NsNode>();
  for (const [path, node] of state) {
    if (path === to) continue;
    if (path === from || isBelow(path, from)) next.set(to + path.slice(from.length), node);
    else next.set(path, node);
  }
  return { state: next, output: { code: 'ok', replaced: victim !== undefined } };
}

export function sameNsOutput(a: NsOutput, b: NsOutput): boolean {
  return describeNsOutput(a) === describeNsOutput(b);
}

/** Canonical text of an output: equal outputs, equal text. */
export function describeNsOutput(o: NsOutput): string {
  if (o.code !== 'ok') return o.code;
  const parts: string[] = [];
  if (o.attr !== undefined) parts.push(`${o.attr.type} 0${o.attr.mode.toString(8)} ${o.attr.sizeBytes}B nlink ${o.attr.nlink}`);
  if (o.created !== undefined) parts.push(o.created ? 'created' : 'existed');
  if (o.replaced !== undefined) parts.push(o.replaced ? 'replaced' : 'no victim');
  if (o.entries !== undefined) parts.push(`[${o.entries.join(' ')}]`);
  return parts.length === 0 ? 'ok' : parts.join(', ');
}

export function describeNsInput(input: NsInput): string {
  switch (input.kind) {
    case 'mkdir':
      return `mkdir(${input.path}, 0${input.mode.toString(8)})`;
    case 'create':
      return `create(${input.path}, 0${input.mode.toString(8)}${input.exclusive ? ', excl' : ''})`;
    case 'rename':
      return `rename(${input.from}, ${input.to})`;
    case 'setattr': {
      const what = [input.mode !== undefined ? `mode 0${input.mode.toString(8)}` : '', input.sizeBytes !== undefined ? `size ${input.sizeBytes}` : ''];
      return `setattr(${input.path}, ${what.filter((w) => w !== '').join(', ')})`;
    }
    default:
      return `${input.kind}(${input.path})`;
  }
}

function stateKey(state: NsState): string {
  return [...state]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([path, n]) => `${path}:${n.type === 'dir' ? 'd' : 'f'}${n.mode.toString(8)}:${n.sizeBytes}`)
    .join(' ');
}

type NsOp = Operation<NsInput, NsOutput>;

/**
 * The whole namespace as one register: rename ties paths together, so the history is not split by
 * path. Reads with an unknown outcome are dropped, as they accept any state and change nothing.
 */
export const namespaceModel: Model<NsState, NsInput, NsOutput> = {
  init: () => new Map(),
  step(state, input, output) {
    const outcome = runNsOp(state, input);
    return { ok: output === undefined || sameNsOutput(output, outcome.output), state: outcome.state };
  },
  partition: (history) => [history.filter((op) => op.output !== undefined || !isNsRead(op.input))],
  readOnly: isNsRead,
  equal: (a, b) => stateKey(a) === stateKey(b),
  key: stateKey,
  describeOp(op: NsOp) {
    const result = op.output === undefined ? '?' : describeNsOutput(op.output);
    return `client ${op.clientId} ${describeNsInput(op.input)} -> ${result} [${op.call}, ${op.ret === Infinity ? 'never' : op.ret}]`;
  },
  describeState: (state) => (state.size === 0 ? '(empty)' : stateKey(state)),
};

export function isNsRead(input: NsInput): boolean {
  return input.kind === 'stat' || input.kind === 'readdir';
}
