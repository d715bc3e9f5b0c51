/** What several scenarios share: a round of downloads on the swarm, and reading a node's progress. */
import { setTimeout as sleep } from 'node:timers/promises';
import { statsOf } from '../../../test/fixtures/stats.js';
import { content } from '../rng.js';
import type { Context } from '../scenario.js';
import type { DownloadRecord } from '../ledger.js';
import type { Node } from '../swarm.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;

/** The arguments of every swarm `shoal get`: small pieces, so a file has many. */
export function swarmArgs(ctx: Context): string[] {
  return ['--piece-length', `${ctx.sizes.pieceBytes / KiB}KiB`];
}

/** A new file of the suite's size at `path` on the origin. */
export function freshFile(ctx: Context, path: string, size = ctx.sizes.fileBytes): Buffer {
  const data = content(ctx.rng, size);
  ctx.serve(path, data);
  return data;
}

export interface Round {
  /** One per node, in order. */
  readonly records: Promise<DownloadRecord[]>;
  /** Whether node i's get has exited. */
  exited(i: number): boolean;
}

/** Starts `shoal get` of `path` on every node at once. */
export function startRound(ctx: Context, nodes: readonly Node[], path: string, args = swarmArgs(ctx)): Round {
  const exited: Array<() => boolean> = nodes.map(() => () => false);
  const records = Promise.all(nodes.map((node, i) => ctx.ledger.get(node, path, { args, onStart: (e) => (exited[i] = e) })));
  return { records, exited: (i) => exited[i]!() };
}

/** Bytes `node` holds of `path`'s task (undefined while its daemon does not answer or has no such task). */
export async function held(ctx: Context, node: Node, path: string): Promise<{ bytes: number; state: string } | undefined> {
  if (node.pid === undefined) return undefined;
  try {
    const url = ctx.swarm.origin.url(path);
    const task = (await statsOf(node.api)).tasks.filter((t) => t.url === url).at(-1);
    return task === undefined ? undefined : { bytes: task.completedBytes, state: task.state };
  } catch {
    return undefined;
  }
}

/** Polls until `condition` holds or `within` ms pass; resolves with whether it held. */
export async function poll(condition: () => boolean | Promise<boolean>, within: number, signal: AbortSignal, every = 40): Promise<boolean> {
  const deadline = Date.now() + within;
  while (Date.now() < deadline && !signal.aborted) {
    if (await condition()) return true;
    await sleep(every);
  }
  return false;
}

/** Every record completed; else a finding naming those that did not. */
export function expectAllCompleted(ctx: Context, records: readonly DownloadRecord[], what: string): void {
  const bad = ctx.notCompleted(records);
  ctx.expect(bad.length === 0, `${what}: ${bad.length} of ${records.length} did not complete (${bad.slice(0, 4).join('; ')})`);
}
