// Tests of who `cairn fs` acts as (src/cli/identity.ts): the process's uid, gid and groups, or
// the --uid, --gid and --groups options, bounded and checked with one-line errors.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { callerFrom, type ProcessIdentity } from '../../src/cli/identity.ts';
import { callerGroupsMax } from '../../src/meta/index.ts';

const own: ProcessIdentity = { uid: 1000, gid: 100, groups: [100, 4, 27, 4] };

test('by default the process\'s identity, its gid not repeated among its groups, each group once', () => {
  assert.deepEqual(callerFrom({}, own), { caller: { uid: 1000, gid: 100, groups: [4, 27] }, dropped: 0 });
});

test('--uid or --gid act as another user: the process\'s groups do not come along unless --groups says so', () => {
  assert.deepEqual(callerFrom({ uid: '0' }, own).caller, { uid: 0, gid: 100, groups: [] });
  assert.deepEqual(callerFrom({ gid: '5' }, own).caller, { uid: 1000, gid: 5, groups: [] });
  assert.deepEqual(callerFrom({ uid: '7', gid: '8', groups: '9, 10' }, own).caller, { uid: 7, gid: 8, groups: [9, 10] });
  assert.deepEqual(callerFrom({ groups: '' }, own).caller, { uid: 1000, gid: 100, groups: [] }, 'an empty list: none');
});

test('more groups than the masters take: the first ones go, and how many did not is told', () => {
  const many = { ...own, groups: Array.from({ length: callerGroupsMax + 5 }, (_, i) => 1000 + i) };
  const { caller, dropped } = callerFrom({}, many);
  assert.equal(caller.groups.length, callerGroupsMax);
  assert.equal(dropped, 5);
});

test('bad ids and lists are refused with CAIRN_BAD_OPTION and say which flag', () => {
  const code = (flags: object) => {
    try {
      callerFrom(flags, own);
      return 'ok';
    } catch (err) {
      return `${(err as { code: string }).code}: ${(err as Error).message}`;
    }
  };
  assert.match(code({ uid: 'alice' }), /^CAIRN_BAD_OPTION: --uid must be an id from 0 to 4294967295, got 'alice'/);
  assert.match(code({ uid: '-1' }), /--uid/);
  assert.match(code({ gid: '4294967296' }), /^CAIRN_BAD_OPTION: --gid/);
  assert.match(code({ gid: '1.5' }), /--gid/);
  assert.match(code({ groups: '1,x' }), /--groups must be an id/);
  assert.match(code({ groups: Array.from({ length: callerGroupsMax + 1 }, (_, i) => i).join(',') }), /--groups takes at most 32 gids, got 33/);
});
