// ZooKeeper cluster ids: fresh ones match the pattern `--zk-cluster` takes, and a chroot is made
// only from an id that cannot climb out of /cairn.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newZkClusterId, zkChroot, zkClusterIdPattern } from '../../src/journal/zookeeper/cluster-id.ts';

test('a fresh id is c and 12 hex digits, different each time', () => {
  const ids = new Set(Array.from({ length: 100 }, () => newZkClusterId()));
  assert.equal(ids.size, 100);
  for (const id of ids) {
    assert.match(id, /^c[0-9a-f]{12}$/);
    assert.match(id, zkClusterIdPattern);
  }
});

test('the chroot is /cairn/ID, and an id with a slash, a dot path or too many characters is refused', () => {
  assert.equal(zkChroot('c0123456789ab'), '/cairn/c0123456789ab');
  assert.equal(zkChroot('a'.repeat(64)), `/cairn/${'a'.repeat(64)}`);
  for (const bad of ['', 'a/b', '..', 'a'.repeat(65), 'é']) assert.throws(() => zkChroot(bad), /invariant violated/, bad);
});
