/**
 * Preheat on the scheduler: seed peers fetch tasks ahead of demand. Each task
 * goes, as a SeedTask marked preheat, to the seed host a first download would
 * use (the swarm's choice when it made one, else rendezvous on the task ID, as
 * the swarm does), and its progress is read from the swarm — the seed's peer
 * and its pieces — until a seed holds it complete, the seed reports a
 * failure, the seed leaves, the seed never starts it, or the time runs out.
 * Transport-free: the RPC handler in service.ts turns updates into messages.
 *
 * Lifecycle: each run polls the swarm on a timer; `stop()` ends every run
 * (its stream ends without the remaining end states; the seeds keep
 * fetching what they were asked), and a run asked for after it fails with
 * ABORTED.
 */
import { NO_EVENTS, type SchedulerEvents } from './events.js';
import { create } from '@bufbuild/protobuf';
import { HostCommandSchema, type TaskSpec } from '../gen/shoal/v1/scheduler_pb.js';
import { AsyncQueue } from '../common/async-queue.js';
import type { PreheatSettings } from '../common/config/schema.js';
import { ShoalError, type ErrorCode } from '../common/errors.js';
import type { Lifecycle } from '../common/lifecycle.js';
import type { Logger } from '../common/log.js';
import type { HostEntry, PeerEntry } from './model.js';
import { seedHostFor } from './seeds.js';
import type { Swarm } from './swarm.js';

export interface PreheatUpdate {
  taskId: string;
  url: string;
  state: 'running' | 'done' | 'failed';
  seedHostId: string;
  completedBytes: number;
  contentLength: number | undefined;
  error?: { code: ErrorCode; message: string };
}

/** What the preheater is given besides its settings. */
export interface PreheaterDeps {
  readonly logger: Logger;
  /** The scheduler's clock, in ms. */
  readonly now: () => number;
  /** Told of the seeds it asks (metrics); default: nobody. */
  readonly events?: SchedulerEvents;
}

/** Caps on one preheat request (docs/LIMITS.md). */
export const PREHEAT_LIMITS = { tasks: 1024, timeoutMs: 24 * 3_600_000 } as const;

interface Watch {
  readonly spec: TaskSpec;
  seedHostId: string;
  /** When the seed was asked, or last seen without the task (it may register again). */
  askedAt: number;
  lastBytes: number;
  /** The seed's peer for the task has been seen downloading. */
  seen: boolean;
  settled: boolean;
  fail(code: ErrorCode, message: string): void;
}

export class Preheater implements Lifecycle {
  readonly #swarm: Swarm;
  /** A seed that has not registered the task this long after being asked fails it. */
  readonly #startTimeout: number;
  /** Time for one task when the request gives none. */
  readonly #defaultTimeout: number;
  /** How often the swarm is read for progress. */
  readonly #poll: number;
  readonly #log: Logger;
  readonly #events: SchedulerEvents;
  readonly #now: () => number;
  /** Tasks being preheated, for the failure events service.ts forwards. */
  readonly #watches = new Map<string, Set<Watch>>();
  /** Ends each run in progress. */
  readonly #runs = new Set<() => void>();
  #stopped = false;

  constructor(swarm: Swarm, settings: PreheatSettings, deps: PreheaterDeps) {
    this.#swarm = swarm;
    this.#startTimeout = settings.startTimeout;
    this.#defaultTimeout = settings.timeout;
    this.#poll = settings.pollInterval;
    this.#log = deps.logger;
    this.#events = deps.events ?? NO_EVENTS;
    this.#now = deps.now;
  }

