/**
 * Faults of the origin: its content changed mid-download (alone, and with
 * the seed dying after the change), and its answers going wrong: 5xx, a
 * reset (TCP RST), a stall, a truncated body (FIN), a wrong length.
 */
import type { OriginFault } from '../../../test/fixtures/origin.js';
import { isMidBody } from '../../../test/fixtures/origin.js';
import { ResetRelay } from '../reset-relay.js';
import { content } from '../rng.js';
import type { Context, Scenario } from '../scenario.js';
import type { DownloadRecord } from '../ledger.js';
import { expectAllCompleted, freshFile, held, poll, startRound, swarmArgs } from './common.js';

export const contentChange: Scenario = {
  name: 'origin-changed',
  fault: "the origin's content (and ETag) changed mid-download: once under a resume, once with the seed dying after it",
  async run(ctx) {
    await changeUnderResume(ctx);
    await changeThenSeedDies(ctx);
  },
};

/** One peer: the body is cut after the change, so the download resumes against the new version. */
async function changeUnderResume(ctx: Context): Promise<void> {
  const origin = ctx.swarm.origin.server;
  const path = '/changed-resume.bin';
  const v1 = freshFile(ctx, path);
  const cut = Math.floor(ctx.rng.between(0.3, 0.7) * v1.length);
  origin.fault(path, { kind: 'drop', afterBytes: cut }, 1);
  const node = ctx.rng.pick(ctx.swarm.peers);
  const first = ctx.ledger.get(node, path, { args: swarmArgs(ctx) });
  await poll(() => origin.bytesServed(path) >= cut / 3, ctx.sizes.downloadMs, ctx.signal);
  const before = { cuts: origin.cuts(path).length, gets: origin.requests(path), served: origin.bytesServed(path) };
  ctx.serve(path, content(ctx.rng, v1.length));
  const r1 = await first;
  const cutLanded = origin.cuts(path).some(isMidBody);
  ctx.fault('content change under a resume', before.cuts === 0 && before.served < cut && cutLanded && origin.requests(path) > before.gets, `changed at ${before.served} B served, body cut at ${cut} B, ${origin.requests(path) - before.gets} GETs after; first get: ${r1.outcome} ${r1.detail}`);
  const r2 = await ctx.ledger.get(node, path, { args: swarmArgs(ctx) });
  ctx.expect(r2.outcome === 'completed', `a get after the changed origin's failed one: ${r2.outcome} ${r2.detail} (the new version, whole, expected)`);
}

/** The swarm: the origin changes, then the seed dies, so peers hold pieces of the old version and fetch the rest from the new one. */
async function changeThenSeedDies(ctx: Context): Promise<void> {
  const { peers, seed } = ctx.swarm;
  const origin = ctx.swarm.origin.server;
  const path = '/changed-swarm.bin';
  const v1 = freshFile(ctx, path);
  const since = performance.now();
  const round = startRound(ctx, peers, path);
  const at = Math.floor(ctx.rng.between(0.2, 0.6) * v1.length);
  await poll(async () => ((await held(ctx, seed, path))?.bytes ?? 0) >= at, ctx.sizes.downloadMs, ctx.signal);
  ctx.serve(path, content(ctx.rng, v1.length));
  const gets = origin.requests(path);
  const seedHeld = await held(ctx, seed, path);
  const how = await seed.kill();
  await round.records; // each a whole version or a clear failure (the ledger judges them)
  ctx.fault('content change, then the seed SIGKILLed', how === 'SIGKILL' && (seedHeld?.bytes ?? v1.length) < v1.length && origin.requests(path) > gets, `seed at ${seedHeld?.bytes ?? '?'} of ${v1.length} B, ${origin.requests(path) - gets} GETs after the change`);
  await seed.restart();
  const again = await Promise.all(peers.map((p) => ctx.ledger.get(p, path, { args: swarmArgs(ctx), since })));
  expectAllCompleted(ctx, again, 'gets after the change (either version, whole)');
}

interface FaultCase {
  readonly kind: string;
  /** Injects the fault before the downloads start; returns the check that it landed. */
  inject(path: string, size: number): () => [boolean, string];
  readonly url?: (path: string) => string;
}

export const originFaults: Scenario = {
  name: 'origin-faults',
  fault: 'origin 5xx, reset (RST), stall, truncation (FIN), wrong length',
  async run(ctx) {
    const origin = ctx.swarm.origin.server;
    const relay = new ResetRelay(Number(new URL(origin.url).port));
    await relay.start();
    const gets = (path: string): number => origin.received(path).filter((r) => r.method === 'GET').length;
    const onFirstGet = (path: string, f: OriginFault, count: number): (() => [boolean, string]) => {
      origin.fault(path, f, count);
      return () => [gets(path) > 0, `${JSON.stringify(f)} ×${count}, ${gets(path)} GETs`];
    };
    const cases: FaultCase[] = [
      { kind: '5xx', inject: (path) => onFirstGet(path, { kind: 'status', status: ctx.rng.pick([500, 502, 503, 504]) }, ctx.rng.int(1, 3)) },
      {
        kind: 'reset',
        url: (path) => `http://127.0.0.1:${relay.port}${path}`,
        inject: (_path, size) => {
          const after = Math.floor(ctx.rng.between(0.1, 0.8) * size);
          relay.arm(after, 1);
          return () => [relay.resets > 0, `RST after ${after} B`];
        },
      },
      ...(['stall', 'drop'] as const).map((kind) => ({
        kind: kind === 'drop' ? 'truncation' : kind,
        inject: (path: string, size: number) => {
          const afterBytes = Math.floor(ctx.rng.between(0.1, 0.8) * size);
          origin.fault(path, { kind, afterBytes }, 1);
          return (): [boolean, string] => [origin.cuts(path).some((c) => c.kind === kind && isMidBody(c)), `${kind} after ${afterBytes} B`];
        },
      })),
      {
        kind: 'wrong length',
        inject: (path, size) => {
          const k = ctx.rng.int(1, 4096);
          const headers = ctx.rng.chance(0.5) ? { 'content-length': String(size + k) } : { 'content-range': `bytes 0-${size - 1}/${size + k}` };
          return onFirstGet(path, { kind: 'headers', headers }, 1);
        },
      },
    ];
    const { peers } = ctx.swarm;
    try {
      const runs = cases.map(async (c, i) => {
        const path = `/origin-${c.kind.replace(/ /g, '-')}.bin`;
        const size = freshFile(ctx, path).length;
        const landed = c.inject(path, size);
        const url = c.url?.(path);
        const nodes = [peers[(2 * i) % peers.length]!, peers[(2 * i + 1) % peers.length]!];
        const first = await Promise.all(nodes.map((n) => ctx.ledger.get(n, path, { args: swarmArgs(ctx), ...(url === undefined ? {} : { url }) })));
        const [ok, detail] = landed();
        ctx.fault(`origin ${c.kind}`, ok, `${detail}; first gets: ${first.map((r) => `${r.outcome} ${r.detail}`).join(', ')}`);
        const again: DownloadRecord[] = await Promise.all(nodes.map((n) => ctx.ledger.get(n, path, { args: swarmArgs(ctx), ...(url === undefined ? {} : { url }) })));
        expectAllCompleted(ctx, again, `gets once the origin's ${c.kind} is over`);
      });
      await Promise.all(runs);
    } finally {
      await relay.close();
    }
  },
};
