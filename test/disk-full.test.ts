/**
 * Issue 15, item 6: a full disk fails the download with STORAGE_FULL, the
 * partial task is evicted, and the daemon recovers by itself. A real daemon
 * process whose data directory is a 24 MiB tmpfs, filled by another file.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cluster, run, type Proc } from './fixtures/cluster.js';
import { startOrigin, type Origin } from './fixtures/origin.js';
import { canMount, mountTmpfs, type Tmpfs } from './fixtures/tmpfs.js';
import { until } from './fixtures/wait.js';

const MiB = 1024 * 1024;

/** Every content file under DATA/content. */
function contentFiles(data: string): string[] {
  const root = join(data, 'content');
  if (!existsSync(root)) return [];
  return readdirSync(root).flatMap((dir) => readdirSync(join(root, dir)).map((name) => join(root, dir, name)));
}

describe('a full disk', { timeout: 180_000, skip: canMount ? false : 'needs root to mount a tmpfs' }, () => {
  const big = randomBytes(12 * MiB);
  const small = randomBytes(2 * MiB);
  let origin: Origin;
  let cluster: Cluster;
  let disk: Tmpfs;
  before(async () => {
    origin = await startOrigin({ files: new Map([['/big', big], ['/small', small]]) });
    cluster = new Cluster();
    disk = mountTmpfs(cluster.path('disk'), '24m');
  });
  after(async () => {
    await Promise.all(cluster.procs.map((p) => p.kill('SIGKILL')));
    disk.unmount();
    await cluster.close();
    await origin.close();
  });

  const get = async (api: string, name: string): Promise<{ code: number | string; stderr: string; out: string }> => {
    const out = cluster.path(`${name}.${Math.random().toString(16).slice(2)}`);
    const p = run(['get', `${origin.url}/${name}`, '-O', out, '-e', api]);
    return { code: await p.exited, stderr: p.stderr(), out };
  };

  test('STORAGE_FULL, the partial task evicted, and later downloads work without anyone cleaning', async () => {
    const data = join(disk.dir, 'data');
    const api = cluster.path('d.sock');
    const daemon: Proc = run(['daemon', '--listen', '127.0.0.1:0', '--data', data, '--api', api, '--log-level', 'warn']);
    cluster.procs.push(daemon);
    await until(() => /shoal daemon .*upload port \d+/.test(daemon.stderr()) || daemon.child.exitCode !== null, 'the daemon to start', { within: 30_000 });
    assert.equal(daemon.child.exitCode, null, daemon.stderr());

    // Leave 8 MiB: the 12 MiB download cannot fit.
    const { bavail, bsize } = statfsSync(disk.dir);
    const filler = join(disk.dir, 'filler');
    writeFileSync(filler, Buffer.alloc(bavail * bsize - 8 * MiB));

    const full = await get(api, 'big');
    assert.ok(origin.bytesServed('/big') > 4 * MiB, 'the download never got far enough to fill the disk');
    assert.equal(full.code, 3, full.stderr);
    assert.match(full.stderr, /STORAGE_FULL/);
    assert.equal(existsSync(full.out), false);
    await until(() => contentFiles(data).length === 0, 'the partial task to be evicted');

    // The filler is still there: the space the partial task held is enough for this one.
    const next = await get(api, 'small');
    assert.equal(next.code, 0, next.stderr);
    assert.deepEqual(readFileSync(next.out), small);

    rmSync(filler);
    const again = await get(api, 'big');
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(readFileSync(again.out), big);
    assert.equal(daemon.child.exitCode, null, `the daemon died: ${daemon.stderr()}`);
  });
});
