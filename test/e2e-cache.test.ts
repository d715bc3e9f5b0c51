/**
 * `shoal cache` with real processes and no origin anywhere: a file imported
 * on one host is kept on K hosts (the seed first), exported on another
 * through the swarm, restored to K copies when a holder is killed, refused
 * under a taken ID with other content, kept across a daemon restart, and
 * removed everywhere.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Cluster, run, type Proc } from './fixtures/cluster.js';
import { sha256hex } from './fixtures/hash.js';
import { statsOf } from './fixtures/stats.js';
import { until } from './fixtures/wait.js';
import type { CacheEntryJson } from '../src/daemon/cache/entry-json.js';

const MiB = 1024 * 1024;

async function shoal(args: string[]): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const proc = run(args);
  let stdout = '';
  proc.child.stdout?.removeAllListeners('data');
  proc.child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  const code = await proc.exited;
  return { code, stdout, stderr: proc.stderr() };
}

async function stat(api: string, id: string): Promise<CacheEntryJson | undefined> {
  const r = await shoal(['cache', 'stat', id, '--json', '-e', api]);
  return r.code === 0 ? (JSON.parse(r.stdout) as CacheEntryJson) : undefined;
}

describe('shoal cache with real processes', { timeout: 180_000 }, () => {
  const content = randomBytes(12 * MiB + 321);
  let cluster: Cluster;

  before(() => {
    cluster = new Cluster();
  });
  after(async () => {
    await cluster.close();
  });

  test('import, K copies seeds first, export elsewhere, restore after a kill, conflict refused, kept across a restart, rm', async () => {
    const { url: scheduler } = await cluster.scheduler();
    const seed = await cluster.daemon({ scheduler, seed: true });
    const a = await cluster.daemon({ scheduler });
    const b = await cluster.daemon({ scheduler });
    const c = await cluster.daemon({ scheduler });
    const file = cluster.path('build.tar');
    writeFileSync(file, content);

    const bad = await shoal(['cache', 'import', file, '--id', '../etc/passwd', '-e', a.api]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /error CACHE_ID_INVALID/);

    const imported = await shoal(['cache', 'import', file, '--id', 'build-42', '--replicas', '2', '-e', a.api]);
    assert.equal(imported.code, 0, imported.stderr);
    assert.equal(imported.stdout.trim(), 'build-42');
    // The second copy goes to the seed first.
    let entry: CacheEntryJson | undefined;
    await until(async () => ((entry = await stat(b.api, 'build-42'))?.holders.length ?? 0) >= 2, 'two copies of build-42', { within: 30_000, every: 200 });
    assert.equal(entry!.contentDigest, `sha256:${sha256hex(content)}`);
    const seedHost = (await statsOf(seed.api)).hostId;
    assert.ok(entry!.holders.includes(seedHost), `the seed holds no copy: ${JSON.stringify(entry)}`);

    // A holder dies: the scheduler has another host make a copy.
    await seed.proc.kill('SIGKILL');
    await until(async () => {
      entry = await stat(b.api, 'build-42');
      return entry !== undefined && entry.holders.length >= 2 && !entry.holders.includes(seedHost);
    }, 'build-42 restored to two copies after the seed was killed', { within: 60_000, every: 250 });

    // Exported on a host through the swarm: identical, every piece from peers (there is no origin).
    const out = cluster.path('exported.tar');
    const exported = await shoal(['cache', 'export', 'build-42', '-O', out, '-e', c.api]);
    assert.equal(exported.code, 0, exported.stderr);
    assert.equal(sha256hex(readFileSync(out)), sha256hex(content));

    // Other content under the same ID: refused, the first importer's stands.
    const other = cluster.path('other.tar');
    writeFileSync(other, randomBytes(MiB));
    const conflict = await shoal(['cache', 'import', other, '--id', 'build-42', '-e', b.api]);
    assert.equal(conflict.code, 9, conflict.stderr);
    assert.match(conflict.stderr, /error CACHE_CONFLICT/);
    assert.equal((await stat(b.api, 'build-42'))?.contentDigest, `sha256:${sha256hex(content)}`);

    // The importer restarts (same data directory): it still holds build-42 and serves it from its cache.
    await a.proc.kill('SIGTERM');
    const again: Proc = run(['daemon', '--scheduler', scheduler, '--listen', '127.0.0.1:0', '--data', a.data, '--api', a.api, '--log-level', 'warn']);
    cluster.procs.push(again);
    await until(() => /upload port \d+/.test(again.stderr()), 'the importer to start again', { within: 20_000 });
    const againHost = await until(async () => (await statsOf(a.api).catch(() => undefined))?.scheduler.connected === true, 'the importer to reconnect', { within: 20_000 }).then(async () => (await statsOf(a.api)).hostId);
    await until(async () => (await stat(b.api, 'build-42'))?.holders.includes(againHost) === true, 'the restarted importer to hold build-42 again', { within: 20_000, every: 200 });
    const local = await shoal(['cache', 'export', 'build-42', '-O', cluster.path('again.tar'), '-e', a.api]);
    assert.equal(local.code, 0, local.stderr);
    assert.match(local.stderr, new RegExp(`from cache ${content.length} B`));

    // Removed: gone from every host.
    const rm = await shoal(['cache', 'rm', 'build-42', '-e', b.api]);
    assert.equal(rm.code, 0, rm.stderr);
    // The holders drop their copies when the scheduler's command reaches them (asynchronously).
    const gone = await shoal(['cache', 'stat', 'build-42', '-e', c.api]);
    assert.equal(gone.code, 8);
    assert.match(gone.stderr, /error CACHE_NOT_FOUND/);
    // Each holder drops its copy when the scheduler's command reaches it: soon, not at once.
    let missing: Awaited<ReturnType<typeof shoal>> = { code: 0, stdout: '', stderr: '' };
    await until(
      async () => {
        missing = await shoal(['cache', 'export', 'build-42', '-O', cluster.path('never.tar'), '-e', c.api]);
        return missing.code !== 0;
      },
      'an export on a former holder to fail after rm',
      { within: 20_000, every: 500 },
    );
    assert.match(missing.stderr, /error CACHE_NOT_FOUND/);
  });
});
