/**
 * The back-to-source client: reads byte ranges of a URL from its HTTP(S) origin over
 * one keep-alive undici Agent, with redirects, retries, resume after a dropped
 * body, and exactly the bytes asked for.
 *
 * Errors: openRange rejects, and iterating `chunks` throws, ShoalErrors only —
 * SOURCE_NOT_FOUND / SOURCE_AUTH / SOURCE_STATUS / SOURCE_PROTOCOL / SOURCE_NETWORK
 * (with `sourceStatus` when the origin answered), URL_INVALID / USAGE for a bad
 * request. Aborts (the request's signal, or close()) surface as the signal's reason
 * when that is a ShoalError, else as ShoalError 'ABORTED' with the reason as `cause`
 * — never as undici's AbortError.
 */
import { rootCertificates } from 'node:tls';
import { Agent } from 'undici';
import type { SourceSettings } from '../../common/config/schema.js';
import { ShoalError } from '../../common/errors.js';
import { silentLogger, type Logger } from '../../common/log.js';
import { RangeSession, type SessionConfig, type SessionRequest } from './range-session.js';

type RangeSessionSign = NonNullable<SessionRequest['sign']>;
import { validatorOf, versionOf } from './validator.js';
import { linkSignals } from './signals.js';
import { abortError } from './source-errors.js';
import { parseS3Url } from '../../common/s3-url.js';
import { cachedAwsIdentity, type AwsEnv, type AwsIdentity } from './s3/credentials.js';
import { explainS3Error } from './s3/s3-errors.js';
import { s3Target } from './s3/target.js';

/** Knobs that are not configuration (tests turn them down), besides the settings. */
export interface SourceExtras {
  /** Extra CA certificates (PEM text) for HTTPS origins, trusted besides the system's (settings.ca, read, and the mirror's registries'). */
  ca?: string | undefined;
  /** First backoff delay in ms (doubles each retry, with jitter, capped at maxBackoffMs). */
  backoffMs?: number;
  /** Longest wait between retries, Retry-After included. */
  maxBackoffMs?: number;
  connectTimeoutMs?: number;
  maxRedirects?: number;
  /** Default silentLogger. */
  logger?: Logger;
  /** Where s3: sources find their credentials and region (./s3/credentials.ts); default process.env. */
  env?: AwsEnv;
}

/** The extras' values when not given. */
export const SOURCE_TUNING = { backoffMs: 200, maxBackoffMs: 5_000, connectTimeoutMs: 10_000, maxRedirects: 5 } as const;

export interface RangeRequest {
  /** http:, https: or s3: URL (../../common/s3-url.ts: signed with this process's own credentials). */
  url: string;
  /**
   * Request headers from the user, passed through verbatim, except hop-by-hop headers
   * (and those named in Connection), Host, Range, If-Range, Content-Length and Expect,
   * which the client controls. Authorization and Cookie go only to the user's origin.
   */
  headers: ReadonlyArray<readonly [string, string]>;
  /** First byte wanted (resume). */
  start: number;
  /** One past the last byte wanted; undefined = to the end of the content. */
  end?: number | undefined;
  /**
   * The version the bytes must be of (./validator.ts): sent as If-Range, and
   * any answer of another version (ETag, Last-Modified or length) fails with
   * SOURCE_CHANGED instead of mixing. Empty or undefined: the first answer
   * sets the version.
   */
  validator?: string | undefined;
  signal?: AbortSignal | undefined;
}

export interface SourceBody {
  /** Total length of the content (from Content-Length of a 200, or the total in Content-Range of a 206); undefined when the origin does not say (chunked). */
  readonly contentLength: number | undefined;
  /** Response validators, when the origin sent them. */
  readonly etag: string | undefined;
  readonly lastModified: string | undefined;
  /** The version of the content these bytes are of (./validator.ts; empty when the origin sent no validator). */
  readonly validator: string;
  /**
   * The bytes from `start` to `end` (or the end of content), in order, with no gaps or
   * repeats, whatever retries happened underneath. Iterable once; read it to the end,
   * break out of it, or abort the signal, so that the connection is released.
   */
  readonly chunks: AsyncIterable<Buffer>;
}

