/**
 * The lab's hosts: network namespaces joined by veth pairs to a bridge that
 * lives in a namespace of its own (the "switch"), so the root namespace is never
 * touched. Every link is shaped with tbf on the egress of both veth ends: the
 * host end is that host's upload, the switch end its download.
 *
 *   shl-<run>-sw   bridge br0; one veth end per host, named after the host (o, p1, p2 …)
 *   shl-<run>-o    origin host, eth0 10.77.0.1/16
 *   shl-<run>-pK   peer host K, eth0 10.77.1.K/16 (K ≤ 250; 10.77.2.x … beyond)
 *
 * Everything is named with the prefix `shl-` and the run id (the lab process's
 * pid in base 36), so a later run can find and remove what a killed run left.
 * Every command is bounded in time.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const PREFIX = 'shl-';
export const SUBNET = '10.77.0.0/16';

/** Bits per second from "100mbit", "1gbit", "500kbit", "2e8" (bits). */
export function parseRate(text: string): number {
  const m = /^(\d+(?:\.\d+)?(?:e\d+)?)\s*(bit|kbit|mbit|gbit)?$/i.exec(text.trim());
  if (m === null) throw new Error(`bad rate "${text}" (e.g. 100mbit, 1gbit)`);
  const unit = (m[2] ?? 'bit').toLowerCase();
  const mult = unit === 'gbit' ? 1e9 : unit === 'mbit' ? 1e6 : unit === 'kbit' ? 1e3 : 1;
  return Math.round(Number(m[1]) * mult);
}

export function formatRate(bps: number): string {
  if (bps >= 1e9 && bps % 1e9 === 0) return `${bps / 1e9}gbit`;
  if (bps >= 1e6 && bps % 1e6 === 0) return `${bps / 1e6}mbit`;
  if (bps >= 1e3 && bps % 1e3 === 0) return `${bps / 1e3}kbit`;
  return `${bps}bit`;
}

export interface HostSpec {
  /** short name: "o" for the origin, "p1" … for peers; also the switch-side veth name */
  readonly name: string;
  readonly ns: string;
  readonly ip: string;
  /** bits per second */
  readonly up: number;
  readonly down: number;
}

