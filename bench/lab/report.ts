/** Tables and the sweep chart for lab results. */
import type { PointResult } from './lab.js';
import type { ScenarioResult } from './scenarios.js';

const f = (x: number | null | undefined, d = 1): string => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(d));
const MB = (n: number): string => `${(n / 1e6).toFixed(n % 1e6 === 0 ? 0 : 1)} MB`;

export function describePoint(p: PointResult): string {
  const c = p.config;
  const slow = c.slowPeers > 0 ? `, ${c.slowPeers} slow peer(s) at ${c.slowRate}` : '';
  const image = p.image === undefined ? '' : ` = image ${p.image.ref}: config + ${p.image.blobs.length - 1} layers of ${p.image.blobs.slice(1).map((b) => MB(b.size)).join(', ')}`;
  const fs = c.fileSystem === undefined ? '' : `; data and outputs on ${c.fileSystem}`;
  return `N = ${c.peers}, F = ${MB(c.sizeBytes)} (${c.sizeBytes} B${image}), peers ${c.peerRate} up/down${slow}, origin ${c.originUp} up / ${c.originDown} down${fs}`;
}

export function boundLines(p: PointResult): string[] {
  return [
    `T_min = max(F/u_s, F/d_min, N·F/(u_s+Σu_i)) = ${f(p.bound.raw, 2)} s from the set rates (${p.bound.term}); ` +
      `${f(p.bound.adjusted, 2)} s at tbf's TCP goodput (${(p.tbfGoodput * 100).toFixed(1)} % of the rate): ratios below use ${f(p.bound.adjusted, 2)} s`,
    `client–server bound max(N·F/u_s, F/d_min) at goodput: ${f(p.bound.clientServerAdjusted, 2)} s; each scenario bounded at ${p.timeoutS} s`,
    p.netem ? 'netem: available (not used)' : 'netem: unavailable in this kernel: no added delay (RTT ≈ 0.1 ms)',
  ];
}

/**
 * Machine CPU-seconds during the scenario (user + system + steal, every
 * process and the kernel's packet work) per GB delivered to peers (verified
 * outputs × file size); undefined when nothing was delivered.
 */
export function cpuPerGB(r: ScenarioResult, p: PointResult): number | undefined {
  const delivered = (r.verified * p.config.sizeBytes) / 1e9;
  return delivered > 0 ? r.cpu.busyS / delivered : undefined;
}

/** first / median / mean / p90 / last host, seconds. */
function spread(r: ScenarioResult | undefined): string {
  if (r === undefined) return 'n/a';
  const last = r.ok ? f(r.lastS, 1) : r.timedOut ? 'TIMEOUT' : 'FAILED';
  return `${f(r.firstS, 1)} / ${f(r.medianS, 1)} / ${f(r.meanS, 1)} / ${f(r.p90S, 1)} / ${last}`;
}

function ratio(r: ScenarioResult, p: PointResult): string {
  return r.lastS === null ? '–' : (r.lastS / p.bound.adjusted).toFixed(2);
}

export function pointTable(p: PointResult): string {
  return resultTable(p, 'outputs OK');
}

/** The image benchmark's table: times, registry egress (its access log) and the origin link, CPU. */
export function imageTable(p: PointResult): string {
  return resultTable(p, 'pulls verified', {
    header: 'registry egress copies',
    cell: (r) => f(((r.details?.['registry'] ?? {}) as { copies?: number }).copies, 3),
  });
}

/** One row per scenario; `extra` adds a column before the origin link's. */
function resultTable(p: PointResult, verifiedHeader: string, extra?: { header: string; cell: (r: ScenarioResult) => string }): string {
  const cols = ['scenario', 'first / median / mean / p90 / last s', 'ratio to T_min', ...(extra === undefined ? [] : [extra.header]), 'origin link copies', 'CPU s per GB delivered', 'CPU user s', 'CPU sys s', 'CPU mean / peak %', 's at ≥95 %', 'lab procs CPU s (user+sys)', "others' user s", verifiedHeader];
  const rows = [`| ${cols.join(' | ')} |`, `|${'---|'.repeat(cols.length)}`];
  for (const r of p.results) {
    const times = r.ok || !r.timedOut ? spread(r) : `${spread(r)} (>${p.timeoutS})`;
    const cells = [r.scenario, times, ratio(r, p), ...(extra === undefined ? [] : [extra.cell(r)]), f(r.originCopies, 3), f(cpuPerGB(r, p), 1), f(r.cpu.userS, 1), f(r.cpu.systemS, 1), `${f(r.cpu.meanPct, 0)} / ${f(r.cpu.peakPct, 0)}`, String(r.cpu.saturatedS), `${f(r.cpu.labUserS, 1)}+${f(r.cpu.labSystemS, 1)}`, f(r.cpu.foreignUserS, 1), `${r.verified}/${r.hosts.length}`];
    rows.push(`| ${cells.join(' | ')} |`);
  }
  return rows.join('\n');
}

