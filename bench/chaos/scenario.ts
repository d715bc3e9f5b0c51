/**
 * A scenario: one kind of fault played on the swarm, bounded in time. Its
 * context records each fault it injected with whether the fault was seen to
 * land (only those count), what it expected and did not get (findings), and
 * every download (./ledger.ts).
 */
import { setMaxListeners } from 'node:events';
import { createSchedulerClient } from '../../src/daemon/scheduler-link.js';
import { loadTls } from '../../src/identity/tls.js';
import { join } from 'node:path';
import type { Sizes } from './options.js';
import type { Usage } from './procs.js';
import { Ledger, type Outcome } from './ledger.js';
import type { Rng } from './rng.js';
import type { Swarm } from './swarm.js';

export interface Scenario {
  readonly name: string;
  /** The fault, in a few words, for the table. */
  readonly fault: string;
  /** Runs the same downloads as the no-fault run: its time is compared with that run's. */
  readonly comparable?: boolean;
  /** Sets up what the scenario watches (a daemon of its own); not timed, before the first sample. */
  prepare?(ctx: Context): Promise<void>;
  run(ctx: Context): Promise<void>;
  /** Ends what prepare() started; after the last sample. */
  cleanup?(ctx: Context): Promise<void>;
}

export interface FaultRecord {
  readonly kind: string;
  readonly landed: boolean;
  readonly detail: string;
}

export class Context {
  readonly faults: FaultRecord[] = [];
  readonly findings: string[] = [];
  readonly notes: string[] = [];
  readonly ledger: Ledger;
  /** The origin paths the scenario downloads (for origin copies). */
  readonly paths = new Set<string>();
  /** The processes whose RSS and fds the table shows (default: the swarm's). */
  watch: () => Usage;
  readonly #abort: AbortController;

  constructor(
    readonly name: string,
    readonly swarm: Swarm,
    readonly rng: Rng,
    readonly sizes: Sizes,
    abort: AbortController,
  ) {
    this.#abort = abort;
    this.ledger = new Ledger(swarm.origin, join(swarm.cluster.dir, `out-${name}`), sizes.downloadMs, abort.signal);
    this.ledger.schedulerView = (taskId) => schedulerView(swarm, taskId);
    this.watch = () => swarm.usage();
  }

  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** Records a fault; it counts only when `landed` (the scenario checked it took effect). */
  fault(kind: string, landed: boolean, detail: string, options: { quiet?: boolean } = {}): boolean {
    this.faults.push({ kind, landed, detail });
    if (!landed && options.quiet !== true) this.notes.push(`fault did not land: ${kind} (${detail})`);
    return landed;
  }

  /** A promise of Shoal's that did not hold: a finding. */
  expect(ok: boolean, what: string): boolean {
    if (!ok) this.findings.push(what);
    return ok;
  }

  /** Puts fresh content at `path` on the origin. */
  serve(path: string, content: Buffer): string {
    this.paths.add(path);
    this.swarm.origin.put(path, content);
    return path;
  }

  /** Outcomes of these downloads that are not `completed`, as "node: outcome detail". */
  notCompleted(records: ReadonlyArray<{ node: string; outcome: Outcome; detail: string }>): string[] {
    return records.filter((r) => r.outcome !== 'completed').map((r) => `${r.node}: ${r.outcome} ${r.detail}`);
  }
}

export interface ScenarioResult {
  readonly name: string;
  readonly fault: string;
  readonly attempted: number;
  readonly completed: number;
  readonly failed: number;
  readonly corrupt: number;
  readonly partial: number;
  readonly lost: number;
  readonly leftovers: number;
  readonly faultsLanded: number;
  readonly faultsMissed: number;
  /** Bytes the origin served for the scenario's paths, over their size (undefined: none). */
  readonly originCopies: number | undefined;
  readonly ms: number;
  readonly comparable: boolean;
  readonly before: Usage;
  readonly after: Usage;
  readonly findings: readonly string[];
  readonly notes: readonly string[];
  /** Reproducer lines for what went wrong. */
  readonly problems: readonly string[];
}

