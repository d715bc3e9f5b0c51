/**
 * `GET/HEAD /v2/<name>/blobs/<digest>`: the P2P path. The registry first
 * accepts the client's credentials for the repository (access check); then the
 * blob comes from the daemon, whose task is the digest itself (the same layer
 * through two registries is one swarm).
 *
 * - A blob held here complete is sent from the verified file, with Range.
 * - Otherwise it is streamed as its pieces arrive (./blob-stream.ts): the
 *   whole, or from N for `Range: bytes=N-` (containerd resuming a layer), the
 *   last chunk held back until the whole content matches the digest.
 * - A Range inside a blob not held (lazy pulling, a tool reading a tar
 *   header), up to RANGE_RELAY_MAX bytes, is relayed from the registry: only
 *   those bytes travel, and nothing is downloaded or kept.
 * - A larger inner range waits for the whole, verified blob.
 *
 * `If-None-Match` naming the digest's ETag is 304 (a digest's content never
 * changes), and HEAD answers from the registry's HEAD: neither downloads.
 */
import type { ServerResponse } from 'node:http';
import { answerRange } from '../content/range.js';
import { sendStored } from '../content/send-stored.js';
import type { DownloadedContent } from '../download-service.js';
import { USER_AGENT } from './access.js';
import { PieceFeed, streamBlob } from './blob-stream.js';
import { forwardedHeaders, type MirrorRequest, type MirrorShared } from './context.js';
import { relayError } from './reply.js';

/** The longest Range of a blob not held that is relayed from the registry rather than downloaded (docs/LIMITS.md). */
export const RANGE_RELAY_MAX = 8 * 1024 * 1024;

/** How a GET of a blob not held here is answered. */
type Plan = { kind: 'stream'; start: number } | { kind: 'relay'; start: number; end: number } | { kind: 'whole' };

export async function serveBlob(shared: MirrorShared, r: MirrorRequest, digest: string): Promise<void> {
  const access = await shared.access.check({ upstream: r.upstream, name: r.name, kind: 'blobs', digest, authorization: r.authorization });
  if (!access.ok) {
    shared.stats.denied++;
    relayError(r.res, access.response, 'blob');
    return;
  }
  if (notModified(r, digest)) {
    blobHeaders(r, digest, undefined);
    r.res.statusCode = 304;
    r.res.end();
    return;
  }
  if (r.method === 'HEAD') {
    const size = access.size ?? heldSize(shared, digest) ?? (await probeSize(shared, r, digest));
    blobHeaders(r, digest, size);
    r.res.statusCode = 200;
    r.res.end();
    return;
  }
  const held = shared.downloads.held(digest.slice('sha256:'.length)) !== undefined;
  const plan: Plan = held ? { kind: 'whole' } : planFor(r, digest, access.size);
  if (plan.kind === 'relay' && (await relayRange(shared, r, digest, plan.start, plan.end))) return;
  const headers = forwardedHeaders(r, USER_AGENT, false);
  const url = `${r.upstream.origin}/v2/${r.name}/blobs/${digest}`;
  const handle = shared.downloads.download({ url, headers, digest, requester: 'mirror' }, r.signal);
  shared.stats.blobs++;
  const feed = new PieceFeed(handle, r.signal, shared.stallTimeoutMs);
  try {
    const begin = plan.kind === 'stream' ? await feed.start() : undefined;
    if (plan.kind !== 'stream' || begin === undefined || plan.start >= begin.size) {
      await sendVerified(shared, r, await feed.content(), digest);
      return;
    }
    const start = plan.start;
    const failed = await streamBlob(
      {
        res: r.res,
        start,
        signal: r.signal,
        setHeaders: (res, length) => {
          blobHeaders(r, digest, length);
          res.statusCode = start === 0 ? 200 : 206;
          if (start > 0) res.setHeader('Content-Range', `bytes ${start}-${begin.size - 1}/${begin.size}`);
        },
        onSent: (bytes) => {
          shared.stats.blobBytes += bytes;
        },
      },
      feed,
      begin,
    );
    if (failed !== undefined) {
      shared.stats.errors++;
      shared.logger.warn({ code: failed.code, err: failed.message, digest }, 'blob transfer cut');
    }
  } finally {
    feed.close();
  }
}

