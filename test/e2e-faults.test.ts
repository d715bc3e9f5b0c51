/** Faults injected for real: SIGKILLed parents, a lying peer, a scheduler restart. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cluster, type Proc } from './fixtures/cluster.js';
import { sha256hex } from './fixtures/hash.js';
import { startOrigin, type Origin } from './fixtures/origin.js';
import { firstTaskOf, isPeerOf, statsOf, type TaskStatsJSON } from './fixtures/stats.js';
import { until } from './fixtures/wait.js';

const MiB = 1024 * 1024;
/** Stats are read over each daemon's API socket; this often is plenty. */
const POLL = { within: 30_000, every: 50 };

/** The first task of each daemon (undefined before its get registers). */
function firstTasks(daemons: ReadonlyArray<{ api: string }>): Promise<Array<TaskStatsJSON | undefined>> {
  return Promise.all(daemons.map((d) => firstTaskOf(d.api)));
}

/** A peer still downloading that another peer still downloading has taken bytes from, by index. */
function feeding(tasks: ReadonlyArray<TaskStatsJSON | undefined>, hosts: readonly string[]): { parent: number; child: number } | undefined {
  for (const [child, task] of tasks.entries()) {
    if (task?.state !== 'running') continue;
    for (const [peerId, bytes] of Object.entries(task.parents)) {
      const parent = hosts.findIndex((host) => isPeerOf(peerId, host));
      if (parent >= 0 && bytes > 0 && tasks[parent]?.state === 'running') return { parent, child };
    }
  }
  return undefined;
}

