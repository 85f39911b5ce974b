// The masters' web dashboard in a real browser (Debian's Chromium, headless, through
// puppeteer-core) against a local cluster started as a new user would: log in with a user made by
// `cairn admin dashboard user add`, check the overview against `cairn admin report --json`, kill -9
// a worker and watch its targets turn offline, restart it and watch them serve again; browse and
// download a file; no console errors, and axe-core finds no serious or critical violation in any
// view. Screenshots go to test/output/dashboard/.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { get as httpGet, type ClientRequest } from 'node:http';
import { connect } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer, { type Page } from 'puppeteer-core';
import { readLocalCluster } from '../../src/cli/cluster-target.ts';
import { runCairn } from './process-cluster.ts';

const chromium = '/usr/bin/chromium';
const outputDir = fileURLToPath(new URL('../output/dashboard/', import.meta.url));
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
/** Generous: a 2-core CI machine running other tests beside this one. */
const deadlineMs = 90_000;

const cairn = (args: string[], env: Record<string, string> = {}): ReturnType<typeof runCairn> => runCairn(args, env, 120_000);

/** Chromium missing: fails in CI (the install script brings it), skips elsewhere. */
function chromiumSkip(): string | undefined {
  if (existsSync(chromium) || process.env.CI === 'true') return undefined;
  return `${chromium} is missing: run 'bash scripts/install-system-packages.sh' as root`;
}

/** axe-core's serious and critical findings in the page as it is now. */
async function accessibilityProblems(page: Page): Promise<string[]> {
  // Evaluated through the DevTools protocol: the page's Content-Security-Policy (no inline scripts) stays on.
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(axeSource);
  const found = await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run(ctx: Document, opts: object): Promise<{ passes: unknown[]; violations: { id: string; impact: string; help: string; nodes: { target: string[] }[] }[] }> } }).axe;
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return { rulesPassed: r.passes.length, violations: r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, where: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) })) };
  });
  assert.ok(found.rulesPassed >= 10, `axe-core checked the page (${found.rulesPassed} rules passed)`);
  return found.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.impact} ${v.id}: ${v.help} at ${v.where.join(', ')}`);
}

async function show(page: Page, view: string, ready: string): Promise<void> {
  await page.evaluate((v) => (location.hash = `#${v}`), view);
  await page.waitForSelector(ready, { timeout: deadlineMs });
}

