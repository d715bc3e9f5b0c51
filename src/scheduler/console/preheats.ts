/**
 * Preheats started from the console's form: URLs (each with an optional
 * digest) become tasks exactly as `shoal preheat URL` makes them (a blob
 * URL's digest is its identity), handed to the scheduler's own Preheater in
 * this process, and each run's progress is kept for the snapshot. Bounded:
 * a few runs at once, the last ones remembered.
 */
import { create } from '@bufbuild/protobuf';
import { TaskSpecSchema, type TaskSpec } from '../../gen/shoal/v1/scheduler_pb.js';
import { ShoalError, toShoalError } from '../../common/errors.js';
import { blobDigestOf, parseDigest, parseSourceUrl, redactUrl, taskId } from '../../common/ids.js';
import type { Logger } from '../../common/log.js';
import { PREHEAT_LIMITS, type Preheater } from '../preheat.js';
import type { PreheatTaskView, PreheatView } from './types.js';

export const CONSOLE_PREHEAT_LIMITS = { running: 4, kept: 20, tasksShown: 100, urlLength: 8192 } as const;

export interface PreheatItem {
  url: string;
  digest?: string | undefined;
}

interface Run {
  readonly id: string;
  readonly startedAt: number;
  readonly tasks: Map<string, PreheatTaskView>;
  readonly abort: AbortController;
  state: PreheatView['state'];
}

/** The task `shoal preheat URL [--digest D]` would make; URL_INVALID or DIGEST_INVALID when it cannot. */
export function preheatSpec(item: PreheatItem): TaskSpec {
  if (item.url.length > CONSOLE_PREHEAT_LIMITS.urlLength) throw new ShoalError('LIMIT_EXCEEDED', `a URL is over ${CONSOLE_PREHEAT_LIMITS.urlLength} characters`);
  parseSourceUrl(item.url);
  const digest = item.digest === undefined || item.digest === '' ? (blobDigestOf(item.url) ?? '') : item.digest;
  if (digest !== '') parseDigest(digest);
  return create(TaskSpecSchema, { taskId: taskId({ url: item.url, digest }), url: item.url, digest });
}

export class ConsolePreheats {
  readonly #preheater: Pick<Preheater, 'run'>;
  readonly #now: () => number;
  readonly #log: Logger;
  /** Oldest first. */
  readonly #runs: Run[] = [];
  #n = 0;

  constructor(preheater: Pick<Preheater, 'run'>, now: () => number, log: Logger) {
    this.#preheater = preheater;
    this.#now = now;
    this.#log = log;
  }

  /** Starts preheating `items`; resolves at once with the run's ID (its progress is in views()). */
  start(items: readonly PreheatItem[]): string {
    if (items.length === 0) throw new ShoalError('USAGE', 'nothing to preheat: give one URL or more');
    if (items.length > PREHEAT_LIMITS.tasks) throw new ShoalError('LIMIT_EXCEEDED', `at most ${PREHEAT_LIMITS.tasks} URLs in one preheat`);
    if (this.#runs.filter((r) => r.state === 'running').length >= CONSOLE_PREHEAT_LIMITS.running) {
      throw new ShoalError('LIMIT_EXCEEDED', `${CONSOLE_PREHEAT_LIMITS.running} preheats are running already; wait for one to end`);
    }
    const specs = items.map(preheatSpec);
    const run: Run = { id: `p${++this.#n}`, startedAt: this.#now(), tasks: new Map(), abort: new AbortController(), state: 'running' };
    for (const spec of specs) {
      run.tasks.set(spec.taskId, { taskId: spec.taskId, url: redactUrl(spec.url), state: 'waiting', seedHostId: '', completedBytes: 0, contentLength: undefined, error: undefined });
    }
    this.#runs.push(run);
    while (this.#runs.length > CONSOLE_PREHEAT_LIMITS.kept) this.#runs.shift()?.abort.abort();
    void this.#follow(run, specs);
    this.#log.info({ preheat: run.id, tasks: specs.length }, 'console: preheat started');
    return run.id;
  }

  async #follow(run: Run, specs: readonly TaskSpec[]): Promise<void> {
    try {
      for await (const u of this.#preheater.run(specs, 0, run.abort.signal)) {
        run.tasks.set(u.taskId, { taskId: u.taskId, url: redactUrl(u.url), state: u.state, seedHostId: u.seedHostId, completedBytes: u.completedBytes, contentLength: u.contentLength, error: u.error });
      }
    } catch (err) {
      const e = toShoalError(err);
      for (const [id, t] of run.tasks) if (t.state === 'waiting' || t.state === 'running') run.tasks.set(id, { ...t, state: 'failed', error: { code: e.code, message: e.message } });
    }
    // A task the run ended without an answer for (the scheduler stopping) did not finish.
    for (const [id, t] of run.tasks) if (t.state === 'waiting' || t.state === 'running') run.tasks.set(id, { ...t, state: 'failed', error: { code: 'ABORTED', message: 'the preheat ended before this task did' } });
    run.state = [...run.tasks.values()].every((t) => t.state === 'done') ? 'done' : 'failed';
  }

  /** Newest first; each with at most CONSOLE_PREHEAT_LIMITS.tasksShown tasks. */
  views(): PreheatView[] {
    return [...this.#runs].reverse().map((r) => {
      const tasks = [...r.tasks.values()];
      return { id: r.id, startedAt: r.startedAt, state: r.state, tasks: tasks.slice(0, CONSOLE_PREHEAT_LIMITS.tasksShown), more: Math.max(0, tasks.length - CONSOLE_PREHEAT_LIMITS.tasksShown) };
    });
  }

  /** Stops following every run (the seeds keep fetching what they were asked). */
  stop(): void {
    for (const r of this.#runs) r.abort.abort();
  }
}
