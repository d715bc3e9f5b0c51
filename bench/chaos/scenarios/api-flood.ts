/**
 * 1,000 concurrent requests on one daemon's local API: downloads of a few
 * small files (joined to one task each), stats and health reads, and
 * clients that post a download and go away at once (their downloads, of a
 * stalled URL nobody else wants, must not keep running: no orphans).
 */
import { request } from 'node:http';
import { statsOf } from '../../../test/fixtures/stats.js';
import type { Scenario } from '../scenario.js';
import type { DownloadRecord } from '../ledger.js';
import { KiB, freshFile, poll } from './common.js';

/** One GET on the API; resolves with the status, or an error message. */
function apiGet(socketPath: string, path: string, within: number): Promise<number | string> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path, method: 'GET', timeout: within }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', (err) => resolve(err.message));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${within} ms`)));
    req.on('error', (err) => resolve(err.message));
    req.end();
  });
}

/**
 * POSTs a download and closes the connection: `after` ms after the body is
 * written (0: in the same tick; 'reset': a TCP RST at once), or once the
 * daemon has answered `started`.
 * Resolves with whether the request reached the daemon.
 */
function postAndLeave(socketPath: string, url: string, after: number | 'started' | 'reset'): Promise<boolean> {
  const atOnce = after !== 'started';
  return new Promise((resolve) => {
    const body = JSON.stringify({ url, headers: [], progress: false });
    const req = request({ socketPath, path: '/v1/download', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve(true);
      });
      res.on('error', () => resolve(false));
    });
    req.on('error', () => resolve(atOnce));
    req.end(body, () => {
      if (after === 'reset') {
        try {
          req.socket?.resetAndDestroy(); // a unix socket has no RST: a plain close then
        } catch {
          req.destroy();
        }
      }
      else if (after === 0) req.destroy();
      else if (after !== 'started') setTimeout(() => req.destroy(), after);
    });
  });
}

export const apiFlood: Scenario = {
  name: 'api-flood',
  fault: '1,000 concurrent API requests, a tenth of them clients that leave at once',
  async run(ctx) {
    const { swarm, sizes, rng } = ctx;
    const node = rng.pick(swarm.peers);
    const origin = swarm.origin.server;
    const files = Array.from({ length: 16 }, (_, i) => `/flood-${i}.bin`);
    for (const path of files) freshFile(ctx, path, rng.int(1, 256) * KiB);
    const leaving = Array.from({ length: Math.round(sizes.apiRequests / 10) }, (_, i) => `/flood-orphan-${i}.bin`);
    for (const path of leaving) {
      freshFile(ctx, path, 64 * KiB);
      origin.fault(path, { kind: 'stall' }); // never answers: only a cancel ends these downloads early
    }
    const downloads: Array<Promise<DownloadRecord>> = [];
    const reads: Array<Promise<number | string>> = [];
    const left: Array<Promise<boolean>> = [];
    let orphan = 0;
    for (let i = 0; i < sizes.apiRequests; i++) {
      const roll = rng.next();
      if (roll < 0.1 && orphan < leaving.length) left.push(postAndLeave(node.api, swarm.origin.url(leaving[orphan++]!), rng.pick([0, 'reset', 1, 5, 'started'] as const)));
      else if (roll < 0.3) reads.push(apiGet(node.api, rng.pick(['/v1/stats', '/healthy']), 30_000));
      else downloads.push(ctx.ledger.api(node, rng.pick(files)));
    }
    const [records, answers, gone] = await Promise.all([Promise.all(downloads), Promise.all(reads), Promise.all(left)]);
    const badReads = answers.filter((a) => a !== 200);
    ctx.expect(badReads.length === 0, `${badReads.length} of ${answers.length} stats/health reads failed (${[...new Set(badReads)].slice(0, 3).join('; ')})`);
    const bad = ctx.notCompleted(records);
    ctx.expect(bad.length === 0, `${bad.length} of ${records.length} API downloads did not complete (${bad.slice(0, 3).join('; ')})`);
    const landed = gone.filter(Boolean).length;
    ctx.fault('1,000 concurrent API requests', answers.length + records.length + landed === sizes.apiRequests && records.length > 0, `${records.length} downloads, ${answers.length} reads, ${landed} clients gone at once`);
    ctx.fault('clients gone at once', landed > 0, `${landed} of ${left.length} posted and left`);
    const orphanUrls = new Set(leaving.slice(0, orphan).map((p) => swarm.origin.url(p)));
    const running = async (): Promise<number> => (await statsOf(node.api)).tasks.filter((t) => orphanUrls.has(t.url) && t.state === 'running').length;
    // A stalled origin fails a download only after source.timeout (5 s) and its retries: gone sooner, it was cancelled.
    const stopped = await poll(async () => (await running()) === 0, 3_000, ctx.signal, 100);
    ctx.expect(stopped, `${await running()} downloads whose only client left are still running 3 s later (orphans)`);
    origin.clearFaults();
  },
};
