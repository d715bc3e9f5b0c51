/**
 * Linking peers into split trees (./stripes.ts has the rules of a place):
 * a parent for each stripe a peer lacks one for, and moves away from much
 * slower hosts once a better parent has room. These functions link peers in
 * the model and return who must hear of it; the swarm tells them.
 */
import type { PeerEntry, TaskEntry } from './model.js';
import { linkRate, slowerParent } from './scoring.js';
import { coveredStripes, depthIn, peersWithRoom, pickStripeParent, stripeToTake } from './stripes.js';

type Place = NonNullable<ReturnType<typeof stripeToTake>>;

/**
 * Whether `peer` takes the free place under `parent` in stripe `s` rather
 * than the leaf's place `taken`: there is none, it is under a much slower
 * host, or it is no higher up the tree than the free one.
 */
function freePlaceWins(peer: PeerEntry, parent: PeerEntry, taken: Place | undefined, s: number, k: number, depths: Map<PeerEntry, number>): boolean {
  return taken === undefined || slowerParent(peer, taken.root) || depthIn(taken.root, s, k, depths) >= depthIn(parent, s, k, depths);
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
  // A free place is looked for among the peers with room only (the same answer as among all); linking this peer gives none room.
  const room = peersWithRoom(peer.task);
  for (let s = 0; s < k; s++) {
    const bit = 1 << s;
    if ((covered & bit) !== 0) continue;
    // Depths in stripe s, worked out once for the searches of this stripe (nothing is linked in s between them).
    const depths = new Map<PeerEntry, number>();
    const parent = pickStripeParent(peer, room, s, k, starving, false, depths);
    const taken = stripeToTake(peer, s, k, depths);
    if (parent !== undefined && freePlaceWins(peer, parent, taken, s, k, depths)) {
      peer.link(parent, now, bit);
      added.add(parent);
    } else if (taken !== undefined) {
      taken.from.dropStripes(taken.root, bit);
      displaced.push(taken.from);
      peer.link(taken.root, now, bit);
      added.add(taken.root);
    } else {
      const slow = pickStripeParent(peer, room, s, k, starving, true, depths);
      if (slow === undefined) continue;
      peer.link(slow, now, bit);
      added.add(slow);
    }
  }
  return { added: [...added], displaced };
}

/**
 * The parents a peer under `parent` may move to, among `room` (peers with
 * room) and `completeFast` (the complete normal peers among them, fastest
 * link first): any, when `parent` is much slower than the peer (it took that
 * stripe as a last resort); when `parent` is a slow host still downloading,
 * the complete peers much faster than it (a slow peer under a slow host
 * moves to them for its tail); else none.
 */
function moveTargets(peer: PeerEntry, parent: PeerEntry, room: readonly PeerEntry[], completeFast: readonly PeerEntry[]): readonly PeerEntry[] {
  if (slowerParent(peer, parent)) return room;
  if (parent.state === 'complete' || linkRate(parent.host) === 0) return [];
  // Past the first one not much faster, only unknown rates are left, which count against a parent measured slow only.
  const targets: PeerEntry[] = [];
  for (const c of completeFast) {
    if (slowerParent(c, parent)) targets.push(c);
    else if (linkRate(c.host) > 0 && !parent.host.measuredSlow) break;
  }
  return targets;
}

/**
 * Moves each stripe a downloading peer takes from a much slower host to a
 * faster parent with room, as peers arrive, leave or complete. Returns, in
 * order, each peer moved and the parents it gained. Only peers with room are
 * looked at as parents (peersWithRoom: the same answer as all), so a round
 * costs the task's edges plus, for each edge to a slow host, the peers with
 * room (docs/design.md, "Cost at scale").
 */
export function leaveSlowParents(task: TaskEntry, now: number): Array<{ peer: PeerEntry; added: PeerEntry[] }> {
  const k = task.stripes;
  const room = peersWithRoom(task);
  const inRoom = new Set(room);
  const completeFast = room.filter((c) => c.state === 'complete' && !c.host.info.seed).sort((a, b) => linkRate(b.host) - linkRate(a.host));
  const moved: Array<{ peer: PeerEntry; added: PeerEntry[] }> = [];
  for (const peer of task.downloaders()) {
    if (peer.send === undefined) continue;
    const added: PeerEntry[] = [];
    for (const [parent, mask] of [...peer.parentMasks]) {
      const targets = moveTargets(peer, parent, room, completeFast);
      if (targets.length === 0) continue;
      for (let s = 0; s < k; s++) {
        const bit = 1 << s;
        if ((mask & bit) === 0) continue;
        const better = pickStripeParent(peer, targets, s, k);
        if (better === undefined) continue;
        peer.dropStripes(parent, bit);
        peer.link(better, now, bit);
        added.push(better);
        // The parent left has room now, and the peer moved may be a parent of another standing.
        for (const p of [parent, peer]) {
          if (!inRoom.has(p)) {
            inRoom.add(p);
            room.push(p);
          }
        }
      }
    }
    if (added.length > 0) moved.push({ peer, added });
  }
  return moved;
}
