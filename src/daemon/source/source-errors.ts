/** How origin failures become ShoalErrors, and which of them are worth retrying. */
import { ShoalError, type ErrorCode } from '../../common/errors.js';
import { redactUrl } from '../../common/ids.js';

/** The error to throw once `signal` has aborted: its reason when that is a ShoalError, else ABORTED. */
export function abortError(signal: AbortSignal, url: URL): ShoalError {
  const reason: unknown = signal.reason;
  if (reason instanceof ShoalError) return reason;
  return new ShoalError('ABORTED', `GET ${redactUrl(url)}: aborted`, { cause: reason });
}

export type StatusVerdict = 'ok' | 'retry' | ErrorCode;

/** 200/206 are usable; 5xx and 429 are retried; the rest fail at once with the returned code. */
export function judgeStatus(status: number): StatusVerdict {
  if (status === 200 || status === 206) return 'ok';
  if (status === 429 || (status >= 500 && status <= 599)) return 'retry';
  if (status === 401 || status === 403) return 'SOURCE_AUTH';
  if (status === 404 || status === 410) return 'SOURCE_NOT_FOUND';
  if (status === 416 || (status >= 200 && status <= 299)) return 'SOURCE_PROTOCOL';
  return 'SOURCE_STATUS';
}

/** `detail`: what the origin's body said (an S3 error code), already cleaned. */
export function statusError(code: ErrorCode, url: URL, status: number, retryAfterMs?: number, detail?: string): ShoalError {
  const options = retryAfterMs === undefined ? { sourceStatus: status } : { sourceStatus: status, retryAfter: Math.ceil(retryAfterMs / 1000) };
  return new ShoalError(code, `GET ${redactUrl(url)}: origin answered HTTP ${status}${detail === undefined ? '' : `: ${detail}`}`, options);
}

export function protocolError(url: URL, what: string, status?: number): ShoalError {
  const message = `GET ${redactUrl(url)}: ${what}`;
  return new ShoalError('SOURCE_PROTOCOL', status === undefined ? message : `${message} (HTTP ${status})`, status === undefined ? {} : { sourceStatus: status });
}

export interface Failure {
  readonly error: ShoalError;
  readonly retryable: boolean;
  /** The origin's Retry-After, in ms. */
  readonly retryAfterMs?: number | undefined;
}

/** An error thrown by undici (or a body stream) while no abort was asked for. */
export function transportFailure(err: unknown, url: URL): Failure {
  if (err instanceof ShoalError) return { error: err, retryable: false };
  const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : '';
  const detail = err instanceof Error ? err.message : String(err);
  const message = `GET ${redactUrl(url)}: ${describe(code, detail)}`;
  switch (code) {
    case 'UND_ERR_INVALID_ARG':
    case 'UND_ERR_NOT_SUPPORTED':
      return { error: new ShoalError('USAGE', message, { cause: err }), retryable: false };
    case 'UND_ERR_HEADERS_OVERFLOW':
      return { error: new ShoalError('SOURCE_PROTOCOL', message, { cause: err }), retryable: false };
    default:
      return { error: new ShoalError('SOURCE_NETWORK', message, { cause: err }), retryable: true };
  }
}

function describe(code: string, detail: string): string {
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return `idle timeout: ${detail}`;
  return code === '' ? detail : `${detail} (${code})`;
}

/** The content is not the version the download started with (or resumes): its pieces must not be mixed. */
export function changedError(url: URL, what: string, status?: number): ShoalError {
  return new ShoalError('SOURCE_CHANGED', `GET ${redactUrl(url)}: content changed (${what})`, status === undefined ? {} : { sourceStatus: status });
}
