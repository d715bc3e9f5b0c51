/** What every mirror handler works with: one request, and the mirror's shared parts. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../common/log.js';
import type { DownloadService } from '../download-service.js';
import type { AccessChecker } from './access.js';
import type { CachedManifest, ManifestCache, TtlCache } from './caches.js';
import type { RegistryClient } from '../registry/client.js';
import type { Upstream } from '../registry/upstream.js';

/** The part of the daemon the mirror uses: P2P downloads, and content already held. */
export type MirrorDownloads = Pick<DownloadService, 'download' | 'held'>;

export interface MirrorStats {
  requests: number;
  blobs: number;
  blobBytes: number;
  manifestsFromCache: number;
  manifestsFromUpstream: number;
  denied: number;
  errors: number;
  /** Blobs whose download started when their manifest was served. */
  prefetched: number;
  /** Short Ranges of blobs not held, relayed from the registry (./blobs.ts). */
  rangesRelayed: number;
}

export interface MirrorShared {
  readonly downloads: MirrorDownloads;
  readonly client: RegistryClient;
  readonly access: AccessChecker;
  readonly manifests: ManifestCache;
  /** (registry, name, tag, Accept) → digest; only when tagTtl > 0. */
  readonly tags: TtlCache<string>;
  readonly tagTtlMs: number;
  /** A blob that brings no new piece this long fails (mirror.stallTimeout). */
  readonly stallTimeoutMs: number;
  readonly stats: MirrorStats;
  readonly logger: Logger;
  /** Start the blobs' downloads when an image manifest is served (see ./prefetch.ts). */
  readonly prefetch: boolean;
  /** Aborts prefetches when the mirror stops. */
  readonly closing: AbortSignal;
}

export interface MirrorRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly method: 'GET' | 'HEAD';
  readonly upstream: Upstream;
  /** The repository name as the registry knows it (Docker Hub: with `library/`). */
  readonly name: string;
  /** The query without containerd's `ns`. */
  readonly query: URLSearchParams;
  /** `ns` as the client sent it, to keep in Link headers. */
  readonly ns: string | undefined;
  readonly authorization: string | undefined;
  readonly accept: string | undefined;
  /** Aborts when the client goes away or the mirror stops. */
  readonly signal: AbortSignal;
}

export type { CachedManifest };

/** The client's credentials and identity, as forwarded to the registry. */
export function forwardedHeaders(r: MirrorRequest, userAgent: string, withAccept: boolean): Array<[string, string]> {
  const headers: Array<[string, string]> = [['User-Agent', userAgent]];
  if (r.authorization !== undefined) headers.push(['Authorization', r.authorization]);
  if (withAccept && r.accept !== undefined) headers.push(['Accept', r.accept]);
  return headers;
}
