/**
 * The three ways to get one file from the origin host to every peer host, on
 * the same topology and file:
 *
 *   direct      curl on every peer from a node:http static server on the origin host
 *   bittorrent  opentracker + an aria2c seeder on the origin host, aria2c on every peer
 *   shoal       scheduler + seed daemon (+ the static server) on the origin host, a
 *               daemon on every peer, `shoal get` on every peer
 *
 * All clients start at one instant (t0); a host's time is from t0 until its copy
 * is complete. Each scenario is bounded by ctx.timeoutMs; a timeout is a failed
 * point, never a hang. Outputs are checked against the original's SHA-256 after
 * the clients are stopped, outside the measured window.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { allProcessCpu, backgroundBusyPct, CpuMeter, foreignTop, type CpuUse, daemonApi, LabCpu, median, percentile, procTimes, round, sha256File, softnetDrops } from './measure.js';
import { type HostSpec, type NsProc, Procs, sh, type Topology } from './netns.js';

export const SCENARIOS = ['direct', 'bittorrent', 'shoal'] as const;
/** The image benchmark's scenarios (bench/lab/image.ts): skopeo from the registry, or through Shoal's mirror. */
export const IMAGE_SCENARIOS = ['image-direct', 'image-shoal'] as const;
/** The many-files benchmark's (bench/lab/files.ts, --files N). */
export const FILES_SCENARIOS = ['files-direct', 'files-shoal'] as const;
export type FilesScenario = (typeof FILES_SCENARIOS)[number];
export type ScenarioName = (typeof SCENARIOS)[number] | (typeof IMAGE_SCENARIOS)[number] | FilesScenario;

export const REPO = resolve(import.meta.dirname, '../..');
export const SHOAL_BIN = join(REPO, 'bin/shoal.mjs');
export const STATIC_SERVER = join(REPO, 'bench/lab/static-server.mjs');
export const ORIGIN_HTTP_PORT = 8080;
const SCHEDULER_PORT = 8002;
const DAEMON_PORT = 4000;
const TRACKER_PORT = 6969;
const BT_PORT = 6881;

export interface LabFile {
  path: string;
  name: string;
  size: number;
  sha256: string;
}

export interface Ctx {
  topo: Topology;
  procs: Procs;
  /** this run's temp dir */
  work: string;
  file: LabFile;
  timeoutMs: number;
  log: (s: string) => void;
  /** the script that runs `shoal` (a snapshot of the bundle, or bin/shoal.mjs) */
  shoalBin: string;
  /** a YAML config file for the Shoal scheduler (--scheduler-config) */
  schedulerConfig?: string | undefined;
  /** extra arguments for every `shoal get` (--get-args) */
  getArgs?: string[] | undefined;
  /** a YAML config file for every Shoal daemon (--daemon-config) */
  daemonConfig?: string | undefined;
  /** every Shoal daemon announces its link's upload rate (`--upload-rate`, which also caps it there) */
  declareRates?: boolean | undefined;
  /** the seed daemon alone announces its link's upload rate */
  declareSeedRate?: boolean | undefined;
  /** the cluster's certificates (`shoal cluster init DIR`): Shoal runs with mutual TLS; undefined: --insecure */
  tlsDir?: string | undefined;
}

/** How a Shoal component of the lab is secured: `--tls DIR/NAME`, or `--insecure` (hosts reach each other on 10.77.0.0/16). */
function security(ctx: Ctx, name: 'scheduler' | 'seed' | 'peer'): string[] {
  return ctx.tlsDir === undefined ? ['--insecure'] : ['--tls', join(ctx.tlsDir, name)];
}

export interface HostResult {
  host: string;
  ip: string;
  ok: boolean;
  /** seconds from t0 until the host's copy was complete */
  s: number | null;
  detail?: string;
  sha256ok?: boolean;
}

export interface ScenarioResult {
  scenario: ScenarioName;
  ok: boolean;
  error?: string;
  timedOut: boolean;
  /** seconds until the last host was done (null unless every host finished) */
  lastS: number | null;
  medianS: number | null;
  /** the mean host's completion time */
  meanS: number | null;
  p90S: number | null;
  firstS: number | null;
  hosts: HostResult[];
  /** the origin host's eth0 tx counters during the scenario */
  originTxBytes: number;
  originTxPackets: number;
  /** TCP segments the origin host retransmitted (its namespace's RetransSegs) */
  originRetransmits: number;
  /** originTxBytes / F */
  originCopies: number;
  /** (originTxBytes − 66 B per packet of Ethernet/IP/TCP headers) / F: an estimate of payload copies */
  originPayloadCopiesEst: number;
  /** bytes every peer host's eth0 sent (their upload), summed */
  peersTxBytes: number;
  /** packets (GSO units as the host's stack hands them on) every peer host's eth0 sent, and bytes and packets they received, summed */
  peersTxPackets: number;
  peersRxBytes: number;
  peersRxPackets: number;
  cpu: CpuUse;
  verified: number;
  mismatched: string[];
  details?: Record<string, unknown>;
}

export type Launch = {
  /** one promise per peer host: resolves when that host's copy is complete (or it failed) */
  done: Array<Promise<{ ok: boolean; at: number; detail?: string }>>;
  /** the output file of each peer host */
  outputs: string[];
};

