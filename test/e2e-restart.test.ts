/** A daemon killed mid-download and restarted on the same data directory resumes from its pieces. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { after, test } from 'node:test';
import { Cluster, run, type Proc } from './fixtures/cluster.js';
import { startOrigin } from './fixtures/origin.js';
import { firstTaskOf } from './fixtures/stats.js';
import { until } from './fixtures/wait.js';

const MiB = 1024 * 1024;
const content = randomBytes(24 * MiB);
const cluster = new Cluster();
const origin = await startOrigin({ files: new Map([['/r.bin', content]]), rateLimit: 12 * MiB });
after(async () => {
  await cluster.close();
  await origin.close();
});

async function startDaemon(): Promise<Proc> {
  const proc = run(['daemon', '--listen', '127.0.0.1:0', '--data', cluster.path('data'), '--api', cluster.path('api.sock'), '--log-level', 'warn']);
  cluster.procs.push(proc);
  await until(() => proc.stderr().includes('upload port') || proc.child.exitCode !== null, 'the daemon to start', { within: 10_000 });
  assert.equal(proc.child.exitCode, null, `the daemon exited: ${proc.stderr()}`);
  return proc;
}

/** Bytes the daemon's task holds (0 before the get registers it). */
async function held(): Promise<number> {
  return (await firstTaskOf(cluster.path('api.sock')))?.completedBytes ?? 0;
}

test('daemon restart: completed pieces are reused, the local API socket is private', { timeout: 120_000 }, async () => {
  const first = await startDaemon();
  assert.equal(statSync(cluster.path('api.sock')).mode & 0o777, 0o600);
  const out = cluster.path('r.out');
  const get = cluster.get(`${origin.url}/r.bin`, out, ['-e', cluster.path('api.sock')]);
  // Kill the daemon once it holds some pieces, mid-download.
  let before = 0;
  await until(async () => (before = await held()) >= 6 * MiB, 'the daemon to hold 6 MiB', { within: 30_000, every: 50 });
  assert.ok(before < content.length, 'the download finished before the kill: the test proves nothing');
  assert.equal(await first.kill('SIGKILL'), 'SIGKILL', 'the daemon exited before the kill landed');
  const servedBefore = origin.bytesServed('/r.bin');
  assert.ok(servedBefore < content.length, 'the origin sent the whole file before the kill: the test proves nothing');
  assert.notEqual(await get.exited, 0);
  assert.equal(existsSync(out), false, 'an interrupted get left a file at FILE');

  await startDaemon();
  const again = cluster.get(`${origin.url}/r.bin`, out, ['-e', cluster.path('api.sock')]);
  assert.equal(await again.exited, 0, again.stderr());
  assert.deepEqual(readFileSync(out), content);
  // Resumed: the origin sent the rest, not the whole file again (a piece in flight may repeat).
  const total = origin.bytesServed('/r.bin');
  assert.ok(total <= content.length + 2 * MiB, `origin sent ${total / content.length} copies`);
});
