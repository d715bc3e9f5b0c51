/**
 * One lab point: build the topology, make the file, run the chosen scenarios on
 * it one after another, tear everything down. Used by bench/lab/run.ts (the
 * `npm run lab` CLI) and test/lab.test.ts.
 *
 * Cleanup of everything created (namespaces and every process inside them, the
 * temp dir) happens at the end, on failure, and on SIGINT/SIGTERM (installed by
 * installSignalCleanup).
 */
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Bound, kumarRoss, round, TBF_GOODPUT } from './measure.js';
import { cleanupStale, formatRate, namespaceProblem, probeNetem, TBF_BURST_MS, Topology } from './netns.js';
import { type LabImage, makeLabImage, runImageScenario, startLabRegistry } from './image.js';
import { FILES_SCENARIOS, type FilesScenario, makeLabFiles, runFilesScenario, type LabFiles } from './files.js';
import { type Ctx, IMAGE_SCENARIOS, shoalCommand, type LabFile, REPO, runScenario, type ScenarioName, type ScenarioResult, startOriginServer } from './scenarios.js';
import { Procs } from './netns.js';

export interface PointOptions {
  peers: number;
  /** file size in bytes */
  sizeBytes: number;
  peerRate: number;
  originUp: number;
  originDown: number;
  slowPeers: number;
  slowRate: number;
  /** the slow peers spread evenly instead of first (TopologyOptions.slowSpread) */
  slowSpread?: boolean | undefined;
  /** cap the hosts' GSO size at the smallest tbf bucket (netns.ts, TopologyOptions.capGso) */
  capGso: boolean;
  /** TCP congestion control for every host (TopologyOptions.tcpCc); undefined: the machine's */
  tcpCc?: string | undefined;
  /** Shoal's scheduler and seed on a host of their own (TopologyOptions.seedHost) */
  seedHost?: boolean;
  /** each tbf's bucket in ms at its rate (TopologyOptions.burstMs); undefined: TBF_BURST_MS */
  burstMs?: number | undefined;
  scenarios: ScenarioName[];
  /** each scenario's bound: max(minTimeoutS, timeoutFactor × the direct-download estimate) */
  timeoutFactor: number;
  minTimeoutS: number;
  log: (s: string) => void;
  /** how `shoal` is run; default: a snapshot of dist/shoal.mjs taken when the point starts */
  shoal?: ShoalBin;
  /** YAML config for the Shoal scheduler */
  schedulerConfig?: string | undefined;
  /** extra `shoal get` arguments */
  getArgs?: string[] | undefined;
  /** YAML config for every Shoal daemon */
  daemonConfig?: string | undefined;
  /** every Shoal daemon announces its link's upload rate (Ctx.declareRates) */
  declareRates?: boolean | undefined;
  /** the seed daemon alone announces its link's upload rate (Ctx.declareSeedRate) */
  declareSeedRate?: boolean | undefined;
  /** Shoal's components without TLS (`--insecure`), instead of the cluster's mutual TLS made for the run */
  noTls?: boolean | undefined;
  /**
   * The image benchmark (bench/lab/image.ts): the payload is an OCI image of about
   * sizeBytes in a registry on the origin host, and the scenarios are IMAGE_SCENARIOS.
   */
  image?: boolean;
  /** The many-files benchmark (bench/lab/files.ts): sizeBytes is split into this many files of equal size; the scenarios are FILES_SCENARIOS. */
  files?: number | undefined;
  /** the file system the work directory is on (`--fs`, ./fs.ts), for the record */
  fileSystem?: string | undefined;
}

export interface ShoalBin {
  /** script run with node, or the single executable */
  bin: string;
  /** what it is: a snapshot of the bundle, the script bin/shoal.mjs, or a copy of the single executable */
  kind: 'bundle snapshot' | 'bin/shoal.mjs' | 'single executable';
  bundleSha256?: string;
  bundleMtime?: string;
  gitHead?: string;
  /** src/ files with uncommitted changes when the snapshot was taken */
  srcChanges?: string[];
}

