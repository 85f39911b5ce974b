// Who `cairn fs` commands act as on the masters: the invoking user's uid, gid and supplementary
// groups, or what --uid, --gid and --groups say instead. The masters check permissions against it.

import type { Command } from 'commander';
import { callerGroupsMax, idMax, type Caller } from '../meta/commands.ts';
import { configError } from './config.ts';

export interface IdentityFlags {
  uid?: string;
  gid?: string;
  /** Comma-separated gids; '' for none. */
  groups?: string;
}

/** What the operating system says this process is. */
export interface ProcessIdentity {
  uid: number;
  gid: number;
  groups: number[];
}

export function processIdentity(): ProcessIdentity {
  return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, groups: process.getgroups?.() ?? [] };
}

export function addIdentityOptions(c: Command): Command {
  return c
    .option('--uid <n>', 'act as this uid on the masters (default: yours)')
    .option('--gid <n>', 'act as this gid (default: yours)')
    .option('--groups <list>', `supplementary gids, comma-separated, at most ${callerGroupsMax} (default: yours; none with --uid or --gid)`);
}

function parseId(s: string, flag: string): number {
  if (!/^[0-9]{1,10}$/.test(s) || Number(s) > idMax) throw configError(`${flag} must be an id from 0 to ${idMax}, got '${s}'`);
  return Number(s);
}

function parseGroups(s: string): number[] {
  const groups = s === '' ? [] : s.split(',').map((g) => parseId(g.trim(), '--groups'));
  if (groups.length > callerGroupsMax) throw configError(`--groups takes at most ${callerGroupsMax} gids, got ${groups.length}`);
  return groups;
}

/**
 * The caller the flags describe, over the process's own identity. With --uid or --gid the
 * process's groups do not come along (they belong to another user). Of the process's own groups
 * the first callerGroupsMax are sent, besides its gid; `dropped` says how many more there were.
 */
export function callerFrom(flags: IdentityFlags, own: ProcessIdentity): { caller: Caller; dropped: number } {
  const uid = flags.uid === undefined ? own.uid : parseId(flags.uid, '--uid');
  const gid = flags.gid === undefined ? own.gid : parseId(flags.gid, '--gid');
  if (flags.groups !== undefined) return { caller: { uid, gid, groups: parseGroups(flags.groups) }, dropped: 0 };
  if (flags.uid !== undefined || flags.gid !== undefined) return { caller: { uid, gid, groups: [] }, dropped: 0 };
  const groups = [...new Set(own.groups)].filter((g) => g !== gid && g >= 0 && g <= idMax);
  return { caller: { uid, gid, groups: groups.slice(0, callerGroupsMax) }, dropped: Math.max(0, groups.length - callerGroupsMax) };
}

/** callerFrom for this process, saying on standard error when some of its groups could not go along. */
export function callerOf(flags: IdentityFlags): Caller {
  const { caller, dropped } = callerFrom(flags, processIdentity());
  if (dropped > 0) {
    process.stderr.write(`cairn: you are in ${dropped + callerGroupsMax} supplementary groups and the masters take ${callerGroupsMax}: acting with the first ${callerGroupsMax} (choose with --groups)\n`);
  }
  return caller;
}
