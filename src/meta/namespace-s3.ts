// The S3 gateways' access keys in the metadata state: added and removed through the journal like
// any change, so every master (and every gateway asking one) knows the same keys. Pure.

import type { S3UserAddCommand, S3UserRemoveCommand } from './commands.ts';
import { s3UsersMax } from './commands.ts';
import { FsErrorCode } from './errors.ts';
import { fail, ok } from './namespace-state.ts';
import type { MetaResult, MetaTables, MetaValues, S3User, S3UserInfo } from './namespace-state.ts';

export function s3UserAdd(t: MetaTables, cmd: S3UserAddCommand): MetaResult<MetaValues['s3UserAdd']> {
  if (t.s3Users.has(cmd.accessKeyId)) return fail(FsErrorCode.EEXIST, `S3 access key '${cmd.accessKeyId}' exists: remove it first to change it`);
  if (t.s3Users.size >= s3UsersMax) return fail(FsErrorCode.EMFILE, `${t.s3Users.size} S3 access keys exist, the most the masters keep`);
  const user: S3User = { accessKeyId: cmd.accessKeyId, secretKey: cmd.secretKey, buckets: [...new Set(cmd.buckets)].sort(), uid: cmd.uid, gid: cmd.gid, createdMs: cmd.nowMs };
  t.s3Users.set(user.accessKeyId, user);
  return ok(s3UserInfo(user));
}

export function s3UserRemove(t: MetaTables, cmd: S3UserRemoveCommand): MetaResult<MetaValues['s3UserRemove']> {
  const user = t.s3Users.get(cmd.accessKeyId);
  if (user === undefined) return fail(FsErrorCode.ENOENT, `no S3 access key '${cmd.accessKeyId}'`);
  t.s3Users.delete(cmd.accessKeyId);
  return ok(s3UserInfo(user));
}

/** Every key, by id, without secrets. */
export function s3Users(t: MetaTables): S3UserInfo[] {
  return [...t.s3Users.values()].sort((a, b) => (a.accessKeyId < b.accessKeyId ? -1 : 1)).map(s3UserInfo);
}

export function s3Credential(t: MetaTables, accessKeyId: string): MetaResult<S3User> {
  const user = t.s3Users.get(accessKeyId);
  return user === undefined ? fail(FsErrorCode.ENOENT, `no S3 access key '${accessKeyId}'`) : ok({ ...user, buckets: [...user.buckets] });
}

function s3UserInfo(u: S3User): S3UserInfo {
  return { accessKeyId: u.accessKeyId, buckets: [...u.buckets], uid: u.uid, gid: u.gid, createdMs: u.createdMs };
}
