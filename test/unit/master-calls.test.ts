// Tests of MasterCalls' caller: added to the namespace requests that do not name their own, and
// to nothing else (cluster queries, worker methods, admin calls).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MasterCalls } from '../../src/client/master-calls.ts';
import type { Connection } from '../../src/io/index.ts';
import { systemClock } from '../../src/io/system-clock.ts';
import type { Caller } from '../../src/meta/index.ts';

/** A MasterCalls whose one master records each call's method and body, and answers with nothing. */
function recording(caller?: Caller): { calls: MasterCalls; sent: { method: string; body: Record<string, unknown> }[] } {
  const sent: { method: string; body: Record<string, unknown> }[] = [];
  const conn: Connection = {
    call: async <T>(method: string, body: unknown) => {
      sent.push({ method, body: body as Record<string, unknown> });
      return { body: null as T, payload: undefined };
    },
    notify: () => undefined,
    close: () => undefined,
  };
  const calls = new MasterCalls({ masters: ['m:1'], connect: () => conn, clock: systemClock, clientId: 'c', ...(caller === undefined ? {} : { caller }) });
  return { calls, sent };
}

const alice: Caller = { uid: 1000, gid: 100, groups: [4] };

test('namespace commands and queries carry the client\'s caller; others do not', async () => {
  const { calls, sent } = recording(alice);
  await calls.mutate('meta.mutate', { op: 'mkdir', path: '/d', mode: 0o755, uid: 1000, gid: 100 });
  await calls.mutate('meta.mutate', { op: 'closeSession', sessionId: 's' });
  await calls.query('meta.query', { op: 'stat', path: '/d' });
  await calls.query('meta.query', { op: 'open', path: '/d/f' });
  await calls.query('meta.query', { op: 'statfs' });
  await calls.query('meta.query', { op: 'workers' });
  await calls.query('cluster.routing', {});
  await calls.mutate('meta.mutate', { op: 'noop' });
  await calls.callAt('m:1', 'admin.journal.info', {});
  assert.deepEqual(sent.map((s) => s.body.caller), [alice, alice, alice, alice, undefined, undefined, undefined, undefined, undefined]);
  assert.equal(sent[0].body.seq, 1, 'and mutations keep their stamp');
});

test('a request that names its own caller keeps it; a client without one sends none', async () => {
  const { calls, sent } = recording(alice);
  const root = { uid: 0, gid: 0, groups: [] };
  await calls.mutate('meta.mutate', { op: 'unlink', path: '/f', caller: root });
  await calls.query('meta.query', { op: 'readdir', path: '/', limit: 1, caller: root });
  assert.deepEqual(sent.map((s) => s.body.caller), [root, root]);
  const bare = recording();
  await bare.calls.query('meta.query', { op: 'stat', path: '/' });
  assert.equal('caller' in bare.sent[0].body, false, 'the masters refuse it: the client says nothing it was not told');
});
