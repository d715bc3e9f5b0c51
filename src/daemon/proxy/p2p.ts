/**
 * A rule-matched GET served through P2P: the daemon downloads the URL with the
 * client's end-to-end headers (a blob URL's `sha256:` digest becomes the task's
 * digest, so the task joins the registry mirror's swarm for that layer), and
 * the complete, verified file is sent with Content-Length and Range. Nothing
 * is sent before the download completes.
 *
 * Headers that would change what the origin sends (Range, conditionals,
 * Accept-Encoding) are not passed on: the task is the whole, identity-encoded
 * content, and Range is answered here.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DownloadService } from '../download-service.js';
import { sendStored } from '../content/send-stored.js';
import { blobDigestOf } from '../request.js';
import { without, type HeaderPairs } from './headers.js';

/** The part of the daemon the proxy uses. */
export type ProxyDownloads = Pick<DownloadService, 'download'>;

/** Not passed to the origin on a P2P download (besides hop-by-hop). */
const NOT_FOR_TASK = new Set([
  'host',
  'content-length',
  'expect',
  'range',
  'if-range',
  'if-match',
  'if-none-match',
  'if-modified-since',
  'if-unmodified-since',
  'accept-encoding',
  'via',
  'cache-control',
  'pragma',
]);

export interface P2pRequest {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  /** The client's end-to-end headers. */
  headers: HeaderPairs;
  via: string;
  signal: AbortSignal;
}

/** Resolves with the body bytes sent. */
export async function serveP2p(downloads: ProxyDownloads, r: P2pRequest): Promise<number> {
  const digest = blobDigestOf(r.url.href);
  const handle = downloads.download({ url: r.url.href, headers: without(r.headers, NOT_FOR_TASK), digest, requester: 'proxy' }, r.signal);
  const content = await handle.done;
  let sent = 0;
  await sendStored({
    content,
    req: r.req,
    res: r.res,
    etag: digest === undefined ? undefined : `"${digest}"`,
    setHeaders: (res) => {
      res.setHeader('Content-Type', 'application/octet-stream');
      res.setHeader('Accept-Ranges', 'bytes');
      res.setHeader('Via', `1.1 ${r.via}`);
      res.setHeader('X-Shoal-Task', handle.taskId);
      if (digest !== undefined) {
        res.setHeader('ETag', `"${digest}"`);
        res.setHeader('Docker-Content-Digest', digest);
      }
    },
    signal: r.signal,
    onSent: (bytes) => {
      sent = bytes;
    },
  });
  return sent;
}
