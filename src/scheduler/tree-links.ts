/**
 * Linking peers into split trees (./stripes.ts has the rules of a place):
 * a parent for each stripe a peer lacks one for, and moves away from much
 * slower hosts once a better parent has room. These functions link peers in
 * the model and return who must hear of it; the swarm tells them.
 */
import type { PeerEntry, TaskEntry } from './model.js';
import { slowerParent } from './scoring.js';
import { coveredStripes, pickStripeParent, stripeDepth, stripeToTake } from './stripes.js';

type Place = NonNullable<ReturnType<typeof stripeToTake>>;

/**
 * Whether `peer` takes the free place under `parent` in stripe `s` rather
 * than the leaf's place `taken`: there is none, it is under a much slower
 * host, or it is no higher up the tree than the free one.
 */
function freePlaceWins(peer: PeerEntry, parent: PeerEntry, taken: Place | undefined, s: number, k: number): boolean {
  return taken === undefined || slowerParent(peer, taken.root) || stripeDepth(taken.root, s, k) >= stripeDepth(parent, s, k);
}

export interface StripeLinks {
  /** The parents `peer` was linked to (for one stripe or more each). */
  readonly added: PeerEntry[];
  /** Leaves whose place `peer` took: each gave up a stripe and must look for it elsewhere. */
  readonly displaced: PeerEntry[];
}

/**
 * Links `peer` to a parent for each stripe it lacks one for, where one can
 * serve it now: the best free place (pickStripeParent), or, for the stripe
 * it passes on, a leaf's place higher up (stripeToTake), so that peers that
 * arrive after the leaves still get the places near the top; under a much
 * slower host only when nothing else is left. `starving`: it asked again.
 */
export function linkStripes(peer: PeerEntry, starving: boolean, now: number): StripeLinks {
  const k = peer.task.stripes;
  const covered = coveredStripes(peer, k);
  const added = new Set<PeerEntry>();
  const displaced: PeerEntry[] = [];
  for (let s = 0; s < k; s++) {
    const bit = 1 << s;
    if ((covered & bit) !== 0) continue;
    const parent = pickStripeParent(peer, peer.task.peers.values(), s, k, starving);
    const taken = stripeToTake(peer, peer.task.peers.values(), s, k);
    if (parent !== undefined && freePlaceWins(peer, parent, taken, s, k)) {
      peer.link(parent, now, bit);
      added.add(parent);
    } else if (taken !== undefined) {
      taken.from.dropStripes(taken.root, bit);
      displaced.push(taken.from);
      peer.link(taken.root, now, bit);
      added.add(taken.root);
    } else {
      const slow = pickStripeParent(peer, peer.task.peers.values(), s, k, starving, true);
      if (slow === undefined) continue;
      peer.link(slow, now, bit);
      added.add(slow);
    }
  }
  return { added: [...added], displaced };
}

/**
 * The parents `peer` may move to from `parent`: any, when `parent` is much
 * slower than it (it took that stripe as a last resort); when `parent` is a
 * slow host still downloading, the complete peers much faster than it (a
 * slow peer under a slow host moves to them for its tail); else none.
 */
function fasterThan(peer: PeerEntry, parent: PeerEntry, complete: readonly PeerEntry[]): PeerEntry[] {
  if (slowerParent(peer, parent)) return [...peer.task.peers.values()];
  if (parent.state === 'complete') return [];
  return complete.filter((c) => slowerParent(c, parent));
}

/**
 * Moves each stripe a downloading peer takes from a much slower host to a
 * faster parent with room, as peers arrive, leave or complete. Returns, in
 * order, each peer moved and the parents it gained.
 */
export function leaveSlowParents(task: TaskEntry, now: number): Array<{ peer: PeerEntry; added: PeerEntry[] }> {
  const k = task.stripes;
  const complete = [...task.peers.values()].filter((p) => p.state === 'complete' && !p.host.info.seed);
  const moved: Array<{ peer: PeerEntry; added: PeerEntry[] }> = [];
  for (const peer of task.downloaders()) {
    if (peer.send === undefined) continue;
    const added: PeerEntry[] = [];
    for (const [parent, mask] of [...peer.parentMasks]) {
      const faster = fasterThan(peer, parent, complete);
      if (faster.length === 0) continue;
      for (let s = 0; s < k; s++) {
        const bit = 1 << s;
        if ((mask & bit) === 0) continue;
        const better = pickStripeParent(peer, faster, s, k);
        if (better === undefined) continue;
        peer.dropStripes(parent, bit);
        peer.link(better, now, bit);
        added.push(better);
      }
    }
    if (added.length > 0) moved.push({ peer, added });
  }
  return moved;
}
