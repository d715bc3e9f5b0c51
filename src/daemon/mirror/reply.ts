/**
 * Answers in the distribution spec's error form,
 * `{"errors":[{"code":"…","message":"…"}]}`: Shoal's own errors mapped to the
 * spec's codes, and registry errors relayed with their status, challenge and
 * Retry-After unchanged.
 */
import type { ServerResponse } from 'node:http';
import type { ShoalError } from '../../common/errors.js';
import type { RegistryResponse } from '../registry/client.js';

export type Subject = 'blob' | 'manifest' | 'name';

/** Response headers of a registry error that reach the client as they are. */
const RELAYED = ['www-authenticate', 'retry-after', 'docker-distribution-api-version', 'content-type'] as const;

export function sendSpecError(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string | string[]> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = Buffer.from(JSON.stringify({ errors: [{ code, message }] }));
  res.statusCode = status;
  for (const [name, value] of Object.entries(headers)) setSafe(res, name, value);
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', body.length);
  res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/** The spec's code for a registry status. */
export function specCode(status: number, subject: Subject): string {
  switch (status) {
    case 401:
      return 'UNAUTHORIZED';
    case 403:
      return 'DENIED';
    case 404:
      return subject === 'blob' ? 'BLOB_UNKNOWN' : subject === 'manifest' ? 'MANIFEST_UNKNOWN' : 'NAME_UNKNOWN';
    case 429:
      return 'TOOMANYREQUESTS';
    default:
      return status >= 500 ? 'UNAVAILABLE' : 'UNKNOWN';
  }
}

/** Maps a ShoalError from the mirror's own work (or the P2P download) to the spec's form. */
export function sendShoalError(res: ServerResponse, err: ShoalError, subject: Subject): void {
  const headers: Record<string, string> = {};
  if (err.retryAfter !== undefined) headers['Retry-After'] = String(err.retryAfter);
  switch (err.code) {
    case 'NAME_INVALID':
    case 'TAG_INVALID':
    case 'DIGEST_INVALID':
      return sendSpecError(res, 400, err.code, err.message);
    case 'SOURCE_AUTH':
    case 'SOURCE_NOT_FOUND':
    case 'SOURCE_STATUS': {
      const status = err.sourceStatus !== undefined && err.sourceStatus >= 400 && err.sourceStatus <= 599 ? err.sourceStatus : 502;
      return sendSpecError(res, status, specCode(status, subject), err.message, headers);
    }
    case 'DIGEST_MISMATCH':
      return sendSpecError(res, 502, 'DIGEST_INVALID', `the registry's content does not match its digest; nothing was served or kept (${err.message})`);
    case 'UPSTREAM_TOO_LARGE':
      return sendSpecError(res, 502, subject === 'manifest' ? 'MANIFEST_INVALID' : 'SIZE_INVALID', err.message);
    case 'UPSTREAM_NOT_ALLOWED':
      return sendSpecError(res, 403, 'DENIED', `${err.code}: ${err.message}`);
    case 'UPSTREAM_INVALID':
    case 'SOURCE_NETWORK':
    case 'SOURCE_PROTOCOL':
    case 'PIECE_CORRUPT':
    case 'PEER_FAILED':
      return sendSpecError(res, 502, 'UNAVAILABLE', `${err.code}: ${err.message}`);
    case 'TIMEOUT':
      return sendSpecError(res, 504, 'UNAVAILABLE', err.message);
    case 'ABORTED':
      return sendSpecError(res, 503, 'UNAVAILABLE', err.message);
    default:
      return sendSpecError(res, err.status >= 400 ? err.status : 500, 'UNKNOWN', `${err.code}: ${err.message}`);
  }
}

/**
 * Relays a registry's error answer: its status, challenge, Retry-After and
 * body (a spec error already, capped); a HEAD answer (no body) gets the spec's
 * body for its status when the client asked with GET.
 */
export function relayError(res: ServerResponse, upstream: RegistryResponse, subject: Subject): void {
  res.statusCode = upstream.status;
  for (const name of RELAYED) {
    const value = upstream.headers[name];
    if (value !== undefined) setSafe(res, name, value);
  }
  let body = upstream.body;
  if (body.length === 0) {
    body = Buffer.from(JSON.stringify({ errors: [{ code: specCode(upstream.status, subject), message: `registry answered HTTP ${upstream.status}` }] }));
    res.setHeader('Content-Type', 'application/json');
  }
  res.setHeader('Content-Length', body.length);
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/** Sets a header from a registry, dropping a value Node refuses (control characters). */
export function setSafe(res: ServerResponse, name: string, value: string | string[]): void {
  try {
    res.setHeader(name, value);
  } catch {
    // A malformed header from upstream is left out rather than crashing the response.
  }
}