export interface CmdResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command synchronously with a time bound; throws on failure unless `allowFail`. */
export function sh(argv: string[], options: { timeoutMs?: number; allowFail?: boolean; input?: string } = {}): CmdResult {
  const r = spawnSync(argv[0]!, argv.slice(1), {
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 15_000,
    input: options.input,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const res = { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  if (options.allowFail !== true && (r.status !== 0 || r.error !== undefined)) {
    throw new Error(`command failed (${r.error?.message ?? `exit ${String(r.status)}`}): ${argv.join(' ')}\n${res.stderr.trim()}`);
  }
  return res;
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** Why namespaces cannot be used here, or undefined when they can. */
export function namespaceProblem(): string | undefined {
  if (!isRoot()) return 'the lab needs root (network namespaces, veth, tc)';
  const ip = sh(['ip', 'netns', 'list'], { allowFail: true, timeoutMs: 5000 });
  if (ip.status !== 0) return `ip netns does not work: ${ip.stderr.trim() || 'ip not found'}`;
  const tc = sh(['tc', '-V'], { allowFail: true, timeoutMs: 5000 });
  if (tc.status !== 0) return 'tc (iproute2) not found';
  const probe = `${PREFIX}probe-${process.pid.toString(36)}`;
  const add = sh(['ip', 'netns', 'add', probe], { allowFail: true, timeoutMs: 5000 });
  if (add.status !== 0) return `cannot create a network namespace: ${add.stderr.trim()}`;
  sh(['ip', 'netns', 'del', probe], { allowFail: true, timeoutMs: 5000 });
  return undefined;
}

/** True when the kernel has sch_netem (probed on a veth in a scratch namespace). */
export function probeNetem(): boolean {
  const ns = `${PREFIX}probe-${process.pid.toString(36)}`;
  sh(['ip', 'netns', 'add', ns], { allowFail: true, timeoutMs: 5000 });
  try {
    sh(['ip', '-n', ns, 'link', 'add', 'pa', 'type', 'veth', 'peer', 'name', 'pb'], { timeoutMs: 5000 });
    const r = sh(['tc', '-n', ns, 'qdisc', 'add', 'dev', 'pa', 'root', 'netem', 'delay', '1ms'], { allowFail: true, timeoutMs: 5000 });
    return r.status === 0;
  } catch {
    return false;
  } finally {
    sh(['ip', 'netns', 'del', ns], { allowFail: true, timeoutMs: 5000 });
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Kills every process inside a namespace (all of them were started by the lab). */
function killNamespacePids(ns: string, signal: NodeJS.Signals): number {
  const r = sh(['ip', 'netns', 'pids', ns], { allowFail: true, timeoutMs: 5000 });
  let n = 0;
  for (const line of r.stdout.split('\n')) {
    const pid = Number(line.trim());
    if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) continue;
    try {
      process.kill(pid, signal);
      n++;
    } catch {
      /* gone */
    }
  }
  return n;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Deletes namespaces (after killing what runs in them), bounded in time. */
export function deleteNamespaces(names: string[]): void {
  if (names.length === 0) return;
  let alive = 0;
  for (const ns of names) alive += killNamespacePids(ns, 'SIGTERM');
  const deadline = Date.now() + 3000;
  while (alive > 0 && Date.now() < deadline) {
    sleepSync(100);
    alive = names.reduce((n, ns) => n + (sh(['ip', 'netns', 'pids', ns], { allowFail: true, timeoutMs: 5000 }).stdout.trim() === '' ? 0 : 1), 0);
  }
  for (const ns of names) killNamespacePids(ns, 'SIGKILL');
  for (const ns of names) sh(['ip', 'netns', 'del', ns], { allowFail: true, timeoutMs: 10_000 });
}

/** Lab namespaces and temp dirs left behind by runs whose process is gone. */
export function cleanupStale(log: (s: string) => void = () => undefined): void {
  const list = sh(['ip', 'netns', 'list'], { allowFail: true, timeoutMs: 5000 }).stdout;
  const stale: string[] = [];
  for (const line of list.split('\n')) {
    const ns = line.trim().split(/\s+/)[0] ?? '';
    const m = /^shl-([0-9a-z]+)-/.exec(ns);
    if (m === null) continue;
    const owner = m[1] === 'probe' ? undefined : parseInt(m[1]!, 36);
    if (owner === undefined || !pidAlive(owner)) stale.push(ns);
  }
  if (stale.length > 0) {
    log(`removing ${stale.length} namespace(s) left by an earlier lab run: ${stale.join(' ')}`);
    deleteNamespaces(stale);
  }
  for (const name of readdirSync(tmpdir())) {
    const m = /^shl-lab-([0-9a-z]+)-/.exec(name);
    if (m === null) continue;
    if (!pidAlive(parseInt(m[1]!, 36))) rmSync(join(tmpdir(), name), { recursive: true, force: true });
  }
}

/** SNMP counters of a namespace by name: nstat, absolute values, its history file untouched. */
export function nstat(ns: string, names: string[]): Record<string, number> {
  const r = sh(['ip', 'netns', 'exec', ns, 'nstat', '-asz', ...names], { allowFail: true, timeoutMs: 5000 });
  const out: Record<string, number> = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^(\w+)\s+(\d+)/.exec(line);
    if (m !== null && names.includes(m[1]!)) out[m[1]!] = Number(m[2]);
  }
  return out;
}

export interface TopologyOptions {
  peers: number;
  peerUp: number;
  peerDown: number;
  originUp: number;
  originDown: number;
  /** `slowPeers` peers get `slowRate` both ways: the first ones, or spread evenly (`slowSpread`) */
  slowPeers?: number;
  slowRate?: number;
  slowSpread?: boolean;
  /**
   * Cap every host's GSO size so that no TCP segment train is larger than the
   * smallest tbf bucket (default true). tbf cannot pass a packet larger than its
   * bucket, so it splits such a GSO packet into MTU-sized frames in software, and
   * every frame then crosses the bridge, the other tbf and the receiver's stack
   * on its own: per byte up to 15 times the packets, all on the lab machine's
   * CPU. A real switch does none of that on a host's CPU. The cap changes no
   * rate and no bucket, only how big the units are that the emulated wire
   * carries; `false` keeps the kernel's default (64 KiB) for comparison.
   */
  capGso?: boolean;
  /**
   * TCP congestion control for every host (net.ipv4.tcp_congestion_control
   * in each namespace). Undefined: what a new namespace inherits from the
   * machine. It decides how hard a sender pushes into a shaped queue, so it
   * is recorded with every result (`tcpCongestionControl`).
   */
  tcpCc?: string | undefined;
  /**
   * A host of its own for Shoal's scheduler and seed peer ("s", 10.77.0.2,
   * the origin's rates), instead of the origin host. Then the origin's link
   * carries the seed's one fetch and nothing of the seed's uploads.
   */
  seedHost?: boolean;
  /** each tbf's bucket, in ms at its rate (default TBF_BURST_MS); it also sets the GSO cap */
  burstMs?: number | undefined;
}

/**
 * Whether peer i (from 0) of `peers` is one of the `slow` slow ones: the first
 * ones (they start, register and are placed first), or with `spread` every
 * (peers / slow)-th, ending with the last peer (a mixed fleet in no order).
 */
export function isSlowPeer(i: number, peers: number, slow: number, spread: boolean): boolean {
  if (!spread) return i < slow;
  for (let j = 1; j <= slow; j++) if (Math.round((j * peers) / slow) - 1 === i) return true;
  return false;
}

/** A tbf's default bucket: 4 ms at its rate. */
export const TBF_BURST_MS = 4;

/** The bucket tbfArgs gives a rate, in bytes: burstMs at the rate, at least 10 full frames. */
function tbfBurst(bps: number, burstMs = TBF_BURST_MS): number {
  return Math.max(15_140, Math.ceil((bps / 8) * (burstMs / 1000)));
}

/**
 * The largest GSO size whose packets every tbf of the topology passes whole:
 * tbf charges a GSO packet its payload plus one set of headers per MSS-sized
 * frame (66 B for 1448 B), so it must fit the smallest bucket with that added.
 */
export function gsoCap(rates: number[], burstMs = TBF_BURST_MS): number {
  const bucket = Math.min(...rates.map((r) => tbfBurst(r, burstMs)));
  // 65 536 B: the largest IPv4 GSO packet without BIG TCP
  return Math.min(65_536, Math.floor((bucket * 1448) / 1514) - 1024);
}

/** One tbf: a bucket of burstMs at the rate (at least 10 full frames), queue of 20 ms. */
function tbfArgs(bps: number, burstMs?: number): string[] {
  return ['tbf', 'rate', `${bps}bit`, 'burst', String(tbfBurst(bps, burstMs)), 'latency', '20ms'];
}

export class Topology {
  readonly run = process.pid.toString(36);
  readonly sw = `${PREFIX}${this.run}-sw`;
  readonly origin: HostSpec;
  /** Shoal's scheduler and seed, when they have a host of their own (TopologyOptions.seedHost) */
  readonly seedHost: HostSpec | undefined;
  readonly peers: HostSpec[];
  #created: string[] = [];

  constructor(readonly options: TopologyOptions) {
    const slow = options.slowPeers ?? 0;
    this.origin = { name: 'o', ns: `${PREFIX}${this.run}-o`, ip: '10.77.0.1', up: options.originUp, down: options.originDown };
    this.seedHost = options.seedHost === true ? { name: 's', ns: `${PREFIX}${this.run}-s`, ip: '10.77.0.2', up: options.originUp, down: options.originDown } : undefined;
    this.peers = Array.from({ length: options.peers }, (_, i) => {
      const k = i + 1;
      const ip = `10.77.${1 + Math.floor((k - 1) / 250)}.${1 + ((k - 1) % 250)}`;
      const isSlow = isSlowPeer(i, options.peers, slow, options.slowSpread === true);
      return {
        name: `p${k}`,
        ns: `${PREFIX}${this.run}-p${k}`,
        ip,
        up: isSlow ? options.slowRate! : options.peerUp,
        down: isSlow ? options.slowRate! : options.peerDown,
      };
    });
  }

  /** the GSO size every host's eth0 is capped at (TopologyOptions.capGso), or undefined */
  get gsoMaxSize(): number | undefined {
    return this.options.capGso === false ? undefined : gsoCap(this.hosts.flatMap((h) => [h.up, h.down]), this.options.burstMs);
  }

  get hosts(): HostSpec[] {
    return [this.origin, ...(this.seedHost === undefined ? [] : [this.seedHost]), ...this.peers];
  }

  get namespaces(): string[] {
    return [this.sw, ...this.hosts.map((h) => h.ns)];
  }

  create(): void {
    const add = (ns: string): void => {
      sh(['ip', 'netns', 'add', ns]);
      this.#created.push(ns);
    };
    const gso = this.gsoMaxSize;
    add(this.sw);
    sh(['ip', '-n', this.sw, 'link', 'add', 'br0', 'type', 'bridge']);
    // No STP, no forwarding delay: ports forward at once.
    sh(['ip', '-n', this.sw, 'link', 'set', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
    sh(['ip', '-n', this.sw, 'link', 'set', 'br0', 'up']);
    sh(['ip', '-n', this.sw, 'link', 'set', 'lo', 'up']);
    for (const h of this.hosts) {
      add(h.ns);
      sh(['ip', '-n', this.sw, 'link', 'add', h.name, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.ns]);
      sh(['ip', '-n', this.sw, 'link', 'set', h.name, 'master', 'br0']);
      sh(['ip', '-n', this.sw, 'link', 'set', h.name, 'up']);
      sh(['ip', '-n', h.ns, 'addr', 'add', `${h.ip}/16`, 'dev', 'eth0']);
      if (gso !== undefined) sh(['ip', '-n', h.ns, 'link', 'set', 'dev', 'eth0', 'gso_max_size', String(gso)]);
      sh(['ip', '-n', h.ns, 'link', 'set', 'eth0', 'up']);
      sh(['ip', '-n', h.ns, 'link', 'set', 'lo', 'up']);
      if (this.options.tcpCc !== undefined) sh(['ip', 'netns', 'exec', h.ns, 'sysctl', '-q', '-w', `net.ipv4.tcp_congestion_control=${this.options.tcpCc}`]);
      // host end egress = this host's upload; switch end egress = its download
      sh(['tc', '-n', h.ns, 'qdisc', 'replace', 'dev', 'eth0', 'root', ...tbfArgs(h.up, this.options.burstMs)]);
      sh(['tc', '-n', this.sw, 'qdisc', 'replace', 'dev', h.name, 'root', ...tbfArgs(h.down, this.options.burstMs)]);
    }
  }

  /** The congestion control the hosts' TCP uses (read back from the origin's namespace). */
  get tcpCongestionControl(): string {
    return sh(['ip', 'netns', 'exec', this.origin.ns, 'cat', '/proc/sys/net/ipv4/tcp_congestion_control'], { timeoutMs: 5000 }).stdout.trim();
  }

  /** tx/rx counters of a host's eth0 (the host end of its link). */
  counters(host: HostSpec): { txBytes: number; txPackets: number; rxBytes: number; rxPackets: number } {
    const r = sh(['ip', '-n', host.ns, '-s', '-j', 'link', 'show', 'eth0'], { timeoutMs: 5000 });
    const j = JSON.parse(r.stdout) as Array<{ stats64?: { rx: { bytes: number; packets: number }; tx: { bytes: number; packets: number } } }>;
    const s = j[0]?.stats64;
    if (s === undefined) throw new Error(`no stats64 for ${host.ns} eth0: ${r.stdout}`);
    return { txBytes: s.tx.bytes, txPackets: s.tx.packets, rxBytes: s.rx.bytes, rxPackets: s.rx.packets };
  }

  /**
   * Packets each host's two tbf qdiscs have dropped so far: `up` on the host's
   * end (its upload), `down` on the switch's end (its download); `dev`, what
   * the two veth ends dropped themselves.
   */
  qdiscDrops(): Map<string, { up: number; down: number; dev: number }> {
    const drops = (ns: string, dev: string): number => {
      const r = sh(['tc', '-n', ns, '-s', '-j', 'qdisc', 'show', 'dev', dev], { allowFail: true, timeoutMs: 5000 });
      try {
        const j = JSON.parse(r.stdout) as Array<{ root?: boolean; drops?: number }>;
        return j.find((q) => q.root === true)?.drops ?? 0;
      } catch {
        return 0;
      }
    };
    // Frames a veth could not hand to its peer (its ring full) count as the device's tx/rx drops.
    const devDrops = (ns: string, dev: string): number => {
      const r = sh(['ip', '-n', ns, '-s', '-j', 'link', 'show', dev], { allowFail: true, timeoutMs: 5000 });
      try {
        const j = JSON.parse(r.stdout) as Array<{ stats64?: { rx: { dropped: number }; tx: { dropped: number } } }>;
        const st = j[0]?.stats64;
        return st === undefined ? 0 : st.rx.dropped + st.tx.dropped;
      } catch {
        return 0;
      }
    };
    return new Map(this.hosts.map((h) => [h.name, { up: drops(h.ns, 'eth0'), down: drops(this.sw, h.name), dev: devDrops(h.ns, 'eth0') + devDrops(this.sw, h.name) }]));
  }

  /** TCP loss-recovery counters of a host's namespace (nstat, absolute values), without the `TcpExtTCP` prefix. */
  tcpExt(host: HostSpec): Record<string, number> {
    const names = ['TcpExtTCPTimeouts', 'TcpExtTCPSpuriousRTOs', 'TcpExtTCPLossProbes', 'TcpExtTCPFastRetrans', 'TcpExtTCPSlowStartRetrans', 'TcpExtTCPLostRetransmit', 'TcpExtTCPSackRecoveryFail', 'TcpExtTCPDSACKRecv'];
    const counters = nstat(host.ns, names);
    return Object.fromEntries(Object.entries(counters).map(([name, value]) => [name.replace('TcpExtTCP', ''), value]));
  }

  /** TCP segments the host's namespace has retransmitted so far (/proc/net/snmp, Tcp RetransSegs). */
  retransmits(host: HostSpec): number {
    const r = sh(['ip', 'netns', 'exec', host.ns, 'cat', '/proc/net/snmp'], { timeoutMs: 5000 });
    const lines = r.stdout.split('\n').filter((l) => l.startsWith('Tcp:'));
    const names = lines[0]?.split(/\s+/) ?? [];
    const values = lines[1]?.split(/\s+/) ?? [];
    const i = names.indexOf('RetransSegs');
    return i < 0 ? 0 : Number(values[i] ?? 0);
  }

  destroy(): void {
    const names = [...this.#created].reverse();
    this.#created = [];
    deleteNamespaces(names);
    // anything of this run that the list missed
    const left = sh(['ip', 'netns', 'list'], { allowFail: true, timeoutMs: 5000 })
      .stdout.split('\n')
      .map((l) => l.trim().split(/\s+/)[0] ?? '')
      .filter((ns) => ns.startsWith(`${PREFIX}${this.run}-`));
    deleteNamespaces(left);
  }
}

/** A process started inside a namespace with `ip netns exec` (which execs: same pid). */
export interface NsProc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly startedAt: number;
  output(): string;
  /** Resolves with the exit code (or the signal name) and the time of exit. */
  readonly exited: Promise<{ code: number | string; at: number }>;
  running(): boolean;
}

/**
 * Environment for lab processes: no proxies (everything stays inside the lab),
 * and no NODE_EXTRA_CA_CERTS: a CA bundle the operator's shell names for Node
 * belongs to that shell, not to the lab's hosts, and Node parses it at every
 * start (0.04 s of CPU per process here, twenty `shoal get` at once).
 */
export function labEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (/^(https?|all|no|ftp)_proxy$/i.test(k)) delete env[k];
  delete env['NODE_EXTRA_CA_CERTS'];
  return { ...env, NO_PROXY: '*', no_proxy: '*', ...extra };
}

export class Procs {
  readonly all: NsProc[] = [];

  start(ns: string, name: string, argv: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; keepOutput?: number } = {}): NsProc {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: options.cwd,
      env: labEnv(options.env),
    });
    const keep = options.keepOutput ?? 64 * 1024;
    // LAB_LOG_DIR: every process's whole output also goes to <dir>/<name>.log (for diagnosis).
    const logDir = process.env['LAB_LOG_DIR'];
    if (logDir !== undefined && logDir !== '') mkdirSync(logDir, { recursive: true });
    const logFile = logDir === undefined || logDir === '' ? undefined : createWriteStream(join(logDir, `${name.replace(/[^\w.@-]/g, '_')}.log`), { flags: 'a' });
    let out = '';
    const take = (d: Buffer): void => {
      logFile?.write(d);
      out += d.toString();
      if (out.length > keep * 2) out = out.slice(-keep);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    const closed = new Promise<void>((res) => child.on('close', () => res()));
    void closed.then(() => logFile?.end());
    // 'exit' can come before the last of the output has been read: `exited`
    // keeps the exit's time but resolves once the pipes are drained too
    // (bounded, in case something the process started still holds them).
    const exited = new Promise<{ code: number | string; at: number }>((res) => {
      child.on('exit', (code, signal) => {
        const at = Date.now();
        void Promise.race([closed, new Promise((r) => setTimeout(r, 2000))]).then(() => res({ code: code ?? signal ?? -1, at }));
      });
      child.on('error', (err) => res({ code: `spawn error: ${err.message}`, at: Date.now() }));
    });
    const p: NsProc = {
      name,
      child,
      pid: child.pid ?? -1,
      startedAt: Date.now(),
      output: () => out,
      exited,
      running: () => child.exitCode === null && child.signalCode === null,
    };
    this.all.push(p);
    return p;
  }

  /** Waits (bounded) until the process prints `pattern`; throws if it exits or the time runs out. */
  async waitFor(p: NsProc, pattern: RegExp, ms = 30_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const m = pattern.exec(p.output());
      if (m !== null) return m;
      if (!p.running()) throw new Error(`${p.name} exited early: ${p.output().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${p.name}: timed out after ${ms} ms waiting for ${String(pattern)}: ${p.output().slice(-2000)}`);
  }

  /** SIGTERM, then SIGKILL after `graceMs`, to every process still running; by pid. */
  async stopAll(graceMs = 3000): Promise<void> {
    const running = this.all.filter((p) => p.running());
    for (const p of running) signal(p.pid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (running.some((p) => p.running()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const p of running) if (p.running()) signal(p.pid, 'SIGKILL');
    await Promise.race([Promise.all(running.map((p) => p.exited)), new Promise((r) => setTimeout(r, 2000))]);
    this.all.length = 0;
  }

  /** Synchronous SIGKILL of everything still running (for exit and signal handlers). */
  killAllSync(): void {
    for (const p of this.all) if (p.running()) signal(p.pid, 'SIGKILL');
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  if (pid <= 1) return;
  try {
    process.kill(pid, sig);
  } catch {
    /* gone */
  }
}

export function dirExists(path: string): boolean {
  return existsSync(path);
}
