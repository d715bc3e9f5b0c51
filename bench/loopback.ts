/**
 * Loopback throughput: `shoal get` of a file from a seed that already holds
 * it, against `curl` of the same bytes from a plain static server, in the same
 * run; and the same swarm with mutual TLS between the daemons (the cluster's
 * certificates), so TLS's cost is measured against its own baseline; and the
 * plain swarm again with every daemon's metrics listener on and scraped once a
 * second (fifteen times Prometheus's default rate), so the metrics' cost is
 * measured against the same baseline. Prints MB/s and CPU seconds per GB for
 * each, and the ratios.
 *   BENCH_MIB (default 1024), BENCH_ROUNDS (default 3)
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Cluster } from '../test/fixtures/cluster.js';

const MiB = 1024 * 1024;
const size = Number(process.env['BENCH_MIB'] ?? 1024) * MiB;
const rounds = Number(process.env['BENCH_ROUNDS'] ?? 3);
const ticks = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

/** User + system CPU seconds of a process and its reaped children, from /proc. */
function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / ticks;
  } catch {
    return 0;
  }
}

/** Runs a command to completion; returns wall seconds and its own CPU seconds. */
function timed(cmd: string, args: string[]): Promise<{ wall: number; cpu: number; code: number }> {
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    const usageBefore = process.resourceUsage();
    void usageBefore;
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
    let cpu = 0;
    const poll = setInterval(() => (cpu = Math.max(cpu, cpuSeconds(child.pid!))), 20);
    child.on('exit', (code) => {
      clearInterval(poll);
      resolve({ wall: Number(process.hrtime.bigint() - started) / 1e9, cpu, code: code ?? -1 });
    });
  });
}

const plain = new Cluster();
const closing: Cluster[] = [];
const secure = new Cluster();
await secure.secure();
const source = plain.path('source.bin');
{
  const out = createWriteStream(source);
  for (let done = 0; done < size; done += 64 * MiB) out.write(randomBytes(Math.min(64 * MiB, size - done)));
  await new Promise((r) => out.end(r));
}
const expected = createHash('sha256').update(readFileSync(source)).digest('hex');

// The plain static server: node:http with 1 MiB reads (research/ecosystem.md §2.2).
const server = createServer((req, res) => {
  res.writeHead(200, { 'content-length': statSync(source).size, 'content-type': 'application/octet-stream' });
  createReadStream(source, { highWaterMark: MiB }).pipe(res);
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/file.bin`;

type Daemon = Awaited<ReturnType<Cluster['daemon']>>;

/** The daemon's metrics address, from the line it logs at start. */
function metricsOf(daemon: Daemon): string {
  const found = /metrics (127\.0\.0\.1:\d+)/.exec(daemon.proc.stderr());
  if (found === null) throw new Error('the daemon logged no metrics address');
  return found[1]!;
}

/** Scrapes every target's /metrics once a second until stopped; returns the stop function. */
function scrape(targets: string[]): () => Promise<void> {
  let pending: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    pending = Promise.all(targets.map((t) => fetch(`http://${t}/metrics`).then((r) => r.text())));
  }, 1000);
  return async () => {
    clearInterval(timer);
    await pending;
  };
}

/** A scheduler and a seed holding the file, in `cluster` (plain, or with its certificates); with `metrics`, every daemon serves them. */
async function swarm(cluster: Cluster, metrics = false): Promise<{ cluster: Cluster; scheduler: string; seed: Daemon; metrics: boolean }> {
  const { url: scheduler } = await cluster.scheduler();
  const seed = await cluster.daemon({ scheduler, seed: true, ...(metrics ? { extra: ['--metrics', '0'] } : {}) });
  const warm = cluster.get(url, cluster.path('seed-copy'), ['-e', seed.api]);
  if ((await warm.exited) !== 0) throw new Error(`seed could not fetch: ${warm.stderr()}`);
  return { cluster, scheduler, seed, metrics };
}

