/**
 * What the lab measures besides time: the whole machine's CPU from /proc/stat,
 * SHA-256 of outputs, percentiles, the Kumar–Ross bound, and a small HTTP client
 * for a Shoal daemon's local API over its unix socket.
 */
import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { cpus } from 'node:os';

/** tbf counts whole Ethernet frames: 1448 payload bytes (TCP with timestamps) per 1514-byte frame. */
export const TBF_GOODPUT = 0.956;
const USER_HZ = 100;

export interface CpuSnapshot {
  user: number; // jiffies: user + nice
  system: number; // system + irq + softirq
  steal: number;
  idle: number; // idle + iowait
}

export function readCpu(): CpuSnapshot {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
  return { user: user + nice, system: system + irq + softirq, steal, idle: idle + iowait };
}

export interface CpuUse {
  /** CPU seconds of the whole machine during the scenario */
  userS: number;
  systemS: number;
  busyS: number;
  wallS: number;
  cores: number;
  /** busy / (wall × cores), percent */
  meanPct: number;
  /** highest 1-second busy percentage */
  peakPct: number;
  /** seconds (of 1-second samples) with the machine ≥ 95 % busy */
  saturatedS: number;
  /** CPU seconds of the lab's own processes (see LabCpu) */
  labUserS?: number;
  labSystemS?: number;
  /** machine-wide busy % in the 2 s before the scenario, with nothing of the lab's moving: other tenants' load */
  backgroundPct?: number;
  /** machine user time minus the lab's user time: CPU that other users of the VM took during the scenario */
  foreignUserS?: number;
  /** busy % of each second */
  samples?: number[];
}

/** Samples /proc/stat every second until stopped. */
export class CpuMeter {
  readonly #start = readCpu();
  readonly #t0 = Date.now();
  #last = this.#start;
  #peak = 0;
  #saturated = 0;
  readonly #timer: NodeJS.Timeout;
  readonly samples: number[] = [];

  constructor() {
    this.#timer = setInterval(() => this.#sample(), 1000);
  }

  #sample(): void {
    const now = readCpu();
    const busy = now.user - this.#last.user + (now.system - this.#last.system) + (now.steal - this.#last.steal);
    const total = busy + (now.idle - this.#last.idle);
    this.#last = now;
    if (total <= 0) return;
    const pct = (100 * busy) / total;
    this.samples.push(Math.round(pct));
    this.#peak = Math.max(this.#peak, pct);
    if (pct >= 95) this.#saturated++;
  }