  /** Nothing to start: runs begin with their requests. */
  start(): Promise<void> {
    if (this.#stopped) return Promise.reject(new ShoalError('USAGE', 'the preheater was stopped; create a new one'));
    return Promise.resolve();
  }

  /** Ends every run and clears its timer. */
  stop(): Promise<void> {
    this.#stopped = true;
    for (const end of [...this.#runs]) end();
    return Promise.resolve();
  }

  /** As stop(): a run's work is the seeds', which keep fetching. */
  destroy(): Promise<void> {
    return this.stop();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  /**
   * Preheats `specs`, yielding a "running" update when a task's bytes on the
   * seed grow and exactly one "done" or "failed" per task; ends after the last.
   * The signal stops the watching (seeds keep fetching what they were asked).
   */
  run(specs: readonly TaskSpec[], timeoutMs: number, signal: AbortSignal): AsyncIterable<PreheatUpdate> {
    if (this.#stopped) throw new ShoalError('ABORTED', 'the scheduler is stopping');
    const out = new AsyncQueue<PreheatUpdate>();
    const started = this.#now();
    const deadline = started + (timeoutMs > 0 ? Math.min(timeoutMs, PREHEAT_LIMITS.timeoutMs) : this.#defaultTimeout);
    const watches: Watch[] = [];
    const seen = new Set<string>();
    for (const spec of specs) {
      if (seen.has(spec.taskId)) continue;
      seen.add(spec.taskId);
      const watch: Watch = {
        spec,
        seedHostId: '',
        askedAt: started,
        lastBytes: -1,
        seen: false,
        settled: false,
        fail: (code, message) => this.#settle(watch, out, { state: 'failed', error: { code, message } }),
      };
      watches.push(watch);
    }
    for (const watch of watches) this.#start(watch, out);
    const timer = setInterval(() => {
      const now = this.#now();
      for (const watch of watches) {
        if (watch.settled) continue;
        if (now >= deadline) watch.fail('TIMEOUT', `the seed peer did not finish within ${Math.round((deadline - started) / 1000)} s`);
        else this.#check(watch, out, now);
      }
      finishIfDone();
    }, this.#poll);
    const end = (): void => {
      clearInterval(timer);
      signal.removeEventListener('abort', end);
      this.#runs.delete(end);
      for (const watch of watches) this.#unwatch(watch);
      out.end();
    };
    this.#runs.add(end);
    const finishIfDone = (): void => {
      if (watches.every((w) => w.settled)) end();
    };
    signal.addEventListener('abort', end, { once: true });
    if (signal.aborted) end();
    finishIfDone();
    return out;
  }

  /** service.ts: a peer reported that its download failed. */
  peerFailed(peer: PeerEntry, code: ErrorCode, message: string): void {
    for (const watch of this.#watches.get(peer.task.id) ?? []) {
      if (watch.seedHostId === peer.host.info.id) watch.fail(code, message);
    }
  }

  #start(watch: Watch, out: AsyncQueue<PreheatUpdate>): void {
    const held = this.#heldBySeed(watch.spec.taskId);
    if (held !== undefined) {
      watch.seedHostId = held.host.info.id;
      this.#settle(watch, out, { state: 'done' });
      return;
    }
    const seed = this.#seedFor(watch.spec.taskId);
    if (seed === undefined) {
      watch.fail('SEED_UNAVAILABLE', 'no seed peer is connected to the scheduler (run a daemon with --seed)');
      return;
    }
    watch.seedHostId = seed.info.id;
    let set = this.#watches.get(watch.spec.taskId);
    if (set === undefined) this.#watches.set(watch.spec.taskId, (set = new Set()));
    set.add(watch);
    this.#log.info({ task: watch.spec.taskId, seed: seed.info.id }, 'preheat: seed peer asked to fetch');
    seed.command(create(HostCommandSchema, { command: { case: 'seedTask', value: { task: watch.spec, preheat: true } } }));
    this.#events.seedTriggered('preheat');
    this.#emit(watch, out, 'running', 0);
  }

  /** The seed host a first download of the task would use: the swarm's, or by rendezvous. */
  #seedFor(taskId: string): HostEntry | undefined {
    const chosen = this.#swarm.tasks.get(taskId)?.seedHost;
    const host = chosen === undefined ? undefined : this.#swarm.hosts.get(chosen);
    return host ?? seedHostFor(taskId, this.#swarm.hosts.values());
  }

  /** A seed peer that holds the whole task. */
  #heldBySeed(taskId: string): PeerEntry | undefined {
    const task = this.#swarm.tasks.get(taskId);
    if (task === undefined) return undefined;
    for (const peer of task.peers.values()) if (peer.state === 'complete' && peer.host.info.seed) return peer;
    return undefined;
  }

  #check(watch: Watch, out: AsyncQueue<PreheatUpdate>, now: number): void {
    const held = this.#heldBySeed(watch.spec.taskId);
    if (held !== undefined) {
      watch.seedHostId = held.host.info.id;
      this.#settle(watch, out, { state: 'done' });
      return;
    }
    if (!this.#swarm.hosts.has(watch.seedHostId)) {
      watch.fail('SEED_UNAVAILABLE', `seed peer ${watch.seedHostId} left before it held the task`);
      return;
    }
    const peer = this.#seedPeer(watch);
    if (peer === undefined || !peer.active) {
      // Not registered yet, or between two registrations (its stream broke).
      if (now - watch.askedAt > this.#startTimeout) {
        const s = Math.round(this.#startTimeout / 1000);
        watch.fail(
          'SEED_UNAVAILABLE',
          watch.seen ? `seed peer ${watch.seedHostId} stopped the task without holding it, and did not resume it within ${s} s (see its log)` : `seed peer ${watch.seedHostId} did not start the task within ${s} s`,
        );
      }
      return;
    }
    watch.seen = true;
    watch.askedAt = now;
    this.#emit(watch, out, 'running', this.#bytes(peer));
  }

  #seedPeer(watch: Watch): PeerEntry | undefined {
    const task = this.#swarm.tasks.get(watch.spec.taskId);
    if (task === undefined) return undefined;
    for (const peer of task.peers.values()) if (peer.host.info.id === watch.seedHostId) return peer;
    return undefined;
  }

  #bytes(peer: PeerEntry): number {
    const shape = peer.task.shape;
    if (shape === undefined) return 0;
    const bytes = peer.pieces.size * shape.pieceSize;
    return shape.contentLength === undefined ? bytes : Math.min(bytes, shape.contentLength);
  }

  #contentLength(taskId: string): number | undefined {
    return this.#swarm.tasks.get(taskId)?.shape?.contentLength;
  }

  #emit(watch: Watch, out: AsyncQueue<PreheatUpdate>, state: 'running', bytes: number): void {
    if (bytes === watch.lastBytes) return;
    watch.lastBytes = bytes;
    out.push({ taskId: watch.spec.taskId, url: watch.spec.url, state, seedHostId: watch.seedHostId, completedBytes: bytes, contentLength: this.#contentLength(watch.spec.taskId) });
  }

  #settle(watch: Watch, out: AsyncQueue<PreheatUpdate>, end: { state: 'done' } | { state: 'failed'; error: { code: ErrorCode; message: string } }): void {
    if (watch.settled) return;
    watch.settled = true;
    this.#unwatch(watch);
    const contentLength = this.#contentLength(watch.spec.taskId);
    const update: PreheatUpdate = {
      taskId: watch.spec.taskId,
      url: watch.spec.url,
      state: end.state,
      seedHostId: watch.seedHostId,
      completedBytes: end.state === 'done' ? (contentLength ?? Math.max(0, watch.lastBytes)) : Math.max(0, watch.lastBytes),
      contentLength,
    };
    if (end.state === 'failed') {
      update.error = end.error;
      this.#log.warn({ task: watch.spec.taskId, seed: watch.seedHostId, code: end.error.code, err: end.error.message }, 'preheat: task failed');
    }
    out.push(update);
  }

  #unwatch(watch: Watch): void {
    const set = this.#watches.get(watch.spec.taskId);
    if (set === undefined) return;
    set.delete(watch);
    if (set.size === 0) this.#watches.delete(watch.spec.taskId);
  }
}
