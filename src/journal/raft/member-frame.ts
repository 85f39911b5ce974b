// Frame 0 of a journal snapshot: what the journal itself knows of the membership beyond the Raft
// configuration, namely each member's address and the ids removed from the cluster for good.

import { Packr } from 'msgpackr';
import { JournalError, JournalErrorCode } from './errors.ts';

const packr = new Packr({ useRecords: false });

export interface MemberFrame {
  /** id → RPC address, for every node the journal has heard of. */
  addresses: [number, string][];
  /** Ids whose last membership change was a removal: never added again. */
  removedIds: number[];
}

export function encodeMemberFrame(f: MemberFrame): Uint8Array {
  return packr.pack({ addresses: f.addresses, removedIds: f.removedIds });
}

/**
 * Reads frame 0 in either form: the current one (an object with both lists), or the form written
 * before removed ids were kept (an array of [id, address] pairs), which knows of no removed id.
 */
export function decodeMemberFrame(bytes: Uint8Array): MemberFrame {
  let v: unknown;
  try {
    v = packr.unpack(bytes);
  } catch (err) {
    throw malformed(`it does not decode (${(err as Error).message})`);
  }
  if (Array.isArray(v)) return { addresses: checkAddresses(v), removedIds: [] };
  if (typeof v !== 'object' || v === null) throw malformed('it is neither a list nor a record');
  const o = v as { addresses?: unknown; removedIds?: unknown };
  return { addresses: checkAddresses(o.addresses), removedIds: checkIds(o.removedIds) };
}

/** As loose as the old reader was about ids, so every snapshot it accepted still restores. */
function checkAddresses(v: unknown): [number, string][] {
  const ok = Array.isArray(v) && v.every((m) => Array.isArray(m) && m.length === 2 && Number.isSafeInteger(m[0]) && typeof m[1] === 'string');
  if (!ok) throw malformed('the address list is not [id, address] pairs');
  return v as [number, string][];
}

function checkIds(v: unknown): number[] {
  if (!Array.isArray(v) || !v.every(isNodeId)) throw malformed('the removed ids are not a list of node ids');
  return v as number[];
}

function isNodeId(v: unknown): boolean {
  return Number.isSafeInteger(v) && (v as number) > 0;
}

function malformed(why: string): JournalError {
  return new JournalError(JournalErrorCode.SnapshotCorrupt, `snapshot member list is malformed: ${why}`);
}
