/**
 * `npm run demo`: an origin, a scheduler, a seed peer and 4 peers as separate
 * processes on 127.0.0.1; a 256 MiB file to all peers at once. Prints each
 * peer's time and where its bytes came from, the origin's copies, and checks
 * every output's SHA-256.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fetchStats } from '../src/cli/daemon-client.js';
import { Cluster } from '../test/fixtures/cluster.js';
import { startOrigin } from '../test/fixtures/origin.js';

const MiB = 1024 * 1024;
const size = Number(process.env['DEMO_MIB'] ?? 256) * MiB;
const peersWanted = Number(process.env['DEMO_PEERS'] ?? 4);
const content = randomBytes(size);
const expected = createHash('sha256').update(content).digest('hex');
const origin = await startOrigin({ files: new Map([['/demo.bin', content]]) });
const cluster = new Cluster();
try {
  const { url: scheduler } = await cluster.scheduler();
  await cluster.daemon({ scheduler, seed: true });
  const peers = await Promise.all(Array.from({ length: peersWanted }, () => cluster.daemon({ scheduler })));
  console.log(`origin ${origin.url}/demo.bin (${size / MiB} MiB), scheduler ${scheduler}, 1 seed peer, ${peers.length} peers`);
  const started = Date.now();
  const gets = peers.map((p, i) => {
    const g = cluster.get(`${origin.url}/demo.bin`, cluster.path(`out-${i}`), ['-e', p.api]);
    return g.exited.then((code) => ({ code, ms: Date.now() - started, stderr: g.stderr() }));
  });
  const results = await Promise.all(gets);
  let ok = true;
  for (const [i, r] of results.entries()) {
    const stats = await fetchStats(peers[i]!.api);
    const task = stats.tasks[0];
    const bytes = task?.bytes ?? { cache: 0, peers: 0, seeds: 0, source: 0 };
    const same = r.code === 0 && createHash('sha256').update(readFileSync(cluster.path(`out-${i}`))).digest('hex') === expected;
    ok &&= same;
    console.log(
      `peer ${i}: ${(r.ms / 1000).toFixed(2)} s (daemon ${((task?.durationMs ?? 0) / 1000).toFixed(2)} s), from origin ${(bytes.source / MiB).toFixed(1)} MiB, ` +
        `seed ${(bytes.seeds / MiB).toFixed(1)} MiB, peers ${(bytes.peers / MiB).toFixed(1)} MiB, sha256 ${same ? 'OK' : 'MISMATCH ' + r.stderr}`,
    );
  }
  console.log(`origin served ${(origin.bytesServed('/demo.bin') / size).toFixed(3)} copies of the file; last peer done after ${(Math.max(...results.map((r) => r.ms)) / 1000).toFixed(2)} s`);
  process.exitCode = ok ? 0 : 1;
} finally {
  await cluster.close();
  await origin.close();
}
