// How the mount turns the client library's failures into the errnos programs see.

import assert from 'node:assert/strict';
import { constants } from 'node:os';
import { test } from 'node:test';
import { errnoOf } from '../../src/fuse/errno.ts';

const e = constants.errno;

test('a full disk is ENOSPC, on a worker or on the masters; a named errno wins; the rest is EIO', () => {
  assert.equal(errnoOf({ code: 'CAIRN_TARGET_FULL' }), -e.ENOSPC);
  assert.equal(errnoOf({ code: 'CAIRN_DISK_FULL' }), -e.ENOSPC);
  assert.equal(errnoOf({ code: 'ENOENT' }), -e.ENOENT);
  assert.equal(errnoOf({ code: 'CAIRN_UNAVAILABLE', details: { errno: 'EIO' } }), -e.EIO);
  assert.equal(errnoOf({ code: 'CAIRN_CHUNK_LOST', details: { errno: 'EROFS' } }), -e.EROFS);
  assert.equal(errnoOf(new Error('anything else')), -e.EIO);
});