/** Starts the origin's static HTTP server (serving the file's directory) and checks every peer reaches it. */
export async function startOriginServer(ctx: Ctx): Promise<NsProc> {
  const { topo, procs } = ctx;
  const server = procs.start(topo.origin.ns, 'static-server', [process.execPath, STATIC_SERVER, '--root', join(ctx.work, 'origin'), '--listen', `${topo.origin.ip}:${ORIGIN_HTTP_PORT}`]);
  await procs.waitFor(server, /static server listening on/, 15_000);
  // Every peer must reach it through the bridge before anything is measured.
  await Promise.all(
    topo.peers.map(async (p) => {
      const deadline = Date.now() + 15_000;
      for (;;) {
        const r = sh(['ip', 'netns', 'exec', p.ns, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '3', `http://${topo.origin.ip}:${ORIGIN_HTTP_PORT}/__stats`], {
          allowFail: true,
          timeoutMs: 5000,
        });
        if (r.stdout.trim() === '200') return;
        if (Date.now() > deadline) throw new Error(`${p.name} (${p.ip}) cannot reach the origin: ${r.stdout}${r.stderr}`);
        await new Promise((res) => setTimeout(res, 200));
      }
    }),
  );
  return server;
}

export function originUrl(ctx: Ctx): string {
  return `http://${ctx.topo.origin.ip}:${ORIGIN_HTTP_PORT}/${ctx.file.name}`;
}

/** The static server's per-client byte counts (asked over the origin namespace's loopback). */
function originServerStats(ctx: Ctx): { bytes: number; byPeer: Record<string, number> } {
  const r = sh(['ip', 'netns', 'exec', ctx.topo.origin.ns, 'curl', '-s', '--max-time', '3', `http://${ctx.topo.origin.ip}:${ORIGIN_HTTP_PORT}/__stats`], { allowFail: true, timeoutMs: 5000 });
  try {
    return JSON.parse(r.stdout) as { bytes: number; byPeer: Record<string, number> };
  } catch {
    return { bytes: 0, byPeer: {} };
  }
}

function diffByPeer(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(b)) if (v - (a[k] ?? 0) > 0) out[k] = v - (a[k] ?? 0);
  return out;
}

/**
 * The CPU seconds of this process's children that have exited and been
 * reaped (cutime + cstime): across a window, the processes that ended in it,
 * such as every `shoal get` (each `ip netns exec` becomes its command), which
 * the per-process figures of processes alive at the end cannot show.
 */
function reapedChildrenCpuS(): { user: number; system: number } {
  const t = procTimes('self');
  return { user: t?.cuser ?? 0, system: t?.csystem ?? 0 };
}

/** A lab process's role: "daemon@p3" → "daemon (peers)", "daemon@o" → "daemon (origin host)"; other names as they are. */
export function roleOf(name: string): string {
  if (name.endsWith('@o')) return name.replace('@o', ' (origin host)');
  return name.replace(/@p\d+$/, ' (peers)');
}

/** CPU seconds by process role ("daemon@p3" → "daemon (peers)") during the window, for processes alive at its end. */
function cpuByRole(start: Map<number, { user: number; system: number }>, procs: NsProc[]): Record<string, { user: number; system: number; processes: number }> {
  const out: Record<string, { user: number; system: number; processes: number }> = {};
  for (const p of procs) {
    if (!p.running()) continue;
    const now = procTimes(p.pid);
    if (now === undefined) continue;
    const was = start.get(p.pid) ?? { user: 0, system: 0 };
    const role = roleOf(p.name);
    const r = (out[role] ??= { user: 0, system: 0, processes: 0 });
    r.user = round(r.user + now.user - was.user, 2);
    r.system = round(r.system + now.system - was.system, 2);
    r.processes++;
  }
  return out;
}

export async function waitExit(p: NsProc, ms: number): Promise<void> {
  await Promise.race([p.exited, new Promise((r) => setTimeout(r, ms))]);
}

/**
 * The measured part shared by every scenario: counters and CPU around the launch,
 * a deadline, then stop the scenario's processes and check every output (against
 * ctx.file's SHA-256, or with `after.verify`, which returns what is wrong or
 * undefined).
 */
