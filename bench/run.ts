/**
 * `npm run bench`: the benchmarks of docs/benchmarks.md, one after another.
 *   1. loopback throughput, shoal get vs curl (bench/loopback.ts)
 *   2. the demo swarm with 8 peers (bench/demo.ts)
 */
import { spawnSync } from 'node:child_process';

const steps: Array<{ name: string; script: string; env: Record<string, string> }> = [
  { name: 'loopback throughput, 1 GiB, shoal get vs curl', script: 'bench/loopback.ts', env: { BENCH_MIB: '1024', BENCH_ROUNDS: '3' } },
  { name: 'swarm: seed + 8 peers, 256 MiB', script: 'bench/demo.ts', env: { DEMO_MIB: '256', DEMO_PEERS: '8' } },
];
let failed = false;
for (const step of steps) {
  console.log(`\n== ${step.name}`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', step.script], { stdio: 'inherit', env: { ...process.env, ...step.env } });
  failed ||= r.status !== 0;
}
process.exitCode = failed ? 1 : 0;