/** What the registry sent in an image scenario and, through Shoal, where each peer's bytes came from and when each layer finished. */
export function imageLines(r: ScenarioResult, imageBytes: number): string[] {
  const d = (r.details ?? {}) as {
    registry?: { bodyBytes: number; blobGets: number; byClient: Record<string, number>; byAgent: Record<string, number>; requests: Record<string, number> };
    seed?: { uploadsMiB?: number; fromOriginMiB?: number; tasks?: Array<{ blob: string; durationS: number }> };
    originTcp?: { outSegs: number; retransSegs: number; origDataSegs: number; retransPct: number };
    schedulerWroteBytes?: number | null;
    peers?: Array<{ host: string; fromSeedsMiB: number; fromPeersMiB: number; fromOriginMiB: number; uploadsMiB: number; parentsMiB: Record<string, number>; layers: Record<string, { startS?: number; firstBytesS?: number; doneS?: number }>; failed: unknown[]; backToSource: unknown[] }>;
    logs?: Record<string, string>;
  };
  const lines: string[] = [];
  const copies = (n: number): string => `${(n / imageBytes).toFixed(3)} copies`;
  if (d.registry !== undefined) {
    const reg = d.registry;
    lines.push(`  registry sent ${reg.bodyBytes} B of bodies = ${copies(reg.bodyBytes)} (${reg.blobGets} blob GETs); by client: ${Object.entries(reg.byClient).map(([ip, n]) => `${ip} ${copies(n)}`).join(', ')}`);
    lines.push(`  registry by User-Agent: ${Object.entries(reg.byAgent).map(([a, n]) => `${a} ${copies(n)}`).join(', ')}; requests: ${Object.entries(reg.requests).map(([k, n]) => `${k} ×${n}`).join(', ')}`);
    const fallback = Object.entries(reg.byAgent).filter(([a, n]) => r.scenario === 'image-shoal' && !a.startsWith('shoal') && n > 1_000_000);
    if (fallback.length > 0) lines.push(`  WARNING: clients other than Shoal took ${fallback.map(([a, n]) => `${a} ${copies(n)}`).join(', ')} from the registry (skopeo fell back from the mirror)`);
  }
  if (d.originTcp !== undefined) {
    const t = d.originTcp;
    lines.push(
      `  origin host TCP: ${t.outSegs} segments sent, ${t.origDataSegs} of new data, ${t.retransSegs} retransmitted (${t.retransPct} %, ≈ ${copies(t.retransSegs * 1448)} at 1448 B)` +
        (typeof d.schedulerWroteBytes === 'number' ? `; the scheduler wrote ${(d.schedulerWroteBytes / 1e6).toFixed(1)} MB = ${copies(d.schedulerWroteBytes)} (its streams to the peers)` : ''),
    );
  }
  if (d.seed !== undefined) lines.push(`  seed: from the registry ${String(d.seed.fromOriginMiB)} MiB, uploaded ${String(d.seed.uploadsMiB)} MiB; tasks ${(d.seed.tasks ?? []).map((t) => `${t.blob} ${t.durationS} s`).join(', ')}`);
  for (const p of d.peers ?? []) {
    const host = r.hosts.find((h) => h.host === p.host);
    const parents = Object.entries(p.parentsMiB).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ');
    const layers = Object.entries(p.layers)
      .sort((a, b) => (a[1].startS ?? 0) - (b[1].startS ?? 0))
      .map(([name, l]) => `${name} ${f(l.startS, 1)}→${f(l.doneS, 1)}`)
      .join(', ');
    lines.push(
      `  ${p.host}: ${f(host?.s, 1)} s; MiB from seed ${p.fromSeedsMiB}, peers ${p.fromPeersMiB}, registry ${p.fromOriginMiB}; uploaded ${p.uploadsMiB}; parents (MiB) ${parents}; blob tasks started→complete (s): ${layers}` +
        (p.backToSource.length > 0 ? `; back-to-source ${JSON.stringify(p.backToSource)}` : '') +
        (p.failed.length > 0 ? `; failed ${JSON.stringify(p.failed)}` : ''),
    );
  }
  for (const [name, text] of Object.entries(d.logs ?? {})) lines.push(`  log ${name}: ${text.split('\n').slice(-5).join(' / ').slice(0, 600)}`);
  return lines;
}

