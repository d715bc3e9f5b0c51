/** A daemon killed mid-download and restarted on the same data directory resumes from its pieces. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { after, test } from 'node:test';
import { fetchStats } from '../src/cli/daemon-client.js';
import { Cluster, run } from './fixtures/cluster.js';
import { startOrigin } from './fixtures/origin.js';

const MiB = 1024 * 1024;
const content = randomBytes(24 * MiB);
const cluster = new Cluster();
const origin = await startOrigin({ files: new Map([['/r.bin', content]]), rateLimit: 12 * MiB });
after(async () => {
  await cluster.close();
  await origin.close();
});

async function startDaemon(): Promise<ReturnType<typeof run>> {
  const proc = run(['daemon', '--listen', '127.0.0.1:0', '--data', cluster.path('data'), '--api', cluster.path('api.sock'), '--log-level', 'warn']);
  cluster.procs.push(proc);
  for (let i = 0; i < 400 && !proc.stderr().includes('upload port'); i++) await new Promise((r) => setTimeout(r, 25));
  return proc;
}

test('daemon restart: completed pieces are reused, the local API socket is private', { timeout: 120_000 }, async () => {
  const first = await startDaemon();
  assert.equal(statSync(cluster.path('api.sock')).mode & 0o777, 0o600);
  const out = cluster.path('r.out');
  const get = cluster.get(`${origin.url}/r.bin`, out, ['-e', cluster.path('api.sock')]);
  // Kill the daemon once it holds some pieces.
  for (let i = 0; i < 400; i++) {
    const tasks = (await fetchStats(cluster.path('api.sock')).catch(() => ({ tasks: [] })))['tasks'] as Array<Record<string, unknown>>;
    if (Number(tasks[0]?.['completedBytes'] ?? 0) >= 6 * MiB) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  await first.kill('SIGKILL');
  assert.notEqual(await get.exited, 0);
  assert.equal(existsSync(out), false, 'an interrupted get left a file at FILE');
  const servedBefore = origin.bytesServed('/r.bin');
  assert.ok(servedBefore < content.length, 'the download finished before the kill; the test proves nothing');

  await startDaemon();
  const again = cluster.get(`${origin.url}/r.bin`, out, ['-e', cluster.path('api.sock')]);
  assert.equal(await again.exited, 0, again.stderr());
  assert.deepEqual(readFileSync(out), content);
  // Resumed: the origin sent the rest, not the whole file again (a piece in flight may repeat).
  const total = origin.bytesServed('/r.bin');
  assert.ok(total <= content.length + 2 * MiB, `origin sent ${total / content.length} copies`);
});
