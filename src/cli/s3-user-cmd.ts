// `cairn admin s3 user add|remove|list`: the access keys S3 gateways accept, kept in the metadata.
// A key is made here (or given), shown once when added, and never listed again with its secret.

import { randomBytes, randomInt } from 'node:crypto';
import type { Command } from 'commander';
import type { S3UserInfo } from '../meta/index.ts';
import { withClient as run, type TargetFlags } from './cluster-target.ts';
import { configError, parseNonNegativeInt } from './config.ts';
import { jsonLine, printable } from './format.ts';

type AddFlags = TargetFlags & { secretKey?: string; secretFromEnv?: string; buckets: string; uid: string; gid: string; json?: boolean };
type ListFlags = TargetFlags & { json?: boolean };

const keyIdAlphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

export function registerS3UserCommands(admin: Command, addTargetOptions: (c: Command) => Command): void {
  const user = admin.command('s3').description('the S3 gateways').command('user').description('access keys of the S3 gateways');
  addTargetOptions(
    user
      .command('add')
      .argument('[access-key-id]', 'the key id (default: a new random one, AWS style)')
      .option('--buckets <list>', "comma-separated buckets (top-level directories) the key may use, or '*' for all", '*')
      .option('--uid <n>', 'the user the gateway acts as for this key: owner of what it creates, and checked against permissions', '0')
      .option('--gid <n>', 'its group', '0')
      .option('--secret-from-env <VAR>', 'take the secret from this environment variable (default: a new random one, printed once)')
      .option('--json', 'print JSON'),
  )
    .description('add an access key; its secret is printed once (SigV4 needs the secret itself: the masters keep it, and backups contain it)')
    .action((id: string | undefined, o: AddFlags) =>
      run(o, async (c) => {
        const made = newS3Key('CAIRN');
        const accessKeyId = id ?? made.accessKeyId;
        const secretKey = o.secretFromEnv === undefined ? made.secretKey : envSecret(o.secretFromEnv);
        const buckets = o.buckets.split(',').map((b) => b.trim()).filter((b) => b !== '');
        const added = await c.mutate<S3UserInfo>('meta.mutate', { op: 's3UserAdd', accessKeyId, secretKey, buckets, uid: parseNonNegativeInt(o.uid, '--uid'), gid: parseNonNegativeInt(o.gid, '--gid') });
        if (o.json) return console.log(jsonLine({ ...added, secretKey }));
        console.log(`access key ${printable(added.accessKeyId)} added (buckets ${added.buckets.join(',')}, acting as uid ${added.uid} gid ${added.gid})`);
        console.log(`AWS_ACCESS_KEY_ID=${added.accessKeyId}`);
        console.log(`AWS_SECRET_ACCESS_KEY=${secretKey}`);
        console.log('the secret is shown only now: keep it');
      }),
    );
  addTargetOptions(user.command('remove').argument('<access-key-id>'))
    .description('remove an access key: gateways refuse it from then on')
    .action((id: string, o: TargetFlags) =>
      run(o, async (c) => {
        await c.mutate('meta.mutate', { op: 's3UserRemove', accessKeyId: id });
        console.log(`access key ${printable(id)} removed`);
      }),
    );
  addTargetOptions(user.command('list').option('--json', 'print JSON'))
    .description('list the access keys (never their secrets)')
    .action((o: ListFlags) =>
      run(o, async (c) => {
        const users = await c.query<S3UserInfo[]>('meta.query', { op: 's3Users' });
        if (o.json) return console.log(jsonLine(users));
        if (users.length === 0) return console.log("no S3 access keys: add one with 'cairn admin s3 user add'");
        for (const u of users) console.log(`${printable(u.accessKeyId).padEnd(24)} uid ${String(u.uid).padEnd(6)} gid ${String(u.gid).padEnd(6)} added ${new Date(u.createdMs).toISOString()}  buckets ${u.buckets.join(',')}`);
      }),
    );
}

/** A new key: an id of 20 upper-case letters and digits starting with `prefix` (as AWS's), and a 40-character secret. */
export function newS3Key(prefix: string): { accessKeyId: string; secretKey: string } {
  let accessKeyId = prefix;
  while (accessKeyId.length < 20) accessKeyId += keyIdAlphabet[randomInt(keyIdAlphabet.length)];
  return { accessKeyId, secretKey: randomBytes(30).toString('base64url') };
}

function envSecret(name: string): string {
  const v = process.env[name];
  if (v === undefined || v === '') throw configError(`--secret-from-env ${name}: the variable is not set or empty`);
  return v;
}