  stop(): CpuUse {
    clearInterval(this.#timer);
    const end = readCpu();
    const userS = (end.user - this.#start.user) / USER_HZ;
    const systemS = (end.system - this.#start.system) / USER_HZ;
    const busyS = userS + systemS + (end.steal - this.#start.steal) / USER_HZ;
    const wallS = (Date.now() - this.#t0) / 1000;
    const cores = cpus().length;
    return {
      userS: round(userS, 2),
      systemS: round(systemS, 2),
      busyS: round(busyS, 2),
      wallS: round(wallS, 2),
      cores,
      meanPct: round(wallS > 0 ? (100 * busyS) / (wallS * cores) : 0, 1),
      peakPct: round(Math.max(this.#peak, 0), 1),
      saturatedS: this.#saturated,
      samples: this.samples,
    };
  }
}

/** utime, stime, cutime, cstime of a process in seconds (cutime/cstime: its reaped children). */
export function procTimes(pid: number | 'self'): { user: number; system: number; cuser: number; csystem: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(f[11]) / USER_HZ, system: Number(f[12]) / USER_HZ, cuser: Number(f[13]) / USER_HZ, csystem: Number(f[14]) / USER_HZ };
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds used by the lab's own processes during a window: the lab process,
 * every child it reaped (exited children are added to its cutime/cstime), and the
 * children still running at the end. Kernel packet work done in softirq on other
 * processes' time or in ksoftirqd is not in here; the machine-wide figure has it.
 */
export class LabCpu {
  readonly #self = procTimes('self')!;
  readonly #start = new Map<number, { user: number; system: number }>();

  constructor(running: number[]) {
    for (const pid of running) {
      const t = procTimes(pid);
      if (t !== undefined) this.#start.set(pid, { user: t.user, system: t.system });
    }
  }

  stop(running: number[]): { userS: number; systemS: number } {
    const self = procTimes('self')!;
    let user = self.user - this.#self.user + (self.cuser - this.#self.cuser);
    let system = self.system - this.#self.system + (self.csystem - this.#self.csystem);
    const alive = new Set<number>();
    for (const pid of running) {
      const t = procTimes(pid);
      if (t === undefined) continue;
      alive.add(pid);
      const was = this.#start.get(pid) ?? { user: 0, system: 0 };
      user += t.user - was.user;
      system += t.system - was.system;
    }
    // children that were running at the start and were reaped since: their whole life is in cutime
    for (const [pid, was] of this.#start) {
      if (alive.has(pid)) continue;
      user -= was.user;
      system -= was.system;
    }
    return { userS: round(user, 2), systemS: round(system, 2) };
  }
}

/** CPU seconds (user + system) of every process on the machine, by pid, with its command name. */
export function allProcessCpu(): Map<number, { comm: string; s: number; ppid: number }> {
  const out = new Map<number, { comm: string; s: number; ppid: number }>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const f = stat.slice(close + 2).split(' ');
      out.set(Number(name), { comm, s: (Number(f[11]) + Number(f[12])) / USER_HZ, ppid: Number(f[1]) });
    } catch {
      /* gone */
    }
  }
  return out;
}

/**
 * The processes that are not the lab's and used the most CPU between two
 * snapshots (other users of the VM): evidence for a contaminated measurement.
 */
export function foreignTop(before: Map<number, { comm: string; s: number; ppid: number }>, after: Map<number, { comm: string; s: number; ppid: number }>, isLab: (pid: number, ppid: number) => boolean, n = 5): Array<{ pid: number; comm: string; cpuS: number }> {
  const rows: Array<{ pid: number; comm: string; cpuS: number }> = [];
  for (const [pid, a] of after) {
    if (isLab(pid, a.ppid)) continue;
    const d = a.s - (before.get(pid)?.s ?? 0);
    if (d >= 0.5) rows.push({ pid, comm: a.comm, cpuS: round(d, 1) });
  }
  return rows.sort((x, y) => y.cpuS - x.cpuS).slice(0, n);
}

/** Machine-wide busy percentage over `ms` (what else is running on the VM). */
export async function backgroundBusyPct(ms = 2000): Promise<number> {
  const a = readCpu();
  await new Promise((r) => setTimeout(r, ms));
  const b = readCpu();
  const busy = b.user - a.user + (b.system - a.system) + (b.steal - a.steal);
  const total = busy + (b.idle - a.idle);
  return total > 0 ? round((100 * busy) / total, 1) : 0;
}

/**
 * Packets the kernel dropped because a CPU's input backlog was full
 * (/proc/net/softnet_stat, second column, summed over CPUs; machine-wide).
 * Every frame crossing a veth pair passes that backlog, so on a saturated
 * machine this is where packets can be lost before any tbf sees them.
 */
export function softnetDrops(): number {
  let sum = 0;
  for (const line of readFileSync('/proc/net/softnet_stat', 'utf8').split('\n')) {
    const col = line.trim().split(/\s+/)[1];
    if (col !== undefined) sum += parseInt(col, 16);
  }
  return sum;
}

export function round(x: number, digits = 2): number {
  const m = 10 ** digits;
  return Math.round(x * m) / m;
}

export function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    const s = createReadStream(path, { highWaterMark: 1 << 20 });
    s.on('data', (d) => h.update(d));
    s.on('error', reject);
    s.on('end', () => resolve(h.digest('hex')));
  });
}

/** Nearest-rank percentile of the values (p in 0..100). */
export function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

export function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export interface Bound {
  /** seconds, from the set rates */
  raw: number;
  /** seconds, with the rates scaled by TBF_GOODPUT (what TCP can get through tbf) */
  adjusted: number;
  /** which term wins */
  term: 'server upload F/u_s' | 'slowest download F/d_min' | 'total upload N·F/(u_s+Σu_i)';
  /** client–server bound max(N·F/u_s, F/d_min), adjusted */
  clientServerAdjusted: number;
}

/**
 * Kumar–Ross lower bound for distributing F bytes from a server (upload us)
 * to peers (up/down in bit/s). `helpersUp`: the upload of hosts that help but
 * need no copy (a seed host of its own), counted in the total-upload term.
 */
export function kumarRoss(fileBytes: number, us: number, peers: Array<{ up: number; down: number }>, helpersUp = 0): Bound {
  const bits = fileBytes * 8;
  const n = peers.length;
  const dmin = Math.min(...peers.map((p) => p.down));
  const sumU = peers.reduce((s, p) => s + p.up, 0);
  const terms: Array<[Bound['term'], number]> = [
    ['server upload F/u_s', bits / us],
    ['slowest download F/d_min', bits / dmin],
    ['total upload N·F/(u_s+Σu_i)', (n * bits) / (us + helpersUp + sumU)],
  ];
  const [term, raw] = terms.reduce((a, b) => (b[1] > a[1] ? b : a));
  const cs = Math.max((n * bits) / us, bits / dmin);
  return { raw: round(raw, 3), adjusted: round(raw / TBF_GOODPUT, 3), term, clientServerAdjusted: round(cs / TBF_GOODPUT, 3) };
}

/** GET a path of a Shoal daemon's local API (unix socket), bounded in time. */
export function daemonApi(socketPath: string, path: string, timeoutMs = 3000): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        try {
          resolve(JSON.parse(body) as Record<string, unknown>);
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`daemon API ${socketPath}${path}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}
