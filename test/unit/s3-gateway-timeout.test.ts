// A connection that does not send a whole request's headers is cut: 256 such connections, opened
// without any credentials, held the S3 gateway from everyone for two minutes each (a probe found
// it: every other request was closed unanswered).

import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import type { DataClient, MasterClient } from '../../src/client/index.ts';
import { S3Gateway } from '../../src/s3/gateway.ts';

test('a connection that sends no whole headers in headersTimeoutMs gets RequestTimeout and is closed', async (t) => {
  const gw = new S3Gateway({ meta: {} as MasterClient, data: {} as DataClient, log: () => undefined, headersTimeoutMs: 300 }, { listBuckets: async () => undefined, bucket: {}, object: {}, params: {} });
  const { port } = await gw.listen('127.0.0.1', 0);
  t.after(() => gw.close());
  for (const sent of ['', 'GET /bucket/key HTTP/1.1\r\nHost: x\r\n']) {
    const started = performance.now();
    const answer = await new Promise<string>((resolve) => {
      let text = '';
      const s = connect(port, '127.0.0.1', () => s.write(sent));
      s.on('data', (d) => (text += d.toString()));
      s.on('close', () => resolve(text));
    });
    const ms = performance.now() - started;
    assert.match(answer, /^HTTP\/1\.1 400 [^]*<Code>RequestTimeout<\/Code>/, `after ${JSON.stringify(sent)}`);
    assert.ok(ms >= 250 && ms < 5_000, `closed after ${ms} ms`);
  }
  for (let i = 0; i < 100 && gw.connections > 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(gw.connections, 0, 'the gateway let go of both connections');

  // Clients that never read the answer nor close their side (a probe held every place this way for
  // two minutes): the gateway cuts them a moment after its answer.
  const held = Array.from({ length: 5 }, () => {
    const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => s.write('GET / HTTP/1.1\r\n'));
    s.pause();
    s.on('error', () => undefined);
    return s;
  });
  t.after(() => held.forEach((s) => s.destroy()));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(gw.connections, 5);
  const cutBy = performance.now() + 4_000;
  while (gw.connections > 0 && performance.now() < cutBy) await new Promise((r) => setTimeout(r, 20));
  assert.equal(gw.connections, 0, 'connections that never closed their side were cut');
});
