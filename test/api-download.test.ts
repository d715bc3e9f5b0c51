/** The local API's download stream: progress events only for a client that wants them. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import { requestDownload, type DownloadEvent } from '../src/cli/daemon-client.js';
import { Cluster, run } from './fixtures/cluster.js';
import { startOrigin } from './fixtures/origin.js';
import { until } from './fixtures/wait.js';

const MiB = 1024 * 1024;
const cluster = new Cluster();
const origin = await startOrigin({
  files: new Map([
    ['/a.bin', randomBytes(6 * MiB)],
    ['/b.bin', randomBytes(6 * MiB)],
  ]),
  rateLimit: 12 * MiB,
});
after(async () => {
  await cluster.close();
  await origin.close();
});

async function events(url: string, progress: boolean | undefined): Promise<DownloadEvent[]> {
  const out: DownloadEvent[] = [];
  for await (const e of requestDownload(cluster.path('api.sock'), { url, ...(progress === undefined ? {} : { progress }) }, AbortSignal.timeout(30_000))) out.push(e);
  return out;
}

test('local API: progress events by default, none when the client says progress: false', { timeout: 60_000 }, async () => {
  const proc = run(['daemon', '--listen', '127.0.0.1:0', '--data', cluster.path('data'), '--api', cluster.path('api.sock'), '--log-level', 'warn']);
  cluster.procs.push(proc);
  await until(() => proc.stderr().includes('upload port'), 'the daemon to start', { within: 10_000 });

  const chatty = await events(`${origin.url}/a.bin`, undefined);
  assert.equal(chatty.at(-1)?.event, 'done');
  assert.ok(chatty.filter((e) => e.event === 'progress').length > 0, 'a 0.5 s download reports progress');

  const quiet = await events(`${origin.url}/b.bin`, false);
  assert.deepEqual(
    quiet.map((e) => e.event),
    ['started', 'done'],
  );
});