/** `If-None-Match` names this blob's ETag (or `*`): its content cannot have changed. */
function notModified(r: MirrorRequest, digest: string): boolean {
  const value = r.req.headers['if-none-match'];
  if (value === undefined) return false;
  return value.split(',').some((tag) => {
    const t = tag.trim().replace(/^W\//, '');
    return t === '*' || t === `"${digest}"`;
  });
}

/** The Range to honour (If-Range naming another validator: none), against the registry's size. */
function planFor(r: MirrorRequest, digest: string, size: number | undefined): Plan {
  const header = r.req.headers.range;
  const ifRange = r.req.headers['if-range'];
  if (header === undefined || (ifRange !== undefined && ifRange !== `"${digest}"`)) return { kind: 'stream', start: 0 };
  if (size === undefined) return { kind: 'whole' };
  const range = answerRange(header, size);
  if (range.kind === 'full') return { kind: 'stream', start: 0 };
  if (range.kind === 'unsatisfiable') return { kind: 'whole' };
  if (range.end === size - 1) return { kind: 'stream', start: range.start };
  return range.end - range.start + 1 <= RANGE_RELAY_MAX ? { kind: 'relay', start: range.start, end: range.end } : { kind: 'whole' };
}

/**
 * A short Range of a blob not held, from the registry (with the client's
 * credentials, already accepted for it): true when answered. A registry that
 * ignores Range (a 200) is not relayed: false, and the blob goes through P2P.
 */
async function relayRange(shared: MirrorShared, r: MirrorRequest, digest: string, start: number, end: number): Promise<boolean> {
  let response;
  try {
    response = await shared.client.request({
      upstream: r.upstream,
      method: 'GET',
      path: `/v2/${r.name}/blobs/${digest}`,
      headers: forwardedHeaders(r, USER_AGENT, false),
      own: [['Range', `bytes=${start}-${end}`]],
      maxBody: end - start + 1,
      signal: r.signal,
    });
  } catch (err) {
    if ((err as { code?: string }).code === 'UPSTREAM_TOO_LARGE') return false;
    throw err;
  }
  if (response.status >= 300) {
    relayError(r.res, response, 'blob');
    return true;
  }
  if (response.status !== 206 || response.body.length !== end - start + 1) return false;
  const res: ServerResponse = r.res;
  blobHeaders(r, digest, response.body.length);
  res.statusCode = 206;
  res.setHeader('Content-Range', String(response.headers['content-range'] ?? `bytes ${start}-${end}/*`));
  shared.stats.rangesRelayed++;
  shared.stats.blobBytes += response.body.length;
  res.end(response.body);
  return true;
}

function blobHeaders(r: MirrorRequest, digest: string, size: number | undefined): void {
  const res = r.res;
  res.setHeader('Docker-Content-Digest', digest);
  res.setHeader('Content-Type', 'application/octet-stream');
  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('ETag', `"${digest}"`);
  if (size !== undefined) res.setHeader('Content-Length', size);
}

function heldSize(shared: MirrorShared, digest: string): number | undefined {
  return shared.downloads.held(digest.slice('sha256:'.length))?.contentLength;
}

/** The blob's size when the registry's HEAD did not say (it redirected to storage): a one-byte ranged GET. */
async function probeSize(shared: MirrorShared, r: MirrorRequest, digest: string): Promise<number | undefined> {
  try {
    const response = await shared.client.request({
      upstream: r.upstream,
      method: 'GET',
      path: `/v2/${r.name}/blobs/${digest}`,
      headers: forwardedHeaders(r, USER_AGENT, false),
      own: [['Range', 'bytes=0-0']],
      maxBody: 1,
      signal: r.signal,
    });
    const total = /\/(\d+)$/.exec(String(response.headers['content-range'] ?? ''));
    return total === null ? undefined : Number(total[1]);
  } catch {
    return undefined;
  }
}

/** Streams the verified content file, pinned in the store until the response ends. */
function sendVerified(shared: MirrorShared, r: MirrorRequest, content: DownloadedContent, digest: string): Promise<void> {
  return sendStored({
    content,
    req: r.req,
    res: r.res,
    etag: `"${digest}"`,
    setHeaders: () => blobHeaders(r, digest, undefined),
    signal: r.signal,
    onSent: (bytes) => {
      shared.stats.blobBytes += bytes;
    },
  });
}