/** Per-peer details of a Shoal run: where the bytes came from. */
export function shoalPeerLines(r: ScenarioResult): string[] {
  const d = r.details as { peers?: Array<Record<string, unknown>>; seed?: Record<string, unknown>; logs?: Record<string, string> } | undefined;
  if (d?.peers === undefined) return [];
  const lines: string[] = [];
  const byClient = (r.details?.['originHttpBodyBytesByClient'] ?? {}) as Record<string, number>;
  lines.push(`  origin HTTP body bytes by client: ${Object.entries(byClient).map(([ip, n]) => `${ip} ${(n / 1048576).toFixed(1)} MiB`).join(', ') || 'none'}`);
  lines.push(`  seed: from origin ${String(d.seed?.['fromOriginMiB'])} MiB in ${String(d.seed?.['durationS'])} s; uploads ${JSON.stringify(d.seed?.['uploads'])}`);
  const reads = { memory: 0, file: 0 };
  for (const p of d.peers) {
    const r = p['pieceReads'] as { memory?: number; file?: number } | undefined;
    reads.memory += r?.memory ?? 0;
    reads.file += r?.file ?? 0;
  }
  if (reads.memory + reads.file > 0) {
    lines.push(`  peers' upload reads: ${reads.memory} from memory, ${reads.file} from files (${((100 * reads.memory) / (reads.memory + reads.file)).toFixed(1)} % from memory)`);
  }
  for (const p of d.peers) {
    const host = r.hosts.find((h) => h.host === p['host']);
    const parents = Object.entries((p['parentsMiB'] ?? {}) as Record<string, number>)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    lines.push(
      `  ${String(p['host'])}: ${f(host?.s, 1)} s; MiB from seed ${String(p['fromSeedsMiB'])}, peers ${String(p['fromPeersMiB'])}, origin ${String(p['fromOriginMiB'])}; ` +
        `first bytes seen at ${String(p['firstBytesS'])} s, longest stall after that ${String(p['longestStallS'])} s; parents (MiB): ${parents}` +
        ((p['backToSource'] as unknown[] | undefined)?.length ? `; back-to-source ${JSON.stringify(p['backToSource'])}` : '') +
        (p['error'] !== undefined ? `; error ${JSON.stringify(p['error'])}` : ''),
    );
  }
  for (const [name, text] of Object.entries(d.logs ?? {})) lines.push(`  log ${name}: ${text.split('\n').slice(-5).join(' / ').slice(0, 600)}`);
  return lines;
}

// ----------------------------------------------------------------- sweep

export function sweepTable(points: PointResult[]): string {
  const rows = [
    '| N | peer links | T_min s (raw / at goodput) | direct last s (ratio) | BitTorrent first / median / mean / p90 / last s | BT ratio | Shoal first / median / mean / p90 / last s | Shoal ratio | origin copies direct / BT / Shoal | CPU s per GB delivered BT / Shoal | CPU busy s BT / Shoal (user+sys) | CPU mean % BT / Shoal |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const p of points) {
    const get = (n: string): ScenarioResult | undefined => p.results.find((r) => r.scenario === n);
    const d = get('direct');
    const b = get('bittorrent');
    const s = get('shoal');
    const last = (r: ScenarioResult | undefined): string => (r === undefined ? 'n/a' : r.ok ? f(r.lastS, 1) : r.timedOut ? 'TIMEOUT' : 'FAILED');
    const rr = (r: ScenarioResult | undefined): string => (r === undefined ? '–' : ratio(r, p));
    const cp = (r: ScenarioResult | undefined): string => (r === undefined ? '–' : f(r.originCopies, 2));
    const perGB = (r: ScenarioResult | undefined): string => (r === undefined ? '–' : f(cpuPerGB(r, p), 1));
    const cpu = (r: ScenarioResult | undefined): string => (r === undefined ? '–' : `${f(r.cpu.busyS, 0)} (${f(r.cpu.userS, 0)}+${f(r.cpu.systemS, 0)})`);
    rows.push(
      `| ${p.config.peers} | ${p.config.peerRate}${p.config.slowPeers > 0 ? ` (${p.config.slowPeers} at ${p.config.slowRate})` : ''} | ${f(p.bound.raw, 1)} / ${f(p.bound.adjusted, 1)} | ${last(d)}${d?.ok === true ? ` (${rr(d)})` : ''} | ${spread(b)} | ${rr(b)} | ${spread(s)} | ${rr(s)} | ${cp(d)} / ${cp(b)} / ${cp(s)} | ${perGB(b)} / ${perGB(s)} | ${cpu(b)} / ${cpu(s)} | ${f(b?.cpu.meanPct, 0)} / ${f(s?.cpu.meanPct, 0)} |`,
    );
  }
  return rows.join('\n');
}

