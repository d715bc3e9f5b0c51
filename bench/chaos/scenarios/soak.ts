/**
 * A soak: many small downloads of distinct files through one daemon, its
 * RSS and open file descriptors sampled from /proc as they go. A daemon runs
 * for months: what it holds must not grow with the downloads it has done.
 */
import { join } from 'node:path';
import { usageOf, type Usage } from '../procs.js';
import type { Scenario } from '../scenario.js';
import type { Node } from '../swarm.js';
import { KiB, freshFile } from './common.js';

const MB = 1024 * 1024;
let daemon: Node | undefined;

export const soak: Scenario = {
  name: 'soak',
  fault: 'many small downloads through one daemon (RSS, fds sampled)',
  async prepare(ctx) {
    daemon = ctx.swarm.node();
    ctx.swarm.extras.push(daemon);
    await daemon.start();
    const node = daemon;
    ctx.watch = () => usageOf(node.pid) ?? { rss: 0, fds: 0 };
  },
  async run(ctx) {
    const node = daemon!;
    const { sizes, rng } = ctx;
    const total = sizes.soakDownloads;
    const dir = join(ctx.swarm.cluster.dir, 'soak-out');
    const samples: Array<{ done: number } & Usage> = [];
    const sample = (done: number): void => {
      const u = usageOf(node.pid);
      if (u !== undefined) samples.push({ done, ...u });
    };
    sample(0);
    let next = 0;
    let done = 0;
    const worker = async (): Promise<void> => {
      while (next < total && !ctx.signal.aborted) {
        const i = next++;
        const path = `/soak/${i}.bin`;
        freshFile(ctx, path, rng.int(1, 32) * KiB);
        // One in 50 through a real `shoal get` process, the rest on the API as `shoal get` does it.
        const record = i % 50 === 0 ? await ctx.ledger.get(node, path) : await ctx.ledger.api(node, path, { placeIn: dir });
        if (record.outcome !== 'completed') ctx.notes.push(`#${i}: ${record.outcome} ${record.detail}`);
        if (++done % Math.max(1, Math.floor(total / 10)) === 0) sample(done);
      }
    };
    await Promise.all(Array.from({ length: sizes.soakConcurrency }, worker));
    sample(done);
    const first = samples[0]!;
    const last = samples.at(-1)!;
    ctx.notes.push(`samples (downloads: RSS MB, fds): ${samples.map((s) => `${s.done}: ${Math.round(s.rss / MB)}, ${s.fds}`).join('; ')}`);
    ctx.fault('soak', done === total, `${done} of ${total} downloads`);
    ctx.expect(last.fds - first.fds <= 64, `open fds grew from ${first.fds} to ${last.fds} over ${done} downloads (a leak: about ${((last.fds - first.fds) / Math.max(1, done)).toFixed(2)} per download)`);
    ctx.expect(last.rss - first.rss <= 200 * MB, `RSS grew from ${Math.round(first.rss / MB)} MB to ${Math.round(last.rss / MB)} MB over ${done} downloads`);
    const bad = ctx.ledger.records.filter((r) => r.outcome !== 'completed').length;
    ctx.expect(bad === 0, `${bad} of ${done} soak downloads did not complete`);
  },
  async cleanup() {
    await daemon?.kill();
  },
};
