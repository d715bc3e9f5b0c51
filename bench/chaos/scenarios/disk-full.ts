/**
 * Disk full on one peer: its data directory on a small tmpfs. A file larger
 * than the disk must fail with a clear error, and the daemon must then
 * recover by itself: a file that fits once the partial task is gone completes.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Scenario } from '../scenario.js';
import { freshFile, swarmArgs } from './common.js';

export const diskFull: Scenario = {
  name: 'disk-full',
  fault: "one peer's data directory on a tmpfs that fills up",
  async run(ctx) {
    const { swarm, sizes } = ctx;
    const mount = join(tmpdir(), `shoal-chaos-tmpfs-${process.pid}`);
    mkdirSync(mount, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizes.tmpfsBytes}`, 'tmpfs', mount]);
    const node = swarm.node({ dataDir: join(mount, 'data') });
    swarm.extras.push(node);
    let leastFree = Infinity;
    const sampler = setInterval(() => {
      const s = statfsSync(mount);
      leastFree = Math.min(leastFree, s.bavail * s.bsize);
    }, 10);
    try {
      await node.start();
      const disk = sizes.tmpfsBytes;
      freshFile(ctx, '/disk-small.bin', Math.floor(disk * 0.3));
      const big = freshFile(ctx, '/disk-big.bin', Math.floor(disk * 1.5));
      freshFile(ctx, '/disk-medium.bin', Math.floor(disk * 0.5));
      const a = await ctx.ledger.get(node, '/disk-small.bin', { args: swarmArgs(ctx) });
      ctx.expect(a.outcome === 'completed', `a file that fits: ${a.outcome} ${a.detail}`);
      leastFree = Infinity;
      const b = await ctx.ledger.get(node, '/disk-big.bin', { args: swarmArgs(ctx) });
      ctx.fault('disk full', leastFree < sizes.pieceBytes || b.detail === 'STORAGE_FULL', `least free ${leastFree} B; the ${big.length} B get: ${b.outcome} ${b.detail}`);
      ctx.expect(b.outcome === 'failed' && b.detail === 'STORAGE_FULL', `a file larger than the disk: ${b.outcome} ${b.detail} (STORAGE_FULL expected)`);
      const c = await ctx.ledger.get(node, '/disk-medium.bin', { args: swarmArgs(ctx) });
      ctx.expect(c.outcome === 'completed', `after the disk filled, a file that fits once the partial task is gone: ${c.outcome} ${c.detail} (the daemon should recover by itself)`);
    } finally {
      clearInterval(sampler);
      await node.kill();
      try {
        execFileSync('umount', [mount]);
        rmSync(mount, { recursive: true, force: true });
      } catch (err) {
        ctx.notes.push(`could not unmount ${mount}: ${(err as Error).message}`);
      }
    }
  },
};
