/**
 * The simulation's clock: a queue of events in virtual time, and the
 * scheduler's timers (src/scheduler/timers.ts) on it. `soon` runs after the
 * event being handled, at the same instant, in the order asked: a scheduling
 * round, as setImmediate gives it in the real scheduler.
 */
import type { SchedulerTimers } from '../../src/scheduler/timers.js';

interface Event {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** A binary min-heap of events by time, then by the order they were queued. */
export class SimClock implements SchedulerTimers {
  #heap: Event[] = [];
  #seq = 0;
  #now = 0;

  /** Virtual time, ms. */
  now(): number {
    return this.#now;
  }

  at(time: number, fn: () => void): { cancel(): void } {
    const event: Event = { at: Math.max(time, this.#now), seq: this.#seq++, fn, cancelled: false };
    this.#push(event);
    return {
      cancel: () => {
        event.cancelled = true;
      },
    };
  }

  after(ms: number, fn: () => void): { cancel(): void } {
    return this.at(this.#now + ms, fn);
  }

  soon(fn: () => void): void {
    this.at(this.#now, fn);
  }

  /** Runs events in order until none is left, `until` (ms) is passed, or `stop()` says so. */
  run(until: number, stop: () => boolean = () => false): void {
    while (this.#heap.length > 0 && !stop()) {
      const event = this.#pop();
      if (event.at > until) {
        this.#push(event);
        return;
      }
      this.#now = event.at;
      if (!event.cancelled) event.fn();
    }
  }

  #less(a: Event, b: Event): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  #push(event: Event): void {
    const heap = this.#heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const up = (i - 1) >> 1;
      if (!this.#less(heap[i]!, heap[up]!)) break;
      [heap[i], heap[up]] = [heap[up]!, heap[i]!];
      i = up;
    }
  }

  #pop(): Event {
    const heap = this.#heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && this.#less(heap[l]!, heap[m]!)) m = l;
        if (r < heap.length && this.#less(heap[r]!, heap[m]!)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!];
        i = m;
      }
    }
    return top;
  }
}
