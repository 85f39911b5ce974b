// The dashboard's read-only logins in the metadata state, added and removed through the journal so
// that every master can check a login. Only password hashes are kept. Pure.

import type { DashboardUserAddCommand, DashboardUserRemoveCommand } from './commands.ts';
import { dashboardUsersMax } from './commands.ts';
import { FsErrorCode } from './errors.ts';
import { fail, ok } from './namespace-state.ts';
import type { DashboardUser, DashboardUserInfo, MetaResult, MetaTables, MetaValues } from './namespace-state.ts';

export function dashboardUserAdd(t: MetaTables, cmd: DashboardUserAddCommand): MetaResult<MetaValues['dashboardUserAdd']> {
  if (t.dashboardUsers.has(cmd.name)) return fail(FsErrorCode.EEXIST, `dashboard user '${cmd.name}' exists: remove it first to change its password`);
  if (t.dashboardUsers.size >= dashboardUsersMax) return fail(FsErrorCode.EMFILE, `${t.dashboardUsers.size} dashboard users exist, the most the masters keep`);
  const user: DashboardUser = { name: cmd.name, passwordHash: cmd.passwordHash, uid: cmd.uid, gid: cmd.gid, createdMs: cmd.nowMs };
  t.dashboardUsers.set(user.name, user);
  return ok(info(user));
}

export function dashboardUserRemove(t: MetaTables, cmd: DashboardUserRemoveCommand): MetaResult<MetaValues['dashboardUserRemove']> {
  const user = t.dashboardUsers.get(cmd.name);
  if (user === undefined) return fail(FsErrorCode.ENOENT, `no dashboard user '${cmd.name}'`);
  t.dashboardUsers.delete(cmd.name);
  return ok(info(user));
}

/** Every login, by name, without password hashes. */
export function dashboardUsers(t: MetaTables): DashboardUserInfo[] {
  return [...t.dashboardUsers.values()].sort((a, b) => (a.name < b.name ? -1 : 1)).map(info);
}

function info(u: DashboardUser): DashboardUserInfo {
  return { name: u.name, uid: u.uid, gid: u.gid, createdMs: u.createdMs };
}
