/**
 * The download-side rate limits with real processes: a daemon's back-to-source
 * limit (--source-rate), its daemon-wide download limit (--download-rate) and
 * a get's own --limit-rate. What is asserted is that each limit saw every
 * byte it should and made transfers wait (its counters in the daemon's
 * stats), never how long anything took: the pace itself is the limiter's
 * unit test, on a manual clock (rate-limiter.test.ts).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Cluster } from './fixtures/cluster.js';
import { sha256hex } from './fixtures/hash.js';
import { startOrigin, type Origin } from './fixtures/origin.js';
import { statsOf } from './fixtures/stats.js';

const MiB = 1024 * 1024;

describe('rate limits with real processes', { timeout: 120_000 }, () => {
  const one = randomBytes(3 * MiB + 17);
  const two = randomBytes(3 * MiB + 5);
  let origin: Origin;
  let cluster: Cluster;

  before(async () => {
    origin = await startOrigin({ files: new Map([['/one.bin', one], ['/two.bin', two]]) });
    cluster = new Cluster();
  });
  after(async () => {
    await cluster.close();
    await origin.close();
  });

  test('back-to-source, daemon-wide and per-get limits each count every byte they apply to, and make transfers wait', async () => {
    const { url: scheduler } = await cluster.scheduler();
    const seed = await cluster.daemon({ scheduler, seed: true, extra: ['--source-rate', '8M'] });
    const peer = await cluster.daemon({ scheduler, extra: ['--download-rate', '16M'] });

    // The seed fetches from the origin through its back-to-source limit.
    const first = cluster.get(`${origin.url}/one.bin`, cluster.path('one-seed'), ['-e', seed.api]);
    assert.equal(await first.exited, 0, first.stderr());
    const seedStats = await statsOf(seed.api);
    const source = seedStats.limits?.source;
    assert.ok(source !== undefined, `no source limit in the seed's stats: ${JSON.stringify(seedStats.limits)}`);
    assert.equal(source.rate, 8 * MiB);
    assert.equal(source.grantedBytes, one.length, 'every origin byte went through the back-to-source limit');
    assert.ok(source.waits > 0, '3 MiB at 8 MiB/s (a burst of 0.8 MiB) must wait');
    assert.equal(seedStats.limits?.download, undefined, 'no download limit was set on the seed');

    // The peer gets it from the seed through its daemon-wide download limit.
    const second = cluster.get(`${origin.url}/one.bin`, cluster.path('one-peer'), ['-e', peer.api]);
    assert.equal(await second.exited, 0, second.stderr());
    assert.equal(sha256hex(readFileSync(cluster.path('one-peer'))), sha256hex(one));
    let peerStats = await statsOf(peer.api);
    const download = peerStats.limits?.download;
    assert.ok(download !== undefined);
    assert.equal(download.rate, 16 * MiB);
    assert.equal(download.grantedBytes, one.length, 'every byte from the seed went through the download limit');
    assert.ok(download.waits > 0);
    assert.equal(peerStats.tasks[0]?.limit, undefined, 'a get without --limit-rate has no limit of its own');

    // A get of its own limit: the task's limiter sees every byte, within the daemon's.
    const third = cluster.get(`${origin.url}/two.bin`, cluster.path('two-peer'), ['-e', peer.api, '--limit-rate', '2M']);
    assert.equal(await third.exited, 0, third.stderr());
    assert.equal(sha256hex(readFileSync(cluster.path('two-peer'))), sha256hex(two));
    peerStats = await statsOf(peer.api);
    const task = peerStats.tasks.find((t) => t.url.endsWith('/two.bin'));
    assert.ok(task?.limit !== undefined, JSON.stringify(task));
    assert.equal(task.limit.rate, 2 * MiB);
    assert.equal(task.limit.grantedBytes, two.length);
    assert.ok(task.limit.waits > 0);
    assert.equal(peerStats.limits?.download?.grantedBytes, one.length + two.length);
  });

  test('a bad --limit-rate is refused with USAGE before anything starts', async () => {
    const get = cluster.get(`${origin.url}/one.bin`, cluster.path('never'), ['--limit-rate', 'fast']);
    assert.equal(await get.exited, 2);
    assert.match(get.stderr(), /error USAGE: --limit-rate: .*500k, 2M, 1G/);
  });
});
