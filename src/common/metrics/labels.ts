/** Bounded label values for the metrics of daemons and schedulers (docs/metrics.md). */

/** A back-to-source reason as a bounded label value. */
export function reasonLabel(reason: string): string {
  switch (reason) {
    case 'seed peer fetches first':
      return 'seed_first';
    case 'no seed peer':
      return 'no_seed';
    case 'seed peer unavailable':
      return 'seed_unavailable';
    case 'scheduler unreachable':
      return 'scheduler_unreachable';
    case 'no scheduler configured':
      return 'no_scheduler';
    default:
      return 'other';
  }
}

/** A content length as a bounded size class. */
export function sizeLabel(bytes: number | undefined): string {
  const MiB = 1024 * 1024;
  if (bytes === undefined || bytes < MiB) return 'lt_1mib';
  if (bytes < 16 * MiB) return 'lt_16mib';
  if (bytes < 256 * MiB) return 'lt_256mib';
  if (bytes < 4096 * MiB) return 'lt_4gib';
  return 'ge_4gib';
}
