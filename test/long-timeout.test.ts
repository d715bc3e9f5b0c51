/**
 * Issue 15, item 7: a timeout longer than a Node timer can hold (2^31 − 1 ms,
 * 24.8 days) does not fire at once; a short one still fires. Real `shoal get`
 * processes, in-process daemon and through a daemon's API (timeoutMs), against
 * an origin slow enough that an early timer would show.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { CacheSection, SourceSection } from '../src/common/config/schema.js';
import { MAX_TIMER_MS, setLongTimeout } from '../src/common/timers.js';
import { Cluster, run, type Proc } from './fixtures/cluster.js';
import { startOrigin, type Origin } from './fixtures/origin.js';
import { until } from './fixtures/wait.js';

const MiB = 1024 * 1024;

describe('setLongTimeout', () => {
  test('fires once after a short delay, not at all once cleared, and never for a delay past the timer range within it', async () => {
    let fired = 0;
    setLongTimeout(() => fired++, 10);
    const cleared = setLongTimeout(() => fired++, 10);
    cleared.clear();
    const long = setLongTimeout(() => fired++, MAX_TIMER_MS + 1000);
    const never = setLongTimeout(() => fired++, Infinity);
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.name);
    process.on('warning', onWarning);
    await new Promise((r) => setTimeout(r, 100));
    process.off('warning', onWarning);
    long.clear();
    never.clear();
    assert.equal(fired, 1);
    assert.deepEqual(warnings, []);
  });

  test('the schema refuses a timer duration past the timer range, and takes a long TTL', () => {
    assert.throws(() => CacheSection.parse({ gcInterval: '25d' }), /maximum/);
    assert.throws(() => SourceSection.parse({ timeout: '30d' }), /maximum/);
    assert.equal(CacheSection.parse({ ttl: '365d' }).ttl, 365 * 86_400_000);
    assert.equal(CacheSection.parse({ gcInterval: '24d' }).gcInterval, 24 * 86_400_000);
  });
});

describe('shoal get --timeout', { timeout: 120_000 }, () => {
  // 3 MiB at 3 MiB/s: about a second, time enough for a timer that fires at once to show.
  const files = new Map([['/slow', randomBytes(3 * MiB)], ['/slow2', randomBytes(3 * MiB)], ['/slow3', randomBytes(3 * MiB)], ['/slow4', randomBytes(3 * MiB)]]);
  let origin: Origin;
  let cluster: Cluster;
  let api: string;
  const embedded = (): NodeJS.ProcessEnv => ({ SHOAL_DATA: cluster.path('data'), SHOAL_ENDPOINT: cluster.path('none.sock') });
  before(async () => {
    origin = await startOrigin({ files, rateLimit: 3 * MiB });
    cluster = new Cluster();
    api = cluster.path('d.sock');
    const daemon: Proc = run(['daemon', '--listen', '127.0.0.1:0', '--data', cluster.path('ddata'), '--api', api, '--log-level', 'warn']);
    cluster.procs.push(daemon);
    await until(() => /shoal daemon .*upload port \d+/.test(daemon.stderr()) || daemon.child.exitCode !== null, 'the daemon to start', { within: 30_000 });
  });
  after(async () => {
    await cluster.close();
    await origin.close();
  });

  const get = async (name: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | string; stderr: string; out: string }> => {
    const out = cluster.path(`${name}.${args.join('')}.out`.replace(/[^\w.]/g, '_'));
    const p = run(['get', `${origin.url}/${name}`, '-O', out, ...args], env);
    return { code: await p.exited, stderr: p.stderr(), out };
  };

  test('--timeout 25d does not fire (in-process daemon)', async () => {
    const r = await get('slow', ['--timeout', '25d'], embedded());
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readFileSync(r.out), files.get('/slow'));
  });

  test('--timeout 25d does not fire (through a daemon: timeoutMs over 2^31)', async () => {
    const r = await get('slow2', ['--timeout', '25d', '-e', api]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readFileSync(r.out), files.get('/slow2'));
  });

  test('a short --timeout still fires, both ways', async () => {
    const local = await get('slow3', ['--timeout', '200ms'], embedded());
    assert.equal(local.code, 10, local.stderr);
    assert.match(local.stderr, /TIMEOUT/);
    const remote = await get('slow4', ['--timeout', '200ms', '-e', api]);
    assert.equal(remote.code, 10, remote.stderr);
    assert.match(remote.stderr, /TIMEOUT/);
  });
});
