/**
 * The web console in a real browser (Debian's headless Chromium driven by
 * playwright-core) against a swarm of real processes: a scheduler with the
 * console, a seed, N = 4 peers and an origin. After logging in with the
 * token the page shows the task with its peers and its swarm as a graph
 * (live edges while the peers download, the chain they formed after); a
 * preheat started from the form completes; a visit without the session is
 * refused (401, the login page, nothing of the swarm).
 *
 * SHOAL_CONSOLE_SCREENSHOTS=1 also writes docs/console-overview.png and
 * docs/console-graph.png (so CI never rewrites them).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BrowserContext, Page } from 'playwright-core';
import { Cluster } from './fixtures/cluster.js';
import { startOrigin, type Origin } from './fixtures/origin.js';
import { until } from './fixtures/wait.js';

const CHROMIUM = '/usr/bin/chromium';
const playwright = await import('playwright-core').catch(() => undefined);
const SKIP = !existsSync(CHROMIUM) ? `Debian's chromium is not installed at ${CHROMIUM} (.ci/run installs it)` : playwright === undefined ? 'playwright-core is not installed (npm ci)' : false;
const SCREENSHOTS = process.env['SHOAL_CONSOLE_SCREENSHOTS'] === '1';
const DOCS = resolve(import.meta.dirname, '../docs');
const MiB = 1024 * 1024;
const PEERS = 4;
const WAIT = { timeout: 30_000 };

describe('the web console in a browser', { skip: SKIP, timeout: 240_000 }, () => {
  let cluster: Cluster;
  let origin: Origin;
  let context: BrowserContext;
  let page: Page;
  let consoleUrl: string;
  let token: string;
  let dir: string;
  const model = randomBytes(32 * MiB + 5);
  const preheated = randomBytes(6 * MiB + 3);

  /** Peer nodes and feeding edges of the swarm graph on the page, and the peers (not seeds) no edge feeds. */
  async function graph(): Promise<{ nodes: number; edges: number; live: number; rates: number; unfed: number }> {
    const svg = page.locator('svg[data-testid="swarm-graph"]');
    const count = (selector: string): Promise<number> => svg.locator(selector).count();
    const fed = new Set(await Promise.all((await svg.locator('g.edge').all()).map((e) => e.getAttribute('data-to'))));
    const peers = await Promise.all((await svg.locator('g.node:not(.seed)').all()).map((n) => n.getAttribute('data-peer')));
    return { nodes: await count('g.node'), edges: await count('g.edge'), live: await count('g.edge:not(.done)'), rates: await count('g.edge text.rate'), unfed: peers.filter((p) => !fed.has(p)).length };
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shoal-console-browser-'));
    cluster = new Cluster();
    origin = await startOrigin({
      files: new Map([
        ['/model.bin', model],
        ['/preheat.bin', preheated],
      ]),
    });
    const config = join(dir, 'scheduler.yaml');
    writeFileSync(config, `console:\n  tokenFile: ${join(dir, 'console-token')}\n`);
    const scheduler = await cluster.scheduler(0, ['--config', config, '--console', '127.0.0.1:0']);
    consoleUrl = /console (http:\/\/127\.0\.0\.1:\d+\/)/.exec(scheduler.proc.stderr())![1]!;
    token = readFileSync(join(dir, 'console-token'), 'utf8').trim();
    assert.match(scheduler.proc.stderr(), new RegExp(`login token in ${join(dir, 'console-token')}`), 'the path is printed');
    assert.ok(!scheduler.proc.stderr().includes(token), 'the token never is');
    // Upload capped so that the download lasts long enough to be watched.
    await cluster.daemon({ scheduler: scheduler.url, seed: true, uploadRate: '8MiB' });
    for (let i = 0; i < PEERS; i++) await cluster.daemon({ scheduler: scheduler.url, uploadRate: '8MiB' });
    context = await playwright!.chromium.launchPersistentContext(join(dir, 'chromium'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1400, height: 1000 },
    });
    page = context.pages()[0] ?? (await context.newPage());
  });

  after(async () => {
    await context?.close();
    await cluster?.close();
    await origin?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('logs in with the token, then shows the task, its N peers and its swarm as a graph, live while it downloads', async () => {
    const login = await page.goto(consoleUrl);
    assert.equal(login?.status(), 401);
    await page.fill('#token', token);
    await page.click('button[type=submit]');
    await page.waitForSelector('[data-link="live"]', WAIT);
    assert.equal(new URL(page.url()).search, '', 'no token left in the address');

    const url = `${origin.url}/model.bin`;
    // The peers are d1…dN (d0 is the seed).
    const gets = Array.from({ length: PEERS }, (_, i) => cluster.get(url, cluster.path(`out-${i}`), ['-e', cluster.path(`d${i + 1}.sock`)]));
    // While the peers download: edges that feed them, with the rates the children take.
    let seen = { live: 0, rates: 0 };
    await until(
      async () => {
        const g = await graph();
        seen = { live: Math.max(seen.live, g.live), rates: Math.max(seen.rates, g.rates) };
        return seen.live > 0 && seen.rates > 0;
      },
      'live edges with rates on the graph',
      { within: 30_000, every: 100 },
    );
    if (SCREENSHOTS) {
      // For the picture, rates on more edges if they come before the download ends (not asserted).
      const more = Date.now() + 5000;
      while (Date.now() < more && (await graph()).rates < PEERS - 1) await sleep(100);
      await page.locator('section', { has: page.locator('svg.swarm') }).screenshot({ path: join(DOCS, 'console-graph.png') });
    }
    for (const g of gets) assert.equal(await g.exited, 0, g.stderr());
    for (let i = 0; i < PEERS; i++) assert.ok(readFileSync(cluster.path(`out-${i}`)).equals(model));

    // The task with the seed and its N peers, all complete; the origin sent one copy.
    const row = page.locator('tr[data-task]', { hasText: '/model.bin' });
    await row.locator('td', { hasText: `${PEERS + 1} complete` }).waitFor(WAIT);
    assert.equal(await row.getAttribute('data-peers'), String(PEERS + 1));
    assert.match((await row.textContent()) ?? '', /×1\.00/);
    await until(async () => (await page.locator('svg[data-testid="swarm-graph"] g.node.state-complete').count()) === PEERS + 1, 'every peer complete on the graph');
    const done = await graph();
    assert.equal(done.nodes, PEERS + 1, 'a node per peer');
    assert.ok(done.edges >= PEERS, `an edge into every peer (${done.edges} edges)`);
    assert.equal(done.unfed, 0, 'every peer but the seed was fed by another');
    assert.equal(await page.locator('table.hosts tbody tr').count(), PEERS + 1);
    assert.match((await page.locator('table.events').textContent()) ?? '', /seed peer fetches first/);
    assert.equal(await page.getAttribute('[data-testid="verdict"]', 'data-verdict'), 'working');
  });

  it('a preheat started from the form completes, and the progress says so', async () => {
    await page.fill('#preheat-urls', `${origin.url}/preheat.bin`);
    await page.click('form.preheat button[type=submit]');
    const run = page.locator('[data-preheat][data-state="done"]');
    await run.waitFor(WAIT);
    assert.match((await run.textContent()) ?? '', /done.*\/preheat\.bin.*6\.0 MiB of 6\.0 MiB/);
    assert.equal(origin.bytesServed('/preheat.bin'), preheated.length, 'the seed fetched it once');
    if (SCREENSHOTS) {
      await page.locator('tr[data-task]', { hasText: '/model.bin' }).click();
      await until(async () => (await page.locator('svg[data-testid="swarm-graph"] g.node').count()) > 2, 'the model task on the graph');
      await page.screenshot({ path: join(DOCS, 'console-overview.png'), fullPage: true });
    }
  });

  it('a visit without the session is refused: 401, the login page, nothing of the swarm', async () => {
    await context.clearCookies();
    const res = await page.goto(consoleUrl);
    assert.equal(res?.status(), 401);
    const html = await page.content();
    assert.match(html, /Log in/);
    const taskId = await (async () => {
      const snapshot = (await (await fetch(`${consoleUrl}api/snapshot`, { headers: { authorization: `Bearer ${token}` } })).json()) as { tasks: Array<{ id: string }> };
      return snapshot.tasks[0]!.id;
    })();
    for (const secret of [taskId, 'model.bin', 'preheat.bin', '127.0.0.1:']) assert.ok(!html.includes(secret), `the page shows nothing of the swarm (${secret})`);
    const api = await page.goto(`${consoleUrl}api/snapshot`);
    assert.equal(api?.status(), 401);
    assert.doesNotMatch(await page.content(), /model\.bin/);
  });
});
