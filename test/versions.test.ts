/**
 * A changed origin never yields a file that mixes two versions: a task
 * records its origin validator, every resume carries it, and a change
 * restarts the task (when this peer is the one fetching from the origin) or
 * fails it with SOURCE_CHANGED — on one peer and in a swarm.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Cluster } from './fixtures/cluster.js';
import { startOrigin, type Origin } from './fixtures/origin.js';
import { statsOf } from './fixtures/stats.js';
import { until } from './fixtures/wait.js';

const MiB = 1024 * 1024;

describe('a changed origin', { timeout: 180_000 }, () => {
  let cluster: Cluster;
  let origin: Origin;
  const files = new Map<string, Buffer>();

  before(async () => {
    cluster = new Cluster();
    origin = await startOrigin({ files });
  });

  after(async () => {
    await cluster.close();
    await origin.close();
  });

  it('a resume after the content changed starts over instead of keeping the old version’s bytes', async () => {
    const v1 = randomBytes(12 * MiB);
    const v2 = randomBytes(12 * MiB);
    files.set('/resume.bin', v1);
    const { url: scheduler } = await cluster.scheduler();
    const peer = await cluster.daemon({ scheduler });
    const url = `${origin.url}/resume.bin`;
    // Every answer is cut after 1 MiB: the origin client resumes a few times, then the get fails with part of v1 held.
    origin.fault('/resume.bin', { kind: 'drop', afterBytes: MiB });
    const out = cluster.path('resume.out');
    const cut = cluster.get(url, out, ['-e', peer.api]);
    assert.equal(await cut.exited, 4, cut.stderr());
    const held = (await statsOf(peer.api)).tasks.find((t) => t.url.endsWith('/resume.bin'));
    assert.ok(held !== undefined && held.completedBytes >= MiB && held.completedBytes < v1.length, `the first get must fail with part of v1 held: ${JSON.stringify(held)}`);
    assert.ok(!existsSync(out), 'no output from the failed get');
    // The content changes at the origin (a new ETag), and the origin recovers.
    files.set('/resume.bin', v2);
    origin.clearFaults();
    const again = cluster.get(url, out, ['-e', peer.api]);
    assert.equal(await again.exited, 0, again.stderr());
    assert.ok(readFileSync(out).equals(v2), 'the whole new version, not v1’s first MiBs and v2 after');
    const resumes = origin.received('/resume.bin').filter((r) => r.headers.range !== undefined && r.headers.range !== 'bytes=0-');
    assert.ok(resumes.every((r) => r.headers['if-range'] !== undefined), 'every resume carried the validator');
  });

  it('an origin that once said a wrong length does not poison the task: the next gets fetch the content whole', async () => {
    const { url: scheduler } = await cluster.scheduler();
    await cluster.daemon({ scheduler, seed: true });
    const peers = [await cluster.daemon({ scheduler }), await cluster.daemon({ scheduler })];
    for (const [name, header] of [['length', 'content-length'], ['range', 'content-range']] as const) {
      const body = randomBytes(8 * MiB);
      const path = `/wrong-${name}.bin`;
      files.set(path, body);
      const url = `${origin.url}${path}`;
      const told = header === 'content-length' ? String(body.length + 4096) : `bytes 0-${body.length - 1}/${body.length + 4096}`;
      origin.fault(path, { kind: 'headers', headers: { [header]: told } }, 1);
      const first = peers.map((p, i) => cluster.get(url, cluster.path(`${name}-first-${i}.out`), ['-e', p.api, '--timeout', '20s', '--piece-length', '256KiB']));
      const codes = await Promise.all(first.map((g) => g.exited));
      assert.ok(origin.received(path).some((r) => r.method === 'GET'), 'the wrong length was sent');
      for (const [i, code] of codes.entries()) {
        if (code === 0) assert.ok(readFileSync(cluster.path(`${name}-first-${i}.out`)).equals(body), 'a first get that succeeded has the content whole');
      }
      for (const [i, p] of peers.entries()) {
        const out = cluster.path(`${name}-again-${i}.out`);
        const again = cluster.get(url, out, ['-e', p.api, '--piece-length', '256KiB']);
        assert.equal(await again.exited, 0, again.stderr());
        assert.ok(readFileSync(out).equals(body), 'the content whole, at its true length');
      }
    }
  });

  it('in a swarm, a seed killed after the change: the peers finish with the new version whole or fail with SOURCE_CHANGED', async () => {
    const v1 = randomBytes(24 * MiB);
    const v2 = randomBytes(24 * MiB);
    files.set('/swarm.bin', v1);
    const slow = await startOrigin({ files, rateLimit: 3 * MiB });
    try {
      const { url: scheduler } = await cluster.scheduler();
      const seed = await cluster.daemon({ scheduler, seed: true });
      const peers = [await cluster.daemon({ scheduler }), await cluster.daemon({ scheduler })];
      const url = `${slow.url}/swarm.bin`;
      const gets = peers.map((p, i) => cluster.get(url, cluster.path(`swarm-${i}.out`), ['-e', p.api]));
      // The fault lands mid-download: the peers hold pieces from the seed, which is still fetching v1.
      await until(async () => {
        const seedTask = (await statsOf(seed.api)).tasks[0];
        const peerTasks = await Promise.all(peers.map(async (p) => (await statsOf(p.api)).tasks[0]));
        const holding = peerTasks.every((t) => t !== undefined && t.completedBytes > 0) && peerTasks.some((t) => t !== undefined && t.bytes.seeds > 0);
        return seedTask !== undefined && seedTask.completedBytes < v1.length && holding;
      }, 'the peers hold pieces of v1 (from the seed, and from each other) while the seed is still fetching it');
      files.set('/swarm.bin', v2);
      assert.equal(await seed.proc.kill('SIGKILL'), 'SIGKILL');
      for (const [i, g] of gets.entries()) {
        const code = await g.exited;
        const out = cluster.path(`swarm-${i}.out`);
        if (code === 0) assert.ok(readFileSync(out).equals(v2), `peer ${i}: exit 0 with something other than the whole of v2`);
        else {
          assert.match(g.stderr(), /SOURCE_CHANGED/, `peer ${i}: exit ${code}: ${g.stderr()}`);
          assert.ok(!existsSync(out), `peer ${i}: a failed get left a file`);
        }
      }
      // Run again: every peer ends with v2, whole.
      for (const [i, p] of peers.entries()) {
        const out = cluster.path(`swarm-again-${i}.out`);
        const g = cluster.get(url, out, ['-e', p.api]);
        assert.equal(await g.exited, 0, g.stderr());
        assert.ok(readFileSync(out).equals(v2));
      }
    } finally {
      await slow.close();
    }
  });
});
