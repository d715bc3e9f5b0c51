/**
 * `npm run sim:sweep`: the simulation (./sim.ts) at N = 100, 300, 1000, 3000
 * and 10,000 peers with the defaults otherwise; writes each run's final
 * line and the plot of ratio (last / T_min) against N, with the p99
 * decision on a second axis, to docs/sim-ratio.svg. `--ns 100,300`: other
 * sizes; `--out FILE`: another file.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DEFAULTS } from './fleet.js';
import { report } from './run.js';
import { runSim, type SimResult } from './sim.js';

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

/** The plot: ratio against N (log scale), the 1.2 goal dashed, p99 decision (ms) on the right axis. */
export function ratioSvg(points: ReadonlyArray<SimResult>): string {
  const W = 720;
  const H = 400;
  const m = { l: 60, r: 70, t: 44, b: 56 };
  const ns = points.map((p) => p.peers);
  const lx = (n: number): number => Math.log10(n);
  const x0 = lx(Math.min(...ns)) - 0.1;
  const x1 = lx(Math.max(...ns)) + 0.1;
  const X = (n: number): number => m.l + ((lx(n) - x0) / (x1 - x0)) * (W - m.l - m.r);
  const rMax = Math.max(1.5, ...points.map((p) => (Number.isFinite(p.ratio) ? p.ratio : 0))) * 1.05;
  const Y = (v: number): number => H - m.b - ((v - 1) / (rMax - 1)) * (H - m.t - m.b);
  const dMax = Math.max(5, ...points.map((p) => p.p99DecisionMs)) * 1.1;
  const YD = (v: number): number => H - m.b - (v / dMax) * (H - m.t - m.b);
  const o: string[] = [];
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  o.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  o.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">${esc('npm run sim: last host done / Kumar–Ross T_min, against N (mixed links)')}</text>`);
  for (let i = 0; i <= 5; i++) {
    const v = 1 + ((rMax - 1) * i) / 5;
    o.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${Y(v)}" y2="${Y(v)}" stroke="#e5e5e5"/>`);
    o.push(`<text x="${m.l - 8}" y="${Y(v) + 4}" text-anchor="end">${v.toFixed(2)}</text>`);
    const d = (dMax * i) / 5;
    o.push(`<text x="${W - m.r + 8}" y="${YD(d) + 4}" fill="#9467bd">${d.toFixed(0)}</text>`);
  }
  for (const n of ns) o.push(`<text x="${X(n)}" y="${H - m.b + 18}" text-anchor="middle">${n}</text>`);
  o.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}" stroke="black"/>`);
  o.push(`<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${H - m.b}" stroke="black"/>`);
  o.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 16}" text-anchor="middle">N peers (log scale)</text>`);
  o.push(`<text transform="translate(18 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">ratio: last / T_min</text>`);
  o.push(`<text transform="translate(${W - 14} ${(m.t + H - m.b) / 2}) rotate(90)" text-anchor="middle" fill="#9467bd">p99 decision, ms</text>`);
  o.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${Y(1.2)}" y2="${Y(1.2)}" stroke="#d62728" stroke-dasharray="6 4"/>`);
  o.push(`<text x="${W - m.r - 4}" y="${Y(1.2) - 6}" text-anchor="end" fill="#d62728">goal 1.2</text>`);
  const line = (pts: Array<[number, number]>, color: string, dash = ''): void => {
    o.push(`<polyline fill="none" stroke="${color}" stroke-width="2"${dash === '' ? '' : ` stroke-dasharray="${dash}"`} points="${pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ')}"/>`);
    for (const [x, y] of pts) o.push(`<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3.5" fill="${color}"/>`);
  };
  line(points.filter((p) => Number.isFinite(p.ratio)).map((p) => [X(p.peers), Y(p.ratio)]), '#2ca02c');
  line(points.map((p) => [X(p.peers), YD(p.p99DecisionMs)]), '#9467bd', '3 3');
  o.push(`<text x="${m.l + 10}" y="${m.t + 4}" fill="#2ca02c">ratio (left)</text>`);
  o.push(`<text x="${m.l + 100}" y="${m.t + 4}" fill="#9467bd">p99 scheduling decision (right)</text>`);
  o.push('</svg>');
  return o.join('\n') + '\n';
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { ns: { type: 'string' }, out: { type: 'string' } } });
  const ns = (values.ns ?? '100,300,1000,3000,10000').split(',').map(Number);
  const results: SimResult[] = [];
  for (const peers of ns) {
    const r = runSim({ ...DEFAULTS, peers });
    results.push(r);
    for (const l of report(r)) console.log(l);
  }
  const out = values.out ?? 'docs/sim-ratio.svg';
  writeFileSync(out, ratioSvg(results));
  console.log(`wrote ${out}`);
}
