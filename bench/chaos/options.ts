/**
 * The chaos suite's command line and its two sizes. `--quick` (CI) keeps
 * every scenario with fewer peers, smaller files and fewer soak downloads.
 *   --quick         the reduced run (.ci/run)
 *   --seed N        the seed of every random choice (default: from the clock; printed)
 *   --only a,b      run only the scenarios whose name contains one of these (replaying one)
 */
const KiB = 1024;
const MiB = 1024 * KiB;

export interface Sizes {
  /** Normal peers of the swarm (besides the seed). */
  peers: number;
  /** The swarm's file. */
  fileBytes: number;
  /** Piece size of swarm downloads (`--piece-length`). */
  pieceBytes: number;
  /** Upload cap of each peer and the seed (bytes/s): transfers long enough to be hit mid-way. */
  uploadRate: string;
  /** Small downloads of the soak, through one daemon. */
  soakDownloads: number;
  /** Soak downloads in flight at once. */
  soakConcurrency: number;
  /** Concurrent API requests. */
  apiRequests: number;
  /** Malformed inputs per listener kind. */
  fuzzCases: number;
  /** The tmpfs under the disk-full peer. */
  tmpfsBytes: number;
  /** Bound on one scenario; past it every download still running is lost. */
  scenarioMs: number;
  /** Bound on one download. */
  downloadMs: number;
}

export interface ChaosOptions {
  quick: boolean;
  seed: number;
  only: string[];
  sizes: Sizes;
}

export const QUICK: Sizes = {
  peers: 10,
  fileBytes: 8 * MiB,
  pieceBytes: 256 * KiB,
  uploadRate: '6MiB',
  soakDownloads: 1_000,
  soakConcurrency: 16,
  apiRequests: 1_000,
  fuzzCases: 150,
  tmpfsBytes: 8 * MiB,
  scenarioMs: 90_000,
  downloadMs: 60_000,
};

export const FULL: Sizes = {
  peers: 16,
  fileBytes: 32 * MiB,
  pieceBytes: 256 * KiB,
  uploadRate: '12MiB',
  soakDownloads: 10_000,
  soakConcurrency: 32,
  apiRequests: 1_000,
  fuzzCases: 1_000,
  tmpfsBytes: 16 * MiB,
  scenarioMs: 600_000,
  downloadMs: 180_000,
};

export function parseOptions(argv: readonly string[]): ChaosOptions {
  let quick = false;
  let seed = Date.now() % 1_000_000;
  let only: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--quick') quick = true;
    else if (arg === '--seed') seed = Number(argv[++i]);
    else if (arg === '--only') only = (argv[++i] ?? '').split(',').filter((s) => s !== '');
    else if (arg === '--') continue;
    else throw new RangeError(`unknown argument ${String(arg)} (--quick, --seed N, --only a,b)`);
  }
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError('--seed takes a non-negative integer');
  return { quick, seed, only, sizes: quick ? QUICK : FULL };
}
