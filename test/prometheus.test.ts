/**
 * A real Prometheus (Debian's) scrapes a swarm of real processes while it
 * downloads; PromQL against it confirms what happened (the origin sent one
 * copy, the peers got theirs from the swarm, the seed's was the only
 * back-to-source event), the alert rules and their unit tests pass promtool,
 * and every panel of the Grafana dashboard runs against the same Prometheus.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Cluster } from './fixtures/cluster.js';
import { startOrigin, type Origin } from './fixtures/origin.js';
import { until } from './fixtures/wait.js';

const ROOT = resolve(import.meta.dirname, '..');
const PROMETHEUS = '/usr/bin/prometheus';
const PROMTOOL = '/usr/bin/promtool';
const SKIP = !existsSync(PROMETHEUS) || !existsSync(PROMTOOL) ? 'Debian prometheus is not installed (.ci/run installs it)' : false;
const MiB = 1024 * 1024;

function freePort(): Promise<number> {
  return new Promise((resolveP) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolveP(port));
    });
  });
}

interface QueryResult {
  status: string;
  error?: string;
  data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
}

describe('Prometheus, alerts and the dashboard', { skip: SKIP, timeout: 180_000 }, () => {
  let cluster: Cluster;
  let origin: Origin;
  let prometheus: ChildProcess;
  let promUrl: string;
  let dir: string;
  const file = randomBytes(20 * MiB + 7);
  const peers = 3;

  async function query(expr: string): Promise<QueryResult> {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
    return (await res.json()) as QueryResult;
  }

  async function scalar(expr: string): Promise<number> {
    const r = await query(expr);
    assert.equal(r.status, 'success', `${expr}: ${r.error ?? ''}`);
    const v = r.data?.result[0]?.value[1];
    return v === undefined ? NaN : Number(v);
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shoal-prometheus-'));
    cluster = new Cluster();
    origin = await startOrigin({ files: new Map([['/model.bin', file]]) });
    const scheduler = await cluster.scheduler(0, ['--metrics', '0']);
    const schedulerMetrics = Number(/metrics (\d+)/.exec(scheduler.proc.stderr())![1]);
    const targets: string[] = [];
    const daemons = [];
    for (let i = 0; i <= peers; i++) {
      const d = await cluster.daemon({ scheduler: scheduler.url, seed: i === 0, extra: ['--metrics', '0'] });
      targets.push(/metrics (127\.0\.0\.1:\d+)/.exec(d.proc.stderr())![1]!);
      daemons.push(d);
    }
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    writeFileSync(
      join(dir, 'prometheus.yml'),
      [
        'global: { scrape_interval: 1s, evaluation_interval: 1s }',
        `rule_files: ['${join(ROOT, 'deploy/prometheus/alerts.yml')}']`,
        'scrape_configs:',
        `  - { job_name: shoal-scheduler, static_configs: [{ targets: ['127.0.0.1:${schedulerMetrics}'] }] }`,
        `  - { job_name: shoal-daemon, static_configs: [{ targets: [${targets.map((t) => `'${t}'`).join(', ')}] }] }`,
        '',
      ].join('\n'),
    );
    prometheus = spawn(PROMETHEUS, [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
    prometheus.stderr!.resume();
    await until(async () => (await fetch(`${promUrl}/-/ready`).catch(() => undefined))?.ok === true, 'Prometheus ready', { within: 30_000, every: 200 });
    await until(async () => (await scalar('count(up == 1)')) === peers + 2, 'every target scraped', { within: 30_000, every: 250 });
    // The swarm downloads while Prometheus scrapes it.
    const url = `${origin.url}/model.bin`;
    const gets = daemons.slice(1).map((d, i) => cluster.get(url, cluster.path(`out-${i}`), ['-e', d.api]));
    for (const g of gets) assert.equal(await g.exited, 0, g.stderr());
    for (let i = 0; i < peers; i++) assert.ok(readFileSync(cluster.path(`out-${i}`)).equals(file));
    // Every process scraped once more after the downloads ended.
    const ended = Date.now() / 1000;
    await until(async () => {
      const r = await query('min(timestamp(up))');
      return Number(r.data?.result[0]?.value[1] ?? 0) > ended + 1;
    }, 'a scrape after the downloads', { within: 20_000, every: 250 });
  });

  after(async () => {
    prometheus?.kill('SIGTERM');
    await cluster?.close();
    await origin?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('PromQL confirms it: one copy from the origin, N−1 from the swarm, the seed the only one back to source', async () => {
    const size = file.length;
    const fromOrigin = await scalar('sum(shoal_download_bytes_total{source="origin"})');
    assert.ok(fromOrigin >= size && fromOrigin <= size * 1.05, `origin bytes ${fromOrigin} for a file of ${size}`);
    assert.equal(origin.bytesServed('/model.bin'), size, 'and the origin itself says so');
    const fromSwarm = await scalar('sum(shoal_download_bytes_total{source=~"peer|seed", requester="get"})');
    assert.equal(fromSwarm, peers * size, 'the peers got every byte from the seed and each other');
    assert.equal(await scalar('sum(shoal_back_to_source_total)'), 1);
    assert.equal(await scalar('sum(shoal_back_to_source_total{reason="seed_first"})'), 1, 'the seed’s, fetching first');
    assert.equal(await scalar('sum(shoal_scheduler_back_to_source_total)'), 1);
    assert.equal(await scalar('max(shoal_scheduler_origin_copies)'), 1);
    assert.equal(await scalar('sum(shoal_tasks_completed_total{result="complete", job="shoal-daemon"})'), peers + 1);
    assert.equal(await scalar('sum(shoal_scheduler_hosts)'), peers + 1);
    assert.equal(await scalar('sum(shoal_scheduler_connected)'), peers + 1);
    assert.ok((await scalar('sum(shoal_upload_bytes_total)')) >= peers * size);
    assert.ok((await scalar('sum(shoal_scheduler_decision_seconds_count)')) > 0);
    // No alert fires on a healthy swarm.
    const alerts = (await (await fetch(`${promUrl}/api/v1/alerts`)).json()) as { data: { alerts: Array<{ labels: { alertname: string }; state: string }> } };
    assert.deepEqual(alerts.data.alerts.filter((a) => a.state === 'firing').map((a) => a.labels.alertname), []);
  });

  it('no label carries an unbounded value (URL, task, host or peer)', async () => {
    const r = await query('{__name__=~"shoal_(download|back_to_source|tasks|piece|parents|upload|scheduler)_.*"}');
    assert.equal(r.status, 'success');
    const allowed = new Set(['__name__', 'job', 'instance', 'source', 'requester', 'reason', 'size', 'result', 'code', 'le', 'limiter', 'kind', 'seed', 'state', 'reconnect', 'cause', 'from']);
    for (const s of r.data!.result) for (const label of Object.keys(s.metric)) assert.ok(allowed.has(label), `label ${label} on ${s.metric['__name__']}`);
  });

  it('the alert rules pass promtool check and their unit tests', () => {
    const check = spawnSync(PROMTOOL, ['check', 'rules', join(ROOT, 'deploy/prometheus/alerts.yml')], { encoding: 'utf8' });
    assert.equal(check.status, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /SUCCESS: 7 rules found/);
    const test = spawnSync(PROMTOOL, ['test', 'rules', 'alerts.test.yml'], { cwd: join(ROOT, 'deploy/prometheus'), encoding: 'utf8' });
    assert.equal(test.status, 0, test.stdout + test.stderr);
    assert.match(test.stdout, /SUCCESS/);
  });

  it('every panel of the Grafana dashboard runs against this Prometheus, and the overview panels have data', async () => {
    const dashboard = JSON.parse(readFileSync(join(ROOT, 'deploy/grafana/shoal.json'), 'utf8')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
    assert.ok(dashboard.panels.length >= 15);
    for (const panel of dashboard.panels) {
      for (const target of panel.targets) {
        // Grafana's own variables, as it would fill them in.
        const expr = target.expr.replaceAll('$__rate_interval', '1m').replaceAll('$__range', '10m');
        const r = await query(expr);
        assert.equal(r.status, 'success', `${panel.title}: ${expr}: ${r.error ?? ''}`);
      }
    }
    const share = dashboard.panels.find((p) => p.title.startsWith('Is P2P working'))!;
    const value = await scalar(share.targets[0]!.expr);
    assert.ok(value > 0.7, `peer share ${value}`);
  });
});
