/**
 * How the scheduler waits: Node's timers by default, or a simulation's
 * virtual clock (bench/sim), so the same Swarm runs on either. A timer never
 * keeps the process alive.
 */
export interface SchedulerTimers {
  /** Runs `fn` after `ms`; the returned handle cancels it. */
  after(ms: number, fn: () => void): { cancel(): void };
  /** Runs `fn` once the current event is handled (a scheduling round). */
  soon(fn: () => void): void;
}

export const NODE_TIMERS: SchedulerTimers = {
  after(ms, fn) {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return { cancel: () => clearTimeout(timer) };
  },
  soon(fn) {
    setImmediate(fn);
  },
};
