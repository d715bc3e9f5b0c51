/**
 * Placement in a chain (a task with one stripe): each peer takes the best
 * scored parents up to the parent limit (./scoring.ts); with the child
 * limits at 1 (the default) that lines peers up one behind another. A peer
 * that would go under a much slower host (slowerParent) takes that host's
 * place instead, and the slow host goes one hop down, under it: fast peers
 * gather at the chain's head and slow ones at its tail (docs/design.md,
 * "Slow links"). These functions link peers in the model; the swarm tells
 * the peers.
 */
import type { PeerEntry } from './model.js';
import { pickParents, slowerParent, wouldCycle } from './scoring.js';

/** `peer` has no parent yet, and every parent it could get is much slower than it. */
function onlySlowerOffered(peer: PeerEntry, offered: readonly PeerEntry[]): boolean {
  return peer.parents.size === 0 && offered.length > 0 && offered.every((p) => slowerParent(peer, p));
}

/**
 * The place a peer about to go under a much slower host takes instead: that
 * of the first slow host in the chain whose own parent is not slow, nearest
 * the seed first. `parent` is the place's parent; `from` the slow host's peer
 * that held it.
 */
export function chainPlaceToTake(peer: PeerEntry): { parent: PeerEntry; from: PeerEntry } | undefined {
  let best: { parent: PeerEntry; from: PeerEntry } | undefined;
  for (const from of peer.task.downloaders()) {
    if (from === peer || from.host === peer.host || from.parents.size !== 1 || !slowerParent(peer, from)) continue;
    const parent = [...from.parents][0]!;
    if (parent.host === peer.host || peer.blocked.has(parent.id) || slowerParent(peer, parent) || wouldCycle(peer, parent)) continue;
    if (parent.seedLike) return { parent, from };
    best ??= { parent, from };
  }
  return best;
}

export interface ChainLinks {
  /** The parents `peer` was linked to. */
  readonly added: PeerEntry[];
  /** The slow host's peer whose place `peer` took: it now has `peer` as its one parent. */
  readonly demoted: PeerEntry | undefined;
}

/**
 * Links `peer` to up to as many new parents as the parent limit leaves room
 * for, best first; a starving peer to one even without room. Undefined when
 * it has no room and is not starving (nothing to do).
 */
export function linkInChain(peer: PeerEntry, parentLimit: number, starving: boolean, now: number): ChainLinks | undefined {
  const room = parentLimit - peer.parents.size;
  if (room <= 0 && !starving) return undefined;
  let added = pickParents(peer, peer.task.peers.values(), Math.max(room, starving ? 1 : 0));
  const place = onlySlowerOffered(peer, added) ? chainPlaceToTake(peer) : undefined;
  if (place !== undefined) added = [place.parent];
  for (const parent of added) peer.link(parent, now);
  if (place === undefined) return { added, demoted: undefined };
  // Its own children stay with the slow host.
  place.from.unlink(place.parent);
  place.from.link(peer, now);
  return { added, demoted: place.from };
}

/**
 * A chain being rebuilt, peers in order: `peer` takes the one best parent,
 * so that the first peers do not take the later ones as extra parents (the
 * task's next round adds any room). Returns the parent linked, if any.
 */
export function relinkInChain(peer: PeerEntry, now: number): PeerEntry[] {
  const added = pickParents(peer, peer.task.peers.values(), 1);
  for (const parent of added) peer.link(parent, now);
  return added;
}
