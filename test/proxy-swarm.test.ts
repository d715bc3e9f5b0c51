/**
 * A seed and three peers (real processes), each with its own HTTP proxy;
 * curl through every peer's proxy at once for rule-matched URLs (a registry
 * blob URL, whose digest is the task, and a file matched by a rule from the
 * config file): the origin sends each file once in total, every copy matches,
 * and each peer's status lists the task as asked by the proxy.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Cluster } from './fixtures/cluster.js';
import { sha256digest } from './fixtures/hash.js';
import { startOrigin, type Origin } from './fixtures/origin.js';
import { runTool } from './fixtures/registry.js';
import { statsOf, tasksOf } from './fixtures/stats.js';

const MiB = 1024 * 1024;
const SKIP = spawnSync('sh', ['-c', 'command -v curl']).status === 0 ? undefined : 'curl is needed';

describe('HTTP proxy: a swarm behind per-host proxies', { skip: SKIP, timeout: 240_000 }, () => {
  let cluster: Cluster;
  let origin: Origin;
  const blob = randomBytes(9 * MiB + 77);
  const digest = sha256digest(blob);
  const blobPath = `/v2/library/app/blobs/${digest}`;
  const model = randomBytes(5 * MiB + 3);
  const files = new Map<string, Buffer>([
    [blobPath, blob],
    ['/models/big.safetensors', model],
  ]);

  before(async () => {
    cluster = new Cluster();
    origin = await startOrigin({ files, rateLimit: 40 * MiB });
  });

  after(async () => {
    await cluster?.close();
    await origin?.close();
  });

  test('curl through 3 peers at once: the origin sends each file once, all copies verified', { timeout: 180_000 }, async (t) => {
    const config = cluster.path('daemon.yaml');
    writeFileSync(config, ['proxy:', '  rules:', "    - regex: 'blobs/sha256.*'", "    - regex: '\\.safetensors$'", ''].join('\n'));
    const { url: scheduler } = await cluster.scheduler();
    const extra = ['--proxy', '127.0.0.1:0', '--config', config];
    await cluster.daemon({ scheduler, seed: true, extra });
    const peers = await Promise.all([0, 1, 2].map(() => cluster.daemon({ scheduler, extra })));
    const proxies = peers.map((p) => {
      const m = /proxy 127\.0\.0\.1:(\d+)/.exec(p.proc.stderr());
      assert.ok(m !== null, p.proc.stderr());
      return `http://127.0.0.1:${m[1]}`;
    });

    const env = (proxy: string): NodeJS.ProcessEnv => ({ http_proxy: proxy, no_proxy: '', NO_PROXY: '' });
    const pulls = proxies.flatMap((proxy, i) => [
      runTool('curl', ['-sS', '-f', '-o', cluster.path(`blob-${i}`), `${origin.url}${blobPath}`], { env: env(proxy), timeoutMs: 120_000 }),
      runTool('curl', ['-sS', '-f', '-o', cluster.path(`model-${i}`), `${origin.url}/models/big.safetensors`], { env: env(proxy), timeoutMs: 120_000 }),
    ]);
    const results = await Promise.all(pulls);
    results.forEach((r, i) => assert.equal(r.code, 0, `curl ${i}: ${r.stderr}`));
    for (let i = 0; i < proxies.length; i++) {
      assert.ok(readFileSync(cluster.path(`blob-${i}`)).equals(blob), `blob through proxy ${i} differs`);
      assert.ok(readFileSync(cluster.path(`model-${i}`)).equals(model), `model through proxy ${i} differs`);
    }
    assert.equal(origin.bytesServed(blobPath), blob.length, `the origin sent the blob ${origin.bytesServed(blobPath) / blob.length} times`);
    assert.equal(origin.bytesServed('/models/big.safetensors'), model.length, `the origin sent the model ${origin.bytesServed('/models/big.safetensors') / model.length} times`);

    let p2p = 0;
    for (const p of peers) {
      const stats = await statsOf(p.api);
      const tasks = tasksOf(stats);
      const blobTask = tasks.find((x) => x.taskId === digest.slice(7));
      const modelTask = tasks.find((x) => x.url.endsWith('/models/big.safetensors'));
      for (const task of [blobTask, modelTask]) {
        assert.ok(task !== undefined, JSON.stringify(tasks));
        assert.deepEqual(task.requesters, ['proxy']);
        assert.equal(task.bytes.source, 0, 'a peer went to the origin');
        p2p += task.bytes.peers + task.bytes.seeds;
      }
      assert.equal(stats.proxy?.p2p, 2);
    }
    assert.equal(p2p, 3 * (blob.length + model.length));
    t.diagnostic(`origin requests: blob ${origin.requests(blobPath)}, model ${origin.requests('/models/big.safetensors')}`);
  });
});
