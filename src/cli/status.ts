/** Human-readable `shoal status`. */
function mib(n: unknown): string {
  return `${(Number(n ?? 0) / 1048576).toFixed(1)} MiB`;
}

export function formatStatus(stats: Record<string, unknown>): string {
  const lines: string[] = [];
  const sched = stats['scheduler'] as { url?: string; connected?: boolean } | undefined;
  const totals = (stats['totals'] ?? {}) as Record<string, number>;
  lines.push(`host ${String(stats['hostId'])}${stats['seed'] === true ? ' (seed)' : ''}`);
  lines.push(`scheduler ${sched?.url ?? 'none'} ${sched?.connected === true ? 'connected' : 'not connected'}`);
  lines.push(`bytes: cache ${mib(totals['cache'])}, peers ${mib(totals['peers'])}, seeds ${mib(totals['seeds'])}, origin ${mib(totals['source'])}; back-to-source ${totals['backToSource'] ?? 0}`);
  for (const t of (stats['tasks'] ?? []) as Array<Record<string, unknown>>) {
    const b = (t['bytes'] ?? {}) as Record<string, number>;
    lines.push(
      `  ${String(t['taskId']).slice(0, 12)} ${String(t['state']).padEnd(8)} ${String(t['url'])}\n` +
        `    cache ${mib(b['cache'])}, peers ${mib(b['peers'])}, seeds ${mib(b['seeds'])}, origin ${mib(b['source'])}`,
    );
    for (const e of (t['backToSource'] ?? []) as Array<{ at: string; reason: string }>) lines.push(`    back to source at ${e.at}: ${e.reason}`);
  }
  return lines.join('\n') + '\n';
}
