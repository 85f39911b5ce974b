// The one-line refusal a master exits with when its data is unusable, and the rebuild steps in it.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JournalError, JournalErrorCode } from '../../src/journal/raft/errors.ts';
import { CairnError, ErrorCode } from '../../src/errors.ts';
import { localRebuildSteps, needsRebuild, refusalToStart, stepsMarker } from '../../src/master/rebuild.ts';

const target = {
  id: 2,
  dir: '/var/lib/cairn/m2',
  listen: '10.0.0.2:7400',
  peers: new Map([[1, '10.0.0.1:7400'], [2, '10.0.0.2:7400'], [3, '10.0.0.3:7400']]),
  secret: 's',
};

test('a corrupt WAL or snapshot becomes a one-line refusal with the same code and the steps for this master', () => {
  for (const code of [JournalErrorCode.WalCorrupt, JournalErrorCode.SnapshotCorrupt]) {
    const cause = new JournalError(code, 'wal segment /x is corrupt: damaged at offset 600000 (crc mismatch)');
    const err = refusalToStart(cause, target) as JournalError;
    assert.ok(needsRebuild(err));
    assert.equal(err.code, code);
    assert.equal(err.cause, cause);
    assert.doesNotMatch(err.message, /\n/);
    assert.ok(err.message.startsWith(`master 2 refuses to start: ${cause.message}. ${stepsMarker} `), err.message);
    const steps = err.message.slice(err.message.indexOf(stepsMarker));
    // Removal comes first: an empty directory must never come back as a voter; and it comes back under a new id.
    assert.equal(
      steps,
      `${stepsMarker} 1) cairn admin journal remove 2 --masters 10.0.0.1:7400,10.0.0.3:7400, which prints an unused id, <new-id> below (2 is never used again); ` +
        '2) mv /var/lib/cairn/m2 /var/lib/cairn/m2.corrupt; ' +
        '3) cairn master --id <new-id> --dir /var/lib/cairn/m2 --listen 10.0.0.2:7400 --join, with its other flags; ' +
        '4) cairn admin journal add <new-id> 10.0.0.2:7400 --masters 10.0.0.1:7400,10.0.0.3:7400 (the admin commands need the cluster secret in CAIRN_SECRET)',
    );
    assert.doesNotMatch(steps, /--id 2|add 2/);
  }
});

test('other start failures pass through unchanged', () => {
  for (const err of [new CairnError(ErrorCode.DirLocked, 'held'), new JournalError(JournalErrorCode.WalBadOption, 'x'), new Error('EADDRINUSE')]) {
    assert.equal(refusalToStart(err, target), err);
    assert.equal(needsRebuild(err), false);
  }
});

test('a master that joined later (no founders) and paths that need quoting', () => {
  const err = refusalToStart(new JournalError(JournalErrorCode.WalCorrupt, 'bad'), { ...target, dir: "/data/it's m2", peers: new Map(), secret: undefined }) as Error;
  assert.match(err.message, /remove 2 --masters <another-master-host:port>, which prints /);
  assert.match(err.message, /mv '\/data\/it'\\''s m2' '\/data\/it'\\''s m2\.corrupt';/);
  assert.doesNotMatch(err.message, /CAIRN_SECRET/);
  assert.equal(
    localRebuildSteps(2, 4, '/tmp/c', '/tmp/c/master-2'),
    '1) cairn admin journal remove 2 --dir /tmp/c; 2) mv /tmp/c/master-2 /tmp/c/master-2.corrupt; 3) cairn local up --dir /tmp/c --join 4; 4) cairn admin journal add 4 --dir /tmp/c',
  );
});
