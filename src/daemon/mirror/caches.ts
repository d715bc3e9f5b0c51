/**
 * The mirror's in-memory caches, all bounded: manifests by digest (LRU by
 * bytes), and small entries with a time to live (access checks, tag → digest).
 */

export interface CachedManifest {
  readonly digest: string;
  readonly body: Buffer;
  readonly contentType: string;
}

/** Manifests by digest; least recently used go first once `maxBytes` is reached. */
export class ManifestCache {
  readonly #entries = new Map<string, CachedManifest>();
  readonly #maxBytes: number;
  #bytes = 0;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  get(digest: string): CachedManifest | undefined {
    const entry = this.#entries.get(digest);
    if (entry !== undefined) {
      this.#entries.delete(digest);
      this.#entries.set(digest, entry);
    }
    return entry;
  }

  set(entry: CachedManifest): void {
    if (entry.body.length > this.#maxBytes) return;
    const old = this.#entries.get(entry.digest);
    if (old !== undefined) {
      this.#entries.delete(entry.digest);
      this.#bytes -= old.body.length;
    }
    this.#entries.set(entry.digest, entry);
    this.#bytes += entry.body.length;
    for (const [digest, e] of this.#entries) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#entries.delete(digest);
      this.#bytes -= e.body.length;
    }
  }

  get bytes(): number {
    return this.#bytes;
  }

  get size(): number {
    return this.#entries.size;
  }
}

/** Entries that expire `ttlMs` after they were set; the oldest go first past `maxEntries`. */
export class TtlCache<V> {
  readonly #entries = new Map<string, { value: V; expires: number }>();
  readonly #ttl: number;
  readonly #max: number;
  readonly #now: () => number;

  constructor(ttlMs: number, maxEntries: number, now: () => number = Date.now) {
    this.#ttl = ttlMs;
    this.#max = maxEntries;
    this.#now = now;
  }

  get(key: string): V | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expires <= this.#now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key: string, value: V): void {
    if (this.#ttl <= 0) return;
    this.#entries.delete(key);
    this.#entries.set(key, { value, expires: this.#now() + this.#ttl });
    while (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#entries.delete(oldest.value);
    }
  }

  get size(): number {
    return this.#entries.size;
  }
}
