/**
 * `shoal status` lists each task once: a task downloaded twice (the second a
 * cache hit), or asked for by two requesters, is one entry, its latest
 * download, with who asked for any of them; the totals still count every
 * download's bytes. The pure merge, then a real daemon and `shoal status`.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { TaskStats } from '../src/daemon/download/task-stats.js';
import type { DownloadRecord } from '../src/daemon/downloads.js';
import { daemonStats, latestPerTask } from '../src/daemon/stats.js';
import { Cluster, run } from './fixtures/cluster.js';
import { startOrigin } from './fixtures/origin.js';
import { statsOf } from './fixtures/stats.js';
import { until } from './fixtures/wait.js';

const MiB = 1024 * 1024;

function record(taskId: string, requesters: DownloadRecord['requesters'], bytes: Partial<TaskStats['bytes']>): DownloadRecord {
  const stats = new TaskStats(taskId, `http://o/${taskId}`);
  Object.assign(stats.bytes, bytes);
  stats.state = 'complete';
  stats.finishedAt = Date.now();
  return { stats, requesters };
}

describe('shoal status lists each task once', () => {
  it('one entry per task: its latest download, with every requester', () => {
    const first = record('a', ['mirror'], { peers: 10 });
    const other = record('b', ['get'], { source: 5 });
    const again = record('a', ['proxy', 'mirror'], { cache: 10 });
    const merged = latestPerTask([first, other, again]);
    assert.deepEqual(
      merged.map((r) => [r.stats.taskId, r.requesters]),
      [
        ['b', ['get']],
        ['a', ['mirror', 'proxy']],
      ],
    );
    assert.equal(merged[1]!.stats, again.stats, 'the latest download');
    const stats = daemonStats({ hostId: 'h', seed: false, scheduler: { url: undefined, connected: false }, uploads: { active: 0, bytes: 0, pieces: 0 }, cache: { usedBytes: 0, tasks: 0 } }, [first, other, again]);
    assert.deepEqual(
      stats.tasks.map((t) => t.taskId),
      ['b', 'a'],
    );
    assert.deepEqual([stats.totals.peers, stats.totals.cache, stats.totals.source], [10, 10, 5], 'totals count every download');
    assert.equal(stats.recent.tasks, 2, 'two tasks in the window, not three');
  });

  const cluster = new Cluster();
  after(() => cluster.close());

  it('a real daemon: a file fetched twice is one line of shoal status', { timeout: 60_000 }, async () => {
    const file = randomBytes(3 * MiB + 1);
    const origin = await startOrigin({ files: new Map([['/twice.bin', file]]) });
    try {
      const api = cluster.path('api.sock');
      const daemon = run(['daemon', '--listen', '127.0.0.1:0', '--data', cluster.path('data'), '--api', api, '--log-level', 'warn']);
      cluster.procs.push(daemon);
      await until(() => daemon.stderr().includes('upload port'), 'the daemon to start', { within: 15_000 });
      const url = `${origin.url}/twice.bin`;
      for (const out of ['one', 'two']) {
        const get = cluster.get(url, cluster.path(out), ['-e', api]);
        assert.equal(await get.exited, 0, get.stderr());
      }
      const stats = await statsOf(api);
      assert.equal(stats.tasks.length, 1, JSON.stringify(stats.tasks.map((t) => t.taskId)));
      assert.equal(stats.tasks[0]!.url, url);
      assert.deepEqual(stats.tasks[0]!.requesters, ['get']);
      assert.equal(stats.totals.source, file.length, 'the first download, from the origin');
      assert.equal(stats.totals.cache, file.length, 'the second, from the cache');
      const status = run(['status', '-e', api]);
      cluster.procs.push(status);
      let text = '';
      status.child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
      const closed = new Promise((resolve) => status.child.on('close', resolve));
      assert.equal(await status.exited, 0, status.stderr());
      await closed;
      assert.equal(text.split('\n').filter((line) => line.includes('/twice.bin')).length, 1, text);
    } finally {
      await origin.close();
    }
  });
});
