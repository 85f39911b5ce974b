// The dashboard's files: its own (src/web/static/) and its libraries' prebuilt ES modules from
// node_modules, by a fixed list, so no request path ever reaches the file system. Read once at
// start (about 100 KiB). The page's import map is inline; the Content-Security-Policy allows it by
// its hash and nothing else inline.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = join(dirname(fileURLToPath(import.meta.url)), 'static');
/** A package's file, found as Node finds the package (wherever npm put node_modules); a package's exports may hide its other files. */
function packageFile(pkg: string, file: string): string {
  let dir = dirname(fileURLToPath(import.meta.resolve(pkg)));
  while (!existsSync(join(dir, 'package.json')) || (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string }).name !== pkg) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`the dashboard cannot find the package ${pkg}: run npm install`);
    dir = up;
  }
  return join(dir, file);
}

const types: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml' };

const sources: Record<string, string> = {
  '/': join(here, 'index.html'),
  '/app.js': join(here, 'app.js'),
  '/api.js': join(here, 'api.js'),
  '/views.js': join(here, 'views.js'),
  '/charts.js': join(here, 'charts.js'),
  '/style.css': join(here, 'style.css'),
  '/favicon.svg': join(here, 'favicon.svg'),
  '/vendor/preact.mjs': packageFile('preact', 'dist/preact.mjs'),
  '/vendor/preact-hooks.mjs': packageFile('preact', 'hooks/dist/hooks.mjs'),
  '/vendor/htm.mjs': packageFile('htm', 'dist/htm.mjs'),
  '/vendor/uplot.mjs': packageFile('uplot', 'dist/uPlot.esm.js'),
  '/vendor/uplot.css': packageFile('uplot', 'dist/uPlot.min.css'),
};

interface File {
  body: Buffer;
  type: string;
  etag: string;
}

export class StaticFiles {
  private readonly files = new Map<string, File>();
  readonly csp: string;

  constructor() {
    for (const [path, source] of Object.entries(sources)) {
      const body = readFileSync(source);
      const ext = source.slice(source.lastIndexOf('.'));
      this.files.set(path, { body, type: types[ext] ?? 'application/octet-stream', etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
    }
    this.files.set('/index.html', this.files.get('/')!);
    const page = this.files.get('/')!.body.toString('utf8');
    const importMap = /<script type="importmap">([\s\S]*?)<\/script>/.exec(page)?.[1] ?? '';
    const mapHash = createHash('sha256').update(importMap).digest('base64');
    this.csp = `default-src 'self'; script-src 'self' 'sha256-${mapHash}'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'`;
  }

  /** Serves a known file (true), or leaves the request alone (false). */
  serve(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    const file = this.files.get(path);
    if (file === undefined) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return true;
    }
    const headers = { 'content-type': file.type, etag: file.etag, 'cache-control': 'no-cache', 'content-security-policy': this.csp, 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' };
    if (req.headers['if-none-match'] === file.etag) {
      res.writeHead(304, headers).end();
      return true;
    }
    res.writeHead(200, { ...headers, 'content-length': String(file.body.length) });
    res.end(req.method === 'HEAD' ? undefined : file.body);
    return true;
  }
}
