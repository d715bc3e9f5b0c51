/**
 * Faults of the swarm's own processes: none (the run the others are timed
 * against), 30 % of the peers SIGKILLed at random moments and restarted, the
 * seed killed, the scheduler killed and restarted on its port.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { statsOf } from '../../../test/fixtures/stats.js';
import type { Scenario } from '../scenario.js';
import { expectAllCompleted, freshFile, held, poll, startRound, swarmArgs } from './common.js';

export const noFaults: Scenario = {
  name: 'no-faults',
  fault: 'none (the baseline)',
  comparable: true,
  async run(ctx) {
    const path = '/baseline.bin';
    freshFile(ctx, path);
    const records = await startRound(ctx, ctx.swarm.peers, path).records;
    expectAllCompleted(ctx, records, 'downloads without a fault');
  },
};

export const peersKilled: Scenario = {
  name: 'peers-killed',
  fault: '30 % of peers SIGKILLed mid-download, restarted, re-run',
  comparable: true,
  async run(ctx) {
    const { peers } = ctx.swarm;
    const path = '/peers-killed.bin';
    const size = freshFile(ctx, path).length;
    const victims = ctx.rng.sample([...peers.keys()], Math.max(1, Math.round(peers.length * 0.3)));
    const round = startRound(ctx, peers, path);
    const reruns = victims.map(async (i) => {
      const victim = peers[i]!;
      const at = Math.floor(ctx.rng.between(0.05, 0.9) * size);
      await poll(async () => round.exited(i) || ((await held(ctx, victim, path))?.bytes ?? 0) >= at, ctx.sizes.downloadMs, ctx.signal);
      const before = await held(ctx, victim, path);
      if (round.exited(i)) return ctx.fault('peer SIGKILL', false, `${victim.name}'s get ended before ${at} B`);
      const how = await victim.kill();
      ctx.fault('peer SIGKILL', how === 'SIGKILL' && before !== undefined && before.bytes < size, `${victim.name} at ${before?.bytes ?? '?'} of ${size} B (${String(how)})`);
      await poll(() => round.exited(i), 15_000, ctx.signal);
      await victim.restart();
      return ctx.ledger.get(victim, path, { args: swarmArgs(ctx) });
    });
    const records = await round.records;
    const survivors = records.filter((_, i) => !victims.includes(i));
    expectAllCompleted(ctx, survivors, 'peers not killed');
    for (const i of victims) {
      const r = records[i]!;
      ctx.expect(r.outcome === 'completed' || (r.outcome === 'failed' && r.detail === 'DAEMON_UNREACHABLE'), `a get whose daemon was killed: ${r.outcome} ${r.detail} (expected DAEMON_UNREACHABLE)`);
    }
    const again = (await Promise.all(reruns)).filter((r) => typeof r === 'object');
    expectAllCompleted(ctx, again, 're-runs on restarted peers');
  },
};

export const seedKilled: Scenario = {
  name: 'seed-killed',
  fault: 'the seed SIGKILLed mid-download',
  comparable: true,
  async run(ctx) {
    const { peers, seed } = ctx.swarm;
    const path = '/seed-killed.bin';
    const size = freshFile(ctx, path).length;
    const round = startRound(ctx, peers, path);
    const at = Math.floor(ctx.rng.between(0.1, 0.7) * size);
    await poll(async () => ((await held(ctx, seed, path))?.bytes ?? 0) >= at, ctx.sizes.downloadMs, ctx.signal);
    const seedHeld = await held(ctx, seed, path);
    const running = peers.filter((_, i) => !round.exited(i)).length;
    const how = await seed.kill();
    ctx.fault('seed SIGKILL', how === 'SIGKILL' && running > 0, `seed at ${seedHeld?.bytes ?? '?'} of ${size} B, ${running} gets running`);
    const records = await round.records;
    expectAllCompleted(ctx, records, 'downloads after the seed died');
    await seed.restart();
  },
};

export const schedulerRestart: Scenario = {
  name: 'scheduler-restart',
  fault: 'the scheduler SIGKILLed mid-download, restarted on its port',
  comparable: true,
  async run(ctx) {
    const { peers, scheduler } = ctx.swarm;
    const path = '/scheduler-restart.bin';
    const size = freshFile(ctx, path).length;
    const round = startRound(ctx, peers, path);
    const at = Math.floor(ctx.rng.between(0.1, 0.6) * size);
    await poll(async () => ((await held(ctx, peers[0]!, path))?.bytes ?? 0) >= at, ctx.sizes.downloadMs, ctx.signal);
    const running = peers.filter((_, i) => !round.exited(i)).length;
    const how = await scheduler.kill();
    const noticed = await poll(async () => {
      for (const p of peers) if ((await statsOf(p.api).catch(() => undefined))?.scheduler.connected === false) return true;
      return false;
    }, 10_000, ctx.signal);
    ctx.fault('scheduler SIGKILL', how === 'SIGKILL' && running > 0 && noticed, `${running} gets running, a peer saw it gone: ${noticed}`);
    await sleep(ctx.rng.int(200, 3000), undefined, { signal: ctx.signal }).catch(() => undefined);
    await scheduler.start();
    const records = await round.records;
    expectAllCompleted(ctx, records, 'downloads across the scheduler restart');
  },
};
