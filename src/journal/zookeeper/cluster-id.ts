// The id that names one cairn cluster inside a ZooKeeper ensemble (`--zk-cluster`): its journal
// lives under the chroot /cairn/ID, so several clusters (and tests) can share one ensemble.

import { randomBytes } from 'node:crypto';
import { assert } from '../../errors.ts';

/** Letters, digits, `_` and `-`: safe as one znode name, with no `/` to climb out of the chroot. */
export const zkClusterIdPattern = /^[A-Za-z0-9_-]{1,64}$/;

/** The chroot a cluster's journal uses. */
export function zkChroot(clusterId: string): string {
  assert(zkClusterIdPattern.test(clusterId), `a ZooKeeper cluster id matches ${zkClusterIdPattern}, got '${clusterId}'`);
  return `/cairn/${clusterId}`;
}

/** A fresh id: `c` and 12 hex digits (48 random bits), so two clusters never meet in one ensemble by chance. */
export function newZkClusterId(): string {
  return `c${randomBytes(6).toString('hex')}`;
}
