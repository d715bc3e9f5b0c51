/**
 * The rate limits a download's bytes pass through (README, "Rate limits";
 * docs/configuration.md `download.rate`, `source.rate`): each a token
 * bucket (../../common/rate-limiter.ts), each may be absent. A piece from a
 * parent passes the daemon's download limit and the task's own; a chunk
 * from the origin passes the back-to-source limit too.
 */
import type { RateLimiter } from '../../common/rate-limiter.js';

export interface DownloadLimits {
  /** The daemon-wide download limit: every byte received, from parents or the origin. */
  readonly download?: RateLimiter | undefined;
  /** The back-to-source limit: bytes from origins. */
  readonly source?: RateLimiter | undefined;
  /** This task's own (`shoal get --limit-rate`); read at each transfer, since a later get may lower it. */
  readonly task?: (() => RateLimiter | undefined) | undefined;
}
