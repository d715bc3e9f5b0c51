/** Small JSON replies of the upload server. */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { ShoalError } from '../../common/errors.js';

export interface ReplyOptions {
  /** HTTP status when it differs from the code's own (404 for an unknown path, 405). */
  status?: number;
  headers?: OutgoingHttpHeaders;
  /** Close the connection after this reply (`Connection: close`). */
  close?: boolean;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, options: ReplyOptions = {}): void {
  const payload = JSON.stringify(body);
  const headers: OutgoingHttpHeaders = {
    ...options.headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(payload),
    'cache-control': 'no-store',
  };
  if (options.close === true) headers['connection'] = 'close';
  res.writeHead(status, headers);
  res.end(payload);
}

/** `{"code": ..., "message": ...}` with the code's HTTP status unless overridden. */
export function sendError(res: ServerResponse, error: ShoalError, options: ReplyOptions = {}): void {
  sendJson(res, options.status ?? error.status, error.toJSON(), options);
}

/** Quotes untrusted text for a message, bounded. */
export function quote(text: string, max = 100): string {
  return JSON.stringify(text.length > max ? text.slice(0, max) + '…' : text);
}
