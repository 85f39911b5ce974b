// `cairn admin dashboard user add|remove|list`: the read-only logins of the masters' web dashboard.
// The password is hashed here (scrypt): the masters, their journal and backups only see the hash.

import type { Command } from 'commander';
import type { DashboardUserInfo } from '../meta/index.ts';
import { hashPassword, newPassword, passwordLengthMin } from '../web/passwords.ts';
import { withClient as run, type TargetFlags } from './cluster-target.ts';
import { configError, parseNonNegativeInt } from './config.ts';
import { jsonLine, printable } from './format.ts';

type AddFlags = TargetFlags & { passwordFromEnv?: string; uid: string; gid: string; json?: boolean };
type ListFlags = TargetFlags & { json?: boolean };

export function registerDashboardUserCommands(admin: Command, addTargetOptions: (c: Command) => Command): void {
  const user = admin.command('dashboard').description("the masters' web dashboard").command('user').description('its read-only logins');
  addTargetOptions(
    user
      .command('add')
      .argument('<name>', 'the login name')
      .option('--password-from-env <VAR>', `take the password (at least ${passwordLengthMin} characters) from this environment variable (default: a new random one, printed once)`)
      .option('--uid <n>', 'whom its file browser acts as: the files it may list and download are checked against this user', '0')
      .option('--gid <n>', 'its group', '0')
      .option('--json', 'print JSON'),
  )
    .description('add a read-only dashboard login; the masters keep only a hash of its password')
    .action((name: string, o: AddFlags) =>
      run(o, async (c) => {
        const password = o.passwordFromEnv === undefined ? newPassword() : envPassword(o.passwordFromEnv);
        const passwordHash = await hashPassword(password);
        const added = await c.mutate<DashboardUserInfo>('meta.mutate', { op: 'dashboardUserAdd', name, passwordHash, uid: parseNonNegativeInt(o.uid, '--uid'), gid: parseNonNegativeInt(o.gid, '--gid') });
        const shown = o.passwordFromEnv === undefined ? { password } : {};
        if (o.json) return console.log(jsonLine({ ...added, ...shown }));
        console.log(`dashboard user ${printable(added.name)} added (its file browser acts as uid ${added.uid} gid ${added.gid})`);
        if (o.passwordFromEnv === undefined) console.log(`password: ${password}\nthe password is shown only now: keep it`);
      }),
    );
  addTargetOptions(user.command('remove').argument('<name>'))
    .description('remove a dashboard login: its sessions end at their next request')
    .action((name: string, o: TargetFlags) =>
      run(o, async (c) => {
        await c.mutate('meta.mutate', { op: 'dashboardUserRemove', name });
        console.log(`dashboard user ${printable(name)} removed`);
      }),
    );
  addTargetOptions(user.command('list').option('--json', 'print JSON'))
    .description('list the dashboard logins')
    .action((o: ListFlags) =>
      run(o, async (c) => {
        const users = await c.query<DashboardUserInfo[]>('meta.query', { op: 'dashboardUsers' });
        if (o.json) return console.log(jsonLine(users));
        if (users.length === 0) return console.log("no dashboard users: add one with 'cairn admin dashboard user add NAME'");
        for (const u of users) console.log(`${printable(u.name).padEnd(24)} uid ${String(u.uid).padEnd(6)} gid ${String(u.gid).padEnd(6)} added ${new Date(u.createdMs).toISOString()}`);
      }),
    );
}

function envPassword(name: string): string {
  const v = process.env[name];
  if (v === undefined || v === '') throw configError(`--password-from-env ${name}: the variable is not set or empty`);
  if (v.length < passwordLengthMin) throw configError(`--password-from-env ${name}: a dashboard password needs at least ${passwordLengthMin} characters`);
  return v;
}
