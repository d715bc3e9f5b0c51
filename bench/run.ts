/**
 * `npm run bench`: the benchmarks of docs/benchmarks.md, one after another.
 *   1. loopback throughput, shoal get vs curl (bench/loopback.ts)
 *   2. the demo swarm with 8 peers (bench/demo.ts)
 *   3. image pulls, direct vs through the registry mirror (bench/image.ts)
 */
import { spawnSync } from 'node:child_process';

const steps: Array<{ name: string; script: string; env: Record<string, string> }> = [
  { name: 'loopback throughput, 1 GiB, shoal get vs curl', script: 'bench/loopback.ts', env: { BENCH_MIB: '1024', BENCH_ROUNDS: '3' } },
  { name: 'swarm: seed + 8 peers, 256 MiB', script: 'bench/demo.ts', env: { DEMO_MIB: '256', DEMO_PEERS: '8' } },
  { name: 'image pull: 4 hosts, 500 MiB image, direct vs through the mirror', script: 'bench/image.ts', env: { IMAGE_MIB: '500', IMAGE_HOSTS: '4' } },
];
let failed = false;
for (const step of steps) {
  console.log(`\n== ${step.name}`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', step.script], { stdio: 'inherit', env: { ...process.env, ...step.env } });
  failed ||= r.status !== 0;
}
process.exitCode = failed ? 1 : 0;
