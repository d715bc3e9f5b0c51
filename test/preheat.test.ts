/**
 * Preheat with real processes: a scheduler, a seed peer and peers.
 * `shoal preheat URL` leaves the task on the seed (the seed's stats and the
 * scheduler's Stat RPC say so), and a following `shoal get` on a peer takes
 * nothing from the origin and everything from the seed. `shoal preheat image`
 * against a real registry (docker-registry) leaves every blob on the seed, and
 * a skopeo pull through a peer's mirror then makes no blob GET to the
 * registry; `shoal status --json` lists the mirror's tasks with their
 * requester. Failures: a missing URL, an unknown platform, no seed peer.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { DaemonStats } from '../src/daemon/daemon.js';
import { createSchedulerClient } from '../src/daemon/scheduler-link.js';
import { Cluster, run, type Proc } from './fixtures/cluster.js';
import { sha256digest } from './fixtures/hash.js';
import { startOrigin, type Origin } from './fixtures/origin.js';
import { buildImage, missingTools, pushImage, registriesConf, skopeoCopy, startRegistry, type BuiltImage, type Registry } from './fixtures/registry.js';
import { statsOf, tasksOf } from './fixtures/stats.js';

const MiB = 1024 * 1024;

async function finish(proc: Proc, ms = 60_000): Promise<number | string> {
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), ms);
  try {
    return await proc.exited;
  } finally {
    clearTimeout(timer);
  }
}

describe('preheat', { timeout: 240_000 }, () => {
  let cluster: Cluster;
  let origin: Origin;
  let scheduler: string;
  let seed: { api: string };
  let peer: { api: string };
  const file = randomBytes(6 * MiB + 321);
  const files = new Map<string, Buffer>([['/data/model.bin', file]]);

  before(async () => {
    cluster = new Cluster();
    origin = await startOrigin({ files });
    ({ url: scheduler } = await cluster.scheduler());
    seed = await cluster.daemon({ scheduler, seed: true });
    peer = await cluster.daemon({ scheduler });
  });

  after(async () => {
    await cluster?.close();
    await origin?.close();
  });

  test('shoal preheat URL: the seed holds the task; a later get on a peer takes 0 bytes from the origin', async () => {
    const url = `${origin.url}/data/model.bin`;
    const proc = run(['preheat', url, '-e', peer.api]);
    cluster.procs.push(proc);
    assert.equal(await finish(proc), 0, proc.stderr());
    assert.match(proc.stderr(), /^done +http:\/\/127\.0\.0\.1:\d+\/data\/model\.bin +6\.0 MiB +on seed /m);
    assert.match(proc.stderr(), /preheat: all 1 tasks held by seed peers/);
    assert.equal(origin.bytesServed('/data/model.bin'), file.length);

    // The seed holds it, complete, asked by a preheat; the peer asked for nothing.
    const seedTask = tasksOf(await statsOf(seed.api)).find((t) => t.url === url);
    assert.ok(seedTask !== undefined);
    assert.equal(seedTask.state, 'complete');
    assert.deepEqual(seedTask.requesters, ['preheat']);
    assert.equal(tasksOf(await statsOf(peer.api)).length, 0);
    // And the scheduler knows a seed peer holds it complete.
    const stat = await createSchedulerClient(scheduler).stat({});
    const entry = stat.tasks.find((t) => t.url === url);
    const seedHost = stat.hosts.find((h) => h.seed)!;
    assert.ok(entry?.peers.some((p) => p.hostId === seedHost.id && p.state === 'complete'), JSON.stringify(entry?.peers));

    const out = cluster.path('model.out');
    const get = cluster.get(url, out, ['-e', peer.api]);
    assert.equal(await finish(get), 0, get.stderr());
    assert.ok(readFileSync(out).equals(file));
    assert.equal(origin.bytesServed('/data/model.bin'), file.length, 'the get went to the origin');
    const got = tasksOf(await statsOf(peer.api)).find((t) => t.url === url)!;
    assert.equal(got.bytes.source, 0);
    assert.ok(got.bytes.seeds > 0);
    assert.deepEqual(got.requesters, ['get']);

    // Preheating what the seed already holds is done at once, without the origin.
    const again = run(['preheat', url, '-e', peer.api, '--json']);
    cluster.procs.push(again);
    assert.equal(await finish(again), 0, again.stderr());
    assert.equal(origin.bytesServed('/data/model.bin'), file.length);
  });

  test('failures are listed with their code and the exit status says so', async () => {
    const proc = run(['preheat', `${origin.url}/data/model.bin`, `${origin.url}/data/missing.bin`, '-e', peer.api]);
    cluster.procs.push(proc);
    assert.equal(await finish(proc), 11, proc.stderr());
    assert.match(proc.stderr(), /failed +http:\/\/127\.0\.0\.1:\d+\/data\/missing\.bin +SOURCE_NOT_FOUND/);
    assert.match(proc.stderr(), /preheat: 1 of 2 tasks done, 1 failed:\n {2}http:\S+\/data\/missing\.bin: SOURCE_NOT_FOUND/);
    assert.match(proc.stderr(), /shoal: error PREHEAT_INCOMPLETE/);

    const usage = run(['preheat', 'image', '-e', peer.api]);
    cluster.procs.push(usage);
    assert.equal(await finish(usage), 2, usage.stderr());
    const badDigest = run(['preheat', `${origin.url}/a`, '--digest', 'md5:x', '-e', peer.api]);
    cluster.procs.push(badDigest);
    assert.equal(await finish(badDigest), 2, badDigest.stderr());
  });

  test('without a seed peer, preheat fails clearly', async () => {
    const lone = await cluster.daemon({ scheduler: (await cluster.scheduler()).url });
    const proc = run(['preheat', `${origin.url}/data/model.bin`, '-e', lone.api]);
    cluster.procs.push(proc);
    assert.equal(await finish(proc), 11, proc.stderr());
    assert.match(proc.stderr(), /SEED_UNAVAILABLE: no seed peer is connected/);
  });
});

describe('preheat image', { skip: missingTools(['docker-registry', 'skopeo']), timeout: 240_000 }, () => {
  let dir: string;
  let registry: Registry;
  let image: BuiltImage;
  let cluster: Cluster;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shoal-preheat-image-'));
    registry = await startRegistry();
    image = buildImage(join(dir, 'oci'), [3 * MiB + 11, 2 * MiB, 512 * 1024]);
    pushImage(image, registry, 'team/app:v1');
    cluster = new Cluster();
  });

  after(async () => {
    await cluster?.close();
    await registry?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  test('every blob ends up on the seed; a pull through a peer mirror then makes no blob GET to the registry', { timeout: 180_000 }, async () => {
    const { url: scheduler } = await cluster.scheduler();
    const mirrorArgs = ['--mirror', '127.0.0.1:0', '--upstream', registry.url];
    const seed = await cluster.daemon({ scheduler, seed: true, extra: mirrorArgs });
    const peer = await cluster.daemon({ scheduler, extra: mirrorArgs });
    const blobs = [image.config, ...image.layers];

    const unknown = run(['preheat', 'image', `${registry.host}/team/app:v1`, '--upstream', registry.url, '--platform', 'linux/s390x', '-e', peer.api]);
    cluster.procs.push(unknown);
    // A single-platform image has no index: any --platform takes its one manifest.
    assert.equal(await finish(unknown), 0, unknown.stderr());

    const proc = run(['preheat', 'image', `${registry.host}/team/app:v1`, '--upstream', registry.url, '-e', peer.api, '--json']);
    cluster.procs.push(proc);
    let stdout = '';
    proc.child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    assert.equal(await finish(proc), 0, proc.stderr());
    assert.match(proc.stderr(), new RegExp(`team/app@${image.manifestDigest}, ${blobs.length} blobs`));
    const result = JSON.parse(stdout) as { image: { manifest: string }; done: number; results: Array<{ state: string }> };
    assert.equal(result.image.manifest, image.manifestDigest);
    assert.equal(result.done, blobs.length);

    const seedTasks = tasksOf(await statsOf(seed.api));
    for (const blob of blobs) {
      const t = seedTasks.find((x) => x.taskId === blob.digest.slice(7));
      assert.ok(t !== undefined && t.state === 'complete', `seed lacks ${blob.digest}`);
      assert.ok(t.requesters.includes('preheat'));
      assert.equal(registry.blobGets(blob.digest), 1, `${blob.digest} left the registry ${registry.blobGets(blob.digest)} times`);
      assert.equal(registry.blobGets(blob.digest, 'shoal-preheat'), 1);
    }

    const mirror = /mirror 127\.0\.0\.1:(\d+)/.exec(peer.proc.stderr())![1];
    const conf = join(dir, 'registries.conf');
    writeFileSync(conf, registriesConf(registry.host, `127.0.0.1:${mirror}`));
    const pull = await skopeoCopy(`${registry.host}/team/app:v1`, join(dir, 'out'), { registriesConf: conf, timeoutMs: 120_000 });
    assert.equal(pull.code, 0, pull.stderr);
    for (const blob of blobs) {
      assert.equal(sha256digest(readFileSync(join(dir, 'out', blob.digest.slice(7)))), blob.digest);
      assert.equal(registry.blobGets(blob.digest), 1, `the pull fetched ${blob.digest} from the registry again`);
    }

    // The peer's status lists the pull's blobs, asked by the mirror, fed by the seed.
    const status = run(['status', '--json', '-e', peer.api]);
    let json = '';
    status.child.stdout!.on('data', (d: Buffer) => (json += d.toString()));
    assert.equal(await finish(status), 0, status.stderr());
    const stats = JSON.parse(json) as DaemonStats;
    for (const blob of blobs) {
      const t = tasksOf(stats).find((x) => x.taskId === blob.digest.slice(7));
      assert.ok(t !== undefined, `status lacks ${blob.digest}`);
      assert.deepEqual(t.requesters, ['mirror']);
      assert.equal(t.bytes.source, 0);
    }
    assert.ok(stats.recent.bytes >= blobs.reduce((n, b) => n + b.size, 0));
    const text = run(['status', '-e', peer.api]);
    let human = '';
    text.child.stdout!.on('data', (d: Buffer) => (human += d.toString()));
    assert.equal(await finish(text), 0);
    // Peers (the seed) fed the layers; the mirror's prefetch may have fetched some before skopeo asked, which then count as cache hits.
    const line = /^last 10 minutes: [\d.]+ MiB through Shoal, of which (\d+)% from peers, (\d+)% from cache, 0% from the origin; 0 back-to-source events\n/.exec(human);
    assert.ok(line !== null, human);
    assert.equal(Number(line[1]) + Number(line[2]), 100);
    assert.ok(Number(line[1]) >= 50, human);
    assert.match(human, / mirror +http:\/\/127\.0\.0\.1:\d+\/v2\/team\/app\/blobs\/sha256:/);
  });
});