export async function measure(
  ctx: Ctx,
  scenario: ScenarioName,
  launch: (t0: number) => Launch,
  after: {
    beforeStop?: () => Promise<Record<string, unknown>>;
    stop: () => Promise<void>;
    watch: () => NsProc[];
    verify?: (output: string) => Promise<string | undefined>;
  },
  details: Record<string, unknown> = {},
): Promise<ScenarioResult> {
  const { topo } = ctx;
  const watched = () => [...ctx.procs.all, ...after.watch()];
  const cpuStart = new Map<number, { user: number; system: number }>();
  for (const p of watched()) {
    const c = p.running() ? procTimes(p.pid) : undefined;
    if (c !== undefined) cpuStart.set(p.pid, c);
  }
  const originBefore = topo.counters(topo.origin);
  const seedHostBefore = topo.seedHost === undefined ? undefined : topo.counters(topo.seedHost);
  const retransBefore = topo.retransmits(topo.origin);
  const lossBefore = lossCounters(topo);
  const peersBefore = topo.peers.map((p) => topo.counters(p));
  const serverBefore = originServerStats(ctx);
  const backgroundPct = await backgroundBusyPct(2000);
  const labCpu = new LabCpu(watched().filter((p) => p.running()).map((p) => p.pid));
  const procsBefore = allProcessCpu();
  const perf = await startPerf(scenario);
  const cpu = new CpuMeter();
  const reapedBefore = reapedChildrenCpuS();
  const t0 = Date.now();
  const { done, outputs } = launch(t0);
  let timedOut = false;
  let deadlineTimer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((r) => (deadlineTimer = setTimeout(() => r('timeout'), ctx.timeoutMs)));
  const settled: Array<{ ok: boolean; at: number; detail?: string } | undefined> = done.map(() => undefined);
  done.forEach((d, i) => {
    void d.then(
      (v) => (settled[i] = v),
      (err: unknown) => (settled[i] = { ok: false, at: Date.now(), detail: String(err) }),
    );
  });
  const all = Promise.allSettled(done);
  if ((await Promise.race([all, deadline])) === 'timeout') timedOut = true;
  clearTimeout(deadlineTimer);
  const cpuUse = cpu.stop();
  const reapedAfter = reapedChildrenCpuS();
  const exitedCpuS = { user: round(reapedAfter.user - reapedBefore.user, 2), system: round(reapedAfter.system - reapedBefore.system, 2) };
  await perf?.stop(watched().map((p) => ({ pid: p.pid, name: p.name })));
  const labUse = labCpu.stop(watched().filter((p) => p.running()).map((p) => p.pid));
  cpuUse.labUserS = labUse.userS;
  cpuUse.labSystemS = labUse.systemS;
  cpuUse.backgroundPct = backgroundPct;
  cpuUse.foreignUserS = round(Math.max(0, cpuUse.userS - labUse.userS), 2);
  const labPids = new Set([process.pid, ...watched().map((p) => p.pid)]);
  const foreign = foreignTop(procsBefore, allProcessCpu(), (pid, ppid) => labPids.has(pid) || labPids.has(ppid));
  const processCpu = cpuByRole(cpuStart, watched());
  const originAfter = topo.counters(topo.origin);
  const seedHostAfter = topo.seedHost === undefined ? undefined : topo.counters(topo.seedHost);
  // The seed host's link: what Shoal's seed fetched (rx) and uploaded (tx), in copies of the file.
  const seedHostLink =
    seedHostBefore === undefined || seedHostAfter === undefined
      ? {}
      : { seedHostLink: { txCopies: round((seedHostAfter.txBytes - seedHostBefore.txBytes) / ctx.file.size, 4), rxCopies: round((seedHostAfter.rxBytes - seedHostBefore.rxBytes) / ctx.file.size, 4) } };
  const retransAfter = topo.retransmits(topo.origin);
  const loss = lossDelta(lossBefore, lossCounters(topo), topo.origin.name);
  const peersAfter = topo.peers.map((p) => topo.counters(p));
  const serverAfter = originServerStats(ctx);
  let extra: Record<string, unknown> = {};
  if (after.beforeStop !== undefined) {
    try {
      extra = await after.beforeStop();
    } catch (err) {
      extra = { statusError: (err as Error).message };
    }
  }
  await after.stop();

  const hosts: HostResult[] = topo.peers.map((p, i) => {
    const s = settled[i];
    if (s === undefined) return { host: p.name, ip: p.ip, ok: false, s: null, detail: timedOut ? 'timed out' : 'unfinished' };
    const r: HostResult = { host: p.name, ip: p.ip, ok: s.ok, s: s.ok ? round((s.at - t0) / 1000, 2) : null };
    if (s.detail !== undefined) r.detail = s.detail;
    return r;
  });
  // SHA-256 of every output, after the clients are stopped.
  const mismatched: string[] = [];
  let verified = 0;
  for (const [i, h] of hosts.entries()) {
    const out = outputs[i]!;
    if (!existsSync(out)) {
      h.sha256ok = false;
      if (h.ok) mismatched.push(`${h.host}: output missing`);
      continue;
    }
    let problem: string | undefined;
    if (after.verify !== undefined) {
      problem = await after.verify(out);
    } else {
      const size = statSync(out).size;
      if (size !== ctx.file.size || (await sha256File(out)) !== ctx.file.sha256) problem = `SHA-256 differs (size ${size})`;
    }
    h.sha256ok = problem === undefined;
    if (problem === undefined) verified++;
    else if (h.ok) mismatched.push(`${h.host}: ${problem}`);
  }
  const times = hosts.filter((h) => h.ok && h.s !== null).map((h) => h.s!);
  const failed = hosts.filter((h) => !h.ok);
  const okAll = !timedOut && failed.length === 0 && mismatched.length === 0 && verified === hosts.length;
  const txBytes = originAfter.txBytes - originBefore.txBytes;
  const txPackets = originAfter.txPackets - originBefore.txPackets;
  const errors: string[] = [];
  if (timedOut) errors.push(`timed out after ${ctx.timeoutMs / 1000} s with ${times.length}/${hosts.length} hosts done`);
  if (failed.length > 0 && !timedOut) errors.push(`${failed.length} host(s) failed: ${failed.map((h) => `${h.host} ${h.detail ?? ''}`.trim()).join('; ')}`);
  if (mismatched.length > 0) errors.push(`OUTPUT MISMATCH: ${mismatched.join('; ')}`);
  const result: ScenarioResult = {
    scenario,
    ok: okAll,
    timedOut,
    lastS: okAll ? Math.max(...times) : null,
    medianS: median(times),
    meanS: times.length > 0 ? round(times.reduce((a, b) => a + b, 0) / times.length, 2) : null,
    p90S: percentile(times, 90),
    firstS: times.length > 0 ? Math.min(...times) : null,
    hosts,
    originTxBytes: txBytes,
    originTxPackets: txPackets,
    originCopies: round(txBytes / ctx.file.size, 4),
    originPayloadCopiesEst: round((txBytes - 66 * txPackets) / ctx.file.size, 4),
    originRetransmits: retransAfter - retransBefore,
    peersTxBytes: peersAfter.reduce((s, v, i) => s + v.txBytes - peersBefore[i]!.txBytes, 0),
    peersTxPackets: peersAfter.reduce((s, v, i) => s + v.txPackets - peersBefore[i]!.txPackets, 0),
    peersRxBytes: peersAfter.reduce((s, v, i) => s + v.rxBytes - peersBefore[i]!.rxBytes, 0),
    peersRxPackets: peersAfter.reduce((s, v, i) => s + v.rxPackets - peersBefore[i]!.rxPackets, 0),
    cpu: cpuUse,
    verified,
    mismatched,
    details: { ...details, processCpuS: processCpu, exitedProcessesCpuS: exitedCpuS, foreignProcessesCpuS: foreign, originHttpBodyBytesByClient: diffByPeer(serverBefore.byPeer, serverAfter.byPeer), loss, ...seedHostLink, ...extra },
  };
  if (errors.length > 0) result.error = errors.join(' | ');
  return result;
}

