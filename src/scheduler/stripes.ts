/**
 * Split trees (docs/design.md, "Split trees"). With `stripes` = k > 1, piece n
 * belongs to stripe n % k and each stripe flows down a tree of its own: every
 * peer has one parent per stripe, and passes one stripe (its own,
 * PeerEntry.stripe) on to up to k children, so its upload is spent as in a
 * chain (k children at 1/k of the rate each), but the trees are about
 * log_k N deep instead of N. The last peer gets its first
 * piece sooner, and fewer hops' hiccups add up on the way to it. A seed (or
 * back-to-source peer) gives each stripe to one child for the task's life, so
 * the origin's link still carries each byte once. Pure functions over the
 * model, like ./scoring.ts.
 */
import type { PeerEntry, TaskEntry } from './model.js';
import { allStripes } from '../common/stripes.js';
import { score, slowerParent, wouldCycle } from './scoring.js';

/** Past this many hops a stripe path is treated as broken (a bound on walks up the tree). */
const MAX_DEPTH = 64;

/** The stripe a new peer passes on: the one fewest of the task's peers pass on. */
export function stripeFor(peers: Iterable<PeerEntry>, k: number): number {
  const counts = new Array<number>(k).fill(0);
  for (const peer of peers) if (peer.active && !peer.seedLike) counts[peer.stripe]!++;
  let best = 0;
  for (let s = 1; s < k; s++) if (counts[s]! < counts[best]!) best = s;
  return best;
}

/** The stripes `parent` serves `child` (every stripe for an edge without a mask). */
export function edgeMask(child: PeerEntry, parent: PeerEntry, k: number): number {
  return child.parentMasks.get(parent) ?? allStripes(k);
}

/** The stripes some parent of `peer` serves it. */
export function coveredStripes(peer: PeerEntry, k: number): number {
  let mask = 0;
  for (const parent of peer.parents) mask |= edgeMask(peer, parent, k);
  return mask & allStripes(k);
}

/**
 * The seed's one child in a split task: it takes every stripe from the seed
 * (alone on its downlink, so the seed's fast uplink never competes with a
 * peer's flow in a child's shaped queue and resends what that queue dropped)
 * and, like the seed, gives each stripe to one child.
 */
export function isRelay(peer: PeerEntry): boolean {
  for (const [parent, mask] of peer.parentMasks) if (parent.seedLike && mask === allStripes(peer.task.stripes)) return true;
  return false;
}

/** Gives each stripe once: a seed, a back-to-source peer, the seed's relay. */
function givesEachOnce(peer: PeerEntry): boolean {
  return peer.seedLike || isRelay(peer);
}

/** Holds or brings in every piece: the root of every stripe tree it is in. */
function isRoot(peer: PeerEntry): boolean {
  return givesEachOnce(peer) || peer.state === 'complete';
}

/**
 * Whether `parent` may feed `child` some stripe at all: another host, serving
 * or fed (the callers also ask for a path up the stripe's tree), not blocked,
 * not already serving it every piece.
 */
function mayFeed(child: PeerEntry, parent: PeerEntry): boolean {
  if (parent === child || parent.host === child.host || !parent.fed || child.blocked.has(parent.id)) return false;
  return !(child.parents.has(parent) && !child.parentMasks.has(parent));
}

interface Candidate {
  peer: PeerEntry;
  shared: boolean;
  /** the parent's host announced a link much faster than the child's: its place is kept for fast peers */
  wasted: boolean;
  depth: number;
  score: number;
}

function better(a: Candidate, b: Candidate): boolean {
  if (a.shared !== b.shared) return !a.shared;
  if (a.wasted !== b.wasted) return !a.wasted;
  if (a.depth !== b.depth) return a.depth < b.depth;
  if (a.score !== b.score) return a.score > b.score;
  return a.peer.id < b.peer.id;
}

function bits(mask: number): number {
  let n = 0;
  for (let m = mask; m !== 0; m &= m - 1) n++;
  return n;
}

/**
 * Whether `parent` may take one more child in stripe `s`. A seed or source
 * serves each stripe once per task (children that completed and stay keep
 * their stripes spent); any other peer has k stripe edges in all.
 */
