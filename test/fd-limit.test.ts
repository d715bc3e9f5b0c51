/**
 * Issue 15, item 5: a daemon under a 128-descriptor limit keeps serving
 * download after download; a cached task holds no descriptor. The daemon is
 * a real process started under `prlimit --nofile=128:128`; the downloads go
 * through its local API.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { requestDownload } from '../src/cli/daemon-client.js';
import { Cluster, run, type Proc } from './fixtures/cluster.js';
import { startOrigin, type Origin } from './fixtures/origin.js';
import { until } from './fixtures/wait.js';

const DOWNLOADS = 150;
const LIMIT = 128;
const hasPrlimit = spawnSync('prlimit', ['--version']).status === 0;

/** The daemon, under the descriptor limit. */
function limitedDaemon(cluster: Cluster, data: string, api: string): Proc {
  const proc = run(['daemon', '--listen', '127.0.0.1:0', '--data', data, '--api', api, '--log-level', 'warn'], {}, ['prlimit', `--nofile=${LIMIT}:${LIMIT}`]);
  cluster.procs.push(proc);
  return proc;
}

async function download(api: string, url: string): Promise<string> {
  for await (const event of requestDownload(api, { url, headers: [], progress: false }, AbortSignal.timeout(30_000))) {
    if (event.event === 'done') return 'done';
    if (event.event === 'error') return `${String(event.error?.code)}: ${String(event.error?.message)}`;
  }
  return 'no answer';
}

describe('a daemon under a low descriptor limit', { timeout: 240_000, skip: hasPrlimit ? false : 'needs prlimit (util-linux)' }, () => {
  const files = new Map<string, Buffer>();
  for (let i = 0; i < DOWNLOADS; i++) files.set(`/s${i}`, randomBytes(1024 + i));
  let origin: Origin;
  let cluster: Cluster;
  before(async () => {
    origin = await startOrigin({ files });
    cluster = new Cluster();
  });
  after(async () => {
    await cluster.close();
    await origin.close();
  });

  test(`${DOWNLOADS} distinct downloads under ${LIMIT} descriptors all succeed, and no content file stays open`, async () => {
    const data = cluster.path('data');
    const api = cluster.path('d.sock');
    const daemon = limitedDaemon(cluster, data, api);
    await until(() => /shoal daemon .*upload port \d+/.test(daemon.stderr()) || daemon.child.exitCode !== null, 'the daemon to start', { within: 30_000 });
    const pid = daemon.child.pid!;
    assert.match(readFileSync(`/proc/${pid}/limits`, 'utf8'), new RegExp(`Max open files\\s+${LIMIT}\\s+${LIMIT}`), 'the limit did not apply');

    const failures: string[] = [];
    for (let i = 0; i < DOWNLOADS; i++) {
      const outcome = await download(api, `${origin.url}/s${i}`);
      if (outcome !== 'done') failures.push(`#${i} ${outcome}`);
    }
    assert.deepEqual(failures.slice(0, 5), [], `${failures.length} of ${DOWNLOADS} downloads failed`);

    const contentFds = (): number =>
      readdirSync(`/proc/${pid}/fd`).filter((fd) => {
        try {
          return readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith(`${data}/content/`);
        } catch {
          return false;
        }
      }).length;
    // A file is closed as its task's download lets go of it, which may be just after the answer went out.
    await until(() => contentFds() === 0, 'the content files of complete tasks to be closed', { within: 5000 });

    // The CLI through the same daemon, after all that.
    const get = run(['get', `${origin.url}/s0`, '-O', cluster.path('s0.out'), '-e', api, '-q']);
    assert.equal(await get.exited, 0, get.stderr());
    assert.deepEqual(readFileSync(cluster.path('s0.out')), files.get('/s0'));
    assert.equal(daemon.child.exitCode, null, `the daemon died: ${daemon.stderr()}`);
  });
});
