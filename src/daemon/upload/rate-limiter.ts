/**
 * A token bucket shared by every upload response (bytes per second).
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
 */
import { ShoalError } from '../../common/errors.js';

export interface RateLimiter {
  /** Resolves when `bytes` may be sent. Large requests are granted in parts internally; FIFO fairness. Rejects (ABORTED) if signal aborts. */
  take(bytes: number, signal?: AbortSignal): Promise<void>;
  /** Bytes per second, 0 = unlimited (take resolves immediately). */
  readonly rate: number;
  setRate(bytesPerSecond: number): void;
  /** Takes that had to wait, and the time they waited in all (for metrics). */
  readonly waits: { readonly count: number; readonly ms: number };
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
export function createRateLimiter(bytesPerSecond: number, burstBytes?: number): RateLimiter {
  return new TokenBucket(bytesPerSecond, burstBytes);
}

interface Waiter {
  /** performance.now() when it began to wait. */
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
  #last = performance.now();
  readonly #queue: Waiter[] = [];
  #timer: NodeJS.Timeout | undefined;
  readonly #waits = { count: 0, ms: 0 };

  constructor(rate: number, burst: number | undefined) {
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

  take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (!Number.isSafeInteger(bytes) || bytes < 0) {
      return Promise.reject(new ShoalError('USAGE', `bytes must be a non-negative integer, got ${String(bytes)}`));
    }
    if (signal?.aborted === true) return Promise.reject(abortError(signal));
    if (this.#rate === 0 || bytes === 0) return Promise.resolve();
    this.#refill();
    if (this.#queue.length === 0 && this.#tokens >= bytes) {
      this.#tokens -= bytes;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      this.#waits.count++;
      const waiter: Waiter = { since: performance.now(), remaining: bytes, granted: 0, resolve, reject, signal, onAbort: undefined };
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
      this.#last = performance.now();
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

  #refill(): void {
    const now = performance.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) * this.#rate) / 1000);
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
      if (head.remaining > 0) break;
      this.#queue.shift();
      this.#settle(head);
    }
    this.#schedule();
  }

  #schedule(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const head = this.#queue[0];
    if (head === undefined || this.#rate === 0) return;
    const needed = Math.min(head.remaining, this.#burst) - this.#tokens;
    const wait = Math.max(1, Math.ceil((needed * 1000) / this.#rate));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#drain();
    }, wait);
  }

  #settle(waiter: Waiter): void {
    if (waiter.onAbort !== undefined) waiter.signal?.removeEventListener('abort', waiter.onAbort);
    this.#waits.ms += performance.now() - waiter.since;
    waiter.resolve();
  }

  #abort(waiter: Waiter): void {
    const index = this.#queue.indexOf(waiter);
    if (index === -1) return;
    this.#queue.splice(index, 1);
    // Tokens handed to a request that will not be sent go back to the bucket.
    this.#tokens = Math.min(this.#burst, this.#tokens + waiter.granted);
    waiter.reject(abortError(waiter.signal!));
    this.#drain();
  }
}
