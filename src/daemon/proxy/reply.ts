/**
 * The proxy's own answers: plain text with the Shoal error code in
 * `X-Shoal-Error`, the status a proxy gives (502 upstream failure, 504
 * timeout, 508 loop), and raw answers on a socket that has no ServerResponse
 * (CONNECT, malformed requests).
 */
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ShoalError } from '../../common/errors.js';

export function sendError(res: ServerResponse, status: number, code: string, message: string, via: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = Buffer.from(`shoal proxy: ${code}: ${message}\n`);
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('Content-Length', body.length);
  res.setHeader('X-Shoal-Error', code);
  res.setHeader('Via', `1.1 ${via}`);
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/** The status a proxy answers a failed P2P download with: the origin's own 4xx/5xx when it gave one. */
export function statusFor(err: ShoalError): number {
  switch (err.code) {
    case 'SOURCE_AUTH':
    case 'SOURCE_NOT_FOUND':
    case 'SOURCE_STATUS':
      return err.sourceStatus !== undefined && err.sourceStatus >= 400 && err.sourceStatus <= 599 ? err.sourceStatus : 502;
    case 'TIMEOUT':
      return 504;
    case 'USAGE':
    case 'URL_INVALID':
    case 'DIGEST_INVALID':
      return 400;
    case 'PROXY_LOOP':
      return 508;
    case 'ABORTED':
      return 503;
    default:
      return err.status >= 500 ? 502 : err.status >= 400 ? err.status : 502;
  }
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  414: 'URI Too Long',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  508: 'Loop Detected',
};

/** A complete answer written straight to a socket, which is then closed. */
export function rawError(socket: Duplex, status: number, code: string, message: string, via: string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = `shoal proxy: ${code}: ${message.replace(/[\r\n]/g, ' ')}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `X-Shoal-Error: ${code}\r\nVia: 1.1 ${via}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
