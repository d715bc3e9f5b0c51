/**
 * Timers for durations people give (`--timeout 25d`, an API's `timeoutMs`).
 * Node's setTimeout takes at most 2^31 − 1 ms (24.8 days): a longer delay
 * fires after 1 ms, with only a TimeoutOverflowWarning to say so. Every timer
 * armed from a user's duration goes through setLongTimeout, which chains
 * timers of at most that length. Durations from the configuration that arm
 * a timer are capped at MAX_TIMER_MS by the schema instead
 * (config/fields.ts, `duration()`), since sockets' own timers cannot chain.
 */

/** The longest delay a Node timer (setTimeout, setInterval, socket.setTimeout) honours. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface LongTimeout extends Disposable {
  /** Cancels the timer; idempotent, and harmless after it fired. */
  clear(): void;
}

/**
 * Calls `fn` once, `ms` milliseconds from now, however large `ms` is. A
 * delay of Infinity never fires; zero, a negative or NaN fires at the next
 * turn of the timers, as setTimeout does. `unref`: the timer does not keep
 * the process alive.
 */
export function setLongTimeout(fn: () => void, ms: number, options: { unref?: boolean } = {}): LongTimeout {
  let timer: NodeJS.Timeout | undefined;
  let cleared = false;
  const deadline = performance.now() + (ms > 0 ? ms : 0);
  const arm = (): void => {
    if (cleared) return;
    const left = deadline - performance.now();
    if (left <= 0) {
      cleared = true;
      fn();
      return;
    }
    timer = setTimeout(arm, Math.min(Math.ceil(left), MAX_TIMER_MS));
    if (options.unref === true) timer.unref();
  };
  if (ms !== Infinity) {
    timer = setTimeout(arm, Math.min(ms > 0 ? Math.ceil(ms) : 0, MAX_TIMER_MS));
    if (options.unref === true) timer.unref();
  }
  const clear = (): void => {
    cleared = true;
    clearTimeout(timer);
  };
  return { clear, [Symbol.dispose]: clear };
}
