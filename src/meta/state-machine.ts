// The masters' replicated state machine as the journal sees it: log entries are metadata commands,
// the steps of restoring a backup into an empty cluster, or a move of the inode counter past ids
// workers hold chunks of (restore-floor.ts). Pure: no clock, no I/O.

import { Packr } from 'msgpackr';
import type { Restorer, StateMachine } from '../journal/index.ts';
import { encodeCommand, type MetaCommand, type MetaQuery } from './commands.ts';
import { MetaState } from './namespace.ts';
import { assert } from '../errors.ts';
import { FsErrorCode } from './errors.ts';
import { fail, ok, type MetaResult } from './namespace-state.ts';
import { floorProblem, heldInodeIdMax } from './restore-floor.ts';

const EntryKind = { Command: 1, RestoreBegin: 2, RestoreChunk: 3, RestoreCommit: 4, InodeFloor: 5 } as const;
const packr = new Packr({ useRecords: false });

export function encodeCommandEntry(cmd: MetaCommand): Uint8Array {
  return prefixed(EntryKind.Command, encodeCommand(cmd));
}

export function encodeRestoreBegin(restoreId: string): Uint8Array {
  return prefixed(EntryKind.RestoreBegin, packr.pack({ restoreId }));
}

export function encodeRestoreChunk(restoreId: string, chunk: Uint8Array): Uint8Array {
  return prefixed(EntryKind.RestoreChunk, packr.pack({ restoreId, chunk }));
}

/**
 * The restore's last step: the staged backup replaces the state, its counters moved to `floor` or
 * above (restore-floor.ts). Entries written before floors existed carry none and apply as then.
 */
export function encodeRestoreCommit(restoreId: string, floor: number): Uint8Array {
  return prefixed(EntryKind.RestoreCommit, packr.pack({ restoreId, floor }));
}

/** Moves the inode counter past `heldInodeId`, an inode some worker holds chunks of. */
export function encodeInodeFloor(heldInodeId: number): Uint8Array {
  return prefixed(EntryKind.InodeFloor, packr.pack({ heldInodeId }));
}

function prefixed(kind: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(body.length + 1);
  out[0] = kind;
  out.set(body, 1);
  return out;
}

export class MetaStateMachine implements StateMachine {
  state = new MetaState();
  /** A backup being restored: chunks arrive as separate entries, then one commit swaps the state. */
  private staging: { restoreId: string; chunks: Uint8Array[] } | undefined;

  apply(index: number, entry: Uint8Array): MetaResult<unknown> {
    const kind = entry[0];
    const body = entry.subarray(1);
    switch (kind) {
      case EntryKind.Command:
        return this.state.applyEntry(index, body);
      case EntryKind.RestoreBegin: {
        const { restoreId } = packr.unpack(body) as { restoreId: string };
        this.staging = { restoreId, chunks: [] };
        return ok({ restoreId });
      }
      case EntryKind.RestoreChunk: {
        const { restoreId, chunk } = packr.unpack(body) as { restoreId: string; chunk: Uint8Array };
        if (this.staging?.restoreId !== restoreId) return fail(FsErrorCode.EINVAL, `restore ${restoreId} was not begun (or another one replaced it)`);
        this.staging.chunks.push(new Uint8Array(chunk));
        return ok({ chunks: this.staging.chunks.length });
      }
      case EntryKind.RestoreCommit: {
        const { restoreId, floor } = packr.unpack(body) as { restoreId: string; floor?: unknown };
        return this.commitRestore(index, restoreId, floor);
      }
      case EntryKind.InodeFloor:
        return this.raiseInodeIds(index, (packr.unpack(body) as { heldInodeId: unknown }).heldInodeId);
      default:
        assert(false, `unknown entry kind ${kind} at index ${index}`);
    }
  }

  private commitRestore(index: number, restoreId: string, floor: unknown): MetaResult<unknown> {
    const staged = this.staging;
    this.staging = undefined;
    if (staged?.restoreId !== restoreId) return fail(FsErrorCode.EINVAL, `restore ${restoreId} was not begun`);
    const problem = floor === undefined ? undefined : floorProblem(floor);
    if (problem !== undefined) return fail(FsErrorCode.EINVAL, problem);
    const fs = this.state.statfs();
    if (fs.inodes > 1) return fail(FsErrorCode.ENOTEMPTY, 'restore needs an empty cluster: this one already holds files');
    try {
      const restored = MetaState.restore(staged.chunks);
      // An entry from before floors existed applies as it did then: a replayed log keeps its state.
      if (floor === undefined) restored.rebaseIndex(index);
      else restored.continueRestored(index, floor as number);
      this.state = restored;
    } catch (err) {
      return fail(FsErrorCode.EINVAL, `the backup is damaged: ${(err as Error).message}`);
    }
    return ok({ restoredAt: index, inodes: this.state.statfs().inodes, nextInodeId: this.state.nextInodeId });
  }

  private raiseInodeIds(index: number, heldInodeId: unknown): MetaResult<unknown> {
    if (typeof heldInodeId !== 'number' || !Number.isSafeInteger(heldInodeId) || heldInodeId < 1 || heldInodeId > heldInodeIdMax) {
      return fail(FsErrorCode.EINVAL, `inode id ${String(heldInodeId)} is not in [1, ${heldInodeIdMax}]`);
    }
    const raised = this.state.raiseInodeIds(index, heldInodeId);
    return ok({ raised, nextInodeId: this.state.nextInodeId });
  }

  query(q: MetaQuery): MetaResult<unknown> {
    return this.state.query(q);
  }

  snapshot(): Iterable<Uint8Array> {
    return this.state.snapshot();
  }

  restore(chunks: Iterable<Uint8Array>): void {
    this.state = MetaState.restore(chunks);
    this.staging = undefined;
  }

  restorer(): Restorer {
    const r = MetaState.restorer();
    return {
      add: (chunk) => r.add(chunk),
      finish: () => {
        this.state = r.finish();
        this.staging = undefined;
      },
    };
  }
}