/** The scheduler's Stat of one task (over the admin certificate): each peer's host, state, pieces and parents. */
async function schedulerView(swarm: Swarm, taskId: string): Promise<string> {
  const admin = createSchedulerClient(swarm.scheduler.url, loadTls({ ca: join(swarm.tlsDir, 'ca.crt'), cert: join(swarm.tlsDir, 'admin.crt'), key: join(swarm.tlsDir, 'admin.key') }, ['admin']));
  const stat = await admin.stat({}, { timeoutMs: 5_000 });
  const task = stat.tasks.find((t) => t.taskId === taskId);
  if (task === undefined) return `the scheduler does not know task ${taskId}`;
  const peers = task.peers.map((p) => `${p.hostId} ${p.peerId} ${p.state} pieces ${p.pieces} parents [${p.parents.join(', ')}]`);
  return [`back to source: ${task.backToSourceCount}`, ...peers].join('\n');
}

/** Runs one scenario within the suite's bound; a scenario that throws is a finding, not the end of the suite. */
export async function runScenario(scenario: Scenario, swarm: Swarm, rng: Rng, sizes: Sizes): Promise<ScenarioResult> {
  const abort = new AbortController();
  // Every download and poll of the scenario listens to its end: as many as run at once (1,000 in the API flood).
  setMaxListeners(0, abort.signal);
  const ctx = new Context(scenario.name, swarm, rng.fork(scenario.name), sizes, abort);
  try {
    await scenario.prepare?.(ctx);
  } catch (err) {
    ctx.findings.push(`the scenario's setup failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
  const before = ctx.watch();
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), sizes.scenarioMs)));
  const running = scenario.run(ctx).then(
    () => 'done' as const,
    (err: unknown) => {
      ctx.findings.push(`the scenario failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      return 'done' as const;
    },
  );
  const how = await Promise.race([running, timedOut]);
  clearTimeout(timer);
  const ms = performance.now() - started;
  if (how === 'timeout') {
    abort.abort();
    ctx.findings.push(`the scenario did not end within ${sizes.scenarioMs} ms`);
    await Promise.race([running, new Promise((r) => setTimeout(r, 15_000))]);
  }
  const after = ctx.watch();
  await scenario.cleanup?.(ctx).catch((err: unknown) => ctx.notes.push(`cleanup failed: ${String(err)}`));
  const { ledger } = ctx;
  const problems = ledger.records.filter((r) => r.outcome !== 'completed' && r.outcome !== 'failed').map((r) => `#${r.n} ${r.via} ${r.path} on ${r.node}: ${r.outcome}: ${r.detail}`);
  const leftovers = ledger.leftovers();
  for (const path of leftovers) ctx.notes.push(`left behind: ${path}`);
  const landed = ctx.faults.filter((f) => f.landed).length;
  if (ctx.faults.length > 0 && landed === 0) ctx.findings.push('no fault landed: the scenario proves nothing');
  return {
    name: scenario.name,
    fault: scenario.fault,
    attempted: ledger.records.length,
    completed: ledger.count('completed'),
    failed: ledger.count('failed'),
    corrupt: ledger.count('corrupt'),
    partial: ledger.count('partial'),
    lost: ledger.count('lost'),
    leftovers: leftovers.length,
    faultsLanded: landed,
    faultsMissed: ctx.faults.length - landed,
    originCopies: originCopies(ctx),
    ms,
    comparable: scenario.comparable === true,
    before,
    after,
    findings: ctx.findings,
    notes: ctx.notes,
    problems,
  };
}

function originCopies(ctx: Context): number | undefined {
  let served = 0;
  let size = 0;
  for (const path of ctx.paths) {
    served += ctx.swarm.origin.server.bytesServed(path);
    size += ctx.swarm.origin.files.get(path)?.length ?? 0;
  }
  return size === 0 ? undefined : served / size;
}