/** One `shoal get` through a fresh peer of `s`: MB/s, and CPU seconds per GB of the get, the peer and the seed. */
async function shoalRound(s: Awaited<ReturnType<typeof swarm>>, round: number, check: boolean): Promise<{ mbps: number; cpuPerGB: number }> {
  const peer = await s.cluster.daemon({ scheduler: s.scheduler, ...(s.metrics ? { extra: ['--metrics', '0'] } : {}) });
  const stop = s.metrics ? scrape([metricsOf(s.seed), metricsOf(peer)]) : async () => undefined;
  const seedCpu0 = cpuSeconds(s.seed.proc.child.pid!);
  const peerCpu0 = cpuSeconds(peer.proc.child.pid!);
  const out = s.cluster.path(`shoal-${round}`);
  const g = await timed(process.execPath, [new URL('../bin/shoal.mjs', import.meta.url).pathname, 'get', url, '-O', out, '-q', '-e', peer.api]);
  await stop();
  const daemonsCpu = cpuSeconds(s.seed.proc.child.pid!) - seedCpu0 + cpuSeconds(peer.proc.child.pid!) - peerCpu0;
  if (g.code !== 0) throw new Error('shoal get failed');
  if (check && createHash('sha256').update(readFileSync(out)).digest('hex') !== expected) throw new Error('shoal output differs');
  await peer.proc.kill('SIGTERM');
  rmSync(out);
  rmSync(peer.data, { recursive: true, force: true });
  return { mbps: size / 1e6 / g.wall, cpuPerGB: (g.cpu + daemonsCpu) / (size / 1e9) };
}

try {
  const metered = new Cluster();
  closing.push(metered);
  const swarms = { shoal: await swarm(plain), 'shoal+tls': await swarm(secure), 'shoal+metrics': await swarm(metered, true) };
  const results: Array<{ kind: string; mbps: number; cpuPerGB: number }> = [];
  for (let round = 0; round < rounds; round++) {
    const curlOut = plain.path(`curl-${round}`);
    const serverCpu0 = process.cpuUsage();
    const c = await timed('curl', ['-s', '-o', curlOut, url]);
    const serverCpu = (process.cpuUsage(serverCpu0).user + process.cpuUsage(serverCpu0).system) / 1e6;
    results.push({ kind: 'curl', mbps: size / 1e6 / c.wall, cpuPerGB: (c.cpu + serverCpu) / (size / 1e9) });
    rmSync(curlOut);
    // Each round in another order, so no swarm always runs first (a warm or a busy machine).
    const order = Object.entries(swarms);
    for (let k = 0; k < round % order.length; k++) order.push(order.shift()!);
    for (const [kind, s] of order) results.push({ kind, ...(await shoalRound(s, round, round === 0)) });
  }
  const median = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const summary = (kind: string): { mbps: number; cpu: number } => ({
    mbps: median(results.filter((r) => r.kind === kind).map((r) => r.mbps)),
    cpu: median(results.filter((r) => r.kind === kind).map((r) => r.cpuPerGB)),
  });
  const curl = summary('curl');
  const shoal = summary('shoal');
  const tls = summary('shoal+tls');
  const metrics = summary('shoal+metrics');
  for (const r of results) console.log(`${r.kind.padEnd(13)} ${r.mbps.toFixed(0).padStart(6)} MB/s  ${r.cpuPerGB.toFixed(2)} CPU s/GB`);
  console.log(
    `median of ${rounds}, ${size / MiB} MiB: curl ${curl.mbps.toFixed(0)} MB/s (${curl.cpu.toFixed(2)} CPU s/GB, client+server); ` +
      `shoal ${shoal.mbps.toFixed(0)} MB/s (${shoal.cpu.toFixed(2)} CPU s/GB, get+peer+seed); shoal+tls ${tls.mbps.toFixed(0)} MB/s (${tls.cpu.toFixed(2)} CPU s/GB); ` +
      `ratio shoal/curl = ${(shoal.mbps / curl.mbps).toFixed(2)}, tls/plain = ${(tls.mbps / shoal.mbps).toFixed(2)} (CPU ${(tls.cpu / shoal.cpu).toFixed(2)}); ` +
      `shoal+metrics ${metrics.mbps.toFixed(0)} MB/s (${metrics.cpu.toFixed(2)} CPU s/GB): metrics CPU cost ${((metrics.cpu / shoal.cpu - 1) * 100).toFixed(1)} %`,
  );
} finally {
  server.close();
  await plain.close();
  await secure.close();
  for (const c of closing) await c.close();
}
