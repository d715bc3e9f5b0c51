/**
 * One openRange call: gets the range from the origin and hands out exactly the bytes
 * asked for, retrying failed requests and resuming dropped bodies (Range + If-Range)
 * from the next byte not yet yielded, all against one retry budget.
 */
import type { Dispatcher } from 'undici';
import { ShoalError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { backoffDelay, wait, type BackoffPolicy } from './backoff.js';
import { discard, getFollowingRedirects, type OriginGet, type OriginResponse } from './origin-request.js';
import type { HeaderList } from './request-headers.js';
import { checkResponse, type ContentVersion } from './response-check.js';
import { header, ifRangeValidator, parseRetryAfter } from './response-meta.js';
import type { LinkedSignal } from './signals.js';
import { redactUrl } from '../../common/ids.js';
import { abortError, changedError, judgeStatus, protocolError, statusError, transportFailure, type Failure } from './source-errors.js';

export interface SessionConfig {
  readonly dispatcher: Dispatcher;
  readonly retries: number;
  readonly backoff: BackoffPolicy;
  readonly maxRedirects: number;
  readonly logger: Logger;
}

export interface SessionRequest {
  readonly url: URL;
  readonly headers: HeaderList;
  readonly start: number;
  readonly end: number | undefined;
  /** The version the bytes must be of (from an earlier request of the task); undefined: the first answer sets it. */
  readonly expected?: ContentVersion | undefined;
  /** Signs each request (an S3 object). */
  readonly sign?: OriginGet['sign'];
  /** Reads what an error answer's body says (an S3 error's Code and Message), for the error's message; the body is consumed. */
  readonly explain?: ((body: OriginResponse['body'], signal: AbortSignal) => Promise<string | undefined>) | undefined;
}

/** An accepted (200/206) response whose body is being read. */
interface Attempt {
  readonly response: OriginResponse;
  /** Absolute offset of the first byte yielded from this response. */
  readonly from: number;
  /** Body bytes to drop first (a 200 answered to a Range). */
  skip: number;
  /** Absolute offset one past the last byte of this body, when the origin said. */
  readonly end: number | undefined;
}

type ReadOutcome = { kind: 'complete' } | { kind: 'ended' } | { kind: 'failed'; cause: unknown };

export class RangeSession {
  readonly #config: SessionConfig;
  readonly #request: SessionRequest;
  readonly #linked: LinkedSignal;
  /** Next absolute offset to yield. */
  #pos: number;
  #retriesUsed = 0;
  /** What the first response said; later responses must agree. */
  #version: ContentVersion | undefined;

  constructor(config: SessionConfig, request: SessionRequest, linked: LinkedSignal) {
    this.#config = config;
    this.#request = request;
    this.#linked = linked;
    this.#pos = request.start;
    this.#version = request.expected;
  }

  /** Set once open() has resolved. */
  get version(): ContentVersion | undefined {
    return this.#version;
  }

  /** Resolves with the first usable response; the caller must then read `chunks(attempt)` or abort. */
  async open(): Promise<Attempt> {
    try {
      return await this.#connect();
    } catch (err) {
      this.#linked.dispose();
      throw err;
    }
  }

  /** The requested bytes, in order, whatever retries happen underneath. */
  async *chunks(first: Attempt): AsyncGenerator<Buffer, void, undefined> {
    let attempt = first;
    try {
      for (;;) {
        const outcome = yield* this.#read(attempt);
        if (outcome.kind === 'complete') return;
        if (this.#signal.aborted) throw abortError(this.#signal, this.#request.url);
        let failure: Failure;
        if (outcome.kind === 'ended') {
          const expected = attempt.end; // this response's own end, when it said
          const limit = this.#limit();
          if (expected === undefined || this.#pos >= expected) {
            if (limit === undefined) return; // no length known: the origin's end is the end
            if (expected === undefined || expected >= limit) {
              throw protocolError(attempt.response.url, `content ended at byte ${this.#pos}, before byte ${limit}`);
            }
            if (this.#pos > attempt.from) {
              attempt = await this.#connect(); // a shorter 206 than asked for: ask for the rest, no retry used
              continue;
            }
          }
          const message = `GET ${redactUrl(attempt.response.url)}: body ended early at byte ${this.#pos} of ${expected ?? limit}`;
          failure = { error: new ShoalError('SOURCE_NETWORK', message), retryable: true };
        } else {
          failure = transportFailure(outcome.cause, attempt.response.url);
        }
        this.#config.logger.warn({ url: redactUrl(attempt.response.url), offset: this.#pos, err: failure.error.message }, 'origin body interrupted');
        await this.#backoff(failure);
        attempt = await this.#connect();
      }
    } finally {
      this.#linked.dispose();
    }
  }

  get #signal(): AbortSignal {
    return this.#linked.signal;
  }

  /** One past the last byte to yield, when known. */
  #limit(): number | undefined {
    return this.#request.end ?? this.#version?.total;
  }

  /** Yields the body of one response, trimmed to what is wanted; returns how it stopped. */
  async *#read(attempt: Attempt): AsyncGenerator<Buffer, ReadOutcome, undefined> {
    const iterator = attempt.response.body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    try {
      for (;;) {
        const limit = this.#limit();
        if (limit !== undefined && this.#pos >= limit) return { kind: 'complete' };
        let next: IteratorResult<Buffer>;
        try {
          next = await iterator.next();
        } catch (cause) {
          return { kind: 'failed', cause };
        }
        if (next.done === true) return { kind: 'ended' };
        let chunk = next.value;
        if (attempt.skip > 0) {
          const dropped = Math.min(attempt.skip, chunk.length);
          attempt.skip -= dropped;
          chunk = chunk.subarray(dropped);
        }
        if (limit !== undefined && this.#pos + chunk.length > limit) chunk = chunk.subarray(0, limit - this.#pos);
        if (chunk.length > 0) {
          this.#pos += chunk.length;
          yield chunk;
        }
      }
    } finally {
      await iterator.return?.(); // destroys a body not read to its end
    }
  }

  /** Requests from #pos (with If-Range once a version is known) until a usable response arrives, the budget runs out, or an error is final. */
  async #connect(): Promise<Attempt> {
    const { url } = this.#request;
    for (;;) {
      if (this.#signal.aborted) throw abortError(this.#signal, url);
      const validator = this.#version === undefined ? undefined : ifRangeValidator(this.#version.etag, this.#version.lastModified);
      let failure: Failure;
      try {
        const response = await getFollowingRedirects(this.#config.dispatcher, {
          url,
          userHeaders: this.#request.headers,
          ownHeaders: this.#rangeHeaders(validator),
          maxRedirects: this.#config.maxRedirects,
          signal: this.#signal,
          sign: this.#request.sign,
        });
        const verdict = judgeStatus(response.status);
        if (verdict === 'ok') return this.#accept(response, validator !== undefined);
        const explained = this.#request.explain === undefined ? undefined : await this.#request.explain(response.body, this.#signal);
        if (this.#request.explain === undefined) await discard(response.body, this.#signal);
        // Ranges come from a length this or an earlier answer gave: unsatisfiable, the content is not that version.
        if (response.status === 416 && this.#rangeHeaders(validator).length > 0) {
          throw changedError(response.url, `the range from byte ${this.#pos} is beyond the content (${(header(response.headers, 'content-range') ?? 'no Content-Range').slice(0, 100)})`, 416);
        }
        const retryAfterMs = response.status === 429 || response.status === 503 ? parseRetryAfter(header(response.headers, 'retry-after')) : undefined;
        const error = statusError(verdict === 'retry' ? 'SOURCE_STATUS' : verdict, response.url, response.status, retryAfterMs, explained);
        failure = { error, retryable: verdict === 'retry', retryAfterMs };
      } catch (err) {
        if (this.#signal.aborted) throw abortError(this.#signal, url);
        if (err instanceof ShoalError) throw err;
        failure = transportFailure(err, url);
      }
      this.#config.logger.warn({ url: redactUrl(url), offset: this.#pos, err: failure.error.message }, 'origin request failed');
      await this.#backoff(failure);
    }
  }

  #rangeHeaders(validator: string | undefined): Array<[string, string]> {
    const { end } = this.#request;
    if (this.#pos === 0 && end === undefined) return [];
    const own: Array<[string, string]> = [['range', `bytes=${this.#pos}-${end === undefined ? '' : end - 1}`]];
    if (validator !== undefined) own.push(['if-range', validator]);
    return own;
  }

  /** Checks a 200/206 against what was asked and what the first response said; throws SOURCE_PROTOCOL otherwise. */
  #accept(response: OriginResponse, sentIfRange: boolean): Attempt {
    const expect = { pos: this.#pos, end: this.#request.end, version: this.#version, sentIfRange };
    try {
      const { skip, end, version } = checkResponse(response.url, response.status, response.headers, expect);
      this.#version = version;
      if (skip > 0) this.#config.logger.debug({ url: redactUrl(response.url), skip }, 'origin ignored Range; skipping');
      return { response, from: this.#pos, skip, end };
    } catch (err) {
      response.body.on('error', () => undefined).destroy();
      throw err;
    }
  }

  /** Waits before the next retry, or throws the failure when it is final or the budget is spent. */
  async #backoff(failure: Failure): Promise<void> {
    const { retries } = this.#config;
    if (!failure.retryable) throw failure.error;
    if (this.#retriesUsed >= retries) {
      const { code, message, sourceStatus, retryAfter } = failure.error;
      const options = { cause: failure.error.cause, ...(sourceStatus === undefined ? {} : { sourceStatus }), ...(retryAfter === undefined ? {} : { retryAfter }) };
      throw new ShoalError(code, retries === 0 ? message : `${message} (gave up after ${retries} retries)`, options);
    }
    const delay = backoffDelay(this.#config.backoff, this.#retriesUsed, failure.retryAfterMs);
    this.#retriesUsed += 1;
    this.#config.logger.debug({ url: redactUrl(this.#request.url), retry: this.#retriesUsed, delayMs: Math.round(delay) }, 'retrying origin');
    try {
      await wait(delay, this.#signal);
    } catch {
      throw abortError(this.#signal, this.#request.url);
    }
  }
}
