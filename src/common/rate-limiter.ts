/**
 * The one token bucket of the daemon's rate limits (bytes per second): the
 * upload cap shared by every upload response, the daemon-wide download cap,
 * the back-to-source cap and a get's own `--limit-rate` are each an
 * instance (docs/configuration.md, "Rate limits"). A transfer passes through
 * every limit that applies to it (`takeAll`).
 *
 * - The bucket starts full and refills continuously at `rate` bytes/s up to
 *   `burst` bytes. Default burst: 100 ms of traffic, at least 64 KiB
 *   (`defaultBurst`), so a small rate still sends TCP-sized bursts and a
 *   large one is not smoothed below timer resolution.
 * - Waiters are served first in, first out. A request larger than the burst
 *   is granted in parts as tokens arrive (never more than `burst` at once), so
 *   it needs no special case and cannot starve.
 * - Rate 0 means unlimited: `take` resolves at once.
 * - A timer runs only while someone waits; an idle limiter holds nothing that
 *   keeps a process alive.
 * - Time comes from an injected Clock (./clock.ts; Node's by default), so its
 *   tests move time themselves and assert on bytes, not on durations.
 */
import { NODE_CLOCK, type Clock } from './clock.js';
import { ShoalError } from './errors.js';

export interface RateLimiter {
  /** Resolves when `bytes` may be sent. Large requests are granted in parts internally; FIFO fairness. Rejects (ABORTED) if signal aborts. */
  take(bytes: number, signal?: AbortSignal): Promise<void>;
  /** Bytes per second, 0 = unlimited (take resolves immediately). */
  readonly rate: number;
  setRate(bytesPerSecond: number): void;
  /** Takes that had to wait, and the time they waited in all (for metrics). */
  readonly waits: { readonly count: number; readonly ms: number };
  /** Bytes granted so far while a limit was set (what the limit was applied to). */
  readonly grantedBytes: number;
}

/** A limiter's figures as stats and `shoal status` show them. */
export interface RateLimitJson {
  /** Bytes per second. */
  rate: number;
  /** Bytes it granted (what the limit was applied to). */
  grantedBytes: number;
  /** Takes that waited, and their wait in all. */
  waits: number;
  waitMs: number;
}

export function rateLimitJson(limiter: RateLimiter): RateLimitJson {
  return { rate: limiter.rate, grantedBytes: limiter.grantedBytes, waits: limiter.waits.count, waitMs: Math.round(limiter.waits.ms) };
}

const MIN_BURST = 64 * 1024;

/** The burst used when none is given: 100 ms of traffic, at least 64 KiB. */
export function defaultBurst(bytesPerSecond: number): number {
  return Math.max(MIN_BURST, Math.ceil(bytesPerSecond / 10));
}

/**
 * @param bytesPerSecond 0 = unlimited.
 * @param burstBytes bucket capacity; defaults to `defaultBurst(rate)` and then follows `setRate`.
 */
export function createRateLimiter(bytesPerSecond: number, burstBytes?: number, clock: Clock = NODE_CLOCK): RateLimiter {
  return new TokenBucket(bytesPerSecond, burstBytes, clock);
}

/** Waits for `bytes` from every limiter given, in turn (undefined ones and unlimited ones cost nothing). */
export async function takeAll(limiters: ReadonlyArray<RateLimiter | undefined>, bytes: number, signal?: AbortSignal): Promise<void> {
  for (const limiter of limiters) if (limiter !== undefined && limiter.rate > 0) await limiter.take(bytes, signal);
}

interface Waiter {
  /** The clock's time when it began to wait. */
  since: number;
  remaining: number;
  granted: number;
  resolve: () => void;
  reject: (err: ShoalError) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

function checkRate(value: number): number {
  if (!Number.isFinite(value) || value < 0) {
    throw new ShoalError('USAGE', `rate must be a finite number of bytes per second >= 0, got ${String(value)}`);
  }
  return value;
}

function abortError(signal: AbortSignal): ShoalError {
  return new ShoalError('ABORTED', 'rate limiter wait was aborted', { cause: signal.reason });
}

class TokenBucket implements RateLimiter {
  #rate: number;
  readonly #fixedBurst: number | undefined;
  #burst: number;
  #tokens: number;
  readonly #clock: Clock;
  #last: number;
  readonly #queue: Waiter[] = [];
  #timer: { cancel(): void } | undefined;
  readonly #waits = { count: 0, ms: 0 };
  #granted = 0;

