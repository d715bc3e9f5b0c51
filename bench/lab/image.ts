/**
 * The lab's image benchmark (issue 4): N peer hosts pull one multi-layer OCI
 * image at once from Debian's docker-registry on the origin host, two ways on
 * the same topology and image:
 *
 *   image-direct  `skopeo copy docker://10.77.0.1:5000/bench/app:v1 dir:OUT` on every peer host
 *   image-shoal   scheduler + seed daemon on the origin host; on every peer host a daemon
 *                 with the registry mirror on 127.0.0.1:4001 (--upstream http://10.77.0.1:5000)
 *                 and the same skopeo copy, sent to that mirror by a registries.conf
 *
 * The image is built and pushed (skopeo inside the origin namespace, over its
 * loopback) before anything is measured. Besides the lab's usual figures, the
 * registry's access log gives its egress: response body bytes by client and by
 * User-Agent, so a pull that fell back from the mirror to the registry shows.
 * Every pulled blob is checked against its digest after the clients stop.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildImage, registriesConf } from '../../test/fixtures/registry.js';
import { daemonApi, round, sha256File } from './measure.js';
import { nstat, type NsProc, Procs, sh } from './netns.js';
import { cleanOutputs, type Ctx, freshDir, type LabFile, measure, outDir, type ScenarioName, type ScenarioResult, startShoalSwarm } from './scenarios.js';

export const REGISTRY_PORT = 5000;
export const MIRROR_PORT = 4001;
export const IMAGE_REPO = 'bench/app';
export const IMAGE_TAG = 'v1';
/** Layer sizes as shares of the image (uncompressed random content, gzip level 1). */
export const LAYER_SHARES = [0.35, 0.25, 0.2, 0.15, 0.05] as const;

export interface LabBlob {
  digest: string;
  size: number;
  kind: 'config' | 'layer';
}

export interface LabImage {
  /** OCI layout directory (pushed from here) */
  dir: string;
  ref: string;
  manifestDigest: string;
  /** config first, then the layers in manifest order */
  blobs: LabBlob[];
  /** the image's size F: config + layers (the manifest, < 1 kB, is not counted) */
  bytes: number;
  /** the image as the lab's payload: size = F (copies and T_min use it) */
  file: LabFile;
}

/** Builds the image (≈ sizeBytes over LAYER_SHARES) as an OCI layout in work/image-oci. */
export function makeLabImage(work: string, sizeBytes: number): LabImage {
  const dir = join(work, 'image-oci');
  rmSync(dir, { recursive: true, force: true });
  const built = buildImage(
    dir,
    LAYER_SHARES.map((s) => Math.round(sizeBytes * s)),
    IMAGE_TAG,
  );
  const blobs: LabBlob[] = [{ digest: built.config.digest, size: built.config.size, kind: 'config' }, ...built.layers.map((l) => ({ digest: l.digest, size: l.size, kind: 'layer' as const }))];
  const bytes = blobs.reduce((n, b) => n + b.size, 0);
  const ref = `${IMAGE_REPO}:${IMAGE_TAG}`;
  return { dir, ref, manifestDigest: built.manifestDigest, blobs, bytes, file: { path: dir, name: ref, size: bytes, sha256: built.manifestDigest.slice(7) } };
}

// ---------------------------------------------------------------- registry

export interface AccessEntry {
  client: string;
  method: string;
  path: string;
  status: number;
  /** response body bytes the registry wrote */
  bytes: number;
  userAgent: string;
}

export interface LabRegistry {
  proc: NsProc;
  /** 10.77.0.1:5000 */
  host: string;
  image: LabImage;
  /** every request answered so far (the access log, parsed as it comes) */
  readonly log: AccessEntry[];
}

