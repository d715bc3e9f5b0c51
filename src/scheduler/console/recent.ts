/**
 * Counts over a sliding window (the console's last ten minutes), in buckets:
 * memory stays bounded however many events arrive, and a count leaves the
 * window at most one bucket late. Pure: the caller gives the time.
 */

export interface RecentCountsOptions {
  readonly windowMs: number;
  readonly bucketMs: number;
}

interface Bucket<K extends string> {
  readonly start: number;
  readonly counts: Partial<Record<K, number>>;
}

export class RecentCounts<K extends string> {
  readonly windowMs: number;
  readonly #bucketMs: number;
  /** Oldest first; at most windowMs / bucketMs + 1 of them. */
  readonly #buckets: Array<Bucket<K>> = [];

  constructor(options: RecentCountsOptions) {
    this.windowMs = options.windowMs;
    this.#bucketMs = options.bucketMs;
  }

  add(key: K, n: number, now: number): void {
    if (n <= 0) return;
    const start = now - (now % this.#bucketMs);
    let last = this.#buckets.at(-1);
    if (last === undefined || last.start < start) {
      last = { start, counts: {} };
      this.#buckets.push(last);
    }
    // A clock that stepped back counts into the newest bucket.
    last.counts[key] = (last.counts[key] ?? 0) + n;
    this.#expire(now);
  }

  /** What was added within the window before `now`, by key (0 for a key never added). */
  totals(keys: readonly K[], now: number): Record<K, number> {
    this.#expire(now);
    const out = Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
    for (const bucket of this.#buckets) for (const k of keys) out[k] += bucket.counts[k] ?? 0;
    return out;
  }

  /** Drops the buckets that ended before the window began. */
  #expire(now: number): void {
    const since = now - this.windowMs;
    let drop = 0;
    while (drop < this.#buckets.length && this.#buckets[drop]!.start + this.#bucketMs <= since) drop++;
    if (drop > 0) this.#buckets.splice(0, drop);
  }
}
