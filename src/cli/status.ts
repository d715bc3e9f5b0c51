/** Human-readable `shoal status`: first the one-line answer, then totals and every task. */
function mib(n: unknown): string {
  return `${(Number(n ?? 0) / 1048576).toFixed(1)} MiB`;
}

function percent(part: number, whole: number): string {
  return whole <= 0 ? '0%' : `${Math.round((100 * part) / whole)}%`;
}

/** "last 10 minutes: 120.0 MiB through Shoal, of which 93% from peers, 2% from cache, 5% from the origin; 1 back-to-source event" */
export function recentLine(recent: Record<string, number> | undefined): string {
  const r = recent ?? {};
  const minutes = Math.round(Number(r['windowMs'] ?? 600_000) / 60_000);
  const bytes = Number(r['bytes'] ?? 0);
  const p2p = Number(r['peers'] ?? 0) + Number(r['seeds'] ?? 0);
  const events = Number(r['backToSource'] ?? 0);
  const fallbacks = `${events} back-to-source event${events === 1 ? '' : 's'}`;
  if (bytes === 0) return `last ${minutes} minutes: nothing through Shoal; ${fallbacks}`;
  return (
    `last ${minutes} minutes: ${mib(bytes)} through Shoal, of which ${percent(p2p, bytes)} from peers, ` +
    `${percent(Number(r['cache'] ?? 0), bytes)} from cache, ${percent(Number(r['source'] ?? 0), bytes)} from the origin; ${fallbacks}`
  );
}

export function formatStatus(stats: Record<string, unknown>): string {
  const lines: string[] = [];
  const sched = stats['scheduler'] as { url?: string; connected?: boolean } | undefined;
  const totals = (stats['totals'] ?? {}) as Record<string, number>;
  lines.push(recentLine(stats['recent'] as Record<string, number> | undefined));
  lines.push(`host ${String(stats['hostId'])}${stats['seed'] === true ? ' (seed)' : ''}`);
  lines.push(`scheduler ${sched?.url ?? 'none'} ${sched?.connected === true ? 'connected' : 'not connected'}`);
  lines.push(`bytes: cache ${mib(totals['cache'])}, peers ${mib(totals['peers'])}, seeds ${mib(totals['seeds'])}, origin ${mib(totals['source'])}; back-to-source ${totals['backToSource'] ?? 0}`);
  const mirror = stats['mirror'] as Record<string, number> | undefined;
  if (mirror !== undefined) lines.push(`mirror: ${mirror['requests'] ?? 0} requests, ${mirror['blobs'] ?? 0} blobs (${mib(mirror['blobBytes'])}), ${mirror['denied'] ?? 0} denied, ${mirror['errors'] ?? 0} errors`);
  const proxy = stats['proxy'] as Record<string, number> | undefined;
  if (proxy !== undefined) {
    lines.push(
      `proxy: ${proxy['requests'] ?? 0} requests, ${proxy['p2p'] ?? 0} through P2P (${mib(proxy['p2pBytes'])}), ${proxy['passThrough'] ?? 0} passed through (${mib(proxy['passThroughBytes'])}), ` +
        `${proxy['tunnels'] ?? 0} tunnels, ${proxy['refused'] ?? 0} refused, ${proxy['errors'] ?? 0} errors`,
    );
  }
  for (const t of (stats['tasks'] ?? []) as Array<Record<string, unknown>>) {
    const b = (t['bytes'] ?? {}) as Record<string, number>;
    const by = Array.isArray(t['requesters']) && t['requesters'].length > 0 ? (t['requesters'] as string[]).join(',') : '-';
    lines.push(
      `  ${String(t['taskId']).slice(0, 12)} ${String(t['state']).padEnd(8)} ${by.padEnd(7)} ${String(t['url'])}\n` +
        `    cache ${mib(b['cache'])}, peers ${mib(b['peers'])}, seeds ${mib(b['seeds'])}, origin ${mib(b['source'])}`,
    );
    for (const e of (t['backToSource'] ?? []) as Array<{ at: string; reason: string }>) lines.push(`    back to source at ${e.at}: ${e.reason}`);
  }
  return lines.join('\n') + '\n';
}
