/**
 * Rendezvous (highest random weight) hashing: every member ranks the same
 * candidates the same way for a key, with no coordination, and removing one
 * candidate moves only the keys it ranked first, each to its next. The
 * scheduler places a task on a seed host with it (scheduler/seeds.ts); a
 * daemon places a task on one of its schedulers (daemon/scheduler-pool.ts).
 */

/** The weight of `candidate` for `key`: FNV-1a over both, 32 bits. */
export function rendezvous(key: string, candidate: string): number {
  let h = 2166136261;
  const s = key + '/' + candidate;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h;
}

/** `candidates` in `key`'s order, highest weight first (ties: the order given). */
export function rendezvousOrder<T>(key: string, candidates: readonly T[], name: (candidate: T) => string): T[] {
  return candidates
    .map((candidate, i) => ({ candidate, i, weight: rendezvous(key, name(candidate)) }))
    .sort((a, b) => b.weight - a.weight || a.i - b.i)
    .map((c) => c.candidate);
}