test('the dashboard in headless Chromium: login, overview as admin report says, a killed worker seen offline then back, files, no console errors or serious accessibility problems', { skip: chromiumSkip() }, async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-dashboard-'));
  await mkdir(outputDir, { recursive: true });
  t.after(async () => {
    await cairn(['local', 'down', '--dir', dir]);
    await rm(dir, { recursive: true, force: true });
  });
  const d = ['--dir', dir];
  // Fast heartbeats (the processes inherit the environment): a dead worker is offline within a second or two.
  const fast = { CAIRN_HEARTBEAT_MS: '200', CAIRN_OFFLINE_TIMEOUT_MS: '1500' };
  const up = await cairn(['local', 'up', '--workers', '3', '--targets-per-worker', '1', ...d], fast);
  assert.equal(up.code, 0, up.stderr);
  const printed = /^dashboard: (http:\/\/\S+\/) {2}\(user (\S+), password (\S+);/m.exec(up.stdout);
  assert.ok(printed, `local up prints the dashboard's address and login:\n${up.stdout}`);
  const [, url, localUser, localPassword] = printed;

  const viewerPassword = randomBytes(12).toString('base64url');
  const added = await cairn(['admin', 'dashboard', 'user', 'add', 'viewer', '--password-from-env', 'VIEWER_PW', ...d], { VIEWER_PW: viewerPassword });
  assert.equal(added.code, 0, added.stderr);
  assert.match((await cairn(['admin', 'dashboard', 'user', 'list', ...d])).stdout, /^viewer /m);
  const short = await cairn(['admin', 'dashboard', 'user', 'add', 'weak', '--password-from-env', 'WEAK', ...d], { WEAK: 'short' });
  assert.equal(short.code, 1);
  assert.match(short.stderr, /at least 12 characters/);

  const file = randomBytes(3 * 1024 * 1024 + 17);
  await writeFile(path.join(dir, 'in.bin'), file);
  assert.equal((await cairn(['fs', 'mkdir', '/datasets', ...d])).code, 0);
  assert.equal((await cairn(['fs', 'put', path.join(dir, 'in.bin'), '/datasets/shard-0001.bin', '--quiet', ...d])).code, 0);

  // Without a session the API answers nothing; a wrong password is refused; the printed login works.
  assert.equal((await fetch(new URL('/api/overview', url))).status, 401);
  const login = (user: string, password: string): Promise<Response> => fetch(new URL('/api/login', url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user, password }) });
  assert.equal((await login('viewer', 'wrong password!')).status, 401);
  assert.equal((await login('nobody', 'wrong password!')).status, 401);
  const local = await login(localUser, localPassword);
  assert.equal(local.status, 200);
  const cookie = (local.headers.get('set-cookie') ?? '').split(';')[0];
  // Any master answers: a follower forwards to the leader.
  const cluster = readLocalCluster(dir)!;
  const masters = cluster.processes.filter((p) => p.kind === 'master');
  // Asked again if leadership moves between the looks (a loaded machine).
  let served: (number | string)[] = [];
  for (const started = Date.now(); Date.now() - started < deadlineMs; await new Promise((r) => setTimeout(r, 200))) {
    served = await Promise.all(
      masters.map(async (m) => {
        const res = await fetch(`http://${m.http}/api/overview`, { headers: { cookie } });
        return res.status === 200 ? ((await res.json()) as { servedBy: number }).servedBy : `status ${res.status}`;
      }),
    );
    if (typeof served[0] === 'number' && served.every((s) => s === served[0])) break;
  }
  assert.ok(typeof served[0] === 'number' && served.every((s) => s === served[0]), `every master's dashboard shows the leader's view: ${served.join(', ')}`);

  const browser = await puppeteer.launch({ executablePath: chromium, args: ['--no-sandbox', '--disable-dev-shm-usage'], headless: true });
  t.after(() => browser.close());
  const page = await browser.newPage();
  await page.setViewport({ width: 1366, height: 800 });
  const consoleErrors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));

  await page.goto(url, { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('#user', { timeout: deadlineMs });
  assert.deepEqual(await accessibilityProblems(page), [], 'the login page');
  await page.screenshot({ path: path.join(outputDir, 'login.png') });
  await page.type('#user', 'viewer');
  await page.type('#password', viewerPassword);
  await page.click('button[type=submit]');
  await page.waitForSelector('[data-testid=summary-workers]', { timeout: deadlineMs });

  // The overview says what `cairn admin report --json` says (retried: a heartbeat may land between the two looks).
  type Report = { workers: number; targets: number; chains: number; routingVersion: number; targetsByState: Record<string, number> };
  const text = (id: string): Promise<string> => page.$eval(`[data-testid=${id}]`, (e) => e.textContent ?? '');
  let report: Report | undefined;
  let shown: string[] = [];
  for (const started = Date.now(); Date.now() - started < deadlineMs; await new Promise((r) => setTimeout(r, 500))) {
    report = JSON.parse((await cairn(['admin', 'report', '--json', ...d])).stdout) as Report;
    shown = await Promise.all(['summary-workers', 'summary-targets', 'summary-chains', 'summary-routing'].map(text));
    if (shown.join() === [report.workers, report.targets, report.chains, report.routingVersion].join()) break;
  }
  assert.deepEqual(shown, [report!.workers, report!.targets, report!.chains, report!.routingVersion].map(String), 'the overview matches admin report');
  assert.deepEqual(report!.targetsByState, { serving: 3 });
  const rowsOf = (table: string): Promise<number> => page.$$eval(`table[data-testid=${table}] tbody tr`, (rows) => rows.length);
  assert.equal(await rowsOf('masters'), 3);
  assert.equal(await rowsOf('targets'), 3);
  assert.deepEqual(await accessibilityProblems(page), [], 'the overview');
  await page.screenshot({ path: path.join(outputDir, 'overview.png'), fullPage: true });

  // kill -9 a worker: the page turns its target offline by itself (live stream), then back to serving after a restart.
  const worker = cluster.processes.find((p) => p.kind === 'worker' && p.id === 2)!;
  const targetState = (state: string) => page.waitForFunction((s) => [...document.querySelectorAll('tr[data-target]')].some((r) => r.getAttribute('data-target')!.startsWith('2') && r.getAttribute('data-state') === s), { timeout: deadlineMs, polling: 200 }, state);
  process.kill(worker.pid, 'SIGKILL');
  await targetState('offline');
  await page.screenshot({ path: path.join(outputDir, 'worker-offline.png'), fullPage: true });
  const restarted = await cairn(['local', 'up', '--workers', '3', '--targets-per-worker', '1', ...d], fast);
  assert.equal(restarted.code, 0, restarted.stderr);
  await targetState('serving');
  await page.screenshot({ path: path.join(outputDir, 'worker-back.png'), fullPage: true });

  // A failover: the leader is killed (never master 1, which the browser talks to: leadership moves
  // off it first); the page, through master 1, names the new leader by itself.
  type Status = { kind: string; id: number; role?: string; pid: number }[];
  const leaderNow = async (): Promise<Status[number] | undefined> => (JSON.parse((await cairn(['local', 'status', '--json', ...d])).stdout) as Status).find((p) => p.kind === 'master' && p.role === 'leader');
  let leader = await leaderNow();
  if (leader?.id === 1) {
    assert.equal((await cairn(['admin', 'journal', 'transfer-leader', '2', ...d])).code, 0);
    for (const started = Date.now(); leader?.id !== 2 && Date.now() - started < deadlineMs; await new Promise((r) => setTimeout(r, 200))) leader = await leaderNow();
  }
  assert.ok(leader !== undefined && leader.id !== 1, 'a leader other than master 1');
  const shownLeader = (): Promise<number | undefined> => page.$eval('header .cluster', (e) => Number(/leader: master (\d+)/.exec(e.textContent ?? '')?.[1]) || undefined);
  await page.waitForFunction((id) => document.querySelector('header .cluster')?.textContent?.includes(`leader: master ${id} `), { timeout: deadlineMs }, leader.id);
  process.kill(leader.pid, 'SIGKILL');
  await page.waitForFunction((id) => /leader: master \d+ /.test(document.querySelector('header .cluster')?.textContent ?? '') && !document.querySelector('header .cluster')!.textContent!.includes(`leader: master ${id} `), { timeout: deadlineMs, polling: 200 }, leader.id);
  const newLeader = await shownLeader();
  assert.ok(newLeader !== undefined && newLeader !== leader.id, `the page shows the new leader (${newLeader})`);
  assert.equal((await cairn(['local', 'up', '--workers', '3', '--targets-per-worker', '1', ...d], fast)).code, 0);

  await show(page, 'events', 'table[data-testid=events] tbody tr');
  await page.waitForFunction(() => /target 2\d* \(worker 2\): serving → offline/.test(document.body.innerText), { timeout: deadlineMs });
  assert.match(await page.$eval('table[data-testid=events]', (e) => e.textContent ?? ''), new RegExp(`master ${newLeader} leads`), 'the failover is an event');
  assert.deepEqual(await accessibilityProblems(page), [], 'the events');
  await page.screenshot({ path: path.join(outputDir, 'events.png'), fullPage: true });

  await show(page, 'charts', 'figure.chart canvas');
  assert.equal(await page.$$eval('figure.chart', (f) => f.length), 3);
  assert.deepEqual(await accessibilityProblems(page), [], 'the charts');
  await page.screenshot({ path: path.join(outputDir, 'charts.png'), fullPage: true });

  await show(page, 'journal', '[data-testid=journal-term]');
  assert.deepEqual(await accessibilityProblems(page), [], 'the journal');
  await page.screenshot({ path: path.join(outputDir, 'journal.png'), fullPage: true });

  // The file browser: into /datasets, the file's details, and its bytes through the download link.
  await show(page, 'files', 'table[data-testid=files] button.link');
  await page.evaluate(() => [...document.querySelectorAll<HTMLButtonElement>('table[data-testid=files] button.link')].find((b) => b.textContent === 'datasets/')!.click());
  await page.waitForFunction(() => [...document.querySelectorAll('table[data-testid=files] button.link')].some((b) => b.textContent === 'shard-0001.bin'), { timeout: deadlineMs });
  await page.evaluate(() => [...document.querySelectorAll<HTMLButtonElement>('table[data-testid=files] button.link')].find((b) => b.textContent === 'shard-0001.bin')!.click());
  await page.waitForSelector('[data-testid=file-details] a[download]', { timeout: deadlineMs });
  assert.match(await page.$eval('[data-testid=file-details]', (e) => e.textContent ?? ''), new RegExp(`${file.length} bytes`));
  assert.deepEqual(await accessibilityProblems(page), [], 'the file browser');
  await page.screenshot({ path: path.join(outputDir, 'files.png'), fullPage: true });
  const downloaded = await page.evaluate(async () => {
    const href = document.querySelector<HTMLAnchorElement>('[data-testid=file-details] a[download]')!.href;
    const bytes = new Uint8Array(await (await fetch(href)).arrayBuffer());
    let s = '';
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(s);
  });
  assert.ok(Buffer.from(downloaded, 'base64').equals(file), 'the download is byte-exact');

  assert.deepEqual(consoleErrors, [], 'no console errors');
  // Logging out ends the session for the page: the login form comes back.
  await page.click('header button');
  await page.waitForSelector('#user', { timeout: deadlineMs });
});