export interface PointResult {
  config: {
    peers: number;
    sizeBytes: number;
    peerRate: string;
    originUp: string;
    originDown: string;
    slowPeers: number;
    slowRate: string;
    /** where the slow peers are: the first ones, or spread evenly */
    slowPlacement?: 'first' | 'spread';
    /** the hosts' GSO size limit in bytes, or null when left at the kernel default */
    gsoMaxSize: number | null;
    /** each tbf's bucket, in ms at its rate */
    tbfBurstMs: number;
    /** net.ipv4.tcp_congestion_control in the hosts' namespaces */
    tcpCongestionControl?: string;
    /** Shoal's scheduler and seed ran on a host of their own, with the origin's rates */
    seedHost?: boolean;
    /** every Shoal daemon announced its link's upload rate */
    declareRates?: boolean;
    /** the seed daemon alone announced its link's upload rate */
    declareSeedRate?: boolean;
    /** Shoal ran with mutual TLS between its components (certificates made by `shoal cluster init` for the run) */
    tls?: boolean;
    /** the file system of every host's data and outputs: the machine's temp dir's, or the `--fs` one */
    fileSystem?: string;
  };
  bound: Bound;
  /** the direct-download estimate max(N·F/u_s, F/d_min) with tbf goodput, seconds */
  directEstimateS: number;
  timeoutS: number;
  netem: boolean;
  tbfGoodput: number;
  startedAt: string;
  shoal?: ShoalBin;
  /** the image benchmark's image: F = config + layers */
  image?: { ref: string; manifestDigest: string; bytes: number; blobs: Array<{ kind: string; digest: string; size: number }> };
  results: ScenarioResult[];
  error?: string;
}

// ------------------------------------------------------------- cleanup registry

const live = { topologies: new Set<Topology>(), dirs: new Set<string>(), mounts: new Set<() => void>() };

/** `remove` runs at cleanup (signal or exit) before the temp dirs go. */
export function onCleanup(remove: () => void): void {
  live.mounts.add(remove);
}

function cleanupAllSync(): void {
  for (const t of live.topologies) {
    try {
      t.destroy();
    } catch {
      /* keep going */
    }
  }
  live.topologies.clear();
  for (const m of live.mounts) {
    try {
      m();
    } catch {
      /* keep going */
    }
  }
  live.mounts.clear();
  for (const d of live.dirs) rmSync(d, { recursive: true, force: true });
  live.dirs.clear();
}

let installed = false;
/** On SIGINT/SIGTERM (and at exit): kill what runs in the lab's namespaces, delete them and the temp dirs. */
export function installSignalCleanup(log: (s: string) => void = (s) => process.stderr.write(s + '\n')): void {
  if (installed) return;
  installed = true;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      log(`\nlab: ${sig}, cleaning up`);
      cleanupAllSync();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
  process.on('exit', () => cleanupAllSync());
}

export function newWorkDir(): string {
  const dir = mkdtempSync(join(tmpdir(), `shl-lab-${process.pid.toString(36)}-`));
  live.dirs.add(dir);
  return dir;
}

export function removeWorkDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  live.dirs.delete(dir);
}

