/**
 * `GET/HEAD /v2/<name>/blobs/<digest>`: the P2P path. The registry first
 * accepts the client's credentials for the repository (access check); then the
 * blob comes from the daemon, whose task is the digest itself (the same layer
 * through two registries is one swarm) and which completes only once the whole
 * content matches the digest. Only then is a byte sent, from the verified file,
 * with Range. HEAD answers from the registry's HEAD and downloads nothing.
 */
import type { DownloadedContent } from '../download-service.js';
import { USER_AGENT } from './access.js';
import { forwardedHeaders, type MirrorRequest, type MirrorShared } from './context.js';
import { relayError } from './reply.js';
import { sendStored } from '../content/send-stored.js';

export async function serveBlob(shared: MirrorShared, r: MirrorRequest, digest: string): Promise<void> {
  const access = await shared.access.check({ upstream: r.upstream, name: r.name, kind: 'blobs', digest, authorization: r.authorization });
  if (!access.ok) {
    shared.stats.denied++;
    relayError(r.res, access.response, 'blob');
    return;
  }
  if (r.method === 'HEAD') {
    const size = access.size ?? heldSize(shared, digest) ?? (await probeSize(shared, r, digest));
    blobHeaders(r, digest, size);
    r.res.statusCode = 200;
    r.res.end();
    return;
  }
  const headers = forwardedHeaders(r, USER_AGENT, false);
  const url = `${r.upstream.origin}/v2/${r.name}/blobs/${digest}`;
  const handle = shared.downloads.download({ url, headers, digest, requester: 'mirror' }, r.signal);
  const content = await handle.done;
  shared.stats.blobs++;
  await sendVerified(shared, r, content, digest);
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