interface LossCounters {
  softnet: number;
  qdisc: Map<string, { up: number; down: number; dev: number }>;
  originTcp: Record<string, number>;
}

function lossCounters(topo: Topology): LossCounters {
  return { softnet: softnetDrops(), qdisc: topo.qdiscDrops(), originTcp: topo.tcpExt(topo.origin) };
}

/**
 * Where packets were lost during a scenario: the machine's input backlogs,
 * each link's tbf queues (summed, and the five links that dropped most), and
 * how the origin host's TCP recovered (timeouts, tail-loss probes, fast
 * retransmits).
 */
function lossDelta(before: LossCounters, after: LossCounters, origin: string): Record<string, unknown> {
  const links = [...after.qdisc].map(([name, a]) => {
    const b = before.qdisc.get(name) ?? { up: 0, down: 0, dev: 0 };
    return { link: name, up: a.up - b.up, down: a.down - b.down, dev: a.dev - b.dev };
  });
  const originTcp: Record<string, number> = {};
  for (const [k, v] of Object.entries(after.originTcp)) originTcp[k] = v - (before.originTcp[k] ?? 0);
  return {
    softnetBacklogDrops: after.softnet - before.softnet,
    tbfUpDrops: links.reduce((s, l) => s + l.up, 0),
    tbfDownDrops: links.reduce((s, l) => s + l.down, 0),
    vethDrops: links.reduce((s, l) => s + l.dev, 0),
    originLink: links.find((l) => l.link === origin) ?? null,
    worstLinks: links.filter((l) => l.up + l.down > 0).sort((x, y) => y.up + y.down - (x.up + x.down)).slice(0, 5),
    originTcp,
  };
}

