/** Faults injected for real: SIGKILLed parents, a lying peer, a scheduler restart. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fetchStats } from '../src/cli/daemon-client.js';
import { Cluster, run, type Proc } from './fixtures/cluster.js';
import { sha256hex } from './fixtures/hash.js';
import { startOrigin, type Origin } from './fixtures/origin.js';

const MiB = 1024 * 1024;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

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

  test('a parent killed with SIGKILL mid-transfer does not fail its children', async () => {
    const { url: scheduler } = await cluster.scheduler();
    await cluster.daemon({ scheduler, seed: true, uploadRate: '16MiB' });
    const peers = await Promise.all(Array.from({ length: 4 }, () => cluster.daemon({ scheduler, uploadRate: '16MiB' })));
    const url = `${origin.url}/a.bin`;
    const gets = peers.map((p, i) => cluster.get(url, cluster.path(`kill-${i}`), ['-e', p.api]));
    await sleep(1200);
    await peers[0]!.proc.kill('SIGKILL');
    const codes = await Promise.all(gets.slice(1).map((g) => g.exited));
    assert.deepEqual(codes, [0, 0, 0], gets.map((g) => g.stderr()).join('\n'));
    for (let i = 1; i < 4; i++) assert.equal(sha256hex(readFileSync(cluster.path(`kill-${i}`))), expected);
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
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      const exited = new Promise<number | string>((res) => child.on('exit', (c, s) => res(c ?? s ?? -1)));
      const proc: Proc = { child, stderr: () => err, exited, kill: async (sig = 'SIGTERM') => (child.kill(sig), exited) };
      cluster.procs.push(proc);
      return proc;
    })();
    for (let i = 0; i < 200 && !liar.stderr().includes('upload port'); i++) await sleep(50);
    // The liar holds the whole file (fetched honestly), then lies when serving it.
    const own = cluster.get(url, cluster.path('liar-out'), ['-e', cluster.path('liar.sock')]);
    assert.equal(await own.exited, 0, own.stderr());
    const victims = await Promise.all(Array.from({ length: 3 }, () => cluster.daemon({ scheduler })));
    const gets = victims.map((v, i) => cluster.get(url, cluster.path(`victim-${i}`), ['-e', v.api]));
    assert.deepEqual(await Promise.all(gets.map((g) => g.exited)), [0, 0, 0], gets.map((g) => g.stderr()).join('\n'));
    let corrupt = 0;
    for (let i = 0; i < 3; i++) {
      assert.equal(sha256hex(readFileSync(cluster.path(`victim-${i}`))), expected);
      const stats = await fetchStats(victims[i]!.api);
      const task = (stats['tasks'] as Array<Record<string, unknown>>)[0]!;
      corrupt += Number(task['corruptPieces']);
      // Once caught, the liar is excluded: at most the pieces in flight from it at that moment fail.
      assert.ok(Number(task['corruptPieces']) <= 4, `liar not excluded: ${JSON.stringify(task)}`);
    }
    assert.ok(corrupt > 0, 'no victim ever asked the liar: the test proves nothing');
  });

  test('the scheduler killed and restarted mid-download: downloads still complete', async () => {
    const sched = await cluster.scheduler();
    await cluster.daemon({ scheduler: sched.url, seed: true, uploadRate: '12MiB' });
    const peers = await Promise.all(Array.from({ length: 3 }, () => cluster.daemon({ scheduler: sched.url, uploadRate: '12MiB' })));
    const url = `${origin.url}/c.bin`;
    const gets = peers.map((p, i) => cluster.get(url, cluster.path(`restart-${i}`), ['-e', p.api]));
    // Kill it mid-download: once every peer holds some pieces.
    for (let i = 0; i < 300; i++) {
      const held = await Promise.all(
        peers.map(async (p) => {
          const tasks = (await fetchStats(p.api))['tasks'] as Array<Record<string, unknown>>;
          return Number(tasks[0]?.['completedBytes'] ?? 0);
        }),
      );
      if (held.every((b) => b > 0)) break;
      await sleep(50);
    }
    await sched.proc.kill('SIGKILL');
    await sleep(500);
    const again = run(['scheduler', '--listen', `127.0.0.1:${sched.port}`, '--log-level', 'warn']);
    cluster.procs.push(again);
    const codes = await Promise.all(gets.map((g) => g.exited));
    assert.deepEqual(codes, [0, 0, 0], gets.map((g) => g.stderr()).join('\n'));
    for (let i = 0; i < 3; i++) assert.equal(sha256hex(readFileSync(cluster.path(`restart-${i}`))), expected);
    assert.ok(origin.bytesServed('/c.bin') <= content.length * 1.05, `origin served ${origin.bytesServed('/c.bin') / content.length} copies`);
  });
});