  constructor(rate: number, burst: number | undefined, clock: Clock) {
    this.#clock = clock;
    this.#last = clock.now();
    this.#rate = checkRate(rate);
    if (burst !== undefined && (!Number.isFinite(burst) || burst < 1)) {
      throw new ShoalError('USAGE', `burst must be at least 1 byte, got ${String(burst)}`);
    }
    this.#fixedBurst = burst;
    this.#burst = burst ?? defaultBurst(rate);
    this.#tokens = this.#burst;
  }

  get rate(): number {
    return this.#rate;
  }

  get waits(): { readonly count: number; readonly ms: number } {
    return this.#waits;
  }

  get grantedBytes(): number {
    return this.#granted;
  }

  take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (!Number.isSafeInteger(bytes) || bytes < 0) {
      return Promise.reject(new ShoalError('USAGE', `bytes must be a non-negative integer, got ${String(bytes)}`));
    }
    if (signal?.aborted === true) return Promise.reject(abortError(signal));
    if (this.#rate === 0 || bytes === 0) return Promise.resolve();
    this.#refill();
    if (this.#queue.length === 0 && this.#tokens >= bytes) {
      this.#tokens -= bytes;
      this.#granted += bytes;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      this.#waits.count++;
      const waiter: Waiter = { since: this.#clock.now(), remaining: bytes, granted: 0, resolve, reject, signal, onAbort: undefined };
      if (signal !== undefined) {
        waiter.onAbort = () => this.#abort(waiter);
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.#queue.push(waiter);
      this.#drain();
    });
  }

  setRate(bytesPerSecond: number): void {
    checkRate(bytesPerSecond);
    if (this.#rate === 0) {
      this.#last = this.#clock.now();
      this.#tokens = Infinity; // clamped to the new burst below: a limit starts full
    } else {
      this.#refill();
    }
    this.#rate = bytesPerSecond;
    this.#burst = this.#fixedBurst ?? defaultBurst(bytesPerSecond);
    this.#tokens = Math.min(this.#tokens, this.#burst);
    if (bytesPerSecond === 0) {
      for (const waiter of this.#queue.splice(0)) this.#settle(waiter);
      this.#schedule();
    } else {
      this.#drain();
    }
  }

  /**
   * Adds the tokens earned since the last refill. While someone waits they
   * are not capped at the burst: a timer fires up to a millisecond late
   * (rounded up), and tokens cut off there would lower the rate below the
   * one set (by 2 % with 64 KiB takes at 2 MiB/s). The cap applies once the
   * queue is empty (#drain).
   */
  #refill(): void {
    const now = this.#clock.now();
    const cap = this.#queue.length > 0 ? Infinity : this.#burst;
    this.#tokens = Math.min(cap, this.#tokens + ((now - this.#last) * this.#rate) / 1000);
    this.#last = now;
  }

  /** Hands whole available tokens to the head of the queue, then waits for more. */
  #drain(): void {
    this.#refill();
    while (this.#queue.length > 0) {
      const head = this.#queue[0]!;
      const grant = Math.min(Math.floor(this.#tokens), head.remaining);
      this.#tokens -= grant;
      head.remaining -= grant;
      head.granted += grant;
      this.#granted += grant;
      if (head.remaining > 0) break;
      this.#queue.shift();
      this.#settle(head);
    }
    if (this.#queue.length === 0) this.#tokens = Math.min(this.#tokens, this.#burst);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#timer !== undefined) {
      this.#timer.cancel();
      this.#timer = undefined;
    }
    const head = this.#queue[0];
    if (head === undefined || this.#rate === 0) return;
    const needed = Math.min(head.remaining, this.#burst) - this.#tokens;
    const wait = Math.max(1, Math.ceil((needed * 1000) / this.#rate));
    this.#timer = this.#clock.after(wait, () => {
      this.#timer = undefined;
      this.#drain();
    });
  }

  #settle(waiter: Waiter): void {
    if (waiter.onAbort !== undefined) waiter.signal?.removeEventListener('abort', waiter.onAbort);
    this.#waits.ms += this.#clock.now() - waiter.since;
    waiter.resolve();
  }

  #abort(waiter: Waiter): void {
    const index = this.#queue.indexOf(waiter);
    if (index === -1) return;
    this.#queue.splice(index, 1);
    // Tokens handed to a request that will not be sent go back to the bucket.
    this.#tokens = Math.min(this.#burst, this.#tokens + waiter.granted);
    this.#granted -= waiter.granted;
    waiter.reject(abortError(waiter.signal!));
    this.#drain();
  }
}