export interface HttpSource {
  /** Opens the range; resolves once the origin has answered with a usable status and headers. */
  openRange(request: RangeRequest): Promise<SourceBody>;
  /** Aborts requests in flight (they fail with ABORTED) and releases pooled connections. Idempotent. */
  close(): Promise<void>;
}

/**
 * The origin client for `settings` (retries for connection errors, resets
 * and 5xx/429 answers per openRange call, mid-body drops included; `timeout`
 * aborts a request that receives no byte for that long; `insecure` accepts
 * any certificate).
 */
export function createHttpSource(settings: Omit<SourceSettings, 'ca'>, extras: SourceExtras = {}): HttpSource {
  return new UndiciHttpSource(settings, extras);
}

class UndiciHttpSource implements HttpSource {
  readonly #agent: Agent;
  readonly #config: SessionConfig;
  readonly #closing = new AbortController();
  readonly #aws: () => Promise<AwsIdentity>;
  #closed: Promise<void> | undefined;

  constructor(settings: Omit<SourceSettings, 'ca'>, extras: SourceExtras) {
    const idle = settings.timeout;
    const connect = {
      timeout: extras.connectTimeoutMs ?? SOURCE_TUNING.connectTimeoutMs,
      rejectUnauthorized: !settings.insecure,
      ...(extras.ca === undefined ? {} : { ca: [...rootCertificates, extras.ca] }),
    };
    this.#agent = new Agent({ headersTimeout: idle, bodyTimeout: idle, connect });
    this.#config = {
      dispatcher: this.#agent,
      retries: settings.retries,
      backoff: { baseMs: extras.backoffMs ?? SOURCE_TUNING.backoffMs, maxMs: extras.maxBackoffMs ?? SOURCE_TUNING.maxBackoffMs },
      maxRedirects: extras.maxRedirects ?? SOURCE_TUNING.maxRedirects,
      logger: extras.logger ?? silentLogger,
    };
    this.#aws = cachedAwsIdentity(extras.env ?? process.env);
  }

  async openRange(request: RangeRequest): Promise<SourceBody> {
    const given = parseUrl(request.url);
    const { start, end } = request;
    if (!Number.isSafeInteger(start) || start < 0 || (end !== undefined && (!Number.isSafeInteger(end) || end < start))) {
      throw new ShoalError('USAGE', `bad byte range start=${start} end=${String(end)}`);
    }
    const linked = linkSignals(request.signal, this.#closing.signal);
    if (linked.signal.aborted) {
      linked.dispose();
      throw abortError(linked.signal, given);
    }
    let target: { url: URL; sign?: RangeSessionSign; explain?: typeof explainS3Error };
    try {
      target = given.protocol === 's3:' ? { ...s3Target(parseS3Url(given), await this.#aws()), explain: explainS3Error } : { url: given };
    } catch (err) {
      linked.dispose();
      throw err;
    }
    const session = new RangeSession(this.#config, { ...target, headers: request.headers, start, end, expected: versionOf(request.validator ?? '') }, linked);
    const first = await session.open();
    const version = session.version;
    let used = false;
    return {
      contentLength: version?.total,
      etag: version?.etag,
      lastModified: version?.lastModified,
      validator: validatorOf(version?.etag, version?.lastModified),
      chunks: {
        [Symbol.asyncIterator]: () => {
          if (used) throw new ShoalError('INTERNAL', 'SourceBody.chunks can be iterated only once');
          used = true;
          return session.chunks(first);
        },
      },
    };
  }

  close(): Promise<void> {
    if (this.#closed === undefined) {
      this.#closing.abort(new ShoalError('ABORTED', 'the HTTP source was closed'));
      this.#closed = this.#agent.destroy();
    }
    return this.#closed;
  }
}

function parseUrl(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ShoalError('URL_INVALID', 'malformed URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:' && url.protocol !== 's3:') throw new ShoalError('URL_INVALID', `unsupported URL scheme ${url.protocol}`);
  return url;
}