export function stripeFree(parent: PeerEntry, s: number, k: number): boolean {
  const bit = 1 << s;
  if (givesEachOnce(parent)) {
    for (const child of parent.children) if ((edgeMask(child, parent, k) & bit) !== 0) return false;
    for (const mask of parent.retiredChildren.values()) if (((mask ?? allStripes(k)) & bit) !== 0) return false;
    return true;
  }
  let used = 0;
  for (const child of parent.children) used += bits(edgeMask(child, parent, k));
  return used < k && parent.host.info.uploadLoad < Math.max(1, parent.host.info.uploadSlots);
}

/**
 * The task's peers that may take another child in some stripe: those of
 * TaskEntry.roomy that are in the task, fed, and have a stripe free; the
 * others leave the set (each comes back when its room or standing changes:
 * model.ts). Every peer with room is among them, so a search for a free place
 * over these finds what one over every peer would (docs/design.md, "Cost at
 * scale").
 */
export function peersWithRoom(task: TaskEntry): PeerEntry[] {
  const k = task.stripes;
  const found: PeerEntry[] = [];
  for (const peer of task.roomy) {
    let room = false;
    if (task.peers.get(peer.id) === peer && peer.fed) for (let s = 0; s < k && !room; s++) room = stripeFree(peer, s, k);
    if (room) found.push(peer);
    else task.roomy.delete(peer);
  }
  return found;
}

/** Hops from `peer` up to a root along stripe `s` (MAX_DEPTH when the path is broken). */
export function stripeDepth(peer: PeerEntry, s: number, k: number): number {
  const bit = 1 << s;
  let current = peer;
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    if (isRoot(current)) return depth;
    let up: PeerEntry | undefined;
    for (const parent of current.parents) {
      if ((edgeMask(current, parent, k) & bit) !== 0) {
        up = parent;
        break;
      }
    }
    if (up === undefined) return MAX_DEPTH;
    current = up;
  }
  return MAX_DEPTH;
}

/** The parent that feeds `peer` stripe `s`, if one does. */
function stripeParent(peer: PeerEntry, s: number, k: number): PeerEntry | undefined {
  const bit = 1 << s;
  for (const parent of peer.parents) if ((edgeMask(peer, parent, k) & bit) !== 0) return parent;
  return undefined;
}

/**
 * stripeDepth, remembering in `known` the depth of every peer on the way up:
 * one search asks it of every peer of a tree, which costs then one hop per
 * peer instead of one per peer and level. The same answers as stripeDepth.
 */
export function depthIn(peer: PeerEntry, s: number, k: number, known: Map<PeerEntry, number>): number {
  const path: PeerEntry[] = [];
  let current: PeerEntry | undefined = peer;
  let depth: number | undefined;
  while (current !== undefined && path.length < MAX_DEPTH) {
    depth = known.get(current) ?? (isRoot(current) ? 0 : undefined);
    if (depth !== undefined) break;
    path.push(current);
    current = stripeParent(current, s, k);
  }
  // Too long a walk says nothing of the peers near its top: nothing is remembered.
  if (current !== undefined && depth === undefined) return MAX_DEPTH;
  // A broken path is MAX_DEPTH for every peer on it; else each is one hop more than the one above.
  let d = depth ?? MAX_DEPTH;
  for (let i = path.length - 1; i >= 0; i--) {
    d = Math.min(MAX_DEPTH, d + 1);
    known.set(path[i]!, d);
  }
  return d;
}

/** True when `candidate` is `child` or below it in stripe `s`'s tree. */
export function wouldCycleInStripe(child: PeerEntry, candidate: PeerEntry, s: number, k: number): boolean {
  return wouldCycle(child, candidate, (next, parent) => (edgeMask(next, parent, k) & (1 << s)) !== 0);
}

/** The task's roots of the split trees (isRoot), from TaskEntry.rootish; the others leave that set. */
function roots(task: TaskEntry): PeerEntry[] {
  const found: PeerEntry[] = [];
  for (const peer of task.rootish) {
    if (task.peers.get(peer.id) === peer && isRoot(peer)) found.push(peer);
    else task.rootish.delete(peer);
  }
  return found;
}

/** The first child of `root` whose place in stripe `s` `child` may take: a leaf of that tree, not much faster than `child`. */
function leafPlace(child: PeerEntry, root: PeerEntry, s: number): PeerEntry | undefined {
  const bit = 1 << s;
  for (const from of root.children) {
    const mask = from.parentMasks.get(root);
    if (from === child || mask === undefined || (mask & bit) === 0) continue;
    // A slow host never takes a fast one's place (it would be taken back, and so on).
    if (!isRoot(from) && from.stripe !== s && !slowerParent(from, child)) return from;
  }
  return undefined;
}

