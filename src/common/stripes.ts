/**
 * The stripe rule of split trees (docs/design.md, "Split trees"), shared by
 * the scheduler, which deals stripes, and the downloader, which takes from a
 * parent only the pieces of its stripes: with k stripes, piece n belongs to
 * stripe n % k, and a stripe mask has bit s set for stripe s. A count outside
 * 2..MAX_STRIPES means no stripes: every piece.
 */

/** The most stripes a task is dealt into (the schema's `stripes` bound). */
export const MAX_STRIPES = 8;

/** Whether `k` stripes split pieces at all. */
export function isStriped(k: number): boolean {
  return Number.isInteger(k) && k >= 2 && k <= MAX_STRIPES;
}

/** Every stripe's bit. */
export function allStripes(k: number): number {
  return (1 << k) - 1;
}

/** The bit of piece n's stripe. */
export function stripeBit(n: number, k: number): number {
  return 1 << n % k;
}

/** Whether piece n is in `mask` (every piece when `k` does not stripe). */
export function inStripes(n: number, k: number, mask: number): boolean {
  return !isStriped(k) || (mask & stripeBit(n, k)) !== 0;
}
