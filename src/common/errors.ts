/**
 * One error hierarchy for Shoal. Every error that crosses a module boundary is
 * a ShoalError with a stable `code`; docs/errors.md lists them all with their
 * exit code (CLI) and HTTP status (APIs). A code never changes meaning.
 */

export interface ErrorInfo {
  /** Process exit code when this error ends `shoal get` (wget-like; docs/errors.md). */
  readonly exit: number;
  /** HTTP status when the error crosses HTTP. */
  readonly status: number;
  readonly summary: string;
}

export const ERRORS = {
  USAGE: { exit: 2, status: 400, summary: 'bad command line or request arguments' },
  CONFIG_INVALID: { exit: 2, status: 400, summary: 'configuration file is malformed or has a bad value' },
  URL_INVALID: { exit: 2, status: 400, summary: 'URL is malformed or its scheme is not http/https/s3 (an s3 URL with a bad bucket, key or parameter)' },
  DIGEST_INVALID: { exit: 2, status: 400, summary: 'digest is not of the form sha256:<64 hex>' },
  NAME_INVALID: { exit: 2, status: 400, summary: 'repository name does not match the OCI grammar (registry mirror)' },
  TAG_INVALID: { exit: 2, status: 400, summary: 'tag does not match the OCI grammar (registry mirror)' },
  UPSTREAM_INVALID: { exit: 2, status: 502, summary: 'the registry a mirror request names is malformed, plain HTTP without `insecure: true`, or none is configured' },
  UPSTREAM_NOT_ALLOWED: { exit: 2, status: 403, summary: 'the registry a mirror request names is not one the mirror is configured to serve (mirror.upstreams, --upstream); nothing was asked of it' },
  OUTPUT_UNWRITABLE: { exit: 3, status: 500, summary: 'output path cannot be written' },
  STORAGE: { exit: 3, status: 500, summary: 'the piece store failed (I/O error, unreadable data dir)' },
  STORAGE_FULL: { exit: 3, status: 507, summary: "no space left in the data directory (ENOSPC, quota, SQLite full): the download failed and the daemon dropped partial tasks, and cached ones if that makes room; later downloads work once there is space" },
  DATA_DIR_LOCKED: { exit: 3, status: 500, summary: 'another Shoal process owns the data directory' },
  LISTEN_FAILED: { exit: 3, status: 500, summary: 'a listener cannot bind its address (in use, not local, no permission)' },
  INSECURE_LISTEN: { exit: 2, status: 500, summary: 'a listener would accept other hosts without TLS: give the cluster certificates (tls.*), listen on loopback, or say --insecure' },
  CERT_INVALID: { exit: 2, status: 500, summary: 'a TLS certificate or key is missing, unreadable, expired, not signed by the cluster CA, or lacks the role it is used for' },
  ROLE_REQUIRED: { exit: 6, status: 403, summary: "the caller's certificate lacks the role the operation needs (or it has no certificate)" },
  DAEMON_UNREACHABLE: { exit: 4, status: 503, summary: 'the local daemon cannot be reached' },
  SCHEDULER_UNREACHABLE: { exit: 4, status: 503, summary: 'the scheduler cannot be reached' },
  SOURCE_NETWORK: { exit: 4, status: 502, summary: 'the origin could not be reached or dropped the connection' },
  SOURCE_AUTH: { exit: 6, status: 401, summary: 'the origin refused the credentials (401/403)' },
  SOURCE_CREDENTIALS: { exit: 6, status: 500, summary: 'the object-store credentials of this process are incomplete or unreadable (AWS_ACCESS_KEY_ID without AWS_SECRET_ACCESS_KEY, an AWS_PROFILE missing from ~/.aws/credentials and ~/.aws/config)' },
  SOURCE_NOT_FOUND: { exit: 8, status: 404, summary: 'the origin answered 404/410' },
  SOURCE_STATUS: { exit: 8, status: 502, summary: 'the origin answered with an error status' },
  SOURCE_CHANGED: { exit: 7, status: 502, summary: "the origin's content changed (another ETag, Last-Modified or length) while the task was fetched; nothing of the two versions was mixed: run it again" },
  SOURCE_PROTOCOL: { exit: 7, status: 502, summary: 'the origin answered in a way Shoal cannot use (bad range, length changed)' },
  LISTING_INVALID: { exit: 7, status: 502, summary: 'get --recursive: a listing (S3 ListObjectsV2, an nginx autoindex page) is malformed or not a listing' },
  PATH_UNSAFE: { exit: 2, status: 400, summary: 'get --recursive: a name from a listing is not a safe relative path (.., absolute, NUL, backslash) or would leave the output directory (through a symlink)' },
  DIGEST_MISMATCH: { exit: 9, status: 502, summary: 'the content does not match the expected digest' },
  PIECE_CORRUPT: { exit: 9, status: 502, summary: 'a piece from a peer failed its SHA-256 check' },
  PEER_FAILED: { exit: 4, status: 502, summary: 'a parent peer failed to serve a piece' },
  TIMEOUT: { exit: 10, status: 504, summary: 'the download did not finish within --timeout' },
  ABORTED: { exit: 130, status: 499, summary: 'the operation was cancelled' },
  TASK_NOT_FOUND: { exit: 8, status: 404, summary: 'no such task' },
  PIECE_NOT_FOUND: { exit: 8, status: 404, summary: 'the piece is not held here' },
  UPSTREAM_TOO_LARGE: { exit: 7, status: 502, summary: 'a registry response is over a size cap, e.g. a manifest over 4 MiB (docs/LIMITS.md)' },
  LIMIT_EXCEEDED: { exit: 7, status: 413, summary: 'a size or count limit was exceeded (docs/LIMITS.md)' },
  BUSY: { exit: 4, status: 503, summary: 'no free upload slot; try another parent' },
  SEED_UNAVAILABLE: { exit: 4, status: 503, summary: 'preheat: no seed peer is connected to the scheduler, or the one asked left or never started the task' },
  PREHEAT_INCOMPLETE: { exit: 11, status: 502, summary: 'preheat: some tasks failed (each is listed with its own code)' },
  PLATFORM_UNKNOWN: { exit: 8, status: 404, summary: 'preheat image: the image index has no manifest for the requested --platform' },
  PROXY_LOOP: { exit: 2, status: 508, summary: 'HTTP proxy: the request targets the proxy itself, or already passed through it (Via)' },
  CACHE_ID_INVALID: { exit: 2, status: 400, summary: 'shoal cache: the cache ID is not 1–128 of A–Z a–z 0–9 . _ - : starting with a letter or digit, or it is sha256:<hex> and not the content\'s digest' },
  CACHE_CONFLICT: { exit: 9, status: 409, summary: 'shoal cache import: the cache ID is taken by other content (the first importer\'s digests win); choose another ID or rm it first' },
  CACHE_NOT_FOUND: { exit: 8, status: 404, summary: 'shoal cache: no such cache ID in the cluster, or no host holding it is connected (a cache task has no origin to fall back on)' },
  INTERNAL: { exit: 1, status: 500, summary: 'an unexpected internal error' },
} as const satisfies Record<string, ErrorInfo>;

