/**
 * Four daemons (real processes: a seed and three peers, each with its own
 * registry mirror) pull one image at once with skopeo: every blob leaves the
 * registry about once, and every copy matches the origin.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cluster } from './fixtures/cluster.js';
import { sha256digest } from './fixtures/hash.js';
import { buildImage, missingTools, pushImage, registriesConf, skopeoCopy, startRegistry, type BuiltImage, type Registry } from './fixtures/registry.js';
import { statsOf } from './fixtures/stats.js';

const MiB = 1024 * 1024;

describe('registry mirror: a swarm pulls one image', { skip: missingTools(['docker-registry', 'skopeo']), timeout: 240_000 }, () => {
  let dir: string;
  let registry: Registry;
  let image: BuiltImage;
  let cluster: Cluster;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shoal-mirror-swarm-'));
    registry = await startRegistry();
    image = buildImage(join(dir, 'oci'), [4 * MiB - 1, 3 * MiB + 5, 2 * MiB, 1 * MiB + 7]);
    pushImage(image, registry, 'team/app:v1');
    cluster = new Cluster();
  });

  after(async () => {
    await cluster?.close();
    await registry?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  test('4 daemons pull at once through their mirrors: each blob leaves the registry about once, all verified', { timeout: 180_000 }, async (t) => {
    const { url: scheduler } = await cluster.scheduler();
    const mirrorArgs = ['--mirror', '127.0.0.1:0', '--upstream', registry.url];
    const daemons = [await cluster.daemon({ scheduler, seed: true, extra: mirrorArgs })];
    daemons.push(...(await Promise.all([0, 1, 2].map(() => cluster.daemon({ scheduler, extra: mirrorArgs })))));
    const mirrors = daemons.map((d) => {
      const m = /mirror 127\.0\.0\.1:(\d+)/.exec(d.proc.stderr());
      assert.ok(m !== null, d.proc.stderr());
      return `127.0.0.1:${m[1]}`;
    });

    const pulls = mirrors.map((mirror, i) => {
      const conf = join(dir, `registries-${i}.conf`);
      writeFileSync(conf, registriesConf(registry.host, mirror));
      return skopeoCopy(`${registry.host}/team/app:v1`, join(dir, `out-${i}`), { registriesConf: conf, timeoutMs: 150_000 });
    });
    const results = await Promise.all(pulls);
    results.forEach((r, i) => assert.equal(r.code, 0, `pull ${i}: ${r.stderr}`));

    for (let i = 0; i < mirrors.length; i++) {
      const out = join(dir, `out-${i}`);
      const files = readdirSync(out);
      for (const blob of [image.config, ...image.layers]) {
        assert.ok(files.includes(blob.digest.slice(7)), `pull ${i} lacks ${blob.digest}`);
        assert.equal(sha256digest(readFileSync(join(out, blob.digest.slice(7)))), blob.digest);
      }
    }
    for (const blob of [image.config, ...image.layers]) {
      assert.equal(registry.blobGets(blob.digest, 'skopeo'), 0, 'a client bypassed its mirror');
      const gets = registry.blobGets(blob.digest);
      assert.ok(gets >= 1 && gets <= 2, `blob ${blob.digest} (${blob.size} bytes) left the registry ${gets} times`);
    }
    // Across the swarm, the registry's bytes are about one copy of the image.
    const stats = await Promise.all(daemons.map((d) => statsOf(d.api)));
    const fromSource = stats.reduce((n, s) => n + s.totals.source, 0);
    const imageBytes = image.layers.reduce((n, l) => n + l.size, image.config.size);
    assert.ok(fromSource <= imageBytes * 1.5, `daemons fetched ${fromSource / imageBytes} copies from the registry`);
    const fromPeers = stats.reduce((n, s) => n + s.totals.peers + s.totals.seeds, 0);
    assert.ok(fromPeers >= imageBytes * 2, `only ${fromPeers} bytes travelled peer to peer`);
    const gets = [image.config, ...image.layers].map((b) => registry.blobGets(b.digest));
    t.diagnostic(`registry blob GETs per blob ${gets.join(',')}; registry copies ${(fromSource / imageBytes).toFixed(2)}; peer-to-peer copies ${(fromPeers / imageBytes).toFixed(2)}`);
  });
});