/** Sends raw bytes to host:port and returns the first line of what comes back. */
function rawRequest(address: string, bytes: string): Promise<string> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const socket = connect(port, host, () => socket.write(bytes));
    let got = '';
    socket.on('data', (d) => {
      got += d.toString('latin1');
      if (got.includes('\r\n')) {
        socket.destroy();
        resolve(got.slice(0, got.indexOf('\r\n')));
      }
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(got));
  });
}

test('the dashboard over plain HTTP: sessions end with their user, hostile requests get an error and change nothing, downloads and logins are bounded', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-dashboard-'));
  t.after(async () => {
    await cairn(['local', 'down', '--dir', dir]);
    await rm(dir, { recursive: true, force: true });
  });
  const d = ['--dir', dir];
  const up = await cairn(['local', 'up', '--masters', '3', '--workers', '1', '--targets-per-worker', '1', '--replication', '1', ...d]);
  assert.equal(up.code, 0, up.stderr);
  const url = /^dashboard: (http:\/\/\S+\/)/m.exec(up.stdout)![1];
  const login = (user: string, password: string, at = url): Promise<Response> => fetch(new URL('/api/login', at), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user, password }) });
  assert.equal((await cairn(['admin', 'dashboard', 'user', 'add', 'temp', '--password-from-env', 'PW', ...d], { PW: 'a long enough password' })).code, 0);
  assert.equal((await cairn(['admin', 'dashboard', 'user', 'add', 'other', '--password-from-env', 'PW', ...d], { PW: 'another long password' })).code, 0);
  const res = await login('temp', 'a long enough password');
  const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0];
  assert.equal((await fetch(new URL('/api/overview', url), { headers: { cookie } })).status, 200);
  // A forged cookie (another user's name on this signature) is refused.
  const forged = cookie.replace(/=([^.]+)\./, (_, p: string) => `=${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), u: 'local' })).toString('base64url')}.`);
  assert.equal((await fetch(new URL('/api/overview', url), { headers: { cookie: forged } })).status, 401);
  // The API is read-only, and a login is a JSON POST (a cross-site form cannot send one).
  assert.equal((await fetch(new URL('/api/login', url), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'user=local&password=x' })).status, 415);
  // At every master, whether it leads or forwards.
  for (const m of readLocalCluster(dir)!.processes.filter((p) => p.kind === 'master')) {
    assert.equal((await fetch(`http://${m.http}/api/overview`, { method: 'DELETE', headers: { cookie } })).status, 405, `master ${m.id}`);
  }

  // Every master: a request target no URL parser takes is a 400, and the master lives on.
  const cluster = readLocalCluster(dir)!;
  const masters = cluster.processes.filter((p) => p.kind === 'master');
  for (const m of masters) {
    assert.match(await rawRequest(m.http!, 'GET //[ HTTP/1.1\r\nHost: x\r\n\r\n'), /^HTTP\/1\.1 400 /, `master ${m.id}`);
    assert.equal((await fetch(`http://${m.http}/healthz`)).status, 200, `master ${m.id} still serves`);
  }
  // Who leads and who follows now, as each master says (a loaded machine may move leadership).
  type Health = { role?: string; term?: number };
  const roles = async (): Promise<{ id: number; http: string; role: string; term: number }[]> =>
    Promise.all(masters.map(async (m) => ({ id: m.id, http: m.http!, ...((await (await fetch(`http://${m.http}/healthz`)).json()) as Required<Health>) })));
  const settled = async (): Promise<{ leader: { http: string; term: number }; follower: { http: string } }> => {
    for (const started = Date.now(); Date.now() - started < deadlineMs; await new Promise((r) => setTimeout(r, 200))) {
      const now = await roles();
      const leader = now.find((m) => m.role === 'leader');
      const follower = now.find((m) => m.role === 'follower' && m.term === leader?.term);
      if (leader !== undefined && follower !== undefined) return { leader, follower };
    }
    throw new Error('no leader and follower in one term');
  };

  // A follower forwards bodiless GETs only: a body (here a login smuggled as a chunk) is refused.
  const smuggled = 'POST /api/login HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}';
  const chunked = `GET /api/overview HTTP/1.1\r\nHost: x\r\nCookie: ${cookie}\r\nTransfer-Encoding: chunked\r\n\r\n${smuggled.length.toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`;
  assert.match(await rawRequest((await settled()).follower.http, chunked), /^HTTP\/1\.1 400 /);

  // Downloads: at most 8 at once per master, each reading two chunks ahead of its browser. Tried
  // again if leadership moved meanwhile (the 9th would then reach a new leader with none running).
  const big = path.join(dir, 'big.bin');
  await writeFile(big, randomBytes(64 * 1024 * 1024));
  assert.equal((await cairn(['fs', 'put', big, '/big.bin', '--quiet', ...d])).code, 0);
  const held: ClientRequest[] = [];
  t.after(() => held.forEach((r) => r.destroy()));
  let ninth: { status: number; error: string } | undefined;
  let leader = (await settled()).leader;
  for (let attempt = 1; attempt <= 5 && ninth === undefined; attempt++) {
    leader = (await settled()).leader;
    const statuses = await Promise.all(
      Array.from({ length: 8 }, () => new Promise<number>((resolve, reject) => {
        const r = httpGet(`http://${leader.http}/api/fs/download?path=/big.bin`, { headers: { cookie } }, (answer) => {
          answer.pause(); // a browser that does not read
          resolve(answer.statusCode ?? 0);
        });
        r.on('error', reject);
        held.push(r);
      })),
    );
    const res = await fetch(`http://${leader.http}/api/fs/download?path=/big.bin`, { headers: { cookie } });
    const answer = { status: res.status, error: res.status === 503 ? ((await res.json()) as { error: string }).error : '' };
    await res.body?.cancel().catch(() => undefined);
    const still = (await roles()).find((m) => m.http === leader.http);
    for (const r of held.splice(0)) r.destroy();
    if (still?.role === 'leader' && still.term === leader.term) {
      assert.deepEqual(statuses, Array(8).fill(200));
      ninth = answer;
    } else {
      t.diagnostic(`leadership moved during download check ${attempt}; again`);
    }
  }
  assert.equal(ninth?.status, 503);
  assert.match(ninth.error, /8 downloads are running on this master/);
  // A slot comes back when a download ends.
  let again = 0;
  for (const started = Date.now(); again !== 200 && Date.now() - started < deadlineMs; await new Promise((r) => setTimeout(r, 100))) {
    const r = await fetch(`http://${leader.http}/api/fs/download?path=/big.bin`, { headers: { cookie } });
    again = r.status;
    await r.body?.cancel();
  }
  assert.equal(again, 200);

  // Ten wrong passwords for one user from one address stop that user's logins from it for a
  // minute, the right password too; another user from the same address still gets in.
  for (let i = 0; i < 10; i++) assert.equal((await login('temp', `wrong password ${i}`)).status, 401);
  const limited = await login('temp', 'a long enough password');
  assert.equal(limited.status, 429);
  assert.ok(Number(limited.headers.get('retry-after')) > 0);
  assert.equal((await login('other', 'another long password')).status, 200);

  // Logging out takes a POST: a link or redirect from another site cannot do it.
  assert.equal((await fetch(new URL('/api/logout', url), { headers: { cookie } })).status, 405);

  // Removing the user ends its sessions, a live stream it has open too (within a tick).
  const live = await fetch(new URL('/api/stream', url), { headers: { cookie } });
  assert.equal(live.status, 200);
  const ended = (async () => {
    for await (const _ of live.body!) void _;
    return Date.now();
  })();
  assert.equal((await cairn(['admin', 'dashboard', 'user', 'remove', 'temp', ...d])).code, 0);
  const removedAt = Date.now();
  assert.equal((await fetch(new URL('/api/overview', url), { headers: { cookie } })).status, 401);
  assert.ok((await ended) - removedAt < 5_000, 'the stream ended soon after');
});
