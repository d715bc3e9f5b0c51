/** The chaos suite's output: a table row per scenario, what went wrong, and the one summary line. */
import type { ScenarioResult } from './scenario.js';

const MB = 1024 * 1024;

export interface Totals {
  scenarios: number;
  faults: number;
  downloads: number;
  corrupt: number;
  partial: number;
  lost: number;
}

export function totals(results: readonly ScenarioResult[]): Totals {
  const sum = (f: (r: ScenarioResult) => number): number => results.reduce((n, r) => n + f(r), 0);
  return {
    scenarios: results.length,
    faults: sum((r) => r.faultsLanded),
    downloads: sum((r) => r.attempted),
    corrupt: sum((r) => r.corrupt),
    partial: sum((r) => r.partial),
    lost: sum((r) => r.lost),
  };
}

/** Exactly the form. */
export function summaryLine(t: Totals): string {
  return `chaos: ${t.scenarios} scenarios, ${t.faults} faults injected, ${t.downloads} downloads, ${t.corrupt} corrupt, ${t.partial} partial, ${t.lost} lost`;
}

const HEADER = ['scenario', 'faults', 'attempted', 'completed', 'failed (clear)', 'corrupt', 'partial', 'lost', 'temp left', 'origin copies', 'time', 'vs no-fault', 'RSS MB before → after', 'fds before → after'];

/** A Markdown table (it reads in a terminal and goes into docs/reliability.md as it is). */
export function table(results: readonly ScenarioResult[]): string {
  const baseline = results.find((r) => r.name === 'no-faults');
  const rows = results.map((r) => [
    r.name,
    r.faultsMissed > 0 ? `${r.faultsLanded} (+${r.faultsMissed} missed)` : String(r.faultsLanded),
    String(r.attempted),
    String(r.completed),
    String(r.failed),
    String(r.corrupt),
    String(r.partial),
    String(r.lost),
    String(r.leftovers),
    r.originCopies === undefined ? '—' : r.originCopies.toFixed(2),
    `${(r.ms / 1000).toFixed(1)} s`,
    r.comparable && baseline !== undefined && r !== baseline ? `×${(r.ms / baseline.ms).toFixed(2)}` : '—',
    `${Math.round(r.before.rss / MB)} → ${Math.round(r.after.rss / MB)}`,
    `${r.before.fds} → ${r.after.fds}`,
  ]);
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(HEADER), line(HEADER.map(() => '---')), ...rows.map(line)].join('\n');
}

/** What each scenario injected, found and noted, for the reader of a failed run. */
export function details(results: readonly ScenarioResult[]): string {
  const out: string[] = [];
  for (const r of results) {
    if (r.findings.length + r.problems.length + r.notes.length === 0) continue;
    out.push(`${r.name} (${r.fault}):`);
    for (const f of r.findings) out.push(`  FINDING ${f}`);
    for (const p of r.problems.slice(0, 20)) out.push(`  DOWNLOAD ${p}`);
    if (r.problems.length > 20) out.push(`  … ${r.problems.length - 20} more`);
    for (const n of r.notes.slice(0, 10)) out.push(`  note: ${n}`);
    if (r.notes.length > 10) out.push(`  … ${r.notes.length - 10} more notes`);
  }
  return out.join('\n');
}
