// How the gateway answers the cluster's failures: what a client can retry is 503, with the cause.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { toS3Error } from '../../src/s3/gateway.ts';

test('a full disk, on a target or on the masters, is 503 with the cause; an unknown failure is 500 and says nothing of it', () => {
  for (const code of ['CAIRN_TARGET_FULL', 'CAIRN_DISK_FULL']) {
    const e = toS3Error(Object.assign(new Error(`${code}: 0 bytes free`), { code }));
    assert.equal(e.code, 'ServiceUnavailable', code);
    assert.match(e.message, /0 bytes free/);
  }
  const unknown = toS3Error(Object.assign(new Error('secret detail'), { code: 'SOMETHING_ELSE' }));
  assert.equal(unknown.code, 'InternalError');
  assert.doesNotMatch(unknown.message, /secret detail/);
});
