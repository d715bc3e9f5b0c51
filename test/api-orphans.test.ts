/**
 * No orphans (issue 15, item 8), on a real `shoal daemon` process: a download
 * the local API started is released the moment its client goes, however it
 * goes (at once, or with its request pipelined behind another, whose
 * response never had a socket to close); and the daemon process exits after
 * SIGTERM, with nothing left holding it (a refused request with a timeout
 * used to leave its timer armed: "daemon stopped", and the process ran on).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cluster, run, type Proc } from './fixtures/cluster.js';
import { startOrigin, type Origin } from './fixtures/origin.js';
import { statsOf } from './fixtures/stats.js';
import { until } from './fixtures/wait.js';

const MIB = 1024 * 1024;
const cluster = new Cluster();
const api = cluster.path('api.sock');
let origin: Origin;
let daemon: Proc;

before(async () => {
  // Slow enough that a download is still reading when the client has gone.
  origin = await startOrigin({ files: new Map(['a', 'b', 'c'].map((f) => [`/${f}.bin`, randomBytes(64 * MIB)])), rateLimit: 8 * MIB });
  daemon = run(['daemon', '--listen', '127.0.0.1:0', '--data', cluster.path('data'), '--api', api, '--log-level', 'warn']);
  cluster.procs.push(daemon);
  await until(() => daemon.stderr().includes('upload port'), 'the daemon to start');
});
after(async () => {
  await cluster.close();
  await origin.close();
});

function post(body: unknown): string {
  const json = JSON.stringify(body);
  return `POST /v1/download HTTP/1.1\r\nHost: shoal\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`;
}

/** Writes `bytes` on a fresh API connection and closes it at once. */
async function postAndLeave(bytes: string): Promise<void> {
  const socket = connect({ path: api });
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.end(bytes);
  socket.destroy();
}

async function stateOf(path: string): Promise<{ state: string; code: string | undefined } | undefined> {
  const task = (await statsOf(api)).tasks.find((t) => t.url === `${origin.url}${path}`);
  return task === undefined ? undefined : { state: task.state, code: task.error?.code };
}

/** The download of `path` ended ABORTED (or is gone), and the origin is not read for it any more. */
async function assertReleased(path: string): Promise<void> {
  await until(async () => (await stateOf(path)) !== undefined, `the daemon to start ${path}`, { within: 10_000 });
  await until(
    async () => {
      const s = await stateOf(path);
      return s === undefined || (s.state === 'failed' && s.code === 'ABORTED');
    },
    `the download of ${path} to be released (it is ${JSON.stringify(await stateOf(path))})`,
    { within: 5_000 },
  );
  const read = origin.bytesServed(path);
  await sleep(700);
  assert.equal(origin.bytesServed(path), read, `the origin is still read for ${path}`);
  assert.ok(read < 64 * MIB, `${path} was read to its end: the test proves nothing`);
}

describe('the local API leaves no orphans, and the daemon exits after SIGTERM', { timeout: 120_000 }, () => {
  it('a client that posts a download and disconnects at once: the download is released', async () => {
    await postAndLeave(post({ url: `${origin.url}/a.bin`, progress: false }));
    await assertReleased('/a.bin');
  });

  it('two downloads pipelined on one connection, then a disconnect: both are released', async () => {
    await postAndLeave(post({ url: `${origin.url}/b.bin`, progress: false }) + post({ url: `${origin.url}/c.bin`, progress: false }));
    await assertReleased('/b.bin');
    await assertReleased('/c.bin');
  });

  it('a refused request with a timeout arms nothing; SIGTERM: the process exits, nothing left holding it', async () => {
    const res = await new Promise<number>((resolve, reject) => {
      const socket = connect({ path: api });
      socket.on('error', reject);
      socket.once('data', (d: Buffer) => {
        socket.destroy();
        resolve(Number(/^HTTP\/1\.1 (\d+)/.exec(d.toString())?.[1]));
      });
      socket.write(post({ url: 'ftp://origin/file', timeoutMs: 600_000 }));
    });
    assert.equal(res, 400, 'the request is refused');
    daemon.child.kill('SIGTERM');
    const exited = await Promise.race([daemon.exited, sleep(10_000).then(() => 'still running')]);
    assert.equal(exited, 0, `the daemon did not exit after SIGTERM: ${daemon.stderr().slice(-2000)}`);
    assert.doesNotMatch(daemon.stderr(), /still running .* after the command finished/, 'something held the stopped daemon');
  });
});
