/**
 * Who fetches from the origin (DESIGN.md, "Back to source": once per task
 * per cluster in the normal case, a seed peer). A peer goes there only when
 * no parent can serve it, nothing is on its way, and no seed will fetch the
 * task; when the origin refuses the one fetching, those with nowhere else to
 * turn hear the refusal rather than each asking the origin in turn. Pure
 * functions over the model; the swarm asks the seed and sends the orders.
 */
import type { PeerEntry, TaskEntry } from './model.js';

/** Every piece of the task has a digest the scheduler believes (./digest-trust.ts): a holder's pieces can be checked. */
function digestsKnown(task: TaskEntry): boolean {
  return task.pieceCount !== undefined && task.digests.size >= task.pieceCount;
}

/**
 * Holds every piece or brings it in: a peer fetching from the origin, or a
 * complete one whose pieces can be checked (a holder whose digests nobody
 * vouched for is no supply: the strict policy believes no normal peer).
 */
function isSupply(peer: PeerEntry): boolean {
  return peer.state === 'source' || (peer.state === 'complete' && digestsKnown(peer.task));
}

/** Pieces will keep coming to `peer`: a supply on another host exists that it has not blocked. */
export function hasSupply(peer: PeerEntry): boolean {
  for (const p of peer.task.peers.values()) {
    if (isSupply(p) && p.host !== peer.host && !peer.blocked.has(p.id)) return true;
  }
  return false;
}

function hasCompletePeer(task: TaskEntry, except: PeerEntry): boolean {
  if (!digestsKnown(task)) return false;
  for (const p of task.peers.values()) if (p !== except && p.state === 'complete' && p.host !== except.host) return true;
  return false;
}

/** A seed peer registering for a task nobody fetches from the origin or holds: it fetches it itself, at once. */
export function seedFetchesFirst(peer: PeerEntry): boolean {
  return peer.host.info.seed && peer.task.sources().length === 0 && !hasCompletePeer(peer.task, peer);
}

export interface SourceRules {
  /** Peers of one task fetching from the origin at once. */
  readonly sourceLimit: number;
  /** The scheduler started less than its recovery window ago: the peer that was fetching may yet re-register. */
  readonly recovering: boolean;
}

/**
 * Whether `peer`, which no parent can serve, waits rather than going to the
 * origin (before any seed is asked): it has a supply, or it re-registered
 * while the old source may still come back, or the task has as many peers
 * fetching from the origin as it may.
 */
export function waitsForSupply(peer: PeerEntry, rules: SourceRules): boolean {
  if (hasSupply(peer)) return true;
  if (peer.reconnected && rules.recovering) return true;
  return peer.task.sources().length >= rules.sourceLimit;
}

/** The origin refused the peer fetching from it: what it answered, everyone would hear. */
export function originRefused(peer: PeerEntry, code: string): boolean {
  return peer.state === 'source' && code.startsWith('SOURCE_');
}

/**
 * The peers the origin's refusal ends: every active peer of the task but
 * `source` that has no other supply. Asked once `source` is marked failed
 * (no supply any more) and before it is removed, so that its children are
 * not sent to the origin in its place.
 */
export function refusedWith(source: PeerEntry): PeerEntry[] {
  return [...source.task.peers.values()].filter((p) => p !== source && p.active && !hasSupply(p));
}

/** What a peer sent to the origin is told. */
export function sourceReason(anySeedHost: boolean): string {
  return anySeedHost ? 'seed peer unavailable' : 'no seed peer';
}
