/**
 * Layer prefetch: once a client has an image manifest, the daemon starts the
 * P2P downloads of its config and layers at once instead of when the client
 * asks for each blob. Clients that pull blobs one after another (skopeo into
 * `dir:`, or containerd past its 3 concurrent layers) otherwise leave the link
 * idle while every next layer's swarm starts. Nothing is served by it: a blob
 * still reaches a client only through serveBlob, after the registry accepts
 * that client's credentials. The downloads use the credentials the manifest
 * was fetched with, like the client's own blob requests would.
 */
import { isValidDigest } from '../registry/grammar.js';
import { USER_AGENT } from './access.js';
import { forwardedHeaders, type MirrorRequest, type MirrorShared } from './context.js';

/** More layers than this are left to the client's own requests. */
export const PREFETCH_MAX_BLOBS = 128;

/** The config and layer digests of an image manifest (OCI or Docker v2); none for an index or anything else. */
export function manifestBlobs(body: Buffer): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return [];
  }
  if (typeof parsed !== 'object' || parsed === null) return [];
  const m = parsed as { config?: { digest?: unknown }; layers?: unknown };
  if (!Array.isArray(m.layers)) return [];
  const digests = [m.config?.digest, ...m.layers.map((l: unknown) => (typeof l === 'object' && l !== null ? (l as { digest?: unknown }).digest : undefined))];
  const unique = new Set<string>();
  for (const d of digests) if (typeof d === 'string' && d.startsWith('sha256:') && isValidDigest(d)) unique.add(d);
  return [...unique].slice(0, PREFETCH_MAX_BLOBS);
}

/**
 * Starts (or joins) the download of every blob an image manifest names, when
 * prefetch is on and the client GETs the manifest. Never throws; downloads
 * end with the mirror.
 */
export function prefetchBlobs(shared: MirrorShared, r: MirrorRequest, body: Buffer): void {
  if (!shared.prefetch || r.method !== 'GET') return;
  const digests = manifestBlobs(body);
  const headers = forwardedHeaders(r, USER_AGENT, false);
  for (const digest of digests) {
    try {
      const url = `${r.upstream.origin}/v2/${r.name}/blobs/${digest}`;
      const handle = shared.downloads.download({ url, headers, digest, requester: 'mirror' }, shared.closing);
      handle.done.catch((err: unknown) => shared.logger.debug({ digest, err: (err as Error).message }, 'layer prefetch failed; the client request will retry'));
    } catch (err) {
      shared.logger.debug({ digest, err: (err as Error).message }, 'layer prefetch not started');
    }
  }
  shared.stats.prefetched += digests.length;
}