export type ErrorCode = keyof typeof ERRORS;

export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(ERRORS, value);
}

export interface ShoalErrorOptions {
  cause?: unknown;
  /** HTTP status received from an origin, when there was one. */
  sourceStatus?: number;
  /** Seconds the origin asked us to wait (Retry-After). */
  retryAfter?: number;
}

export class ShoalError extends Error {
  override readonly name = 'ShoalError';
  readonly code: ErrorCode;
  readonly sourceStatus: number | undefined;
  readonly retryAfter: number | undefined;

  constructor(code: ErrorCode, message: string, options: ShoalErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.sourceStatus = options.sourceStatus;
    this.retryAfter = options.retryAfter;
  }

  get exitCode(): number {
    return ERRORS[this.code].exit;
  }

  get status(): number {
    return ERRORS[this.code].status;
  }

  toJSON(): { code: ErrorCode; message: string; sourceStatus?: number } {
    return this.sourceStatus === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, sourceStatus: this.sourceStatus };
  }
}

/** Wraps anything thrown into a ShoalError, keeping ShoalErrors as they are. */
export function toShoalError(err: unknown, fallback: ErrorCode = 'INTERNAL'): ShoalError {
  if (err instanceof ShoalError) return err;
  if (err instanceof Error && err.name === 'AbortError') {
    const reason: unknown = (err as Error & { cause?: unknown }).cause;
    if (reason instanceof ShoalError) return reason;
    return new ShoalError('ABORTED', err.message, { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new ShoalError(fallback, message, { cause: err });
}

/** Rebuilds a ShoalError from its JSON form (local API, RPC). */
export function fromJSON(value: { code?: unknown; message?: unknown; sourceStatus?: unknown }): ShoalError {
  const code = typeof value.code === 'string' && isErrorCode(value.code) ? value.code : 'INTERNAL';
  const message = typeof value.message === 'string' ? value.message : 'unknown error';
  const options: ShoalErrorOptions = {};
  if (typeof value.sourceStatus === 'number') options.sourceStatus = value.sourceStatus;
  return new ShoalError(code, message, options);
}
