/**
 * The swarm the scenarios run on: real processes on 127.0.0.1 with the
 * cluster's mutual TLS (test/fixtures/cluster.ts), a scheduler, a seed, N
 * peers and a fault-injecting origin (test/fixtures/origin.ts) whose content
 * history is kept, so a check knows every version the origin served and when.
 * Any process can be killed and restarted on the same data directory, API
 * socket and (scheduler) port.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, run, type Proc } from '../../test/fixtures/cluster.js';
import { startOrigin, type Origin } from '../../test/fixtures/origin.js';
import type { Sizes } from './options.js';
import { totalUsage, type Usage } from './procs.js';

/** Timeouts short enough that a scenario's faults play out in seconds (durations as strings: numbers are seconds). */
const DAEMON_CONFIG = `download:
  pieceTimeout: 3s
  scheduleTimeout: 5s
  starvationTimeout: 4s
source:
  timeout: 5s
`;

async function waitFor(proc: Proc, pattern: RegExp, ms = 30_000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const m = pattern.exec(proc.stderr());
    if (m !== null) return m;
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) throw new Error(`process exited before it was ready: ${proc.stderr().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`not ready within ${ms} ms (${pattern}): ${proc.stderr().slice(-2000)}`);
}

/** A TypeScript file run as a process of its own (a fixture such as the liar), as test/fixtures/cluster.ts runs `shoal`. */
export function runScript(script: string, args: string[]): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | string>((res) => child.on('exit', (c, s) => res(c ?? s ?? -1)));
  return {
    child,
    stderr: () => err,
    exited,
    async kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export function alive(proc: Proc): boolean {
  return proc.child.exitCode === null && proc.child.signalCode === null;
}

/** One daemon: restartable on the same data directory and API socket. */
export class Node {
  proc!: Proc;
  uploadPort = 0;
  mirrorPort: number | undefined;
  proxyPort: number | undefined;
  /** Times it was started. */
  starts = 0;
  readonly #args: string[];
  readonly #cluster: Cluster;
  readonly #launch: ((args: string[]) => Proc) | undefined;

  constructor(
    cluster: Cluster,
    readonly name: string,
    readonly data: string,
    readonly api: string,
    args: string[],
    launch?: (args: string[]) => Proc,
  ) {
    this.#cluster = cluster;
    this.#args = args;
    this.#launch = launch;
  }

  get pid(): number | undefined {
    return alive(this.proc) ? this.proc.child.pid : undefined;
  }

  async start(): Promise<void> {
    const proc = this.#launch === undefined ? run(this.#args) : this.#launch(this.#args);
    this.#cluster.procs.push(proc);
    this.proc = proc;
    this.starts++;
    const m = await waitFor(proc, /upload port (\d+)[^\n]*\n/);
    this.uploadPort = Number(m[1]);
    const line = m[0];
    const mirror = /mirror 127\.0\.0\.1:(\d+)/.exec(line)?.[1];
    const proxy = /proxy 127\.0\.0\.1:(\d+)/.exec(line)?.[1];
    this.mirrorPort = mirror === undefined ? undefined : Number(mirror);
    this.proxyPort = proxy === undefined ? undefined : Number(proxy);
  }

  /** SIGKILL; resolves with how it ended ('SIGKILL' when the kill is what ended it). */
  kill(): Promise<number | string> {
    return this.proc.kill('SIGKILL');
  }

  async restart(): Promise<void> {
    if (alive(this.proc)) await this.kill();
    await this.start();
  }
}

export class SchedulerNode {
  proc!: Proc;
  url = '';
  port = 0;
  starts = 0;
  readonly #cluster: Cluster;

  constructor(cluster: Cluster) {
    this.#cluster = cluster;
  }

  get pid(): number | undefined {
    return alive(this.proc) ? this.proc.child.pid : undefined;
  }

  async start(): Promise<void> {
    const s = await this.#cluster.scheduler(this.port);
    this.proc = s.proc;
    this.url = s.url;
    this.port = s.port;
    this.starts++;
  }

  kill(): Promise<number | string> {
    return this.proc.kill('SIGKILL');
  }

  async restart(): Promise<void> {
    if (alive(this.proc)) await this.kill();
    await this.start();
  }
}

interface Version {
  readonly content: Buffer;
  readonly from: number;
  to: number;
}

/** The origin, with every version of every path it served and when. */
export class ChaosOrigin {
  readonly files = new Map<string, Buffer>();
  readonly #history = new Map<string, Version[]>();
  server!: Origin;

  async start(rateLimit: number): Promise<void> {
    this.server = await startOrigin({ files: this.files, rateLimit });
  }

  url(path: string): string {
    return `${this.server.url}${path}`;
  }

  /** Serves `content` at `path` from now on (a content change when the path had a version). */
  put(path: string, content: Buffer): void {
    const now = performance.now();
    const versions = this.#history.get(path) ?? [];
    const last = versions.at(-1);
    if (last !== undefined) last.to = now;
    versions.push({ content, from: now, to: Infinity });
    this.#history.set(path, versions);
    this.files.set(path, content);
  }

  /** The versions `path` had at some moment in [from, to] (performance.now() times). */
  versionsBetween(path: string, from: number, to: number): Buffer[] {
    return (this.#history.get(path) ?? []).filter((v) => v.from <= to && v.to >= from).map((v) => v.content);
  }

  /** Every version the path ever had. */
  versions(path: string): Buffer[] {
    return (this.#history.get(path) ?? []).map((v) => v.content);
  }
}

export class Swarm {
  readonly cluster = new Cluster();
  readonly origin = new ChaosOrigin();
  readonly scheduler: SchedulerNode;
  seed!: Node;
  readonly peers: Node[] = [];
  /** Daemons started for one scenario (fuzz target, disk-full peer, soak daemon, liar). */
  readonly extras: Node[] = [];
  readonly config: string;
  #n = 0;

  constructor(readonly sizes: Sizes) {
    this.scheduler = new SchedulerNode(this.cluster);
    this.config = join(this.cluster.dir, 'daemon.yaml');
  }

  get tlsDir(): string {
    if (this.cluster.tlsDir === undefined) throw new Error('the swarm is not secured yet');
    return this.cluster.tlsDir;
  }

  async start(): Promise<void> {
    writeFileSync(this.config, DAEMON_CONFIG);
    await this.cluster.secure();
    await this.origin.start(4 * parseRate(this.sizes.uploadRate));
    await this.scheduler.start();
    this.seed = this.node({ seed: true });
    await this.seed.start();
    for (let i = 0; i < this.sizes.peers; i++) this.peers.push(this.node());
    await Promise.all(this.peers.map((p) => p.start()));
  }

  /** A daemon of the cluster (not started). `dataDir`: put its data somewhere else (a tmpfs). */
  node(options: { seed?: boolean; dataDir?: string; extra?: string[]; uploadRate?: string | null; launch?: (args: string[]) => Proc } = {}): Node {
    const name = `${options.seed === true ? 'seed' : 'peer'}${this.#n++}`;
    const data = options.dataDir ?? this.cluster.path(name);
    const api = this.cluster.path(`${name}.sock`);
    const args = ['daemon', '--config', this.config, '--scheduler', this.scheduler.url, '--listen', '127.0.0.1:0', '--data', data, '--api', api, '--log-level', 'warn'];
    args.push('--tls', join(this.tlsDir, options.seed === true ? 'seed' : 'peer'));
    if (options.seed === true) args.push('--seed');
    const rate = options.uploadRate === undefined ? this.sizes.uploadRate : options.uploadRate;
    if (rate !== null) args.push('--upload-rate', rate);
    args.push(...(options.extra ?? []));
    return new Node(this.cluster, name, data, api, args, options.launch);
  }

  /** Every process of the swarm proper: scheduler, seed, peers. */
  get pids(): Array<number | undefined> {
    return [this.scheduler.pid, this.seed.pid, ...this.peers.map((p) => p.pid)];
  }

  usage(): Usage {
    return totalUsage(this.pids);
  }

  /** Restarts whatever of the swarm proper is not running; names what had died. */
  async heal(): Promise<string[]> {
    const dead: string[] = [];
    if (this.scheduler.pid === undefined) {
      dead.push('scheduler');
      await this.scheduler.start();
    }
    for (const node of [this.seed, ...this.peers]) {
      if (node.pid !== undefined) continue;
      dead.push(node.name);
      await node.start();
    }
    return dead;
  }

  async close(): Promise<void> {
    await this.cluster.close();
    await this.origin.server.close();
  }
}

function parseRate(rate: string): number {
  const m = /^(\d+)MiB$/.exec(rate);
  if (m === null) throw new RangeError(`upload rate ${rate}: write it as NMiB`);
  return Number(m[1]) * 1024 * 1024;
}
