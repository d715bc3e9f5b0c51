/** The console's HTTP plumbing: bounded request bodies, JSON answers and coded errors. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ShoalError } from '../../common/errors.js';

/** The request's body as text; LIMIT_EXCEEDED past `limit` bytes (the rest is not read). */
export async function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new ShoalError('LIMIT_EXCEEDED', `a console request body is over ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(value));
}

/** `{"error": {"code", "message"}}` with the code's HTTP status, or `status`. */
export function sendError(res: ServerResponse, err: ShoalError, status = err.status): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, status, { error: err.toJSON() });
}
