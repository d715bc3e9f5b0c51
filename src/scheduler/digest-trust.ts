/**
 * Whose piece digests the scheduler believes and passes on (docs/design.md,
 * "Trust"). A seed peer or the peer fetching from the origin saw the bytes
 * first-hand: its digests are trusted, and a trusted digest is never
 * replaced. A complete normal peer re-announced after a restart stands in
 * (a fallback) until one of those vouches for the piece. Anything else a
 * normal peer reports is not believed. Pure functions over the model.
 */
import { unpackDigests } from '../common/pieces.js';
import type { HostEntry, PeerEntry, TaskEntry } from './model.js';

/** How far a report's digests are believed: trusted, a fallback that only fills gaps, or not at all. */
export type DigestTrust = 'trusted' | 'fallback' | 'none';

/** A peer registering: it vouches only as a seed, or as the peer fetching from the origin. */
export function registerTrust(host: HostEntry, backToSource: boolean): DigestTrust {
  return host.info.seed || backToSource ? 'trusted' : 'none';
}

/** A complete task a host re-announced: a seed's is trusted; a normal peer's stands in until one vouches. */
export function heldTrust(host: HostEntry): DigestTrust {
  return host.info.seed ? 'trusted' : 'fallback';
}

/** Pieces a peer just stored: trusted from a seed or the origin's fetcher, else not believed. */
export function reportTrust(peer: PeerEntry): DigestTrust {
  return peer.seedLike ? 'trusted' : 'none';
}

/**
 * Records the digests reported for pieces `numbers` (packed, 32 bytes each;
 * ignored when the lengths disagree); returns the pieces whose digest is new
 * or changed, for the task's peers to hear. A trusted digest replaces a
 * fallback one, and one equal to a fallback makes it trusted; a fallback
 * only fills a gap.
 */
export function learnDigests(task: TaskEntry, numbers: readonly number[], packed: Uint8Array, trust: DigestTrust): number[] {
  const reported = trust === 'none' ? undefined : unpackDigests(numbers, packed);
  const fresh: number[] = [];
  for (const [n, digest] of reported ?? []) {
    const known = task.digests.get(n);
    if (known !== undefined && (task.trusted.has(n) || trust === 'fallback')) continue;
    if (known !== undefined && digest.equals(known)) {
      task.trusted.add(n);
      continue;
    }
    task.digests.set(n, digest);
    if (trust === 'trusted') task.trusted.add(n);
    fresh.push(n);
  }
  return fresh;
}
