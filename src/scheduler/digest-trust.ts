/**
 * Whose piece digests the scheduler believes and passes on (docs/security.md,
 * "Trust"). Two policies:
 *
 * - strict (the scheduler runs with TLS): a seed peer, whose role its
 *   certificate proves, and a peer this scheduler itself sent to the origin
 *   saw the bytes first-hand; their digests are trusted, and a trusted
 *   digest is never replaced. Nothing else is believed: not a peer's claim to
 *   be fetching from the origin, not the digests a normal peer re-announces.
 * - open (no TLS: anyone who reaches the scheduler is trusted alike): also a
 *   peer that says it is fetching from the origin, and a complete normal
 *   peer re-announced after a restart, whose digests stand in (a fallback)
 *   until one of those vouches for the piece.
 *
 * Pure functions over the model.
 */
import { unpackDigests } from '../common/pieces.js';
import type { HostEntry, PeerEntry, TaskEntry } from './model.js';

/** How far a report's digests are believed: trusted, a fallback that only fills gaps, or not at all. */
export type DigestTrust = 'trusted' | 'fallback' | 'none';

export type TrustPolicy = 'strict' | 'open';

/** A peer registering: a seed vouches; in the open policy, so does one that says it is fetching from the origin. */
export function registerTrust(policy: TrustPolicy, host: HostEntry, backToSource: boolean): DigestTrust {
  return host.info.seed || (policy === 'open' && backToSource) ? 'trusted' : 'none';
}

/** A complete task a host re-announced: a seed's is trusted; in the open policy a normal peer's stands in until one vouches. */
export function heldTrust(policy: TrustPolicy, host: HostEntry): DigestTrust {
  if (host.info.seed) return 'trusted';
  return policy === 'open' ? 'fallback' : 'none';
}

/** Pieces a peer just stored: trusted from a seed or the origin's fetcher (in the strict policy, one this scheduler chose). */
export function reportTrust(policy: TrustPolicy, peer: PeerEntry): DigestTrust {
  if (peer.host.info.seed) return 'trusted';
  if (peer.state !== 'source') return 'none';
  return policy === 'open' || peer.sentToSource ? 'trusted' : 'none';
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
