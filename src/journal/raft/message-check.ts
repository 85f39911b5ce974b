// Checks Raft messages arriving from peers before they reach the core: an authenticated peer can
// still run a buggy or different version, and a malformed message must never corrupt the log.

import { RpcError, RpcErrorCode } from '../../rpc/errors.ts';
import { EntryType, MessageType, type Entry, type Message, type SnapshotMeta } from '../../raft/index.ts';

const messageTypes: ReadonlySet<string> = new Set(Object.values(MessageType));
const entryTypes: ReadonlySet<number> = new Set(Object.values(EntryType));
/**
 * The largest term a message may carry: far past any real cluster's (an election a millisecond for
 * 8,000 years), and small enough that a node's next term is still exact. A forged term near 2^53
 * would otherwise become every node's, with no term left to campaign in.
 */
export const termMax = 2 ** 48;
/** Messages in one raft.step call; the sender batches one Ready's messages per peer. */
export const messagesPerCallMax = 100_000;

type Obj = Record<string, unknown>;

export function checkMessages(body: unknown): Message[] {
  const msgs = (body as Obj | null)?.msgs;
  if (!Array.isArray(msgs) || msgs.length > messagesPerCallMax) bad(`msgs must be an array of at most ${messagesPerCallMax} messages`);
  return msgs.map(checkMessage);
}

function checkMessage(x: unknown): Message {
  if (typeof x !== 'object' || x === null) bad('a message must be an object');
  const m = x as Obj;
  if (typeof m.type !== 'string' || !messageTypes.has(m.type)) bad(`unknown message type ${String(m.type)}`);
  for (const f of ['from', 'to'] as const) if (!isCount(m[f]) || m[f] === 0) bad(`${f} must be a positive node id`);
  if (!isTerm(m.term)) bad(`term must be an integer from 0 to ${termMax}`);
  if (m.logTerm !== undefined && !isTerm(m.logTerm)) bad(`logTerm must be an integer from 0 to ${termMax}`);
  for (const f of ['index', 'commit', 'rejectHint', 'snapOffset', 'snapTotalBytes', 'readSeq'] as const) {
    if (m[f] !== undefined && !isCount(m[f])) bad(`${f} must be a non-negative integer`);
  }
  if (m.hbTick !== undefined && !Number.isSafeInteger(m.hbTick)) bad('hbTick must be an integer');
  for (const f of ['reject', 'snapDone', 'force'] as const) if (m[f] !== undefined && typeof m[f] !== 'boolean') bad(`${f} must be a boolean`);
  for (const f of ['context', 'snapData'] as const) if (m[f] !== undefined && !(m[f] instanceof Uint8Array)) bad(`${f} must be bytes`);
  if (m.entries !== undefined) checkEntries(m.entries);
  if (m.snapshot !== undefined) checkSnapshotMeta(m.snapshot);
  if (m.type === MessageType.Snap && (m.snapshot === undefined || m.snapData === undefined)) bad('a snapshot chunk needs its metadata and data');
  return m as unknown as Message;
}

function checkEntries(x: unknown): asserts x is Entry[] {
  if (!Array.isArray(x)) bad('entries must be an array');
  let prev: Obj | undefined;
  for (const e of x as unknown[]) {
    if (typeof e !== 'object' || e === null) bad('an entry must be an object');
    const o = e as Obj;
    if (!isTerm(o.term) || !isCount(o.index) || o.index === 0) bad(`an entry needs a term (0 to ${termMax}) and a positive index`);
    if (typeof o.type !== 'number' || !entryTypes.has(o.type)) bad(`unknown entry type ${String(o.type)}`);
    if (!(o.data instanceof Uint8Array)) bad('entry data must be bytes');
    if (prev !== undefined && (o.index !== (prev.index as number) + 1 || (o.term as number) < (prev.term as number))) {
      bad('entries must be contiguous with non-decreasing terms');
    }
    prev = o;
  }
}

function checkSnapshotMeta(x: unknown): asserts x is SnapshotMeta {
  const s = x as Obj | null;
  if (typeof s !== 'object' || s === null || !isCount(s.index) || !isTerm(s.term)) bad('snapshot metadata needs an index and a term');
  const conf = s.conf as Obj | null;
  const ids = (v: unknown): boolean => Array.isArray(v) && v.every((id) => isCount(id) && id > 0);
  if (typeof conf !== 'object' || conf === null || !ids(conf.voters) || !ids(conf.learners)) bad('snapshot metadata needs its membership');
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function bad(message: string): never {
  throw new RpcError(RpcErrorCode.BadRequest, `bad raft message: ${message}`);
}

function isTerm(v: unknown): v is number {
  return isCount(v) && v <= termMax;
}