/** `dir`, emptied (created if absent). */
export function freshDir(dir: string): string {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

export function outDir(ctx: Ctx, scenario: string, host: HostSpec): string {
  const d = join(ctx.work, 'out', scenario, host.name);
  mkdirSync(d, { recursive: true });
  return d;
}

export function cleanOutputs(ctx: Ctx, scenario: string): void {
  rmSync(join(ctx.work, 'out', scenario), { recursive: true, force: true });
}

// ---------------------------------------------------------------- direct

export async function runDirect(ctx: Ctx): Promise<ScenarioResult> {
  const procs = new Procs();
  try {
    const url = originUrl(ctx);
    return await measure(
      ctx,
      'direct',
      () => {
        const outputs: string[] = [];
        const done = ctx.topo.peers.map((p) => {
          const out = join(outDir(ctx, 'direct', p), ctx.file.name);
          outputs.push(out);
          const c = procs.start(p.ns, `curl@${p.name}`, ['curl', '-s', '-S', '-f', '-o', out, url]);
          return c.exited.then(({ code, at }) => (code === 0 ? { ok: true, at } : { ok: false, at, detail: `curl exit ${code}: ${c.output().trim().slice(-300)}` }));
        });
        return { done, outputs };
      },
      { stop: () => procs.stopAll(), watch: () => procs.all },
    );
  } finally {
    await procs.stopAll();
    cleanOutputs(ctx, 'direct');
  }
}

// ---------------------------------------------------------------- BitTorrent

const ARIA2_COMMON = [
  '--enable-dht=false',
  '--enable-dht6=false',
  '--bt-enable-lpd=false',
  '--enable-peer-exchange=false',
  '--disable-ipv6=true',
  '--seed-ratio=0.0', // keep seeding until stopped
  `--listen-port=${BT_PORT}`,
  '--file-allocation=none',
  '--summary-interval=0',
  '--console-log-level=warn',
  '--check-certificate=false',
  '--auto-save-interval=0',
  '--bt-save-metadata=false',
  '--rpc-save-upload-metadata=false',
];

/** The info-hash of a .torrent: SHA-1 of the bencoded `info` value. */
export function infoHash(torrent: Buffer): Buffer {
  let i = 0;
  const skip = (): void => {
    const c = torrent[i]!;
    if (c === 0x69 /* i */) {
      i = torrent.indexOf(0x65, i) + 1;
    } else if (c === 0x6c /* l */ || c === 0x64 /* d */) {
      i++;
      while (torrent[i] !== 0x65) skip();
      i++;
    } else {
      const colon = torrent.indexOf(0x3a, i);
      const len = Number(torrent.subarray(i, colon).toString('ascii'));
      i = colon + 1 + len;
    }
  };
  if (torrent[0] !== 0x64) throw new Error('torrent is not a dictionary');
  i = 1;
  while (i < torrent.length && torrent[i] !== 0x65) {
    const colon = torrent.indexOf(0x3a, i);
    const len = Number(torrent.subarray(i, colon).toString('ascii'));
    const key = torrent.subarray(colon + 1, colon + 1 + len).toString('latin1');
    i = colon + 1 + len;
    const start = i;
    skip();
    if (key === 'info') {
      return sha1(torrent.subarray(start, i));
    }
  }
  throw new Error('torrent has no info dictionary');
}

function sha1(b: Buffer): Buffer {
  return createHash('sha1').update(b).digest();
}

/** Number of seeders the tracker knows for the torrent (scrape over the origin's loopback). */
function trackerSeeders(ctx: Ctx, hash: Buffer): number {
  const enc = [...hash].map((b) => '%' + b.toString(16).padStart(2, '0')).join('');
  const r = sh(['ip', 'netns', 'exec', ctx.topo.origin.ns, 'curl', '-s', '--max-time', '2', `http://${ctx.topo.origin.ip}:${TRACKER_PORT}/scrape?info_hash=${enc}`], {
    allowFail: true,
    timeoutMs: 4000,
  });
  const m = /8:completei(\d+)e/.exec(r.stdout);
  return m === null ? 0 : Number(m[1]);
}

export async function runBitTorrent(ctx: Ctx): Promise<ScenarioResult> {
  const { topo } = ctx;
  const procs = new Procs();
  const bt = join(ctx.work, 'bt');
  rmSync(bt, { recursive: true, force: true });
  mkdirSync(bt, { recursive: true });
  try {
    const torrent = join(bt, `${ctx.file.name}.torrent`);
    sh(['mktorrent', '-p', '-l', '18', '-a', `http://${topo.origin.ip}:${TRACKER_PORT}/announce`, '-o', torrent, ctx.file.path], { timeoutMs: 120_000 });
    const hash = infoHash(readFileSync(torrent));
    const trackerDir = join(bt, 'tracker');
    mkdirSync(trackerDir, { recursive: true });
    // Debian's opentracker is built with a whitelist: allow this torrent only. It chroots
    // to -d and drops root (it refuses to run as root), so the list lives in that dir.
    writeFileSync(join(trackerDir, 'whitelist.txt'), hash.toString('hex') + '\n');
    const tracker = procs.start(
      topo.origin.ns,
      'opentracker',
      ['opentracker', '-i', topo.origin.ip, '-p', String(TRACKER_PORT), '-P', String(TRACKER_PORT), '-d', trackerDir, '-u', 'nobody', '-w', 'whitelist.txt'],
      { cwd: trackerDir },
    );
    // opentracker prints nothing when ready: wait until its scrape answers.
    const trackerDeadline = Date.now() + 15_000;
    for (;;) {
      const r = sh(['ip', 'netns', 'exec', topo.origin.ns, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '1', `http://${topo.origin.ip}:${TRACKER_PORT}/scrape`], {
        allowFail: true,
        timeoutMs: 3000,
      });
      if (r.stdout.trim() !== '000') break;
      if (!tracker.running()) throw new Error(`opentracker exited: ${tracker.output()}`);
      if (Date.now() > trackerDeadline) throw new Error(`opentracker did not answer: ${tracker.output()}`);
      await new Promise((res) => setTimeout(res, 200));
    }
    const seeder = procs.start(topo.origin.ns, 'aria2c-seeder', [
      'aria2c',
      ...ARIA2_COMMON,
      '--bt-seed-unverified=true',
      `--dir=${join(ctx.work, 'origin')}`,
      torrent,
    ]);
    const seedDeadline = Date.now() + 30_000;
    while (trackerSeeders(ctx, hash) < 1) {
      if (!seeder.running()) throw new Error(`aria2c seeder exited: ${seeder.output()}`);
      if (Date.now() > seedDeadline) throw new Error(`the aria2c seeder did not announce to the tracker in 30 s: ${seeder.output()}`);
      await new Promise((res) => setTimeout(res, 200));
    }

    const leechers: NsProc[] = [];
    return await measure(
      ctx,
      'bittorrent',
      () => {
        const outputs: string[] = [];
        const done = topo.peers.map((p) => {
          const dir = outDir(ctx, 'bittorrent', p);
          outputs.push(join(dir, ctx.file.name));
          const doneFile = join(bt, `${p.name}.done`);
          const hook = join(bt, `${p.name}.hook.sh`);
          // Called by aria2c when the download is complete, before seeding.
          writeFileSync(hook, `#!/bin/sh\nprintf '%s %s\\n' "$(date +%s%3N)" "$3" > '${doneFile}.tmp' && mv '${doneFile}.tmp' '${doneFile}'\n`);
          chmodSync(hook, 0o755);
          const a = procs.start(p.ns, `aria2c@${p.name}`, ['aria2c', ...ARIA2_COMMON, `--dir=${dir}`, `--on-bt-download-complete=${hook}`, torrent]);
          leechers.push(a);
          return new Promise<{ ok: boolean; at: number; detail?: string }>((resolveDone) => {
            const poll = setInterval(() => {
              if (existsSync(doneFile)) {
                clearInterval(poll);
                const ms = Number(readFileSync(doneFile, 'utf8').split(' ')[0]);
                resolveDone({ ok: true, at: Number.isFinite(ms) && ms > 0 ? ms : Date.now() });
              } else if (!a.running()) {
                clearInterval(poll);
                resolveDone({ ok: false, at: Date.now(), detail: `aria2c exited before completing: ${a.output().trim().slice(-300)}` });
              }
            }, 100);
            // the scenario deadline ends the poll through stopAll(): aria2c exits, poll resolves
          });
        });
        return { done, outputs };
      },
      {
        beforeStop: () => Promise.resolve({ tracker: 'opentracker', pieceLength: 262144, seederPid: seeder.pid }),
        stop: async () => {
          await procs.stopAll();
        },
        watch: () => procs.all,
      },
    );
  } finally {
    await procs.stopAll();
    cleanOutputs(ctx, 'bittorrent');
    rmSync(bt, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- Shoal

/**
 * `LAB_PERF=DIR`: a whole-machine `perf record -e cpu-clock -a -g` over exactly
 * the measured window of each scenario, into DIR/<scenario>.perf.data, and the
 * lab's processes by pid in DIR/<scenario>.procs.json (with
 * LAB_SHOAL_NODE_ARGS=--perf-basic-prof, Shoal's JavaScript frames have names).
 * `node --import tsx bench/lab/perf-summary.ts DIR/<scenario>` sums it up.
 */
async function startPerf(scenario: ScenarioName): Promise<{ stop(procs: Array<{ pid: number; name: string }>): Promise<void> } | undefined> {
  const dir = process.env['LAB_PERF'];
  if (dir === undefined || dir === '') return undefined;
  mkdirSync(dir, { recursive: true });
  const child = spawn('perf', ['record', '-e', 'cpu-clock', '-F', '499', '-a', '-g', '-o', join(dir, `${scenario}.perf.data`)], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await new Promise((r) => setTimeout(r, 500)); // perf opens its buffers
  return {
    async stop(procs) {
      // which process was which (daemon@p3, get@p3 …), for bench/lab/perf-summary.ts
      writeFileSync(join(dir, `${scenario}.procs.json`), JSON.stringify(procs) + '\n');
      child.kill('SIGINT');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    },
  };
}

/** `LAB_SHOAL_NODE_ARGS` (space-separated) adds Node flags, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`. */
export function shoalCmd(ctx: Ctx, args: string[]): string[] {
  const nodeArgs = (process.env['LAB_SHOAL_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '');
  return shoalCommand(ctx.shoalBin, args, nodeArgs);
}

/** A script (.mjs, .js) runs with this Node, after `nodeArgs`; anything else is an executable (the single binary, `npm run build:sea`), which takes Node flags from NODE_OPTIONS only. */
export function shoalCommand(bin: string, args: string[], nodeArgs: string[] = []): string[] {
  if (/\.m?js$/.test(bin)) return [process.execPath, ...nodeArgs, bin, ...args];
  return [bin, ...args];
}

interface ShoalPeerSummary {
  host: string;
  hostId?: string;
  state?: string;
  fromSeedsMiB?: number;
  fromPeersMiB?: number;
  fromOriginMiB?: number;
  fromCacheMiB?: number;
  /** bytes by parent host name */
  parentsMiB?: Record<string, number>;
  piecesFromRunningParents?: number;
  corruptPieces?: number;
  backToSource?: unknown[];
  durationS?: number;
  uploadsJson?: unknown;
  /** upload reads of pieces by where the bytes were (memory: the pieces received last) */
  pieceReads?: unknown;
  error?: unknown;
  /** longest time (s) without a new piece after the first one, from 1-second API samples */
  longestStallS?: number;
  /** first 1-second sample (s after t0) that showed bytes: start-up latency, ±1 s */
  firstBytesS?: number | undefined;
  /** completed fraction at each second after t0 (from the API samples); null for a second with no sample */
  progress?: Array<number | null>;
}

const MiBf = (n: unknown): number => round(Number(n ?? 0) / 1048576, 1);

export interface ShoalSwarm {
  scheduler: NsProc;
  seed: { proc: NsProc; api: string };
  /** one per peer host, in topo.peers order */
  peers: Array<{ proc: NsProc; api: string }>;
  /** daemon host id → lab host name */
  hostIds: Map<string, string>;
  /** a peer id containing an IPv4 address → lab host name (else the id) */
  hostByIp: (peerId: string) => string;
}

/**
 * The scheduler and the seed daemon on the origin host (or the seed host) and a daemon on every peer
 * host, each ready and connected to the scheduler (bounded) before it returns.
 * `extraDaemonArgs` adds arguments to a host's daemon (the image benchmark's mirror).
 */
export async function startShoalSwarm(ctx: Ctx, procs: Procs, dir: string, extraDaemonArgs: (h: HostSpec, seed: boolean) => string[] = () => []): Promise<ShoalSwarm> {
  const { topo } = ctx;
  const logLevel = process.env['LAB_SHOAL_LOG_LEVEL'] ?? 'warn';
  const schedulerLogLevel = process.env['LAB_SCHEDULER_LOG_LEVEL'] ?? logLevel;
  const home = topo.seedHost ?? topo.origin;
  const scheduler = procs.start(
    home.ns,
    'scheduler',
    shoalCmd(ctx, ['scheduler', '--listen', `${home.ip}:${SCHEDULER_PORT}`, '--log-level', schedulerLogLevel, ...security(ctx, 'scheduler'), ...(ctx.schedulerConfig === undefined ? [] : ['--config', ctx.schedulerConfig])]),
  );
  await procs.waitFor(scheduler, /shoal scheduler listening on/, 30_000);
  const schedulerUrl = `${ctx.tlsDir === undefined ? 'http' : 'https'}://${home.ip}:${SCHEDULER_PORT}`;
  const daemonOf = (h: HostSpec, seed: boolean): { proc: NsProc; api: string } => {
    const api = join(dir, `${h.name}.sock`);
    const args = ['daemon', '--scheduler', schedulerUrl, '--listen', `0.0.0.0:${DAEMON_PORT}`, '--advertise', h.ip, '--data', join(dir, h.name), '--api', api, '--log-level', logLevel, ...(ctx.daemonConfig === undefined ? [] : ['--config', ctx.daemonConfig])];
    if (seed) args.push('--seed');
    args.push(...security(ctx, seed ? 'seed' : 'peer'));
    if (ctx.declareRates === true || (seed && ctx.declareSeedRate === true)) args.push('--upload-rate', String(Math.floor(h.up / 8)));
    args.push(...extraDaemonArgs(h, seed));
    return { proc: procs.start(h.ns, `daemon@${h.name}`, shoalCmd(ctx, args), { keepOutput: 256 * 1024 }), api };
  };
  const seed = daemonOf(home, true);
  const peers = topo.peers.map((p) => daemonOf(p, false));
  await Promise.all([seed, ...peers].map((d) => procs.waitFor(d.proc, /shoal daemon .*upload port/, 60_000)));
  // Every daemon connected to the scheduler (bounded) before the clock starts.
  const connDeadline = Date.now() + 30_000;
  for (const d of [seed, ...peers]) {
    for (;;) {
      const st = await daemonApi(d.api, '/v1/stats').catch(() => undefined);
      if ((st?.['scheduler'] as { connected?: boolean } | undefined)?.connected === true) break;
      if (Date.now() > connDeadline) {
        ctx.log(`warning: ${d.proc.name} not connected to the scheduler after 30 s; measuring anyway`);
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const hostByIp = (peerId: string): string => {
    const ip = /(\d+\.\d+\.\d+\.\d+)/.exec(peerId)?.[1];
    return topo.hosts.find((h) => h.ip === ip)?.name ?? peerId;
  };
  const hostIds = new Map<string, string>();
  for (const [h, d] of [[home, seed] as const, ...topo.peers.map((p, i) => [p, peers[i]!] as const)]) {
    const st = await daemonApi(d.api, '/v1/stats').catch(() => undefined);
    if (typeof st?.['hostId'] === 'string') hostIds.set(st['hostId'], h.name);
  }
  return { scheduler, seed, peers, hostIds, hostByIp };
}

export async function runShoal(ctx: Ctx): Promise<ScenarioResult> {
  const { topo } = ctx;
  const procs = new Procs();
  const dir = freshDir(join(ctx.work, 'shoal'));
  let sampler: NodeJS.Timeout | undefined;
  try {
    const { scheduler, seed, peers, hostIds, hostByIp } = await startShoalSwarm(ctx, procs, dir);

    // 1-second progress samples of every peer daemon, over its unix socket (no process spawned).
    const progress: number[][] = topo.peers.map(() => []);
    const lastChange: Array<number | undefined> = topo.peers.map(() => undefined);
    const firstByte: Array<number | undefined> = topo.peers.map(() => undefined);
    const lastBytes: number[] = topo.peers.map(() => 0);
    const longestStall: number[] = topo.peers.map(() => 0);
    const complete: boolean[] = topo.peers.map(() => false);
    const url = originUrl(ctx);
    return await measure(
      ctx,
      'shoal',
      (t0) => {
        const outputs: string[] = [];
        const done = topo.peers.map((p, i) => {
          const out = join(outDir(ctx, 'shoal', p), ctx.file.name);
          outputs.push(out);
          const g = procs.start(p.ns, `get@${p.name}`, shoalCmd(ctx, ['get', url, '-O', out, '-e', peers[i]!.api, '-q', ...(ctx.getArgs ?? [])]));
          return g.exited.then(({ code, at }) => {
            complete[i] = true;
            return code === 0 ? { ok: true, at } : { ok: false, at, detail: `shoal get exit ${code}: ${g.output().trim().slice(-500)}` };
          });
        });
        sampler = setInterval(() => {
          const now = Date.now();
          topo.peers.forEach((_, i) => {
            if (complete[i]) return;
            void daemonApi(peers[i]!.api, '/v1/stats', 900)
              .then((st) => {
                const task = ((st['tasks'] ?? []) as Array<Record<string, unknown>>).find((t) => String(t['url']).endsWith(`/${ctx.file.name}`));
                const bytes = Number(task?.['completedBytes'] ?? 0);
                const sec = Math.round((now - t0) / 1000);
                progress[i]![sec] = round(bytes / ctx.file.size, 3);
                if (bytes > lastBytes[i]!) {
                  lastBytes[i] = bytes;
                  lastChange[i] = now;
                  firstByte[i] ??= now - t0;
                } else if (bytes < ctx.file.size && lastChange[i] !== undefined) {
                  longestStall[i] = Math.max(longestStall[i]!, (now - lastChange[i]) / 1000);
                }
              })
              .catch(() => undefined);
          });
        }, 1000);
        return { done, outputs };
      },
      {
        beforeStop: async () => {
          clearInterval(sampler);
          // `shoal status --json` on every daemon: where each peer's bytes came from.
          const statusOf = async (h: HostSpec, api: string): Promise<Record<string, unknown>> => {
            const p = procs.start(h.ns, `status@${h.name}`, shoalCmd(ctx, ['status', '-e', api, '--json']), { keepOutput: 4 << 20 });
            await waitExit(p, 30_000);
            try {
              return JSON.parse(p.output()) as Record<string, unknown>;
            } catch {
              return { statusError: `shoal status failed: ${p.output().slice(0, 300)}` };
            }
          };
          const [seedStatus, ...peerStatus] = await Promise.all([statusOf(topo.seedHost ?? topo.origin, seed.api), ...topo.peers.map((p, i) => statusOf(p, peers[i]!.api))]);
          const peerSummaries: ShoalPeerSummary[] = topo.peers.map((p, i) => {
            const st = peerStatus[i]!;
            if (typeof st['statusError'] === 'string') return { host: p.name, error: st['statusError'] };
            const task = ((st['tasks'] ?? []) as Array<Record<string, unknown>>).find((t) => String(t['url']).endsWith(`/${ctx.file.name}`));
            const b = (task?.['bytes'] ?? {}) as Record<string, number>;
            const parents: Record<string, number> = {};
            for (const [id, n] of Object.entries((task?.['parents'] ?? {}) as Record<string, number>)) parents[hostIds.get(id) ?? hostByIp(id)] = MiBf(n);
            const s: ShoalPeerSummary = {
              host: p.name,
              hostId: String(st['hostId']),
              state: String(task?.['state']),
              fromSeedsMiB: MiBf(b['seeds']),
              fromPeersMiB: MiBf(b['peers']),
              fromOriginMiB: MiBf(b['source']),
              fromCacheMiB: MiBf(b['cache']),
              parentsMiB: parents,
              piecesFromRunningParents: Number(task?.['piecesFromRunningParents'] ?? 0),
              corruptPieces: Number(task?.['corruptPieces'] ?? 0),
              backToSource: (task?.['backToSource'] ?? []) as unknown[],
              durationS: round(Number(task?.['durationMs'] ?? 0) / 1000, 2),
              uploadsJson: st['uploads'],
              pieceReads: (st['cache'] as Record<string, unknown> | undefined)?.['pieceReads'],
              longestStallS: round(longestStall[i]!, 1),
              firstBytesS: firstByte[i] === undefined ? undefined : round(firstByte[i] / 1000, 1),
              progress: Array.from(progress[i]!, (v: number | undefined) => v ?? null),
            };
            if (task?.['error'] !== undefined) s.error = task['error'];
            return s;
          });
          const seedTask = typeof seedStatus['statusError'] === 'string' ? undefined : ((seedStatus['tasks'] ?? []) as Array<Record<string, unknown>>)[0];
          // warnings and errors the daemons logged (log level warn)
          const logs: Record<string, string> = {};
          for (const p of [scheduler, seed.proc, ...peers.map((d) => d.proc)]) {
            const text = p.output().replace(/^shoal (daemon|scheduler) .*\n/m, '').trim();
            if (text !== '') logs[p.name] = text.slice(-4000);
          }
          return {
            seed: {
              uploads: seedStatus['statusError'] ?? seedStatus['uploads'],
              fromOriginMiB: MiBf((seedTask?.['bytes'] as Record<string, number> | undefined)?.['source']),
              durationS: round(Number(seedTask?.['durationMs'] ?? 0) / 1000, 2),
              backToSource: seedTask?.['backToSource'],
            },
            peers: peerSummaries,
            logs,
            note: 'the seed daemon fetches the origin URL over the origin namespace\'s loopback (10.77.0.1 is local there), so that copy is not link traffic',
          };
        },
        stop: () => procs.stopAll(),
        watch: () => procs.all,
      },
    );
  } finally {
    clearInterval(sampler);
    await procs.stopAll();
    cleanOutputs(ctx, 'shoal');
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs one of the file scenarios (the image ones are in image.ts: they need the registry). */
export async function runScenario(ctx: Ctx, name: ScenarioName): Promise<ScenarioResult> {
  if (name === 'direct') return runDirect(ctx);
  if (name === 'bittorrent') return runBitTorrent(ctx);
  if (name === 'shoal') return runShoal(ctx);
  throw new Error(`${name} is an image or many-files scenario: run it with --image or --files`);
}