/** Writes `size` random bytes to work/origin/NAME; returns its SHA-256. */
export function makeFile(work: string, size: number): LabFile {
  const dir = join(work, 'origin');
  mkdirSync(dir, { recursive: true });
  const name = `lab-${size}.bin`;
  const path = join(dir, name);
  const h = createHash('sha256');
  const fd = openSync(path, 'w');
  try {
    for (let done = 0; done < size; ) {
      const n = Math.min(8 << 20, size - done);
      const chunk = randomBytes(n);
      h.update(chunk);
      for (let off = 0; off < n; ) off += writeSync(fd, chunk, off, n - off);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return { path, name, size, sha256: h.digest('hex') };
}

/** Why the lab cannot run here (not root, no namespaces), or undefined. */
export function labProblem(): string | undefined {
  return namespaceProblem();
}

/** The cluster CA and a certificate per role for one point (`shoal cluster init`), as a user would make them; a sweep's next point makes its own. */
function makeClusterTls(shoalBin: string, dir: string): string {
  rmSync(dir, { recursive: true, force: true });
  const [cmd, ...args] = shoalCommand(shoalBin, ['cluster', 'init', dir]);
  const made = spawnSync(cmd!, args, { encoding: 'utf8', timeout: 60_000 });
  if (made.status !== 0) throw new Error(`shoal cluster init failed: ${made.stderr}`);
  return dir;
}

/** True when bin/shoal.mjs will run the esbuild bundle (else it compiles the sources with tsx, which costs CPU). */
export function shoalBundleFresh(): boolean {
  const newest = (dir: string): number =>
    readdirSync(dir, { withFileTypes: true }).reduce((m, e) => Math.max(m, e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs), 0);
  try {
    return statSync(join(REPO, 'dist/shoal.mjs')).mtimeMs >= newest(join(REPO, 'src'));
  } catch {
    return false;
  }
}

/**
 * Copies dist/ (shoal.mjs and its chunks) into `dir` with a two-line runner, so that a rebuild or a
 * source edit by someone else during a long run does not change what is measured
 * (bin/shoal.mjs would also fall back to compiling the sources with tsx as soon as
 * any file under src/ is newer than the bundle). node_modules is linked for the
 * one external package (better-sqlite3).
 */
export function snapshotShoal(dir: string): ShoalBin {
  const bundle = join(REPO, 'dist/shoal.mjs');
  mkdirSync(dir, { recursive: true });
  cpSync(join(REPO, 'dist'), dir, { recursive: true, filter: (src) => !src.endsWith('.map') });
  symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'));
  writeFileSync(join(dir, 'run.mjs'), "import { runCli } from './shoal.mjs';\nprocess.exitCode = await runCli(process.argv.slice(2));\n");
  return {
    bin: join(dir, 'run.mjs'),
    kind: 'bundle snapshot',
    bundleSha256: bundleDigest(dir),
    bundleMtime: statSync(bundle).mtime.toISOString(),
    ...sourceState(),
  };
}

/** The checkout a build came from: HEAD and the src/ files with uncommitted changes. */
function sourceState(): { gitHead: string; srcChanges: string[] } {
  const git = (args: string[]): string => spawnSync('git', ['-C', REPO, ...args], { encoding: 'utf8', timeout: 10_000 }).stdout?.trim() ?? '';
  return { gitHead: git(['rev-parse', 'HEAD']), srcChanges: git(['status', '--short', '--', 'src']).split('\n').filter(Boolean) };
}

/** A copy of the single executable (`npm run build:sea`) in `dir`, so the whole run measures one build. */
export function snapshotExecutable(file: string, dir: string): ShoalBin {
  mkdirSync(dir, { recursive: true });
  const bin = join(dir, 'shoal');
  cpSync(file, bin);
  return {
    bin,
    kind: 'single executable',
    bundleSha256: createHash('sha256').update(readFileSync(bin)).digest('hex'),
    bundleMtime: statSync(file).mtime.toISOString(),
    ...sourceState(),
  };
}

/** SHA-256 over the entry and every chunk, in name order. */
function bundleDigest(dir: string): string {
  const hash = createHash('sha256');
  const chunks = join(dir, 'chunks');
  const files = ['shoal.mjs', ...(existsSync(chunks) ? readdirSync(chunks).sort().map((f) => join('chunks', f)) : [])];
  for (const f of files) hash.update(f).update(readFileSync(join(dir, f)));
  return hash.digest('hex');
}

export const SHOAL_EXECUTABLE: ShoalBin = { bin: join(REPO, 'bin/shoal.mjs'), kind: 'bin/shoal.mjs' };

let netemChecked: boolean | undefined;
export function netemAvailable(): boolean {
  netemChecked ??= probeNetem();
  return netemChecked;
}

export function pointBound(o: Pick<PointOptions, 'peers' | 'sizeBytes' | 'peerRate' | 'originUp' | 'slowPeers' | 'slowRate' | 'seedHost'>): { bound: Bound; directEstimateS: number } {
  const peers = Array.from({ length: o.peers }, (_, i) => (i < o.slowPeers ? { up: o.slowRate, down: o.slowRate } : { up: o.peerRate, down: o.peerRate }));
  const bound = kumarRoss(o.sizeBytes, o.originUp, peers, o.seedHost === true ? o.originUp : 0);
  return { bound, directEstimateS: bound.clientServerAdjusted };
}

/**
 * Runs one point (one topology, one file, the chosen scenarios). `file` may be
 * passed to reuse one across points (a sweep); it must live in `work`/origin.
 * With `o.image`, the payload is an image (`shared.image`, else one built here of
 * about o.sizeBytes), served by a registry on the origin host; T_min and copies
 * use the image's size.
 */
export async function runPoint(o: PointOptions, shared?: { work: string; file: LabFile; image?: LabImage; files?: LabFiles }): Promise<PointResult> {
  if (o.image === true && o.scenarios.some((s) => !(IMAGE_SCENARIOS as readonly string[]).includes(s))) throw new Error(`an image point runs only ${IMAGE_SCENARIOS.join(', ')}`);
  const work = shared?.work ?? newWorkDir();
  let image = shared?.image;
  if (o.image === true && image === undefined) {
    o.log(`lab: building a ${o.sizeBytes} B image …`);
    image = makeLabImage(work, o.sizeBytes);
  }
  if (image !== undefined) o = { ...o, sizeBytes: image.bytes };
  const { bound, directEstimateS } = pointBound(o);
  const timeoutS = Math.max(o.minTimeoutS, Math.ceil(o.timeoutFactor * directEstimateS));
  const result: PointResult = {
    config: {
      peers: o.peers,
      sizeBytes: o.sizeBytes,
      peerRate: formatRate(o.peerRate),
      originUp: formatRate(o.originUp),
      originDown: formatRate(o.originDown),
      slowPeers: o.slowPeers,
      slowRate: formatRate(o.slowRate),
      ...(o.slowPeers > 0 ? { slowPlacement: o.slowSpread === true ? 'spread' : 'first' } : {}),
      gsoMaxSize: null,
      tbfBurstMs: o.burstMs ?? TBF_BURST_MS,
      ...(o.fileSystem === undefined ? {} : { fileSystem: o.fileSystem }),
    },
    bound,
    directEstimateS: round(directEstimateS, 2),
    timeoutS,
    netem: netemAvailable(),
    tbfGoodput: TBF_GOODPUT,
    startedAt: new Date().toISOString(),
    results: [],
  };
  if (image !== undefined) result.image = { ref: image.ref, manifestDigest: image.manifestDigest, bytes: image.bytes, blobs: image.blobs };
  cleanupStale(o.log);
  const topo = new Topology({
    peers: o.peers,
    peerUp: o.peerRate,
    peerDown: o.peerRate,
    originUp: o.originUp,
    originDown: o.originDown,
    slowPeers: o.slowPeers,
    slowRate: o.slowRate,
    slowSpread: o.slowSpread === true,
    capGso: o.capGso,
    tcpCc: o.tcpCc,
    seedHost: o.seedHost === true,
    burstMs: o.burstMs,
  });
  result.config.gsoMaxSize = topo.gsoMaxSize ?? null;
  live.topologies.add(topo);
  const procs = new Procs();
  try {
    const files = o.files === undefined ? undefined : (shared?.files ?? makeLabFiles(work, o.files, Math.floor(o.sizeBytes / o.files)));
    const file = image?.file ?? files?.file ?? shared?.file ?? makeFile(work, o.sizeBytes);
    topo.create();
    result.config.tcpCongestionControl = topo.tcpCongestionControl;
    if (topo.seedHost !== undefined) result.config.seedHost = true;
    if (o.declareRates === true) result.config.declareRates = true;
    if (o.declareSeedRate === true) result.config.declareSeedRate = true;
    const usesShoal = o.scenarios.includes('shoal') || o.scenarios.includes('image-shoal') || o.scenarios.includes('files-shoal');
    const shoal = usesShoal ? (o.shoal ?? snapshotShoal(join(work, `shoal-bin-${Date.now()}`))) : SHOAL_EXECUTABLE;
    if (usesShoal) result.shoal = shoal;
    const tlsDir = usesShoal && o.noTls !== true ? makeClusterTls(shoal.bin, join(work, 'tls')) : undefined;
    if (usesShoal) result.config.tls = tlsDir !== undefined;
    const ctx: Ctx = {
      topo,
      procs,
      work,
      file,
      timeoutMs: timeoutS * 1000,
      log: o.log,
      shoalBin: shoal.bin,
      schedulerConfig: o.schedulerConfig,
      getArgs: o.getArgs,
      daemonConfig: o.daemonConfig,
      declareRates: o.declareRates,
      declareSeedRate: o.declareSeedRate,
      tlsDir,
    };
    const registry = image === undefined ? undefined : await startLabRegistry(ctx, image);
    if (registry === undefined) await startOriginServer(ctx);
    for (const name of o.scenarios) {
      o.log(`  ${name}: running (bound ${timeoutS} s) …`);
      let r: ScenarioResult;
      try {
        r =
          registry !== undefined
            ? await runImageScenario(ctx, registry, name)
            : files !== undefined && (FILES_SCENARIOS as readonly string[]).includes(name)
              ? await runFilesScenario(ctx, files, name as FilesScenario)
              : await runScenario(ctx, name);
      } catch (err) {
        o.log(`  ${name}: FAILED to set up: ${(err as Error).stack ?? String(err)}`);
        r = failedResult(name, (err as Error).message);
      }
      result.results.push(r);
      o.log(`  ${name}: ${r.ok ? `last ${r.lastS} s` : `FAILED: ${r.error ?? '?'}`}`);
      // let queues drain and sockets close before the next scenario
      await new Promise((res) => setTimeout(res, 1500));
    }
  } catch (err) {
    result.error = (err as Error).message;
    o.log(`lab point failed: ${(err as Error).stack ?? String(err)}`);
  } finally {
    await procs.stopAll();
    topo.destroy();
    live.topologies.delete(topo);
    if (shared === undefined) removeWorkDir(work);
  }
  return result;
}

function failedResult(scenario: ScenarioName, error: string): ScenarioResult {
  return {
    scenario,
    ok: false,
    error,
    timedOut: false,
    lastS: null,
    medianS: null,
    meanS: null,
    p90S: null,
    firstS: null,
    hosts: [],
    originTxBytes: 0,
    originTxPackets: 0,
    originCopies: 0,
    originPayloadCopiesEst: 0,
    originRetransmits: 0,
    peersTxBytes: 0,
    peersTxPackets: 0,
    peersRxBytes: 0,
    peersRxPackets: 0,
    cpu: { userS: 0, systemS: 0, busyS: 0, wallS: 0, cores: 0, meanPct: 0, peakPct: 0, saturatedS: 0 },
    verified: 0,
    mismatched: [],
  };
}
