/**
 * Sizes and durations as people write them ("512MiB", "30s"), for config
 * files and command-line flags alike. Kept apart from config.ts so that a
 * command that only parses a flag does not load the config schemas.
 */

const SIZE_RE = /^(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib|t|tb|tib)?$/i;
const UNITS: Record<string, number> = {
  b: 1, k: 1024, kb: 1000, kib: 1024, m: 1024 ** 2, mb: 1000 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1000 ** 3, gib: 1024 ** 3, t: 1024 ** 4, tb: 1000 ** 4, tib: 1024 ** 4,
};

/** "512MiB", "10GB", "1048576" → bytes. */
export function parseSize(value: string | number): number {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw new Error(`invalid size ${value}`);
    return value;
  }
  const m = SIZE_RE.exec(value.trim());
  if (m === null) throw new Error(`invalid size ${JSON.stringify(value)} (use e.g. 512MiB, 10GB)`);
  const bytes = Math.round(Number(m[1]) * UNITS[(m[2] ?? 'b').toLowerCase()]!);
  if (!Number.isSafeInteger(bytes)) throw new Error(`size ${JSON.stringify(value)} is too large`);
  return bytes;
}

const DURATION_RE = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/;
const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "30s", "10m", "2h", "1500ms", a bare number = seconds → milliseconds. */
export function parseDuration(value: string | number): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw new Error(`invalid duration ${value}`);
    if (value * 1000 > Number.MAX_SAFE_INTEGER) throw new Error(`duration ${value} is too large`);
    return value * 1000;
  }
  const m = DURATION_RE.exec(value.trim());
  if (m === null) throw new Error(`invalid duration ${JSON.stringify(value)} (use e.g. 30s, 10m, 2h)`);
  const ms = Math.round(Number(m[1]) * DURATION_UNITS[m[2] ?? 's']!);
  if (!Number.isSafeInteger(ms)) throw new Error(`duration ${JSON.stringify(value)} is too large`);
  return ms;
}