/** Time to last completion vs N (log x axis) for direct, BitTorrent, Shoal and T_min. Hand-written SVG. */
export function sweepSvg(points: PointResult[], title: string): string {
  const W = 760;
  const H = 460;
  const m = { l: 70, r: 200, t: 50, b: 60 };
  const main = points.filter((p) => p.config.slowPeers === 0 && p.config.peerRate === points[0]?.config.peerRate);
  const extra = points.filter((p) => !main.includes(p));
  const ns = [...new Set(points.map((p) => p.config.peers))].sort((a, b) => a - b);
  const series: Array<{ name: string; color: string; dash?: string; value: (p: PointResult) => number | null }> = [
    { name: 'direct (curl)', color: '#d62728', value: (p) => p.results.find((r) => r.scenario === 'direct')?.lastS ?? null },
    { name: 'BitTorrent (aria2c)', color: '#1f77b4', value: (p) => p.results.find((r) => r.scenario === 'bittorrent')?.lastS ?? null },
    { name: 'Shoal', color: '#2ca02c', value: (p) => p.results.find((r) => r.scenario === 'shoal')?.lastS ?? null },
    { name: 'T_min (at tbf goodput)', color: '#555', dash: '6 4', value: (p) => p.bound.adjusted },
  ];
  const all = points.flatMap((p) => series.map((s) => s.value(p))).filter((v): v is number => v !== null);
  const yMax = niceCeil(Math.max(10, ...all) * 1.05);
  const lx = (n: number): number => Math.log(n);
  const x0 = lx(Math.min(...ns, 1));
  const x1 = lx(Math.max(...ns, 2));
  const X = (n: number): number => m.l + ((lx(n) - x0) / (x1 - x0 || 1)) * (W - m.l - m.r);
  const Y = (v: number): number => H - m.b - (v / yMax) * (H - m.t - m.b);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2 - m.r / 2 + m.l / 2}" y="24" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>`);
  // axes and grid
  for (let i = 0; i <= 5; i++) {
    const v = (yMax * i) / 5;
    out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${Y(v)}" y2="${Y(v)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${m.l - 8}" y="${Y(v) + 4}" text-anchor="end">${Math.round(v)}</text>`);
  }
  for (const n of ns) {
    out.push(`<line x1="${X(n)}" x2="${X(n)}" y1="${m.t}" y2="${H - m.b}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${X(n)}" y="${H - m.b + 18}" text-anchor="middle">${n}</text>`);
  }
  out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}" stroke="black"/>`);
  out.push(`<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${H - m.b}" stroke="black"/>`);
  out.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 18}" text-anchor="middle">N peer hosts (log scale)</text>`);
  out.push(`<text transform="translate(20 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">seconds until the last host is done</text>`);
  // series
  series.forEach((s, si) => {
    const pts = main.map((p) => [p.config.peers, s.value(p)] as const).filter((q): q is readonly [number, number] => q[1] !== null);
    if (pts.length > 1) out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''} points="${pts.map(([n, v]) => `${X(n).toFixed(1)},${Y(v).toFixed(1)}`).join(' ')}"/>`);
    for (const [n, v] of pts) out.push(`<circle cx="${X(n).toFixed(1)}" cy="${Y(v).toFixed(1)}" r="3.5" fill="${s.color}"/>`);
    // failed points: a cross on the x axis
    for (const p of main) {
      const r = p.results.find((q) => q.scenario === ['direct', 'bittorrent', 'shoal'][si]);
      if (r !== undefined && !r.ok) out.push(`<text x="${X(p.config.peers)}" y="${H - m.b - 6 - si * 12}" text-anchor="middle" fill="${s.color}" font-weight="bold">×</text>`);
    }
    for (const p of extra) {
      const v = s.value(p);
      if (v !== null) out.push(`<rect x="${(X(p.config.peers) - 4).toFixed(1)}" y="${(Y(v) - 4).toFixed(1)}" width="8" height="8" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    }
    const ly = m.t + 10 + si * 20;
    out.push(`<line x1="${W - m.r + 16}" x2="${W - m.r + 40}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
    out.push(`<text x="${W - m.r + 46}" y="${ly + 4}">${esc(s.name)}</text>`);
  });
  let ly = m.t + 10 + series.length * 20 + 10;
  if (extra.length > 0) {
    out.push(`<rect x="${W - m.r + 24}" y="${ly - 4}" width="8" height="8" fill="none" stroke="#333" stroke-width="2"/>`);
    const labels = extra.map((p) => `N=${p.config.peers}, ${p.config.slowPeers > 0 ? `${p.config.slowPeers}×${p.config.slowRate}` : p.config.peerRate} peers`);
    out.push(`<text x="${W - m.r + 46}" y="${ly + 4}">${esc(labels.join('; '))}</text>`);
    ly += 20;
  }
  out.push(`<text x="${W - m.r + 16}" y="${ly + 4}" fill="#333">× = failed or timed out</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}

function niceCeil(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const k of [1, 2, 2.5, 5, 10]) if (k * p >= v) return k * p;
  return 10 * p;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
