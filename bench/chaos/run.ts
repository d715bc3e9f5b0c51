/**
 * `npm run chaos [-- --quick] [-- --seed N] [-- --only a,b]`: a swarm of real
 * processes (a scheduler, a seed, peers, a fault-injecting origin; mutual TLS
 * as in production) runs the scenarios one after another, each bounded in
 * time, and prints a table per scenario and one summary line:
 *   chaos: S scenarios, F faults injected, D downloads, C corrupt, P partial, L lost
 * It exits 1 when C, P or L is not 0, when a scenario's faults never landed,
 * or when a promise a scenario checks did not hold (a finding). docs/reliability.md.
 */
import { parseOptions } from './options.js';
import { details, summaryLine, table, totals } from './report.js';
import { Rng } from './rng.js';
import { runScenario, type Scenario, type ScenarioResult } from './scenario.js';
import { apiFlood } from './scenarios/api-flood.js';
import { diskFull } from './scenarios/disk-full.js';
import { malformed } from './scenarios/malformed.js';
import { lyingPeer } from './scenarios/liar.js';
import { contentChange, originFaults } from './scenarios/origin.js';
import { soak } from './scenarios/soak.js';
import { noFaults, peersKilled, schedulerRestart, seedKilled } from './scenarios/swarm.js';
import { Swarm } from './swarm.js';

const SCENARIOS: readonly Scenario[] = [noFaults, peersKilled, seedKilled, schedulerRestart, contentChange, originFaults, lyingPeer, diskFull, apiFlood, malformed, soak];

const options = parseOptions(process.argv.slice(2));
const { sizes } = options;
const chosen = options.only.length === 0 ? SCENARIOS : SCENARIOS.filter((s) => s.name === 'no-faults' || options.only.some((o) => s.name.includes(o)));
const say = (line: string): void => void process.stderr.write(`${line}\n`);
say(`chaos: seed ${options.seed}${options.quick ? ' (quick)' : ''}: ${sizes.peers} peers, files of ${sizes.fileBytes / 1048576} MiB, ${chosen.length} scenarios; replay: npm run chaos -- ${options.quick ? '--quick ' : ''}--seed ${options.seed}`);

const started = performance.now();
const rng = new Rng(options.seed);
const swarm = new Swarm(sizes);
const results: ScenarioResult[] = [];
let code = 0;
try {
  await swarm.start();
  for (const scenario of chosen) {
    say(`chaos: ${scenario.name}: ${scenario.fault}`);
    const result = await runScenario(scenario, swarm, rng, sizes);
    const dead = await swarm.heal();
    const findings = dead.length === 0 ? result.findings : [...result.findings, `died during the scenario and was restarted after it: ${dead.join(', ')}`];
    results.push({ ...result, findings });
    say(`chaos: ${scenario.name}: ${result.completed}/${result.attempted} completed, ${result.failed} failed clearly, ${result.corrupt} corrupt, ${result.partial} partial, ${result.lost} lost, ${result.faultsLanded} faults, ${findings.length} findings, ${(result.ms / 1000).toFixed(1)} s`);
  }
} catch (err) {
  say(`chaos: the swarm failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  code = 1;
} finally {
  await swarm.close();
}

const t = totals(results);
const findings = results.reduce((n, r) => n + r.findings.length, 0);
process.stdout.write(`\n${table(results)}\n\n`);
const more = details(results);
if (more !== '') process.stdout.write(`${more}\n\n`);
process.stdout.write(`seed ${options.seed}${options.quick ? ', --quick' : ''}, ${((performance.now() - started) / 1000).toFixed(0)} s, ${findings} findings\n`);
process.stdout.write(`${summaryLine(t)}\n`);
if (t.corrupt + t.partial + t.lost > 0 || findings > 0) code = 1;
process.exit(code);
