/**
 * Several schedulers (docs/architecture.md, "Several schedulers"): three
 * real schedulers with mutual TLS, daemons given all three. The task lives
 * on the first of its rendezvous order; that scheduler is SIGKILLed
 * mid-download, and the task moves to the next: every copy is byte-exact,
 * and the origin sends it about once (the downloads in flight carry on with
 * the pieces they hold).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { join } from 'node:path';
import { rendezvousOrder } from '../src/common/rendezvous.js';
import { createSchedulerClient } from '../src/daemon/scheduler-link.js';
import { loadTls } from '../src/identity/tls.js';
import { Cluster } from './fixtures/cluster.js';
import { startOrigin } from './fixtures/origin.js';
import { firstTaskOf } from './fixtures/stats.js';
import { until } from './fixtures/wait.js';

const MiB = 1024 * 1024;
const content = randomBytes(32 * MiB);
const cluster = new Cluster();
// Slow enough that the kill lands mid-download: 4 s at the origin's pace.
const origin = await startOrigin({ files: new Map([['/f.bin', content]]), rateLimit: 8 * MiB });
after(async () => {
  await cluster.close();
  await origin.close();
});

test('three schedulers, the task\'s one killed mid-download: every copy byte-exact, the origin sends about one copy', { timeout: 120_000 }, async (t) => {
  await cluster.secure();
  const schedulers = [await cluster.scheduler(), await cluster.scheduler(), await cluster.scheduler()];
  const all = schedulers.flatMap((s) => ['--scheduler', s.url]);
  const first = (options: { seed?: boolean }) => cluster.daemon({ scheduler: schedulers[0]!.url, ...options, extra: all.slice(2) });
  await first({ seed: true });
  const peers = [await first({}), await first({}), await first({})];

  const gets = peers.map((p, i) => cluster.get(`${origin.url}/f.bin`, cluster.path(`f${i}.out`), ['-e', p.api]));
  let taskId = '';
  await until(async () => (taskId = (await firstTaskOf(peers[0]!.api))?.taskId ?? '') !== '', 'the download to register', { within: 20_000, every: 50 });
  const [owner, next] = rendezvousOrder(taskId, schedulers, (s) => s.url);
  await until(async () => ((await firstTaskOf(peers[0]!.api))?.completedBytes ?? 0) >= 4 * MiB, 'a peer to hold 4 MiB', { within: 30_000, every: 50 });
  assert.ok(origin.bytesServed('/f.bin') < content.length, 'the origin sent the whole file before the kill: the test proves nothing');
  assert.equal(await owner!.proc.kill('SIGKILL'), 'SIGKILL');
  const servedAtKill = origin.bytesServed('/f.bin');

  for (const [i, get] of gets.entries()) {
    assert.equal(await get.exited, 0, get.stderr());
    assert.deepEqual(readFileSync(cluster.path(`f${i}.out`)), content, `copy ${i} differs`);
  }
  // The task moved: the next scheduler has every peer of it (the seed and the three), none of which went to the origin there but the seed.
  const dir = cluster.tlsDir!;
  const admin = loadTls({ ca: join(dir, 'ca.crt'), cert: join(dir, 'admin.crt'), key: join(dir, 'admin.key') }, ['admin']);
  const stat = await createSchedulerClient(next!.url, admin).stat({}, { signal: AbortSignal.timeout(10_000) });
  const moved = stat.tasks.find((task) => task.taskId === taskId);
  assert.ok(moved !== undefined, `the task is not on ${next!.url}`);
  assert.equal(moved.peers.length, 4, `peers of the task on the next scheduler: ${moved.peers.map((p) => p.peerId).join(', ')}`);
  assert.equal(moved.backToSourceCount, 0, 'a peer was sent to the origin after the move');
  const copies = origin.bytesServed('/f.bin') / content.length;
  t.diagnostic(`origin: ${copies.toFixed(3)} copies (${(servedAtKill / MiB).toFixed(1)} MiB sent before the kill); the task moved to ${next!.url}`);
  assert.ok(copies <= 1.05, `the origin sent ${copies.toFixed(3)} copies`);
  // The survivors still run; the killed one is gone.
  assert.equal(next!.proc.child.exitCode, null);
});
