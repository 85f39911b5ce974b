// Free TCP ports on 127.0.0.1, asked from the OS, for the processes cairn starts on this machine
// (local clusters, ZooKeeper ensembles, tests).

import { createServer } from 'node:net';
import { assert } from './errors.ts';

/** A port the OS says is free now; the process that uses it binds it a moment later. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      assert(typeof addr === 'object' && addr !== null, 'a TCP server listening has a port');
      srv.close(() => resolve(addr.port));
    });
  });
}
