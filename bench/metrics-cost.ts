/**
 * What a daemon's metrics cost: its CPU seconds over a quiet interval beside
 * a daemon without metrics (what the listener and prom-client's default
 * collectors cost when nobody asks), then over as long with /metrics scraped
 * back to back, in the same run. The
 * difference per scrape, times the scrape rate, against the CPU a transfer
 * takes (bench/loopback.ts) is the metrics' share of the CPU. Nothing is
 * counted on the hot paths (src/daemon/metrics.ts reads the daemon's own
 * counters at each scrape), so the scrape is the whole cost.
 *   METRICS_SECONDS (default 10)
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Cluster } from '../test/fixtures/cluster.js';

const seconds = Number(process.env['METRICS_SECONDS'] ?? 10);
const ticks = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

/** User + system CPU seconds of a process, from /proc. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / ticks;
}

const cluster = new Cluster();
try {
  const { url } = await cluster.scheduler();
  const daemon = await cluster.daemon({ scheduler: url, extra: ['--metrics', '0'] });
  const target = /metrics (127\.0\.0\.1:\d+)/.exec(daemon.proc.stderr())?.[1];
  if (target === undefined) throw new Error('the daemon logged no metrics address');
  const plain = await cluster.daemon({ scheduler: url });
  const pid = daemon.proc.child.pid!;
  await new Promise((r) => setTimeout(r, 2000));
  let before = cpuSeconds(pid);
  const plainBefore = cpuSeconds(plain.proc.child.pid!);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const quiet = cpuSeconds(pid) - before;
  const plainQuiet = cpuSeconds(plain.proc.child.pid!) - plainBefore;
  before = cpuSeconds(pid);
  const started = Date.now();
  let scrapes = 0;
  let size = 0;
  while (Date.now() - started < seconds * 1000) {
    size = (await (await fetch(`http://${target}/metrics`)).text()).length;
    scrapes++;
  }
  const scraped = cpuSeconds(pid) - before;
  const perScrape = (scraped - quiet) / scrapes;
  // At Prometheus's default interval (15 s) and at once a second, as a share of one core.
  console.log(
    `metrics: quiet ${quiet.toFixed(2)} CPU s in ${seconds} s (a daemon without metrics ${plainQuiet.toFixed(2)}); ${scrapes} scrapes (${size} B each) ${scraped.toFixed(2)} CPU s; ` +
      `${(perScrape * 1000).toFixed(2)} ms CPU per scrape = ${((perScrape / 15) * 100).toFixed(4)} % of a core at a 15 s interval, ${(perScrape * 100).toFixed(3)} % at 1 s`,
  );
} finally {
  await cluster.close();
}