describe('faults', { timeout: 300_000 }, () => {
  const content = randomBytes(32 * MiB);
  const expected = sha256hex(content);
  let origin: Origin;
  let cluster: Cluster;

  before(async () => {
    origin = await startOrigin({ files: new Map([['/a.bin', content], ['/b.bin', content], ['/c.bin', content]]) });
    cluster = new Cluster();
  });
  after(async () => {
    await cluster.close();
    await origin.close();
  });

  test('a parent killed with SIGKILL mid-transfer does not fail its children', async (t) => {
    const { url: scheduler } = await cluster.scheduler();
    await cluster.daemon({ scheduler, seed: true, uploadRate: '16MiB' });
    const peers = await Promise.all(Array.from({ length: 4 }, () => cluster.daemon({ scheduler, uploadRate: '16MiB' })));
    const hosts = await Promise.all(peers.map(async (p) => (await statsOf(p.api)).hostId));
    const url = `${origin.url}/a.bin`;
    const gets = peers.map((p, i) => cluster.get(url, cluster.path(`kill-${i}`), ['-e', p.api]));
    // The victim is a parent mid-transfer: it is still downloading, and a peer still downloading has taken bytes from it.
    let link: { parent: number; child: number } | undefined;
    await until(async () => (link = feeding(await firstTasks(peers), hosts)) !== undefined, 'a peer to feed another mid-transfer', POLL);
    const { parent, child } = link!;
    assert.equal(gets[child]!.child.exitCode, null, 'the child finished before the kill: the test proves nothing');
    assert.equal(await peers[parent]!.proc.kill('SIGKILL'), 'SIGKILL', 'the parent exited before the kill landed');
    t.diagnostic(`killed peer ${parent} while peer ${child} took pieces from it`);
    const others = [0, 1, 2, 3].filter((i) => i !== parent);
    const codes = await Promise.all(others.map((i) => gets[i]!.exited));
    assert.deepEqual(codes, [0, 0, 0], others.map((i) => gets[i]!.stderr()).join('\n'));
    for (const i of others) assert.equal(sha256hex(readFileSync(cluster.path(`kill-${i}`))), expected);
  });

  test('a peer serving corrupted bytes is caught, excluded, and the output is still correct', async () => {
    const { url: scheduler } = await cluster.scheduler();
    await cluster.daemon({ scheduler, seed: true, uploadRate: '32MiB' });
    const url = `${origin.url}/b.bin`;
    const liar: Proc = (() => {
      const child = spawn(process.execPath, ['--import', 'tsx', resolve(import.meta.dirname, 'fixtures/liar-daemon.ts'), scheduler, cluster.path('liar'), cluster.path('liar.sock')], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const exited = new Promise<number | string>((res) => child.on('exit', (c, s) => res(c ?? s ?? -1)));
      const proc: Proc = { child, stderr: () => err, exited, kill: async (sig = 'SIGTERM') => (child.kill(sig), exited) };
      cluster.procs.push(proc);
      return proc;
    })();
    await until(() => liar.stderr().includes('upload port'), 'the liar to start', { within: 10_000 });
    // The liar holds the whole file (fetched honestly), then lies when serving it.
    const own = cluster.get(url, cluster.path('liar-out'), ['-e', cluster.path('liar.sock')]);
    assert.equal(await own.exited, 0, own.stderr());
    const victims = await Promise.all(Array.from({ length: 3 }, () => cluster.daemon({ scheduler })));
    const gets = victims.map((v, i) => cluster.get(url, cluster.path(`victim-${i}`), ['-e', v.api]));
    const codes = await Promise.all(gets.map((g) => g.exited));
    const tasks = await firstTasks(victims);
    const corrupt = tasks.map((t) => t?.corruptPieces ?? 0);
    assert.ok(corrupt.some((n) => n > 0), 'no victim ever asked the liar: the test proves nothing');
    assert.deepEqual(codes, [0, 0, 0], gets.map((g) => g.stderr()).join('\n'));
    for (let i = 0; i < 3; i++) {
      assert.equal(sha256hex(readFileSync(cluster.path(`victim-${i}`))), expected);
      // Once caught, the liar is excluded: at most the pieces in flight from it at that moment fail.
      assert.ok(corrupt[i]! <= 4, `liar not excluded: ${JSON.stringify(tasks[i])}`);
    }
  });

  test('the scheduler killed and restarted mid-download: downloads still complete', async () => {
    const sched = await cluster.scheduler();
    await cluster.daemon({ scheduler: sched.url, seed: true, uploadRate: '12MiB' });
    const peers = await Promise.all(Array.from({ length: 3 }, () => cluster.daemon({ scheduler: sched.url, uploadRate: '12MiB' })));
    const url = `${origin.url}/c.bin`;
    const gets = peers.map((p, i) => cluster.get(url, cluster.path(`restart-${i}`), ['-e', p.api]));
    // Kill it mid-download: once every peer holds some pieces, and none all of them.
    let held: number[] = [];
    await until(async () => (held = (await firstTasks(peers)).map((t) => t?.completedBytes ?? 0)).every((b) => b > 0), 'every peer to hold some pieces', POLL);
    assert.ok(held.every((b) => b < content.length), `a peer had finished before the kill (${held.join(', ')} B): the test proves nothing`);
    assert.equal(await sched.proc.kill('SIGKILL'), 'SIGKILL', 'the scheduler exited before the kill landed');
    await until(async () => (await Promise.all(peers.map(async (p) => (await statsOf(p.api)).scheduler.connected))).every((c) => !c), 'every peer to lose its scheduler', POLL);
    assert.ok(gets.some((g) => g.child.exitCode === null), 'every download finished while the scheduler was down: the restart proves nothing');
    await cluster.scheduler(sched.port);
    const codes = await Promise.all(gets.map((g) => g.exited));
    assert.deepEqual(codes, [0, 0, 0], gets.map((g) => g.stderr()).join('\n'));
    for (let i = 0; i < 3; i++) assert.equal(sha256hex(readFileSync(cluster.path(`restart-${i}`))), expected);
    assert.ok(origin.bytesServed('/c.bin') <= content.length * 1.05, `origin served ${origin.bytesServed('/c.bin') / content.length} copies`);
  });
});
