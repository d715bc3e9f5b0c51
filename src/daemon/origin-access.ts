/**
 * Private content stays private (docs/security.md): content fetched with
 * credentials (../common/credentials.ts) goes to a requester only once the
 * origin accepts that requester's own, as the registry mirror already does
 * for registries. The check is a one-byte ranged GET of the requester's URL
 * with the requester's headers; a yes is remembered for `ttlMs` per task and
 * credentials (never the credentials themselves: a SHA-256 of them). Any
 * answer but a success denies, an unreachable origin too (fail closed).
 */
import { createHash } from 'node:crypto';
import { ShoalError, toShoalError } from '../common/errors.js';
import type { DownloadRequest } from './request.js';
import type { HttpSource } from './source/http-source.js';

/** Remembered answers, at most (the oldest go first). */
const MAX_REMEMBERED = 10_000;

export class OriginAccess {
  readonly #source: HttpSource;
  readonly #ttlMs: number;
  readonly #now: () => number;
  /** Key → when the yes expires. */
  readonly #granted = new Map<string, number>();

  constructor(source: HttpSource, ttlMs: number, now: () => number = Date.now) {
    this.#source = source;
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  /** Resolves when the origin accepts `request`'s credentials for the task's content; rejects with the origin's refusal as a ShoalError. */
  async check(taskId: string, request: DownloadRequest, contentLength: number, signal?: AbortSignal): Promise<void> {
    const key = grantKey(taskId, request);
    const until = this.#granted.get(key);
    if (until !== undefined && until > this.#now()) return;
    try {
      const body = await this.#source.openRange({ url: request.url, headers: request.headers ?? [], start: 0, end: contentLength > 0 ? 1 : undefined, signal });
      for await (const chunk of body.chunks) void chunk;
    } catch (err) {
      const e = toShoalError(err, 'SOURCE_NETWORK');
      if (e.code === 'ABORTED') throw e;
      throw new ShoalError(e.code, `the origin did not accept this request's own credentials for private content: ${e.message}`, e.sourceStatus === undefined ? { cause: e } : { cause: e, sourceStatus: e.sourceStatus });
    }
    this.#granted.delete(key);
    this.#granted.set(key, this.#now() + this.#ttlMs);
    if (this.#granted.size > MAX_REMEMBERED) this.#granted.delete(this.#granted.keys().next().value!);
  }
}

/** The task, the URL as asked (a signed URL's signature included) and the headers, hashed. */
function grantKey(taskId: string, request: DownloadRequest): string {
  const hash = createHash('sha256').update(taskId).update('\0').update(request.url);
  for (const [name, value] of [...(request.headers ?? [])].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) hash.update(`\0${name.toLowerCase()}:${value}`);
  return hash.digest('hex');
}
