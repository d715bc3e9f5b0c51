/**
 * Slow links measured from piece reports, where no host announced its rate
 * (docs/design.md, "Slow links", "Measured"). A downloading peer's host is
 * slow when a parent had pieces for it and upload to spare, and it still
 * took them in at a fraction of the parent's pace: the pace is its own
 * link's. The host then counts as slow at its best rate (HostEntry.slowRate,
 * scoring.ts linkRate) until it goes twice as fast, and the task's chain or
 * trees are rebuilt fastest first (./rebuild.ts). Pure functions over the
 * model, with the scheduler's clock passed in.
 */
import { inStripes } from '../common/stripes.js';
import { RATE_WINDOW_MS, type HostEntry, type PeerEntry, type TaskEntry } from './model.js';
import { edgeMask } from './stripes.js';

/** How often a task's peers' links are measured, at most. */
const MEASURE_EVERY_MS = 500;
/** Pieces a parent must hold ahead of a child before the child's pace is held against its link. */
const LAG_PIECES = 4;
/** Rebuilds of one task's chain or trees for slow hosts found, at most one per this long. */
const REBUILD_GAP_MS = 2000;

/** What a measurement found, for the log. */
export type LinkFinding =
  | { kind: 'slow'; peer: PeerEntry; rate: number; parent: PeerEntry; parentRate: number; parentSent: number }
  | { kind: 'recovered'; peer: PeerEntry; rate: number };

/** Whether the task's links are due to be measured, new pieces having just been reported. */
export function dueForMeasure(task: TaskEntry, now: number): boolean {
  return now - task.linksMeasuredAt >= MEASURE_EVERY_MS;
}

/** Whether a slow host was found since the last rebuild, and the last is long enough ago. */
export function rebuildDue(task: TaskEntry, now: number): boolean {
  return task.rebuildForSlow && now - task.rebuiltAt >= REBUILD_GAP_MS;
}

/** Twice as fast as when it was found slow: it was not its link (a busy machine, a cold start). */
function fasterThanFound(host: HostEntry): boolean {
  return host.measuredSlow && host.peakRate > 2 * host.slowRate;
}

/** Whether piece n is one `parent` serves `peer`. */
function servedBy(peer: PeerEntry, parent: PeerEntry): (n: number) => boolean {
  const k = peer.task.stripes;
  const mask = edgeMask(peer, parent, k);
  return (n) => inStripes(n, k, mask);
}

/** `parent` holds LAG_PIECES pieces or more that it is to serve `peer` and `peer` lacks. */
function lagsBehind(peer: PeerEntry, parent: PeerEntry): boolean {
  const serves = servedBy(peer, parent);
  let behind = 0;
  for (const n of parent.pieces.missingFrom(peer.pieces)) if (serves(n) && ++behind >= LAG_PIECES) return true;
  return false;
}

/**
 * The rate pieces came into `parent`, in bytes/s: its download rate when it
 * fetches from peers; a seed's announced rate (it downloads from the origin,
 * whose pace is not reported); else unknown.
 */
function intake(parent: PeerEntry, now: number, pieceSize: number): number | undefined {
  if (parent.fetching) return parent.recentRate(now, pieceSize);
  return parent.seedLike && parent.host.info.uploadRate > 0 ? parent.host.info.uploadRate : undefined;
}

/** What `parent`'s children together took from it, in bytes/s; unknown while one is too new to have a rate. */
function sentToChildren(parent: PeerEntry, now: number, pieceSize: number): number | undefined {
  let sent: number | undefined = 0;
  for (const child of parent.children) {
    const took = child.recentRate(now, pieceSize, servedBy(child, parent));
    sent = took === undefined || sent === undefined ? undefined : sent + took;
  }
  return sent;
}

/**
 * The parent that proves `peer`'s link slow, if one does: linked for a
 * window at least (a younger edge is judged on whatever fed the peer
 * before), it took pieces in at over three times the peer's pace now and
 * twice its best (a fast host slowed for a while is not slow), holds pieces
 * for it, and its children together took under three quarters of its
 * intake (it had upload to spare: a link's upload is taken to match its
 * download).
 */
function slowProof(peer: PeerEntry, rate: number, now: number, pieceSize: number): Extract<LinkFinding, { kind: 'slow' }> | undefined {
  for (const parent of peer.parents) {
    if (now - (peer.linkedAt.get(parent) ?? now) < RATE_WINDOW_MS) continue;
    const fed = intake(parent, now, pieceSize);
    if (fed === undefined || rate * 3 >= fed || peer.host.peakRate * 2 >= fed) continue;
    if (!lagsBehind(peer, parent)) continue;
    const sent = sentToChildren(parent, now, pieceSize);
    if (sent === undefined || sent >= 0.75 * fed) continue;
    return { kind: 'slow', peer, rate, parent, parentRate: fed, parentSent: sent };
  }
  return undefined;
}

/**
 * Measures the task's downloading peers at `now`: each host's best rate,
 * hosts no longer slow, and hosts found slow (marking the task for a
 * rebuild). A host with an announced rate is not measured slow. Returns
 * what changed, in order.
 */
export function measureLinks(task: TaskEntry, now: number): LinkFinding[] {
  const pieceSize = task.shape?.pieceSize;
  if (pieceSize === undefined) return [];
  const found: LinkFinding[] = [];
  for (const peer of task.downloaders()) {
    const rate = peer.recentRate(now, pieceSize);
    if (rate === undefined) continue;
    const host = peer.host;
    host.peakRate = Math.max(host.peakRate, rate);
    if (fasterThanFound(host)) {
      host.slowRate = 0;
      found.push({ kind: 'recovered', peer, rate });
    }
    if (host.measuredSlow || host.info.uploadRate > 0) continue;
    const proof = slowProof(peer, rate, now, pieceSize);
    if (proof === undefined) continue;
    host.slowRate = host.peakRate;
    task.rebuildForSlow = true;
    found.push(proof);
  }
  return found;
}
