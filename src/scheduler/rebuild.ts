/**
 * Rebuilding a task's chain or split trees from scratch: at the split (a
 * chain grown past `stripesFrom` becomes split trees), when the seed's relay
 * leaves, and when a slow host is measured (./slow-links.ts). Every
 * downloading peer is unlinked, then linked again by the swarm in the order
 * given here: the fastest links first (rankRate: announced or measured slow;
 * unknown counts as fast), then in the order they came. The first takes
 * every stripe from the seed (the relay) or heads the chain, and slow hosts
 * end up at the bottom. Pieces held stay held; only the links change.
 */
import type { PeerEntry, TaskEntry } from './model.js';
import { rankRate } from './scoring.js';

export interface Rebuild {
  /** The task's downloading peers, unlinked, in the order they are to be linked again. */
  readonly order: readonly PeerEntry[];
  /** Once they are linked again: an edge made as it was before (same parent, same stripes) keeps its age (./slow-links.ts). */
  keepAges(): void;
}

/** Faster links first; a stable sort keeps the order they came in otherwise. */
function fastestFirst(a: PeerEntry, b: PeerEntry): number {
  return rankRate(a) === rankRate(b) ? 0 : rankRate(a) > rankRate(b) ? -1 : 1;
}

/**
 * Starts a rebuild of `task` at `now`: unlinks its downloading peers from
 * their parents. `deal`: deal the stripes they pass on afresh, round-robin
 * in the new order.
 */
export function unlinkForRebuild(task: TaskEntry, deal: boolean, now: number): Rebuild {
  task.rebuiltAt = now;
  task.rebuildForSlow = false;
  const order = task.downloaders().sort(fastestFirst);
  const before = new Map(order.map((p) => [p, new Map([...p.linkedAt].map(([parent, at]) => [parent, { at, mask: p.parentMasks.get(parent) }]))]));
  order.forEach((p, i) => {
    if (deal) p.stripe = i % task.stripes;
    for (const parent of [...p.parents]) p.unlink(parent);
  });
  return {
    order,
    keepAges(): void {
      for (const [p, edges] of before) {
        for (const [parent, was] of edges) if (p.parents.has(parent) && p.parentMasks.get(parent) === was.mask) p.linkedAt.set(parent, was.at);
      }
    },
  };
}
