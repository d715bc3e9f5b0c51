/**
 * Parent scoring and cycle avoidance: pure functions over the model, tested
 * without sockets. Weights are documented in docs/scheduling.md.
 */
import type { HostEntry, PeerEntry } from './model.js';

export const WEIGHTS = {
  /** Pieces the parent holds that the child lacks, as a fraction of the task. */
  usefulPieces: 0.3,
  /** Free upload slots on the parent's host. */
  freeSlots: 0.25,
  /** Seed peers and back-to-source peers early in the child's download. */
  seedEarly: 0.15,
  /** Same idc. */
  idc: 0.1,
  /** Shared prefix of the `|`-separated location. */
  location: 0.1,
  /** The parent's record of failed uploads. */
  reliability: 0.1,
} as const;

/**
 * True when `candidate` is `child` or one of its descendants: making it a
 * parent would close a cycle. `follows` limits the walk to some edges (a
 * stripe's, ./stripes.ts).
 */
export function wouldCycle(child: PeerEntry, candidate: PeerEntry, follows: (child: PeerEntry, parent: PeerEntry) => boolean = () => true): boolean {
  const seen = new Set<PeerEntry>();
  const stack: PeerEntry[] = [child];
  while (stack.length > 0) {
    const peer = stack.pop()!;
    if (peer === candidate) return true;
    if (seen.has(peer)) continue;
    seen.add(peer);
    for (const next of peer.children) if (follows(next, peer)) stack.push(next);
  }
  return false;
}

export function locationAffinity(a: string, b: string): number {
  if (a === '' || b === '') return 0;
  const pa = a.split('|');
  const pb = b.split('|');
  let shared = 0;
  while (shared < pa.length && shared < pb.length && pa[shared] === pb[shared]) shared++;
  return Math.min(shared, 5) / 5;
}

/** Children a parent's host can serve in this task. */
export function childCapacity(parent: PeerEntry): number {
  const slots = Math.max(1, parent.host.info.uploadSlots);
  return parent.host.childLimit > 0 ? Math.min(slots, parent.host.childLimit) : slots;
}

/**
 * The parent's free child slots as a fraction: the task's child limit
 * (children of this peer for this task) and the host's upload slots (its
 * reported load, across all its tasks), whichever is tighter. `overLimit`
 * ignores the child limits (only the host's upload slots count): the way out
 * for a child that starves with every limited parent full.
 */
export function freeSlotFraction(parent: PeerEntry, overLimit = false): number {
  const hostSlots = Math.max(1, parent.host.info.uploadSlots);
  if (overLimit) return Math.max(0, (hostSlots - Math.max(parent.children.size, parent.host.info.uploadLoad)) / hostSlots);
  const hostFree = Math.max(0, (hostSlots - parent.host.info.uploadLoad) / hostSlots);
  const slots = childCapacity(parent);
  // A seed with a child limit spends it for the task: a child that completed
  // does not free its slot while it stays, so the seed sends each byte about once.
  const retired = parent.host.info.seed && parent.host.childLimit > 0 ? parent.retiredChildren.size : 0;
  const taskFree = Math.max(0, (slots - parent.children.size - retired) / slots);
  // Host load is not compared with a per-task child limit: a peer feeding one
  // child in each of six layer tasks is not full for a seventh task's child.
  return Math.min(taskFree, hostFree);
}

export function score(child: PeerEntry, parent: PeerEntry): number {
  const total = child.task.pieceCount;
  const useful = parent.pieces.countMissingFrom(child.pieces);
  const usefulFraction =
    parent.state === 'source' || parent.state === 'complete' ? 1 : total === undefined || total === 0 ? (useful > 0 ? 0.5 : 0) : useful / total;
  const childProgress = total === undefined || total === 0 ? 0 : child.pieces.size / total;
  const isSeedLike = parent.seedLike;
  const seedEarly = isSeedLike && childProgress < 0.5 ? 1 : 0;
  const sameIdc = child.host.info.idc !== '' && child.host.info.idc.toLowerCase() === parent.host.info.idc.toLowerCase() ? 1 : 0;
  const reliability = 1 - parent.host.uploadFailures / (parent.host.uploads + parent.host.uploadFailures + 1);
  return (
    WEIGHTS.usefulPieces * usefulFraction +
    WEIGHTS.freeSlots * freeSlotFraction(parent) +
    WEIGHTS.seedEarly * seedEarly +
    WEIGHTS.idc * sameIdc +
    WEIGHTS.location * locationAffinity(child.host.info.location, parent.host.info.location) +
    WEIGHTS.reliability * reliability
  );
}