/**
 * A place in stripe `s`'s tree that `child`, which passes that stripe on,
 * may take over from another child `from` of `root`: a place held by a child
 * that does not pass stripe `s` on (a leaf of that tree), under a root no
 * slower than the child first (slowerParent), then shallowest first
 * (stripeDepth), then the root that joined first. The leaf then takes the
 * stripe from `child`, one hop further down, and the tree keeps the peers
 * that pass it on near its top. A much slower host never takes a fast one's
 * place (docs/design.md, "Slow links").
 *
 * The tree is walked down from its roots, a level at a time, and the walk
 * ends below the best place found: a place near the top costs the peers
 * above it, not every peer of the task (docs/design.md, "Cost at scale").
 */
export function stripeToTake(child: PeerEntry, s: number, k: number, depths = new Map<PeerEntry, number>()): { root: PeerEntry; from: PeerEntry } | undefined {
  if (child.stripe !== s) return undefined;
  const bit = 1 << s;
  const task = child.task;
  let best: { root: PeerEntry; from: PeerEntry; rank: number } | undefined;
  const seen = new Set<PeerEntry>();
  let level = roots(task);
  for (const p of level) seen.add(p);
  // A peer's depth is at least its level (the fewest hops from a root), so past the best rank nothing is better.
  for (let hops = 0; level.length > 0 && hops < MAX_DEPTH && (best === undefined || hops <= best.rank); hops++) {
    const next: PeerEntry[] = [];
    for (const root of level) {
      for (const c of root.children) {
        if (!seen.has(c) && (edgeMask(c, root, k) & bit) !== 0) {
          seen.add(c);
          next.push(c);
        }
      }
      if (!mayFeed(child, root)) continue;
      if (!isRoot(root) && !(root.stripe === s && (coveredStripes(root, k) & bit) !== 0)) continue;
      const from = leafPlace(child, root, s);
      if (from === undefined) continue;
      const depth = depthIn(root, s, k, depths);
      if (depth >= MAX_DEPTH) continue;
      const rank = slowerParent(child, root) ? MAX_DEPTH + depth : depth;
      if (best !== undefined && (rank > best.rank || (rank === best.rank && root.order > best.root.order))) continue;
      if (wouldCycleInStripe(child, root, s, k)) continue;
      best = { root, from, rank };
    }
    level = next;
  }
  return best === undefined ? undefined : { root: best.root, from: best.from };
}

/**
 * The parent to give `child` for stripe `s`: the shallowest in that stripe's
 * tree (a seed first, which fills the trees breadth first), then the best
 * scored; a host much slower than the child's (slowerParent) only with
 * `slowToo`. Undefined when none can serve the stripe now. A peer that is not a
 * root passes on its own stripe only, to a child it serves no other stripe,
 * unless `starving` (the child asked again): stripes taken from one peer, or
 * from a peer that passes on another, would spend its upload on a chain
 * instead of a tree.
 */
export function pickStripeParent(
  child: PeerEntry,
  candidates: Iterable<PeerEntry>,
  s: number,
  k: number,
  starving = false,
  slowToo = false,
  depths = new Map<PeerEntry, number>(),
): PeerEntry | undefined {
  const bit = 1 << s;
  let best: Candidate | undefined;
  for (const peer of candidates) {
    if (!mayFeed(child, peer) || (!slowToo && slowerParent(child, peer))) continue;
    if (!isRoot(peer) && !starving && (child.parents.has(peer) || peer.stripe !== s)) continue;
    if (!isRoot(peer) && (coveredStripes(peer, k) & bit) === 0) continue;
    if (!stripeFree(peer, s, k) || wouldCycleInStripe(child, peer, s, k)) continue;
    const depth = depthIn(peer, s, k, depths);
    if (depth >= MAX_DEPTH) continue;
    const shared = child.parents.has(peer) || (!isRoot(peer) && peer.stripe !== s);
    const candidate: Candidate = { peer, shared, wasted: !isRoot(peer) && slowerParent(peer, child), depth, score: score(child, peer) };
    if (best === undefined || better(candidate, best)) best = candidate;
  }
  return best?.peer;
}
