/**
 * Sends a complete, verified stored task as an HTTP response: the whole file
 * (200) or the one range asked for (206, 416; range.ts), streamed from disk
 * with backpressure and pinned in the cache until the response ends. Used by
 * the registry mirror's blobs and by the HTTP proxy's P2P answers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { open } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { toShoalError } from '../../common/errors.js';
import type { DownloadedContent } from '../download-service.js';
import { answerRange } from './range.js';

export interface SendStoredOptions {
  content: DownloadedContent;
  req: IncomingMessage;
  res: ServerResponse;
  /** The strong validator an `If-Range` must equal for a range to be honoured; undefined: any If-Range gets the whole body. */
  etag: string | undefined;
  /** Sets the response's own headers (before the status line goes out). */
  setHeaders(res: ServerResponse): void;
  signal: AbortSignal;
  /** Body bytes written, counted whether or not the response completes. */
  onSent?(bytes: number): void;
}

export async function sendStored(o: SendStoredOptions): Promise<void> {
  const { res, req } = o;
  const unpin = o.content.pin();
  let file;
  try {
    file = await open(o.content.path, 'r');
  } catch (err) {
    unpin();
    throw toShoalError(err, 'STORAGE');
  }
  let sent = 0;
  try {
    const size = (await file.stat()).size;
    const ifRange = req.headers['if-range'];
    const range = ifRange === undefined || (o.etag !== undefined && ifRange === o.etag) ? answerRange(req.headers.range, size) : ({ kind: 'full' } as const);
    o.setHeaders(res);
    if (range.kind === 'unsatisfiable') {
      res.statusCode = 416;
      res.setHeader('Content-Range', `bytes */${size}`);
      res.setHeader('Content-Length', 0);
      res.end();
      return;
    }
    const start = range.kind === 'partial' ? range.start : 0;
    const end = range.kind === 'partial' ? range.end : size - 1;
    res.statusCode = range.kind === 'partial' ? 206 : 200;
    if (range.kind === 'partial') res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
    res.setHeader('Content-Length', end - start + 1);
    if (size === 0 || req.method === 'HEAD') {
      res.end();
      return;
    }
    const stream = file.createReadStream({ start, end, autoClose: false, highWaterMark: 1 << 20 });
    stream.on('data', (chunk: string | Buffer) => {
      sent += chunk.length;
    });
    await pipeline(stream, res, { signal: o.signal });
  } finally {
    if (sent > 0) o.onSent?.(sent);
    await file.close().catch(() => undefined);
    unpin();
  }
}
