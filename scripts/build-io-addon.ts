// Builds src/io/native/page-cache.c into build/page-cache.node: workers read what the page cache
// holds without a trip through libuv's I/O threads, and drop written chunks from it
// (src/io/page-cache.ts). Run by `npm install`
// (postinstall) and by hand:
//   node scripts/build-io-addon.ts
// It needs a C compiler (Debian gcc); Node brings the N-API headers. Without them it says so and
// workers read through the I/O threads alone (slower for cached data, as correct).

import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { missingForAddon, nodeHeadersDir, skipBuild } from './native-build.ts';

const say = (m: string): void => console.error(`build-io-addon: ${m}`);
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const source = path.join(root, 'src', 'io', 'native', 'page-cache.c');
const out = path.join(root, 'build', 'page-cache.node');

const missing = missingForAddon([nodeHeadersDir()]);
if (missing.length > 0) skipBuild(say, `cannot build (missing ${missing.join('; ')}): workers will read through libuv's I/O threads only and leave written chunks in the page cache; run scripts/install-system-packages.sh as root, then this again`);
mkdirSync(path.dirname(out), { recursive: true });
execFileSync('cc', ['-shared', '-fPIC', '-O2', '-Wall', '-Werror', `-I${nodeHeadersDir()}`, source, '-o', out], { stdio: 'inherit' });
say(`built ${out}`);
