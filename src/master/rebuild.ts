// What a master says when its own disk cannot be trusted (a corrupt WAL, a snapshot the WAL no
// longer connects to): it refuses to start, and names the commands that rebuild it from its peers.

import { JournalError, JournalErrorCode } from '../journal/raft/errors.ts';
import type { MasterOptions } from './server.ts';

/** What the steps name: the master's id, directory and address, its peers and whether it has a secret. */
export type RebuildTarget = Pick<MasterOptions, 'id' | 'dir' | 'listen' | 'peers' | 'secret'>;

/** The codes that mean "this node's data must not be used": only a rebuild from its peers helps. */
const mustRebuild: ReadonlySet<string> = new Set([JournalErrorCode.WalCorrupt, JournalErrorCode.SnapshotCorrupt]);

export function needsRebuild(err: unknown): err is JournalError {
  return err instanceof JournalError && isRebuildCode(err.code);
}

export function isRebuildCode(code: string): boolean {
  return mustRebuild.has(code);
}

/**
 * The error a master exits with when `err` means its data is unusable: the same code, the cause's
 * message, and the steps for this master, in one line. Other errors pass through unchanged.
 */
export function refusalToStart(err: unknown, m: RebuildTarget): unknown {
  if (!needsRebuild(err)) return err;
  return new JournalError(err.code, `master ${m.id} refuses to start: ${err.message}. ${stepsMarker} ${rebuildSteps(m)}`, { cause: err });
}

/** Where the steps begin in the message, so that `cairn local up` can give its own instead. */
export const stepsMarker = 'Steps, in this order:';

/** Stands for the rebuilt master's id in the steps: `cairn admin journal remove` prints one to use. */
export const newIdPlaceholder = '<new-id>';

/**
 * Remove first: a master with an empty directory that is still a voter would vote and acknowledge
 * with no memory of what it voted for or stored. It comes back under a new id, never its old one:
 * an empty server under an old id takes the log's first entries for the membership (the founders'
 * bootstrap entries make master 1 a voter at index 1, alone), so it could elect itself. Added, it
 * starts as a learner with a fresh progress on the leader. The old directory is kept aside for a
 * look, never started again.
 */
function rebuildSteps(m: RebuildTarget): string {
  const others = [...m.peers].filter(([id]) => id !== m.id).map(([, addr]) => addr);
  const masters = `--masters ${others.length > 0 ? others.join(',') : '<another-master-host:port>'}`;
  const dir = shellWord(m.dir);
  const aside = shellWord(`${m.dir}.corrupt`);
  const secret = m.secret === undefined ? '' : ' (the admin commands need the cluster secret in CAIRN_SECRET)';
  return (
    `1) cairn admin journal remove ${m.id} ${masters}, which prints an unused id, ${newIdPlaceholder} below (${m.id} is never used again); ` +
    `2) mv ${dir} ${aside}; ` +
    `3) cairn master --id ${newIdPlaceholder} --dir ${dir} --listen ${m.listen} --join, with its other flags; ` +
    `4) cairn admin journal add ${newIdPlaceholder} ${m.listen} ${masters}${secret}`
  );
}

/**
 * The same steps for a master of a `cairn local` cluster: `local up --join` starts the new master
 * in D/master-<newId>, and `add` finds its address in the cluster's record.
 */
export function localRebuildSteps(id: number, newId: number, clusterDir: string, masterDir: string): string {
  const c = shellWord(clusterDir);
  return (
    `1) cairn admin journal remove ${id} --dir ${c}; ` +
    `2) mv ${shellWord(masterDir)} ${shellWord(`${masterDir}.corrupt`)}; ` +
    `3) cairn local up --dir ${c} --join ${newId}; ` +
    `4) cairn admin journal add ${newId} --dir ${c}`
  );
}

function shellWord(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