/**
 * A host's link rate in bytes/s as the scheduler knows it: the upload rate it
 * announces (`upload.rate`, its link as the operator knows it), else the rate
 * it was measured at when it proved slow (HostEntry.measuredSlow), else 0
 * (unknown). An upload rate stands for the download too: links are mostly
 * symmetric, and a measured one is a download rate.
 */
export function linkRate(host: HostEntry): number {
  if (host.info.uploadRate > 0) return host.info.uploadRate;
  return host.measuredSlow ? host.peakRate : 0;
}

/**
 * Whether `parent`'s host would hold `child` back: its link rate (linkRate)
 * is under half the child's. A child whose rate is unknown counts as fast
 * against a parent measured slow, and as unknown (nothing to compare)
 * against one whose rate was announced. Such a parent is a last resort: on a
 * fleet with slow and fast links, the slow hosts end up at the bottom of the
 * chain or the trees instead of throttling everyone below them.
 */
export function slowerParent(child: PeerEntry, parent: PeerEntry): boolean {
  const up = linkRate(parent.host);
  if (up === 0) return false;
  const own = linkRate(child.host);
  if (own === 0) return parent.host.measuredSlow;
  return up * 2 < own;
}

/** A host's link rate (linkRate), unknown counted as the fastest: the order in which trees are rebuilt. */
export function rankRate(peer: PeerEntry): number {
  const rate = linkRate(peer.host);
  return rate > 0 ? rate : Number.POSITIVE_INFINITY;
}

/**
 * Whether `parent` may serve `child` at all. `fedOnly` also admits a parent
 * that holds nothing yet but is fed (PeerEntry.fed): a first parent for a
 * peer that has none, so a chain forms as fast as peers register.
 */
export function eligible(child: PeerEntry, parent: PeerEntry, overLimit = false, fedOnly = false): boolean {
  return (
    parent !== child &&
    parent.host !== child.host &&
    (fedOnly ? parent.fed : parent.canServe) &&
    !child.blocked.has(parent.id) &&
    !child.parents.has(parent) &&
    freeSlotFraction(parent, overLimit) > 0 &&
    !wouldCycle(child, parent)
  );
}

/**
 * Picks up to `limit` new parents for `child`, best first: peers that can
 * serve now; for a peer with no parent and none of those, the best one that is
 * fed and will serve soon.
 */
export function pickParents(child: PeerEntry, candidates: Iterable<PeerEntry>, limit: number, overLimit = false): PeerEntry[] {
  if (limit <= 0) return [];
  const all = [...candidates];
  // Parents no slower than the child first (slowerParent), then any.
  for (const slowToo of [false, true]) {
    const admit = (p: PeerEntry, fedOnly = false): boolean => (slowToo || !slowerParent(child, p)) && eligible(child, p, overLimit, fedOnly);
    let picked = best(child, all, limit, (p) => admit(p));
    if (picked.length === 0 && child.parents.size === 0) picked = best(child, all, 1, (p) => admit(p, true));
    if (picked.length > 0) return picked;
  }
  return [];
}

function best(child: PeerEntry, candidates: readonly PeerEntry[], limit: number, admit: (peer: PeerEntry) => boolean): PeerEntry[] {
  const scored: Array<{ peer: PeerEntry; score: number }> = [];
  for (const peer of candidates) if (admit(peer)) scored.push({ peer, score: score(child, peer) });
  scored.sort((a, b) => b.score - a.score || a.peer.id.localeCompare(b.peer.id));
  return scored.slice(0, limit).map((s) => s.peer);
}
