/**
 * A clock that can be replaced: the time in milliseconds and a one-shot
 * timer. Components that wait for time to pass (the rate limiter) take one,
 * so that tests move time themselves (test/fixtures/manual-clock.ts) and
 * assert on what happened, never on how long it took.
 */
export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
  /** Runs `fn` once, `ms` from now; the handle cancels it. */
  after(ms: number, fn: () => void): { cancel(): void };
}

/** Node's clock: performance.now() and setTimeout. */
export const NODE_CLOCK: Clock = {
  now: () => performance.now(),
  after(ms, fn) {
    const timer = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(timer) };
  },
};
