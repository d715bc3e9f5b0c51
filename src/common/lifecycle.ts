/**
 * One lifecycle for every long-lived component (STYLE.md §4): listeners, the
 * scheduler link, a peer session, a task download, the piece store, the
 * swarm, the daemon and the scheduler themselves.
 *
 *            start()             stop()                 drained
 *   idle ───────────▶ running ───────────▶ stopping ─────────────▶ stopped
 *     │                                       ▲  │
 *     │ stop() / destroy()      destroy(err)  │  │ destroy(err): the drain is cut short
 *     └───────────────────────────────────────┘  └──────────────▶ stopped
 *
 * - `start()` is idempotent. A start that fails releases what it began and
 *   rejects; a start after `stop()` rejects with USAGE (make a new one).
 * - `stop()` lets work in flight finish (each component bounds how long),
 *   then releases every socket, timer and file. Idempotent: every call gets
 *   the same promise, which never rejects.
 * - `destroy(err)` is `stop()` without the drain: work in flight is aborted
 *   with `err`. It may be called during `stop()` to cut it short.
 * - `[Symbol.asyncDispose]` is `stop()`, for `await using`.
 */
import { ShoalError } from './errors.js';

export interface Lifecycle extends AsyncDisposable {
  start(): Promise<void>;
  stop(): Promise<void>;
  destroy(err?: unknown): Promise<void>;
}

export type LifecycleState = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped';

/**
 * The lifecycle's bookkeeping, so that a component writes only what starting
 * and stopping it means: `onStart()` and `onStop()`, each called at most once,
 * `onStop()` only after `onStart()` began (also when it failed). `onStop()`
 * drains while `this.destroyed` is not aborted, then releases; it should not
 * throw (what it throws is logged by nobody and swallowed).
 */
export abstract class Service implements Lifecycle {
  readonly #destroy = new AbortController();
  #state: LifecycleState = 'idle';
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #released: Promise<void> | undefined;

  protected abstract onStart(): Promise<void>;
  protected abstract onStop(): Promise<void>;

  /** What the component is called in errors ("upload server"). */
  protected abstract readonly serviceName: string;

  get state(): LifecycleState {
    return this.#state;
  }

  /** Aborted by `destroy(err)`, with `err` as its reason: drains end at once. */
  protected get destroyed(): AbortSignal {
    return this.#destroy.signal;
  }

  start(): Promise<void> {
    if (this.#stopping !== undefined) {
      return Promise.reject(new ShoalError('USAGE', `the ${this.serviceName} was stopped; create a new one`));
    }
    this.#starting ??= this.#start();
    return this.#starting;
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  destroy(err?: unknown): Promise<void> {
    if (!this.#destroy.signal.aborted) this.#destroy.abort(err ?? new ShoalError('ABORTED', `the ${this.serviceName} was destroyed`));
    return this.stop();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  async #start(): Promise<void> {
    this.#state = 'starting';
    try {
      await this.onStart();
    } catch (err) {
      await this.#release();
      this.#state = 'stopped';
      throw err;
    }
    if (this.#stopping === undefined) this.#state = 'running';
  }

  async #stop(): Promise<void> {
    if (this.#starting === undefined) {
      this.#state = 'stopped';
      return;
    }
    await this.#starting.catch(() => undefined);
    this.#state = 'stopping';
    await this.#release();
    this.#state = 'stopped';
  }

  #release(): Promise<void> {
    this.#released ??= this.onStop().catch(() => undefined);
    return this.#released;
  }
}

/**
 * Resolves when `work` settles, `ms` pass, or `signal` aborts, whichever is
 * first; true only when `work` settled. For drains: "let it finish, but not
 * for ever, and not at all once destroyed".
 */
export async function drainWithin(work: Promise<unknown>, ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return false;
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const cut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
    onAbort = (): void => resolve(false);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([work.then(() => true as const, () => true as const), cut]);
  } finally {
    clearTimeout(timer);
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort);
  }
}
