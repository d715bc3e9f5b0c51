/**
 * The console's listener in a scheduler started as the CLI starts it
 * (createScheduler with a `console` section): nothing without admin access
 * (401, the login page, no data), the token as a bearer header, the login
 * that sets an HttpOnly SameSite=Strict cookie, the preheat POST's CSRF
 * check, the stream of snapshots; with the cluster's TLS, a client
 * certificate with role admin needs no token, and one without that role is
 * refused. Real sockets on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createScheduler, type SchedulerService } from '../src/scheduler/server.js';
import { schedulerInit } from '../src/cli/serve.js';

const dir = mkdtempSync(join(tmpdir(), 'shoal-console-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('the console listener', () => {
  let scheduler: SchedulerService;
  let base: string;
  let token: string;
  const tokenFile = join(dir, 'plain', 'console-token');

  before(async () => {
    scheduler = createScheduler({ listen: '127.0.0.1:0', logLevel: 'silent', console: { listen: '127.0.0.1:0', tokenFile } });
    await scheduler.start();
    base = scheduler.consoleUrl!.replace(/\/$/, '');
    token = readFileSync(tokenFile, 'utf8').trim();
  });
  after(() => scheduler?.stop());

  it('refuses a visitor without the token: 401, the login page, no data', async () => {
    const page = await fetch(`${base}/`);
    assert.equal(page.status, 401);
    const html = await page.text();
    assert.match(html, /<form method="post" action="\/login">/);
    assert.doesNotMatch(html, /console\.js/, 'not even the app');
    assert.equal(page.headers.get('cache-control'), 'no-store');
    assert.match(page.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
    for (const path of ['/api/snapshot', '/api/events']) {
      const res = await fetch(`${base}${path}`);
      assert.equal(res.status, 401, path);
      assert.deepEqual(((await res.json()) as { error: { code: string } }).error.code, 'ROLE_REQUIRED');
    }
    assert.equal((await fetch(`${base}/api/snapshot`, { headers: { authorization: 'Bearer wrong' } })).status, 401);
    assert.equal((await fetch(`${base}/?token=wrong`)).status, 401);
  });

  it('takes the token as a bearer header (scripts)', async () => {
    const res = await fetch(`${base}/api/snapshot`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    const snapshot = (await res.json()) as { recent: { verdict: string }; hosts: unknown[] };
    assert.equal(snapshot.recent.verdict, 'idle');
    assert.deepEqual(snapshot.hosts, []);
  });

  it('?token= and the login form set an HttpOnly, SameSite=Strict session cookie and redirect; the cookie opens the console', async () => {
    const link = await fetch(`${base}/?token=${encodeURIComponent(token)}`, { redirect: 'manual' });
    assert.equal(link.status, 303);
    assert.equal(link.headers.get('location'), '/');
    const cookie = link.headers.get('set-cookie') ?? '';
    assert.match(cookie, /^shoal_console=[\w-]+; Path=\/; HttpOnly; SameSite=Strict$/);
    assert.ok(!cookie.includes(token), 'the cookie is not the token');
    const form = await fetch(`${base}/login`, { method: 'POST', body: new URLSearchParams({ token }), redirect: 'manual' });
    assert.equal(form.status, 303);
    assert.equal(form.headers.get('set-cookie'), cookie);
    const session = cookie.split(';')[0]!;
    const app = await fetch(`${base}/`, { headers: { cookie: session } });
    assert.equal(app.status, 200);
    assert.match(await app.text(), /<script defer src="\/assets\/console\.js"><\/script>/);
    const js = await fetch(`${base}/assets/console.js`);
    assert.equal(js.status, 200);
    assert.ok((await js.text()).length > 1000, 'the bundled page');
    assert.equal((await fetch(`${base}/login`, { method: 'POST', body: new URLSearchParams({ token: 'nope' }), redirect: 'manual' })).status, 401);
  });

  it('a preheat POST with the cookie needs the console’s own Origin (CSRF); with the token in a header it needs none', async () => {
    const session = ((await fetch(`${base}/?token=${token}`, { redirect: 'manual' })).headers.get('set-cookie') ?? '').split(';')[0]!;
    const body = JSON.stringify({ urls: [{ url: 'http://127.0.0.1:9/file.bin' }] });
    const json = { 'content-type': 'application/json' };
    const forged = await fetch(`${base}/api/preheat`, { method: 'POST', headers: { ...json, cookie: session, origin: 'http://evil.example' }, body });
    assert.equal(forged.status, 403);
    assert.equal((await fetch(`${base}/api/preheat`, { method: 'POST', headers: { ...json, cookie: session }, body })).status, 403, 'no Origin at all');
    const own = await fetch(`${base}/api/preheat`, { method: 'POST', headers: { ...json, cookie: session, origin: base }, body });
    assert.equal(own.status, 202);
    assert.match(((await own.json()) as { id: string }).id, /^p\d+$/);
    const scripted = await fetch(`${base}/api/preheat`, { method: 'POST', headers: { ...json, authorization: `Bearer ${token}` }, body });
    assert.equal(scripted.status, 202);
    const bad = await fetch(`${base}/api/preheat`, { method: 'POST', headers: { ...json, authorization: `Bearer ${token}` }, body: JSON.stringify({ urls: [{ url: 'ftp://x/y' }] }) });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'URL_INVALID');
    // Without a seed the preheat fails, and the snapshot says why.
    const snapshot = (await (await fetch(`${base}/api/snapshot`, { headers: { authorization: `Bearer ${token}` } })).json()) as { preheats: Array<{ state: string; tasks: Array<{ error?: { code: string } }> }> };
    const failed = snapshot.preheats.find((p) => p.state === 'failed');
    assert.equal(failed?.tasks[0]?.error?.code, 'SEED_UNAVAILABLE');
  });

  it('streams snapshots as server-sent events', async () => {
    const abort = new AbortController();
    const res = await fetch(`${base}/api/events`, { headers: { authorization: `Bearer ${token}` }, signal: abort.signal });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('\n\n')) text += new TextDecoder().decode((await reader.read()).value as Uint8Array | undefined);
    abort.abort();
    assert.match(text, /^event: snapshot\ndata: \{"at":\d+,"recent":/);
  });

  it('the CLI gives the console a token file of this user when none is set', () => {
    const init = schedulerInit({ console: '127.0.0.1:0' }, { XDG_STATE_HOME: '/x/state' });
    const expected = process.getuid?.() === 0 ? '/var/lib/shoal/console-token' : '/x/state/shoal/console-token';
    assert.deepEqual(init.console, { tokenFile: expected, listen: '127.0.0.1:0' });
    assert.equal(schedulerInit({}).console, undefined, 'no --console, no console');
  });
});

interface Answer {
  status: number;
  body: string;
}

function get(url: string, tls: { ca: string; cert?: string; key?: string }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ...tls, checkServerIdentity: () => undefined }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the console with the cluster’s TLS', () => {
  let scheduler: SchedulerService;
  let tlsDir: string;

  before(async () => {
    tlsDir = join(dir, 'tls');
    const { createCa, issueCert } = await import('../src/identity/issue.js');
    await createCa(tlsDir);
    for (const role of ['scheduler', 'admin', 'peer'] as const) await issueCert({ dir: tlsDir, name: role, roles: [role] });
    const files = (name: string) => ({ ca: join(tlsDir, 'ca.crt'), cert: join(tlsDir, `${name}.crt`), key: join(tlsDir, `${name}.key`) });
    scheduler = createScheduler({ listen: '127.0.0.1:0', logLevel: 'silent', tls: files('scheduler'), console: { listen: '127.0.0.1:0', tokenFile: join(dir, 'tls-token') } });
    await scheduler.start();
  });
  after(() => scheduler?.stop());

  it('is HTTPS: an admin certificate needs no token; a peer certificate or none gets the login page', async () => {
    assert.match(scheduler.consoleUrl!, /^https:\/\//);
    const ca = readFileSync(join(tlsDir, 'ca.crt'), 'utf8');
    const as = (name: string) => ({ ca, cert: readFileSync(join(tlsDir, `${name}.crt`), 'utf8'), key: readFileSync(join(tlsDir, `${name}.key`), 'utf8') });
    const admin = await get(`${scheduler.consoleUrl!}api/snapshot`, as('admin'));
    assert.equal(admin.status, 200, admin.body);
    assert.ok('recent' in (JSON.parse(admin.body) as object));
    const peer = await get(`${scheduler.consoleUrl!}api/snapshot`, as('peer'));
    assert.equal(peer.status, 401);
    const none = await get(scheduler.consoleUrl!, { ca });
    assert.equal(none.status, 401);
    assert.match(none.body, /Log in/);
  });
});
