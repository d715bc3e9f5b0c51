/**
 * One openRange call: gets the range from the origin and hands out exactly the bytes
 * asked for, retrying failed requests and resuming dropped bodies (Range + If-Range)
 * from the next byte not yet yielded, all against one retry budget.
 */
import type { Dispatcher } from 'undici';
import { ShoalError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { backoffDelay, wait, type BackoffPolicy } from './backoff.js';
import { discard, getFollowingRedirects, type OriginResponse } from './origin-request.js';
import type { HeaderList } from './request-headers.js';
import { header, ifRangeValidator, parseContentRange, parseLength, parseRetryAfter } from './response-meta.js';
import type { LinkedSignal } from './signals.js';
import { abortError, judgeStatus, protocolError, redactUrl, statusError, transportFailure, type Failure } from './source-errors.js';

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
  #total: number | undefined;
  #etag: string | undefined;
  #lastModified: string | undefined;

  constructor(config: SessionConfig, request: SessionRequest, linked: LinkedSignal) {
    this.#config = config;
    this.#request = request;
    this.#linked = linked;
    this.#pos = request.start;
  }

  get total(): number | undefined {
    return this.#total;
  }
  get etag(): string | undefined {
    return this.#etag;
  }
  get lastModified(): string | undefined {
    return this.#lastModified;
  }

  /** Resolves with the first usable response; the caller must then read `chunks(attempt)` or abort. */
  async open(): Promise<Attempt> {
    try {
      return await this.#connect(false);
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
              attempt = await this.#connect(true); // a shorter 206 than asked for: ask for the rest, no retry used
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
        attempt = await this.#connect(true);
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
    return this.#request.end ?? this.#total;
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

  /** Requests from #pos until a usable response arrives, the budget runs out, or an error is final. */
  async #connect(resuming: boolean): Promise<Attempt> {
    const { url } = this.#request;
    for (;;) {
      if (this.#signal.aborted) throw abortError(this.#signal, url);
      const validator = resuming ? ifRangeValidator(this.#etag, this.#lastModified) : undefined;
      let failure: Failure;
      try {
        const response = await getFollowingRedirects(this.#config.dispatcher, {
          url,
          userHeaders: this.#request.headers,
          ownHeaders: this.#rangeHeaders(validator),
          maxRedirects: this.#config.maxRedirects,
          signal: this.#signal,
        });
        const verdict = judgeStatus(response.status);
        if (verdict === 'ok') return this.#accept(response, resuming, validator !== undefined);
        await discard(response.body, this.#signal);
        const retryAfterMs = response.status === 429 || response.status === 503 ? parseRetryAfter(header(response.headers, 'retry-after')) : undefined;
        const error = statusError(verdict === 'retry' ? 'SOURCE_STATUS' : verdict, response.url, response.status, retryAfterMs);
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

  /** Checks a 200/206 against what was asked and what earlier responses said; throws SOURCE_PROTOCOL otherwise. */
  #accept(response: OriginResponse, resuming: boolean, sentIfRange: boolean): Attempt {
    try {
      return this.#check(response, resuming, sentIfRange);
    } catch (err) {
      response.body.on('error', () => undefined).destroy();
      throw err;
    }
  }

  #check(response: OriginResponse, resuming: boolean, sentIfRange: boolean): Attempt {
    const { url, status, headers } = response;
    const length = parseLength(header(headers, 'content-length'));
    if (length === 'invalid') throw protocolError(url, `bad or too large Content-Length ${header(headers, 'content-length')}`, status);
    let total: number | undefined;
    let attempt: Attempt;
    if (status === 206) {
      const range = parseContentRange(header(headers, 'content-range'));
      if (range === undefined) throw protocolError(url, `bad Content-Range ${header(headers, 'content-range') ?? '(none)'}`, status);
      if (range.first !== this.#pos) throw protocolError(url, `Content-Range starts at ${range.first}, asked for ${this.#pos}`, status);
      if (length !== undefined && length !== range.last + 1 - range.first) throw protocolError(url, 'Content-Length disagrees with Content-Range', status);
      total = range.total;
      attempt = { response, from: this.#pos, skip: 0, end: range.last + 1 };
    } else {
      // A 200 to If-Range means a new version, unless it carries the same strong ETag: then the origin just ignores Range.
      const sameVersion = this.#etag !== undefined && ifRangeValidator(this.#etag, undefined) === header(headers, 'etag');
      if (resuming && sentIfRange && !sameVersion) throw protocolError(url, 'content changed while downloading (If-Range not honoured)', status);
      total = length;
      attempt = { response, from: this.#pos, skip: this.#pos, end: length };
    }
    const etag = header(headers, 'etag');
    if (!resuming) {
      this.#total = total;
      this.#etag = etag;
      this.#lastModified = header(headers, 'last-modified');
      const limit = this.#request.end ?? this.#request.start;
      if (total !== undefined && limit > total) throw protocolError(url, `range ends at ${limit}, beyond the content length ${total}`, status);
    } else {
      if (total !== undefined && this.#total !== undefined && total !== this.#total) {
        throw protocolError(url, `content changed while downloading (length ${this.#total} became ${total})`, status);
      }
      if (etag !== undefined && this.#etag !== undefined && etag !== this.#etag) throw protocolError(url, 'content changed while downloading (ETag differs)', status);
    }
    if (attempt.skip > 0) this.#config.logger.debug({ url: redactUrl(url), skip: attempt.skip }, 'origin ignored Range; skipping');
    return attempt;
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
