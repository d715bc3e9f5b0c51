/** What a listing yields, whatever it came from (an S3 prefix, an nginx autoindex). */

export interface ListedFile {
  /** Relative name under the listed prefix or directory, `/`-separated; not yet checked as a path (./safe-path.ts). */
  readonly name: string;
  /** The source URL of the file (s3:// or http(s)://). */
  readonly url: string;
  /** Bytes, when the listing says exactly. */
  readonly size: number | undefined;
  /** Last modification, ms since the epoch, when the listing says. */
  readonly mtime: number | undefined;
}

/** Caps on what a listing may make us do (docs/LIMITS.md). */
export const LISTING_LIMITS = {
  /** Files in one `get --recursive`. */
  files: 100_000,
  /** Directory levels below the URL (HTTP indexes). */
  depth: 32,
  /** Bytes of one listing page or index document. */
  pageBytes: 16 * 1024 * 1024,
  /** Pages or index documents fetched. */
  pages: 10_000,
} as const;
