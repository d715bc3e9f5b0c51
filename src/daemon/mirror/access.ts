/**
 * The access check that keeps the P2P cache from becoming a way around a
 * registry's access control: before a blob or manifest is served, the registry
 * must accept this client's credentials (or their absence) for this repository,
 * asked with a HEAD carrying the client's Authorization. Successes are cached
 * briefly under a hash of (Authorization, registry, repository, digest); the
 * Authorization value itself is neither kept nor logged.
 */
import { createHash } from 'node:crypto';
import type { RegistryClient, RegistryResponse } from '../registry/client.js';
import { TtlCache } from './caches.js';
import type { Upstream } from '../registry/upstream.js';

export type AccessKind = 'blobs' | 'manifests';

export interface AccessQuery {
  upstream: Upstream;
  /** The name as the registry knows it. */
  name: string;
  kind: AccessKind;
  digest: string;
  authorization: string | undefined;
  /** Manifests: the client's Accept. */
  accept?: string | undefined;
}

export interface Granted {
  readonly ok: true;
  /** Content-Length from the registry's HEAD, when it said (and did not redirect elsewhere). */
  readonly size: number | undefined;
  readonly contentType: string | undefined;
}

export type AccessResult = Granted | { readonly ok: false; readonly response: RegistryResponse };

export const ACCESS_CACHE_ENTRIES = 10_000;
export const USER_AGENT = 'shoal-mirror/0.1.0';

export class AccessChecker {
  readonly #client: RegistryClient;
  readonly #cache: TtlCache<Granted>;
  readonly #inflight = new Map<string, Promise<AccessResult>>();

  /** Aborts checks in flight (the mirror is stopping). Checks are shared by concurrent callers, so no caller's signal cancels one. */
  readonly #closing: AbortSignal;

  constructor(client: RegistryClient, ttlMs: number, closing: AbortSignal) {
    this.#client = client;
    this.#closing = closing;
    this.#cache = new TtlCache(ttlMs, ACCESS_CACHE_ENTRIES);
  }

  static key(q: Pick<AccessQuery, 'upstream' | 'name' | 'kind' | 'digest' | 'authorization'>): string {
    return createHash('sha256')
      .update(q.authorization ?? '\0anonymous')
      .update('\0' + q.upstream.origin + '\0' + q.name + '\0' + q.kind + '\0' + q.digest)
      .digest('hex');
  }

  /** Records a grant learned from a request the registry just answered with 2xx for these credentials. */
  grant(q: Pick<AccessQuery, 'upstream' | 'name' | 'kind' | 'digest' | 'authorization'>, granted: Omit<Granted, 'ok'>): void {
    this.#cache.set(AccessChecker.key(q), { ok: true, ...granted });
  }

  check(q: AccessQuery): Promise<AccessResult> {
    const key = AccessChecker.key(q);
    const cached = this.#cache.get(key);
    if (cached !== undefined) return Promise.resolve(cached);
    let pending = this.#inflight.get(key);
    if (pending === undefined) {
      pending = this.#ask(q, key).finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, pending);
    }
    return pending;
  }

  async #ask(q: AccessQuery, key: string): Promise<AccessResult> {
    const headers: Array<[string, string]> = [['User-Agent', USER_AGENT]];
    if (q.authorization !== undefined) headers.push(['Authorization', q.authorization]);
    if (q.accept !== undefined) headers.push(['Accept', q.accept]);
    const response = await this.#client.request({
      upstream: q.upstream,
      method: 'HEAD',
      path: `/v2/${q.name}/${q.kind}/${q.digest}`,
      headers,
      maxBody: 0,
      signal: this.#closing,
    });
    const redirected = response.url.origin !== q.upstream.origin;
    let granted: Granted | undefined;
    if (response.status >= 200 && response.status < 300) {
      const length = Number(response.headers['content-length']);
      const type = response.headers['content-type'];
      granted = {
        ok: true,
        size: Number.isSafeInteger(length) && length >= 0 ? length : undefined,
        contentType: typeof type === 'string' ? type : undefined,
      };
    } else if (redirected && response.status !== 404) {
      // The registry accepted the credentials and sent the HEAD on to storage
      // (a CDN, a presigned URL for GET only): access is granted, the size unknown.
      granted = { ok: true, size: undefined, contentType: undefined };
    }
    if (granted === undefined) return { ok: false, response };
    this.#cache.set(key, granted);
    return granted;
  }
}
