// Recovery of a Raft cluster that lost a majority of its masters for good (etcd's
// --force-new-cluster): offline, in a stopped survivor's directory, the log gets one removal per
// other member, committed by fiat under a new term, so that on its next start the survivor is the
// only voter and elects itself, with every entry it holds and the state they make. The lost masters
// come back as new members under new ids (`cairn admin journal add`); the removals keep the old
// ids out for good, as for any removed master.
//
// Entries past the survivor's durable commit index are kept, not cut: it may have acknowledged a
// committed entry whose commit index it had not yet written down. As the only voter it commits
// them, as a new Raft leader commits the entries it holds.

import path from 'node:path';
import { ConfChangeType, decodeConfChange, encodeConfChange, EntryType, Raft, type Entry, type HardState, type Snapshot } from '../../raft/index.ts';
import { isErrno, type Disk } from '../../io/index.ts';
import { combine } from './driver.ts';
import { JournalError, JournalErrorCode } from './errors.ts';
import { decodeMemberFrame } from './member-frame.ts';
import { loadNewestSnapshot } from './snapshot-file.ts';
import { readFrames } from './snapshot-frames.ts';
import { checkSnapshotReachesWal } from './snapshot-gap.ts';
import { Wal } from './wal.ts';

export interface RecoveryPlan {
  id: number;
  dir: string;
  /** The log as the directory holds it. */
  term: number;
  commitDurable: number;
  lastIndex: number;
  lastTerm: number;
  snapshotIndex: number;
  voters: number[];
  learners: number[];
  /** Members the recovery removes: every one but `id`. */
  removing: number[];
  /** Ids removed before, never to be added back. */
  removedBefore: number[];
  /** What it appends, and the hard state it writes after them. */
  entries: Entry[];
  hardState: HardState;
}

/**
 * Reads a stopped master's directory and plans its recovery as the only member; changes nothing
 * but what any start changes (a torn WAL tail is cut off). Refuses (CAIRN_RECOVER_REFUSED) a
 * directory with no journal, and a master that is not a voter of the membership its log ends with.
 */
export async function planRecovery(disk: Disk, dir: string, id: number): Promise<RecoveryPlan> {
  await disk.readdir(path.join(dir, 'wal')).catch((err: unknown) => {
    if (isErrno(err, 'ENOENT')) throw refused(`${dir} holds no journal (no ${path.join(dir, 'wal')}): give the data directory of a master that ran`);
    throw err;
  });
  const { snapshot, file, skipped } = await loadNewestSnapshot(disk, dir);
  try {
    const { wal, state } = await Wal.open(disk, dir);
    try {
      checkSnapshotReachesWal(state.snapshot, snapshot?.meta, skipped, dir);
      const raft = new Raft({ id, voters: [], rand: () => 0 }, combine(state, snapshot));
      const st = raft.status();
      const lastTerm = raft.log.term(st.lastIndex) ?? 0;
      if (st.lastIndex === 0) throw refused(`${dir} holds an empty journal: this master never took part in a cluster`);
      if (!st.conf.voters.includes(id)) {
        throw refused(`master ${id} is not a voter of the membership ${dir} ends with (voters ${st.conf.voters.join(', ') || 'none'}${st.conf.learners.length > 0 ? `, learners ${st.conf.learners.join(', ')}` : ''}): give the --id this directory's master ran with, and recover a voter`);
      }
      const removing = [...st.conf.voters, ...st.conf.learners].filter((m) => m !== id).sort((a, b) => a - b);
      const term = Math.max(st.term, lastTerm) + 1;
      const entries: Entry[] = removing.map((node, i) => ({ term, index: st.lastIndex + 1 + i, type: EntryType.ConfChange, data: encodeConfChange({ type: ConfChangeType.Remove, node }) }));
      return {
        id,
        dir,
        term: st.term,
        commitDurable: state.hardState.commit,
        lastIndex: st.lastIndex,
        lastTerm,
        snapshotIndex: snapshot?.meta.index ?? 0,
        voters: st.conf.voters,
        learners: st.conf.learners,
        removing,
        removedBefore: removedIds(snapshot, state.entries.filter((e) => e.index > (snapshot?.meta.index ?? 0))),
        entries,
        hardState: { term, vote: id, commit: st.lastIndex + entries.length },
      };
    } finally {
      await wal.close();
    }
  } finally {
    file?.close();
  }
}

/** Appends the plan's removals and commits them; refuses if the log moved since it was planned. */
export async function recoverAlone(disk: Disk, plan: RecoveryPlan): Promise<void> {
  const again = await planRecovery(disk, plan.dir, plan.id);
  if (again.lastIndex !== plan.lastIndex || again.term !== plan.term) throw refused(`the journal in ${plan.dir} changed since it was read (is a master running on it?): nothing was written`);
  if (plan.entries.length === 0) return;
  const { wal } = await Wal.open(disk, plan.dir);
  try {
    await wal.save(plan.hardState, plan.entries);
  } finally {
    await wal.close();
  }
}

/** What the recovery does, for the operator to read before confirming. */
export function describeRecovery(p: RecoveryPlan): string[] {
  const lines = [
    `master ${p.id}, ${p.dir}: log to index ${p.lastIndex} (term ${p.lastTerm}), current term ${p.term}, commit index on disk ${p.commitDurable}, snapshot at ${p.snapshotIndex}`,
    `members now: voters ${p.voters.join(', ')}${p.learners.length > 0 ? `; learners ${p.learners.join(', ')}` : ''}`,
  ];
  if (p.removing.length === 0) {
    lines.push(`master ${p.id} is already the only member: nothing to do`);
    return lines;
  }
  lines.push(
    `it appends ${p.removing.length} entries at term ${p.hardState.term} (indexes ${p.lastIndex + 1}-${p.hardState.commit}) removing master${p.removing.length > 1 ? 's' : ''} ${p.removing.join(', ')}, and commits through ${p.hardState.commit}: master ${p.id} starts as the only voter`,
    `it keeps every entry this master holds${p.lastIndex > p.commitDurable ? ` (also ${p.lastIndex - p.commitDurable} past the commit index on disk, which it commits)` : ''}; whatever the lost masters held beyond index ${p.lastIndex} is gone: recover the survivor with the highest last index`,
    `the removed ids are never used again: add new masters under ids from ${unusedIdAfter(p)} up, each started with --join on an empty directory, then 'cairn admin journal add ID HOST:PORT'`,
    `any process still running as master ${p.removing.join(', ')} must be stopped for good first: its messages are dropped from now on`,
  );
  return lines;
}

/** The lowest id above every id the cluster has had. */
export function unusedIdAfter(p: RecoveryPlan): number {
  return Math.max(p.id, ...p.voters, ...p.learners, ...p.removedBefore) + 1;
}

/** Ids removed for good: the snapshot's list, then the log's membership changes after it. */
function removedIds(snapshot: Snapshot | undefined, entries: readonly Entry[]): number[] {
  const removed = new Set<number>();
  if (snapshot !== undefined) {
    const first = readFrames(snapshot.data).next();
    if (first.done !== true) for (const id of decodeMemberFrame(first.value).removedIds) removed.add(id);
  }
  for (const e of entries) {
    if (e.type !== EntryType.ConfChange) continue;
    const cc = decodeConfChange(e.data);
    if (cc.type === ConfChangeType.Remove) removed.add(cc.node);
    else removed.delete(cc.node);
  }
  return [...removed].sort((a, b) => a - b);
}

function refused(message: string): JournalError {
  return new JournalError(JournalErrorCode.RecoverRefused, `${message}; nothing was changed`);
}
