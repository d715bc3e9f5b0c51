/**
 * A starving peer: one that asked again (a reschedule, or a parent failed).
 * When no new parent is found for it and none it has can serve, it may take
 * a parent past the child limits, but only when no piece is on its way down
 * to it: a peer deep in a chain that is still filling waits for its turn
 * instead, since a parent past the limits would split some uploader's link
 * between the chain and it (docs/design.md, "A starving peer waits while its
 * chain fills"). Pure functions over the model.
 */
import type { PeerEntry } from './model.js';
import { pickParents } from './scoring.js';

/** How far up its parents a starving peer's supply is looked for. */
const UPSTREAM_HOPS = 256;
/** A holder that got no piece for this long has stalled. */
const UPSTREAM_STALL_MS = 10_000;

/** A root of the flow: it holds every piece or brings them in. */
function isRoot(peer: PeerEntry): boolean {
  return peer.state === 'complete' || peer.seedLike;
}

/**
 * Whether pieces are on their way down to `peer`: up its parents, the first
 * peer that holds any is a root or got a piece less than UPSTREAM_STALL_MS ago.
 */
export function upstreamFlows(peer: PeerEntry, now: number): boolean {
  let current = peer;
  for (let hops = 0; hops < UPSTREAM_HOPS; hops++) {
    const up = [...current.parents].find((p) => p.active || p.state === 'complete');
    if (up === undefined) return false;
    if (isRoot(up)) return true;
    if (up.lastPieceAt !== undefined) return now - up.lastPieceAt < UPSTREAM_STALL_MS;
    current = up;
  }
  return false;
}

/**
 * Whether `parent` can serve `peer` a piece it lacks now: it fetches from
 * the origin, or holds such a piece in the stripes it serves it (a parent
 * whose stripe `peer` already has whole serves it nothing more).
 */
function servesSomethingNew(peer: PeerEntry, parent: PeerEntry): boolean {
  if (parent.state === 'source') return true;
  if (!parent.canServe) return false;
  const k = peer.task.stripes;
  const mask = peer.parentMasks.get(parent);
  for (const n of parent.pieces.missingFrom(peer.pieces)) if (mask === undefined || k <= 1 || (mask & (1 << n % k)) !== 0) return true;
  return false;
}

/** A peer that got pieces and then none for this long, from parents it has had as long, is not being served. */
const SERVED_NOTHING_MS = 2 * UPSTREAM_STALL_MS;

/**
 * Whether `peer` got pieces once and nothing for SERVED_NOTHING_MS from
 * parents all linked before that: whatever they hold, they are not sending
 * it (a parent stuck itself, or gone without the scheduler knowing yet).
 */
function servedNothing(peer: PeerEntry, now: number): boolean {
  if (peer.lastPieceAt === undefined || now - peer.lastPieceAt < SERVED_NOTHING_MS) return false;
  for (const p of peer.parents) if (now - (peer.linkedAt.get(p) ?? 0) < SERVED_NOTHING_MS) return false;
  return true;
}

/**
 * Whether starving `peer` may take a parent past the child limits: none of
 * its parents has a piece for it and nothing flows to them, or its parents
 * have served it nothing for long (servedNothing).
 */
export function mayPassLimits(peer: PeerEntry, now: number): boolean {
  if (servedNothing(peer, now)) return true;
  return ![...peer.parents].some((p) => servesSomethingNew(peer, p)) && !upstreamFlows(peer, now);
}

/**
 * Links `peer` to one parent past the child limits, serving every piece: a
 * normal peer first; a seed, whose upload crosses the origin's link, only
 * when no one else can serve. Returns the parent linked, if any.
 */
export function linkPastLimits(peer: PeerEntry, now: number): PeerEntry[] {
  const all = [...peer.task.peers.values()];
  let picked = pickParents(peer, all.filter((p) => !p.host.info.seed), 1, true);
  if (picked.length === 0) picked = pickParents(peer, all, 1, true);
  for (const parent of picked) peer.link(parent, now);
  return picked;
}
