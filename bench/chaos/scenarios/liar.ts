/** A lying peer (test/fixtures/liar-daemon.ts): it fetches a file honestly, then flips a byte of every piece it uploads. */
import { resolve } from 'node:path';
import { statsOf } from '../../../test/fixtures/stats.js';
import type { Scenario } from '../scenario.js';
import { runScript } from '../swarm.js';
import { expectAllCompleted, freshFile, startRound, swarmArgs } from './common.js';

const LIAR = resolve(import.meta.dirname, '../../../test/fixtures/liar-daemon.ts');

export const lyingPeer: Scenario = {
  name: 'lying-peer',
  fault: 'a peer serving corrupted piece bytes',
  async run(ctx) {
    const { swarm } = ctx;
    const path = '/liar.bin';
    freshFile(ctx, path);
    const liar = swarm.node({ launch: () => runScript(LIAR, [swarm.scheduler.url, liar.data, liar.api, resolve(swarm.tlsDir, 'peer')]) });
    swarm.extras.push(liar);
    await liar.start();
    try {
      const own = await ctx.ledger.get(liar, path, { args: swarmArgs(ctx) });
      ctx.expect(own.outcome === 'completed', `the liar's own honest download: ${own.outcome} ${own.detail}`);
      const records = await startRound(ctx, swarm.peers, path).records;
      const url = swarm.origin.url(path);
      const corrupt = await Promise.all(swarm.peers.map(async (p) => (await statsOf(p.api)).tasks.filter((t) => t.url === url).reduce((n, t) => n + t.corruptPieces, 0)));
      const total = corrupt.reduce((a, b) => a + b, 0);
      ctx.fault('lying peer', total > 0, `${total} corrupt pieces caught by ${corrupt.filter((n) => n > 0).length} peers`);
      expectAllCompleted(ctx, records, 'downloads with a liar in the swarm');
      ctx.expect(corrupt.every((n) => n <= 8), `the liar was not excluded: corrupt pieces per peer ${corrupt.join(', ')}`);
    } finally {
      await liar.kill();
    }
  },
};