// distribution's access log: combined log format
const ACCESS = /^(\S+) \S+ \S+ \[[^\]]*\] "(GET|HEAD|PUT|POST|PATCH|DELETE) (\S+) HTTP\/[\d.]+" (\d{3}) (\d+|-) "[^"]*" "([^"]*)"/;

function parseAccessLines(proc: NsProc, into: AccessEntry[]): void {
  for (const stream of [proc.child.stdout, proc.child.stderr]) {
    let rest = '';
    stream?.on('data', (d: Buffer) => {
      const lines = (rest + d.toString()).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        const m = ACCESS.exec(line);
        if (m !== null) into.push({ client: m[1]!, method: m[2]!, path: m[3]!, status: Number(m[4]), bytes: m[5] === '-' ? 0 : Number(m[5]), userAgent: m[6]! });
      }
    });
  }
}

async function until(what: string, ms: number, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const httpCode = (ns: string, url: string): string =>
  sh(['ip', 'netns', 'exec', ns, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '3', url], { allowFail: true, timeoutMs: 5000 }).stdout.trim();

/**
 * Starts docker-registry on the origin host (in ctx.procs, so it lives for the
 * whole point), pushes the image to it over the origin namespace's loopback, and
 * checks every peer host reaches it.
 */
export async function startLabRegistry(ctx: Ctx, image: LabImage): Promise<LabRegistry> {
  const { topo } = ctx;
  const dir = join(ctx.work, 'registry');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const host = `${topo.origin.ip}:${REGISTRY_PORT}`;
  const config = ['version: 0.1', 'log:', '  level: warn', '  formatter: text', '  accesslog:', '    disabled: false', 'storage:', '  filesystem:', `    rootdirectory: ${join(dir, 'data')}`, 'http:', `  addr: ${host}`, ''].join('\n');
  writeFileSync(join(dir, 'config.yml'), config);
  const proc = ctx.procs.start(topo.origin.ns, 'registry@o', ['docker-registry', 'serve', join(dir, 'config.yml')]);
  const log: AccessEntry[] = [];
  parseAccessLines(proc, log);
  await until('docker-registry answering /v2/', 15_000, () => {
    if (!proc.running()) throw new Error(`docker-registry exited: ${proc.output().slice(-2000)}`);
    return httpCode(topo.origin.ns, `http://${host}/v2/`) === '200';
  });
  // The push goes over the origin namespace's loopback (10.77.0.1 is local there): no link traffic.
  const pushProcs = new Procs();
  try {
    const push = pushProcs.start(topo.origin.ns, 'skopeo-push@o', ['skopeo', 'copy', '--quiet', '--insecure-policy', '--dest-tls-verify=false', `oci:${image.dir}:${IMAGE_TAG}`, `docker://${host}/${image.ref}`]);
    const r = await Promise.race([push.exited, new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), 600_000))]);
    if (r === 'timeout' || r.code !== 0) throw new Error(`skopeo push to the lab registry failed (${r === 'timeout' ? 'timed out after 600 s' : `exit ${r.code}`}): ${push.output().slice(-2000)}`);
  } finally {
    await pushProcs.stopAll();
  }
  await Promise.all(topo.peers.map((p) => until(`${p.name} reaching the registry at ${host}`, 15_000, () => httpCode(p.ns, `http://${host}/v2/`) === '200')));
  // The log arrives through a pipe: wait until those checks are in it, so that a
  // scenario's share of the log starts after them.
  await until('the registry logging the peers\' checks', 5000, () => topo.peers.every((p) => log.some((e) => e.client === p.ip)));
  return { proc, host, image, log };
}

