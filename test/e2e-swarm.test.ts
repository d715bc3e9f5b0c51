/**
 * Swarms of real processes on 127.0.0.1: a scheduler, a seed peer and peers,
 * against a byte-counting origin.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Cluster } from './fixtures/cluster.js';
import { sha256hex } from './fixtures/hash.js';
import { startOrigin, type Origin } from './fixtures/origin.js';
import { firstTaskOf, isPeerOf, statsOf, type TaskStatsJSON } from './fixtures/stats.js';
import { until } from './fixtures/wait.js';

const MiB = 1024 * 1024;

describe('swarm of real processes', { timeout: 240_000 }, () => {
  const content = randomBytes(64 * MiB);
  const expected = sha256hex(content);
  const aheadContent = randomBytes(24 * MiB);
  const aheadExpected = sha256hex(aheadContent);
  const stripedContent = randomBytes(24 * MiB + 12345);
  const stripedExpected = sha256hex(stripedContent);
  const switchContent = randomBytes(24 * MiB + 777);
  const switchExpected = sha256hex(switchContent);
  let origin: Origin;
  let cluster: Cluster;

  before(async () => {
    origin = await startOrigin({
      files: new Map([
        ['/big.bin', content],
        ['/ahead.bin', aheadContent],
        ['/striped.bin', stripedContent],
        ['/switch.bin', switchContent],
      ]),
    });
    cluster = new Cluster();
  });
  after(async () => {
    await cluster.close();
    await origin.close();
  });

  test('a seed and 5 peers at once: identical outputs, origin sends about one copy; a second wave uses no origin bytes; a late joiner gets pieces from peers still downloading', async () => {
    const { url: scheduler } = await cluster.scheduler();
    // Throttled uploads keep the swarm busy long enough for a peer to join mid-download.
    await cluster.daemon({ scheduler, seed: true, uploadRate: '48MiB' });
    const peers = await Promise.all(Array.from({ length: 6 }, () => cluster.daemon({ scheduler, uploadRate: '24MiB' })));
    const url = `${origin.url}/big.bin`;

    const wave = peers.slice(0, 5).map((p, i) => cluster.get(url, cluster.path(`out-${i}`), ['-e', p.api]));
    // The late joiner comes mid-download: a peer of the wave holds pieces to share, and none has finished.
    let tasks: Array<TaskStatsJSON | undefined> = [];
    await until(async () => (tasks = await Promise.all(peers.slice(0, 5).map((p) => firstTaskOf(p.api)))).some((t) => (t?.completedBytes ?? 0) >= 8 * MiB), 'a peer of the wave to hold 8 MiB', { within: 20_000, every: 50 });
    assert.ok(tasks.every((t) => t?.state !== 'complete') && wave.every((g) => g.child.exitCode === null), 'the wave finished before the late joiner came: the test proves nothing');
    const late = cluster.get(url, cluster.path('out-late'), ['-e', peers[5]!.api]);
    const codes = await Promise.all([...wave, late].map((p) => p.exited));
    assert.deepEqual(codes, [0, 0, 0, 0, 0, 0], [...wave, late].map((p) => p.stderr()).join('\n'));
    for (const name of ['out-0', 'out-1', 'out-2', 'out-3', 'out-4', 'out-late']) {
      assert.equal(sha256hex(readFileSync(cluster.path(name))), expected, `${name} differs from the origin`);
    }
    const served = origin.bytesServed('/big.bin');
    assert.ok(served <= content.length * 1.05, `origin served ${served / content.length} copies`);

    const task = (await firstTaskOf(peers[5]!.api))!;
    assert.ok(task.piecesFromRunningParents > 0, `late joiner got no piece from a running parent: ${JSON.stringify(task)}`);
    assert.ok(task.bytes.peers > 0);

    // Second wave: new daemons, the file is in the swarm already.
    const before2 = origin.bytesServed('/big.bin');
    const second = await Promise.all(Array.from({ length: 3 }, () => cluster.daemon({ scheduler })));
    const gets = second.map((p, i) => cluster.get(url, cluster.path(`second-${i}`), ['-e', p.api]));
    assert.deepEqual(await Promise.all(gets.map((g) => g.exited)), [0, 0, 0]);
    for (let i = 0; i < 3; i++) assert.equal(sha256hex(readFileSync(cluster.path(`second-${i}`))), expected);
    assert.equal(origin.bytesServed('/big.bin') - before2, 0, 'second wave touched the origin');
  });

  test('asking ahead (download.askAhead): a seed and 4 throttled peers line up, every output identical, the origin sends about one copy', async () => {
    const { url: scheduler } = await cluster.scheduler();
    const config = cluster.path('ahead.yaml');
    writeFileSync(config, 'download:\n  askAhead: true\n');
    const seedBefore = origin.bytesServed('/ahead.bin');
    await cluster.daemon({ scheduler, seed: true, uploadRate: '32MiB', extra: ['--config', config] });
    const peers = await Promise.all(Array.from({ length: 4 }, () => cluster.daemon({ scheduler, uploadRate: '32MiB', extra: ['--config', config] })));
    const url = `${origin.url}/ahead.bin`;
    const gets = peers.map((p, i) => cluster.get(url, cluster.path(`ahead-${i}`), ['-e', p.api]));
    assert.deepEqual(await Promise.all(gets.map((g) => g.exited)), [0, 0, 0, 0], gets.map((g) => g.stderr()).join('\n'));
    for (let i = 0; i < 4; i++) assert.equal(sha256hex(readFileSync(cluster.path(`ahead-${i}`))), aheadExpected, `ahead-${i} differs from the origin`);
    const served = origin.bytesServed('/ahead.bin') - seedBefore;
    assert.ok(served <= aheadContent.length * 1.05, `origin served ${served / aheadContent.length} copies`);
    // Some peer took pieces from a parent that was still downloading.
    let fromRunning = 0;
    for (const p of peers) fromRunning += (await firstTaskOf(p.api))!.piecesFromRunningParents;
    assert.ok(fromRunning > 0, 'no peer fetched from a running parent: the chain did not form');
  });
  test('split trees (scheduler stripes: 2 from the first peer): a seed and 5 throttled peers; the seed feeds one relay, every other peer is fed two stripes by different parents; identical outputs, the origin sends about one copy', async () => {
    const config = cluster.path('stripes.yaml');
    writeFileSync(config, 'stripes: 2\nstripesFrom: 1\n');
    const { url: scheduler } = await cluster.scheduler(0, ['--config', config]);
    const seedBefore = origin.bytesServed('/striped.bin');
    const seed = await cluster.daemon({ scheduler, seed: true, uploadRate: '32MiB' });
    const seedHost = (await statsOf(seed.api)).hostId;
    const peers = await Promise.all(Array.from({ length: 5 }, () => cluster.daemon({ scheduler, uploadRate: '16MiB' })));
    const url = `${origin.url}/striped.bin`;
    const gets = peers.map((p, i) => cluster.get(url, cluster.path(`striped-${i}`), ['-e', p.api]));
    assert.deepEqual(await Promise.all(gets.map((g) => g.exited)), [0, 0, 0, 0, 0], gets.map((g) => g.stderr()).join('\n'));
    for (let i = 0; i < 5; i++) assert.equal(sha256hex(readFileSync(cluster.path(`striped-${i}`))), stripedExpected, `striped-${i} differs from the origin`);
    const served = origin.bytesServed('/striped.bin') - seedBefore;
    assert.ok(served <= stripedContent.length * 1.05, `origin served ${served / stripedContent.length} copies`);
    // The seed's relay takes everything from the seed; every other peer has one
    // parent per stripe: no parent gave it much more than half the file (in a chain, one gives it all).
    let relays = 0;
    for (const p of peers) {
      const { parents } = (await firstTaskOf(p.api))!;
      if (Object.keys(parents).some((id) => isPeerOf(id, seedHost))) {
        relays++;
        continue;
      }
      const largest = Math.max(...Object.values(parents));
      assert.ok(largest <= stripedContent.length * 0.75, `one parent gave a peer ${largest} B of ${stripedContent.length}: ${JSON.stringify(parents)}`);
    }
    assert.equal(relays, 1, 'one peer, the relay, is fed by the seed');
  });

  test('a chain that grows past stripesFrom mid-download becomes split trees: identical outputs, the origin still sends about one copy', async () => {
    const config = cluster.path('switch.yaml');
    writeFileSync(config, 'stripes: 2\nstripesFrom: 3\n');
    const { url: scheduler } = await cluster.scheduler(0, ['--config', config]);
    await cluster.daemon({ scheduler, seed: true, uploadRate: '16MiB' });
    const peers = await Promise.all(Array.from({ length: 5 }, () => cluster.daemon({ scheduler, uploadRate: '8MiB' })));
    const url = `${origin.url}/switch.bin`;
    const first = peers.slice(0, 2).map((p, i) => cluster.get(url, cluster.path(`switch-${i}`), ['-e', p.api]));
    // The two first peers form a chain and get going before the others register; the chain grows mid-download.
    let second: TaskStatsJSON | undefined;
    await until(async () => ((second = await firstTaskOf(peers[1]!.api))?.completedBytes ?? 0) >= 2 * MiB, 'the chain of two to move 2 MiB', { within: 20_000, every: 50 });
    assert.ok(second!.state === 'running' && first.every((g) => g.child.exitCode === null), 'the chain of two finished before the others came: the test proves nothing');
    const rest = peers.slice(2).map((p, i) => cluster.get(url, cluster.path(`switch-${i + 2}`), ['-e', p.api]));
    const gets = [...first, ...rest];
    assert.deepEqual(await Promise.all(gets.map((g) => g.exited)), [0, 0, 0, 0, 0], gets.map((g) => g.stderr()).join('\n'));
    for (let i = 0; i < 5; i++) assert.equal(sha256hex(readFileSync(cluster.path(`switch-${i}`))), switchExpected, `switch-${i} differs from the origin`);
    const served = origin.bytesServed('/switch.bin');
    assert.ok(served <= switchContent.length * 1.05, `origin served ${served / switchContent.length} copies`);
    // Split trees took over: some late peer was fed by two parents, neither giving it most of the file.
    let split = 0;
    for (const p of peers.slice(2)) {
      const parents = Object.values((await firstTaskOf(p.api))!.parents);
      if (parents.length >= 2 && Math.max(...parents) <= switchContent.length * 0.75) split++;
    }
    assert.ok(split > 0, 'no late peer took its stripes from two parents');
  });
});
