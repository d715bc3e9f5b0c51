/**
 * A push-based async iterable with a bounded buffer: the sending side of a
 * streaming RPC. `push` returns false (and drops nothing) when the buffer is
 * over its high-water mark so producers can slow down; the consumer is the
 * RPC library's writer.
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  readonly #items: T[] = [];
  #waiter: ((result: IteratorResult<T>) => void) | undefined;
  #failer: ((err: unknown) => void) | undefined;
  #ended = false;
  #error: Error | undefined;
  readonly #highWaterMark: number;

  constructor(highWaterMark = 1024) {
    this.#highWaterMark = highWaterMark;
  }

  get ended(): boolean {
    return this.#ended;
  }

  get length(): number {
    return this.#items.length;
  }

  push(item: T): boolean {
    if (this.#ended) return false;
    const waiter = this.#waiter;
    if (waiter !== undefined) {
      this.#waiter = undefined;
      this.#failer = undefined;
      waiter({ value: item, done: false });
      return true;
    }
    this.#items.push(item);
    return this.#items.length < this.#highWaterMark;
  }

  end(error?: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    const waiter = this.#waiter;
    const failer = this.#failer;
    this.#waiter = undefined;
    this.#failer = undefined;
    if (error !== undefined && failer !== undefined) failer(error);
    else waiter?.({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        const item = this.#items.shift();
        if (item !== undefined) return Promise.resolve({ value: item, done: false });
        if (this.#ended) {
          return this.#error === undefined ? Promise.resolve({ value: undefined, done: true }) : Promise.reject(this.#error);
        }
        return new Promise<IteratorResult<T>>((resolve, reject) => {
          this.#waiter = resolve;
          this.#failer = reject;
        });
      },
      return: () => {
        this.end();
        return Promise.resolve({ value: undefined, done: true });
      },
      throw: (err?: unknown) => {
        this.end();
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      },
    };
  }
}