/** Waits (at most 3 s) until the access log has not grown for 300 ms: lines still in the pipe are counted. */
async function logSettled(log: AccessEntry[]): Promise<void> {
  const deadline = Date.now() + 3000;
  for (let n = -1; n !== log.length && Date.now() < deadline; ) {
    n = log.length;
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** What the registry sent between two points of its access log. */
export function registryEgress(entries: AccessEntry[], image: LabImage): Record<string, unknown> {
  const blobOf = (path: string): LabBlob | undefined => image.blobs.find((b) => path.endsWith(`/blobs/${b.digest}`));
  const byClient: Record<string, number> = {};
  const byAgent: Record<string, number> = {};
  const requests: Record<string, number> = {};
  let bytes = 0;
  let blobBytes = 0;
  let blobGets = 0;
  for (const e of entries) {
    bytes += e.bytes;
    byClient[e.client] = (byClient[e.client] ?? 0) + e.bytes;
    const agent = e.userAgent.split(/[/ ]/)[0] ?? e.userAgent;
    byAgent[agent] = (byAgent[agent] ?? 0) + e.bytes;
    const kind = `${e.method} ${blobOf(e.path) !== undefined ? 'blob' : /\/manifests\//.test(e.path) ? 'manifest' : e.path === '/v2/' ? '/v2/' : 'other'} ${e.status}`;
    requests[kind] = (requests[kind] ?? 0) + 1;
    if (e.method === 'GET' && blobOf(e.path) !== undefined) {
      blobGets++;
      blobBytes += e.bytes;
    }
  }
  return { bodyBytes: bytes, copies: round(bytes / image.bytes, 4), blobBytes, blobGets, byClient, byAgent, requests };
}

// ---------------------------------------------------------------- the origin link's other traffic

/** TCP segment counters of a namespace (its own SNMP MIB). */
function tcpCounters(ns: string): Record<string, number> {
  return nstat(ns, ['TcpOutSegs', 'TcpRetransSegs', 'TcpExtTCPOrigDataSent']);
}

/** Bytes a process passed to write/send syscalls (sockets and files alike): /proc/PID/io wchar. */
function wchar(pid: number): number | undefined {
  try {
    const m = /^wchar: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
    return m === null ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}

/** Counters to explain the origin link beyond the payload: TCP segments sent and retransmitted by the origin host. */
function originTcpSince(before: Record<string, number>, ns: string): Record<string, number> {
  const now = tcpCounters(ns);
  const d = (k: string): number => (now[k] ?? 0) - (before[k] ?? 0);
  const out = d('TcpOutSegs');
  const retrans = d('TcpRetransSegs');
  return { outSegs: out, retransSegs: retrans, origDataSegs: d('TcpExtTCPOrigDataSent'), retransPct: out > 0 ? round((100 * retrans) / out, 2) : 0 };
}

// ---------------------------------------------------------------- verification

/** A skopeo dir: layout holds every blob (named by digest hex) with the right SHA-256, and the manifest as pushed. */
export async function verifyPull(dir: string, image: LabImage): Promise<string | undefined> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 'output missing';
  }
  const problems: string[] = [];
  for (const b of image.blobs) {
    const hex = b.digest.slice(7);
    if (!names.includes(hex)) {
      problems.push(`${b.kind} ${hex.slice(0, 12)} missing`);
      continue;
    }
    const path = join(dir, hex);
    const size = statSync(path).size;
    if (size !== b.size || (await sha256File(path)) !== hex) problems.push(`${b.kind} ${hex.slice(0, 12)}: SHA-256 differs (size ${size} of ${b.size})`);
  }
  try {
    const manifest = 'sha256:' + createHash('sha256').update(readFileSync(join(dir, 'manifest.json'))).digest('hex');
    if (manifest !== image.manifestDigest) problems.push(`manifest.json is ${manifest}, pushed ${image.manifestDigest}`);
  } catch {
    problems.push('manifest.json missing');
  }
  return problems.length === 0 ? undefined : problems.join(', ');
}

// ---------------------------------------------------------------- scenarios

function skopeoPull(reg: LabRegistry, conf: string, out: string): string[] {
  return ['skopeo', 'copy', '--insecure-policy', '--registries-conf', conf, `docker://${reg.host}/${reg.image.ref}`, `dir:${out}`];
}

/**
 * Starts a skopeo pull on every peer host at t0; a host is done when its skopeo exits 0.
 * `conf` is the registries.conf every host uses (loopback addresses are per namespace).
 */
function launchPulls(ctx: Ctx, procs: Procs, reg: LabRegistry, scenario: ScenarioName, conf: string): { done: Array<Promise<{ ok: boolean; at: number; detail?: string }>>; outputs: string[] } {
  const outputs: string[] = [];
  const done = ctx.topo.peers.map((p) => {
    const out = join(outDir(ctx, scenario, p), 'image');
    outputs.push(out);
    const c = procs.start(p.ns, `skopeo@${p.name}`, skopeoPull(reg, conf, out));
    return c.exited.then(({ code, at }) => (code === 0 ? { ok: true, at } : { ok: false, at, detail: `skopeo exit ${code}: ${c.output().trim().slice(-400)}` }));
  });
  return { done, outputs };
}

export async function runImageDirect(ctx: Ctx, reg: LabRegistry): Promise<ScenarioResult> {
  const procs = new Procs();
  const dir = join(ctx.work, 'image-direct');
  mkdirSync(dir, { recursive: true });
  try {
    const conf = join(dir, 'registries.conf');
    writeFileSync(conf, registriesConf(reg.host, []));
    const mark = reg.log.length;
    const tcp = tcpCounters(ctx.topo.origin.ns);
    return await measure(ctx, 'image-direct', () => launchPulls(ctx, procs, reg, 'image-direct', conf), {
      beforeStop: async () => {
        await logSettled(reg.log);
        return { registry: registryEgress(reg.log.slice(mark), reg.image), originTcp: originTcpSince(tcp, ctx.topo.origin.ns) };
      },
      stop: () => procs.stopAll(),
      watch: () => procs.all,
      verify: (out) => verifyPull(out, reg.image),
    });
  } finally {
    await procs.stopAll();
    cleanOutputs(ctx, 'image-direct');
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One blob task of one peer daemon, seconds after t0. */
interface LayerTiming {
  /** the task started (the mirror asked the daemon for the blob) and ended, from the daemon's task stats */
  startS?: number;
  doneS?: number;
  /** first 1-second sample of /v1/stats showing bytes (±1 s) */
  firstBytesS?: number;
}

type Task = Record<string, unknown>;
const blobTasks = (st: Record<string, unknown> | undefined): Task[] => ((st?.['tasks'] ?? []) as Task[]).filter((t) => /\/blobs\/sha256:[0-9a-f]{64}$/.test(String(t['url'])));
const digestOf = (t: Task): string => String(t['url']).slice(-71);
const MiB = (n: unknown): number => round(Number(n ?? 0) / 1048576, 1);

export async function runImageShoal(ctx: Ctx, reg: LabRegistry): Promise<ScenarioResult> {
  const { topo } = ctx;
  const procs = new Procs();
  const dir = freshDir(join(ctx.work, 'image-shoal'));
  let sampler: NodeJS.Timeout | undefined;
  try {
    const mirror = `127.0.0.1:${MIRROR_PORT}`;
    const swarm = await startShoalSwarm(ctx, procs, dir, (_h, seed) => (seed ? [] : ['--mirror', mirror, '--upstream', `http://${reg.host}`]));
    for (const d of swarm.peers) if (!d.proc.output().includes(`mirror ${mirror}`)) throw new Error(`${d.proc.name} did not start its mirror: ${d.proc.output().slice(-1000)}`);
    const conf = join(dir, 'registries.conf');
    writeFileSync(conf, registriesConf(reg.host, mirror));
    const layers: Array<Map<string, LayerTiming>> = topo.peers.map(() => new Map<string, LayerTiming>());
    const finished: boolean[] = topo.peers.map(() => false);
    const mark = reg.log.length;
    const tcp = tcpCounters(topo.origin.ns);
    const schedulerWrote = wchar(swarm.scheduler.pid);
    let t0 = 0;
    return await measure(
      ctx,
      'image-shoal',
      (start) => {
        t0 = start;
        const launched = launchPulls(ctx, procs, reg, 'image-shoal', conf);
        launched.done.forEach((d, i) => void d.then(() => (finished[i] = true)));
        sampler = setInterval(() => {
          const s = round((Date.now() - t0) / 1000, 1);
          swarm.peers.forEach((d, i) => {
            if (finished[i]) return;
            void daemonApi(d.api, '/v1/stats', 900)
              .then((st) => {
                for (const t of blobTasks(st)) {
                  const l = layers[i]!.get(digestOf(t)) ?? {};
                  if (Number(t['completedBytes'] ?? 0) > 0) l.firstBytesS ??= s;
                  layers[i]!.set(digestOf(t), l);
                }
              })
              .catch(() => undefined);
          });
        }, 1000);
        return launched;
      },
      {
        beforeStop: async () => {
          clearInterval(sampler);
          await logSettled(reg.log);
          const stats = await Promise.all([swarm.seed, ...swarm.peers].map((d) => daemonApi(d.api, '/v1/stats', 5000).catch((err: unknown): Record<string, unknown> => ({ statsError: String(err) }))));
          const [seedStats, ...peerStats] = stats;
          const blobName = (digest: string): string => {
            const i = reg.image.blobs.findIndex((b) => b.digest === digest);
            return i === 0 ? 'config' : i > 0 ? `layer${i}` : digest.slice(7, 19);
          };
          const peers = topo.peers.map((p, i) => {
            const tasks = blobTasks(peerStats[i]);
            for (const t of tasks) {
              const l = layers[i]!.get(digestOf(t)) ?? {};
              const started = Date.parse(String(t['startedAt']));
              if (Number.isFinite(started)) {
                l.startS = round((started - t0) / 1000, 2);
                if (t['state'] !== 'running') l.doneS = round((started + Number(t['durationMs'] ?? 0) - t0) / 1000, 2);
              }
              layers[i]!.set(digestOf(t), l);
            }
            const sum = (k: string): number => MiB(tasks.reduce((n, t) => n + Number((t['bytes'] as Record<string, number> | undefined)?.[k] ?? 0), 0));
            const parents: Record<string, number> = {};
            for (const t of tasks) {
              for (const [id, n] of Object.entries((t['parents'] ?? {}) as Record<string, number>)) {
                const name = swarm.hostIds.get(id) ?? swarm.hostByIp(id);
                parents[name] = round((parents[name] ?? 0) + n / 1048576, 1);
              }
            }
            return {
              host: p.name,
              fromSeedsMiB: sum('seeds'),
              fromPeersMiB: sum('peers'),
              fromOriginMiB: sum('source'),
              parentsMiB: parents,
              backToSource: tasks.flatMap((t) => (t['backToSource'] ?? []) as unknown[]),
              failed: tasks.filter((t) => t['state'] === 'failed').map((t) => ({ blob: blobName(digestOf(t)), error: t['error'] })),
              layers: Object.fromEntries([...layers[i]!.entries()].map(([digest, l]) => [blobName(digest), l])),
              mirror: peerStats[i]?.['mirror'],
              uploadsMiB: MiB((peerStats[i]?.['uploads'] as { bytes?: number } | undefined)?.bytes),
            };
          });
          const logs: Record<string, string> = {};
          for (const p of [swarm.scheduler, swarm.seed.proc, ...swarm.peers.map((d) => d.proc)]) {
            const text = p.output().replace(/^shoal (daemon|scheduler) .*\n/m, '').trim();
            if (text !== '') logs[p.name] = text.slice(-4000);
          }
          const seedTasks = blobTasks(seedStats);
          const schedulerNow = wchar(swarm.scheduler.pid);
          return {
            registry: registryEgress(reg.log.slice(mark), reg.image),
            originTcp: originTcpSince(tcp, topo.origin.ns),
            // its streams to the peer daemons cross the origin link (the seed's is loopback); its log (level warn) is next to nothing
            schedulerWroteBytes: schedulerNow === undefined || schedulerWrote === undefined ? null : schedulerNow - schedulerWrote,
            seed: {
              uploadsMiB: MiB((seedStats?.['uploads'] as { bytes?: number } | undefined)?.bytes),
              fromOriginMiB: MiB(seedTasks.reduce((n, t) => n + Number((t['bytes'] as Record<string, number> | undefined)?.['source'] ?? 0), 0)),
              tasks: seedTasks.map((t) => ({ blob: blobName(digestOf(t)), state: t['state'], durationS: round(Number(t['durationMs'] ?? 0) / 1000, 2) })),
            },
            peers,
            logs,
            note: 'the seed daemon fetches blobs from the registry over the origin namespace\'s loopback (10.77.0.1 is local there): registry egress to 10.77.0.1 is not link traffic, and the origin link carries the seed\'s uploads plus the registry\'s answers to the peers\' mirrors',
          };
        },
        stop: () => procs.stopAll(),
        watch: () => procs.all,
        verify: (out) => verifyPull(out, reg.image),
      },
    );
  } finally {
    clearInterval(sampler);
    await procs.stopAll();
    cleanOutputs(ctx, 'image-shoal');
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runImageScenario(ctx: Ctx, reg: LabRegistry, name: ScenarioName): Promise<ScenarioResult> {
  if (name === 'image-direct') return runImageDirect(ctx, reg);
  if (name === 'image-shoal') return runImageShoal(ctx, reg);
  throw new Error(`${name} is not an image scenario`);
}
