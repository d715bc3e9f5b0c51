/** Human-readable `shoal status`: first the one-line answer, then totals and every task. */
import type { DaemonStats } from '../daemon/stats.js';

function mib(n: number): string {
  return `${(n / 1048576).toFixed(1)} MiB`;
}

function percent(part: number, whole: number): string {
  return whole <= 0 ? '0%' : `${Math.round((100 * part) / whole)}%`;
}

/** "last 10 minutes: 120.0 MiB through Shoal, of which 93% from peers, 2% from cache, 5% from the origin; 1 back-to-source event" */
export function recentLine(r: DaemonStats['recent']): string {
  const minutes = Math.round(r.windowMs / 60_000);
  const p2p = r.peers + r.seeds;
  const fallbacks = `${r.backToSource} back-to-source event${r.backToSource === 1 ? '' : 's'}`;
  if (r.bytes === 0) return `last ${minutes} minutes: nothing through Shoal; ${fallbacks}`;
  return (
    `last ${minutes} minutes: ${mib(r.bytes)} through Shoal, of which ${percent(p2p, r.bytes)} from peers, ` +
    `${percent(r.cache, r.bytes)} from cache, ${percent(r.source, r.bytes)} from the origin; ${fallbacks}`
  );
}

export function formatStatus(stats: DaemonStats): string {
  const lines: string[] = [];
  const { scheduler: sched, totals, mirror, proxy } = stats;
  lines.push(recentLine(stats.recent));
  lines.push(`host ${stats.hostId}${stats.seed ? ' (seed)' : ''}`);
  lines.push(`scheduler ${sched.url ?? 'none'} ${sched.connected ? 'connected' : 'not connected'}`);
  lines.push(`bytes: cache ${mib(totals.cache)}, peers ${mib(totals.peers)}, seeds ${mib(totals.seeds)}, origin ${mib(totals.source)}; back-to-source ${totals.backToSource}`);
  if (mirror !== undefined) lines.push(`mirror: ${mirror.requests} requests, ${mirror.blobs} blobs (${mib(mirror.blobBytes)}), ${mirror.denied} denied, ${mirror.errors} errors`);
  if (proxy !== undefined) {
    lines.push(
      `proxy: ${proxy.requests} requests, ${proxy.p2p} through P2P (${mib(proxy.p2pBytes)}), ${proxy.passThrough} passed through (${mib(proxy.passThroughBytes)}), ` +
        `${proxy.tunnels} tunnels, ${proxy.refused} refused, ${proxy.errors} errors`,
    );
  }
  for (const t of stats.tasks) {
    const b = t.bytes;
    const by = t.requesters.length > 0 ? t.requesters.join(',') : '-';
    lines.push(
      `  ${t.taskId.slice(0, 12)} ${t.state.padEnd(8)} ${by.padEnd(7)} ${t.url}\n` +
        `    cache ${mib(b.cache)}, peers ${mib(b.peers)}, seeds ${mib(b.seeds)}, origin ${mib(b.source)}`,
    );
    for (const e of t.backToSource) lines.push(`    back to source at ${e.at}: ${e.reason}`);
  }
  return lines.join('\n') + '\n';
}
