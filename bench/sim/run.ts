/**
 * `npm run sim`: the scheduler at fleet scale, simulated (./sim.ts). Prints
 * the run's figures, then one line exactly of this form:
 *
 *   sim: N peers, last X s, median Y s, T_min Z s, ratio R, origin C copies, p99 decision D ms
 *
 * Options: --peers N (10000), --quick (500 peers), --schedulers S (3),
 * --tasks T (1), --mix 0.6:10G,0.3:1G,0.1:1G/100M, --size BYTES,
 * --piece BYTES, --late SHARE, --leave SHARE, --kill-at FRACTION (of
 * T_min: the first task's scheduler dies), --measured (no host announces
 * its rate), --seed N, --tick MS.
 */
import { parseArgs } from 'node:util';
import { DEFAULTS, parseMix, type SimOptions } from './fleet.js';
import { runSim, type SimResult } from './sim.js';

export function simOptions(argv: readonly string[]): SimOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      peers: { type: 'string' },
      quick: { type: 'boolean' },
      schedulers: { type: 'string' },
      tasks: { type: 'string' },
      mix: { type: 'string' },
      size: { type: 'string' },
      piece: { type: 'string' },
      late: { type: 'string' },
      leave: { type: 'string' },
      'kill-at': { type: 'string' },
      measured: { type: 'boolean' },
      seed: { type: 'string' },
      tick: { type: 'string' },
    },
    strict: true,
  });
  const num = (v: string | undefined, fallback: number): number => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new RangeError(`not a number: ${v}`);
    return n;
  };
  return {
    ...DEFAULTS,
    peers: Math.max(1, Math.floor(num(values.peers, values.quick === true ? 500 : DEFAULTS.peers))),
    schedulers: Math.max(1, Math.floor(num(values.schedulers, DEFAULTS.schedulers))),
    tasks: Math.max(1, Math.floor(num(values.tasks, DEFAULTS.tasks))),
    mix: values.mix === undefined ? DEFAULTS.mix : parseMix(values.mix),
    size: num(values.size, DEFAULTS.size),
    pieceSize: num(values.piece, DEFAULTS.pieceSize),
    lateShare: num(values.late, DEFAULTS.lateShare),
    leaveShare: num(values.leave, DEFAULTS.leaveShare),
    killAt: values['kill-at'] === undefined ? undefined : num(values['kill-at'], 0),
    announce: values.measured !== true,
    seed: num(values.seed, DEFAULTS.seed),
    tickMs: Math.max(1, num(values.tick, DEFAULTS.tickMs)),
  };
}

const f = (n: number, digits = 1): string => (Number.isFinite(n) ? n.toFixed(digits) : 'never');

/** The run's figures, then the final line. */
export function report(r: SimResult): string[] {
  return [
    `completed ${r.completed} of ${r.completed + r.incomplete} (departed mid-download not counted); p99 completion ${f(r.p99)} s; simulated ${f(r.simulated)} s`,
    `scheduler: ${r.decisions} decisions, p99 ${f(r.p99DecisionMs, 3)} ms, max ${f(r.maxDecisionMs, 1)} ms; ${f(r.schedulerSeconds)} s of scheduler time; ${r.sentToSource} sent to the origin; wall ${f(r.wallSeconds)} s; decisions ${r.decisionHash}`,
    `sim: ${r.peers} peers, last ${f(r.last)} s, median ${f(r.median)} s, T_min ${f(r.tMin)} s, ratio ${f(r.ratio, 2)}, origin ${f(r.originCopies, 3)} copies, p99 decision ${f(r.p99DecisionMs, 2)} ms`,
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const options = simOptions(process.argv.slice(2));
  for (const line of report(runSim(options))) console.log(line);
}
