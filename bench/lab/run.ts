/**
 * `npm run lab [-- options]`: the multi-host lab (docs/lab.md). Hosts are
 * network namespaces with tbf-shaped veth links to a bridge in a switch
 * namespace; one file goes from the origin host to N peer hosts three ways
 * (direct HTTP, aria2c BitTorrent, Shoal) and each is compared with the
 * Kumar–Ross bound. Needs root.
 *
 *   --peers N            peer hosts (default 5)
 *   --size SIZE          file size: MB (decimal) by default, or 32MiB, 1GB … (default 200)
 *   --peer-rate R        peer links, both ways (default 100mbit)
 *   --origin-rate R      origin upload (default 200mbit)
 *   --origin-down R      origin download (default 1gbit)
 *   --slow-peers K       the first K peers get --slow-rate both ways (default 0)
 *   --slow-spread        the K slow peers spread evenly (every N/K-th, the last one slow)
 *                        instead of first
 *   --slow-rate R        (default 20mbit)
 *   --no-gso-cap         leave the hosts' GSO size at the kernel default, so tbf splits
 *                        large GSO packets into frames in software (netns.ts, capGso)
 *   --tbf-burst MS       each link's tbf bucket, in ms at its rate (default 4); the GSO
 *                        cap follows it, so a larger bucket means fewer, larger packets
 *   --tcp-cc NAME        every host's TCP congestion control (default: what a new
 *                        namespace inherits from the machine; recorded either way)
 *   --seed-host          Shoal's scheduler and seed on a host of their own (the
 *                        origin's rates) instead of the origin host
 *   --declare-rates      every Shoal daemon announces its link's upload rate
 *                        (--upload-rate), as an operator who knows the links would
 *   --declare-seed-rate  the seed daemon alone announces its link's upload rate (an
 *                        operator who configured the seed hosts and nothing else)
 *   --no-tls             Shoal's components with --insecure instead of the mutual TLS the lab
 *                        makes for every run (shoal cluster init)
 *   --scenarios LIST     direct,bittorrent,shoal (default all three)
 *   --timeout-factor X   each scenario bounded at max(--min-timeout, X × direct estimate) (default 4)
 *   --min-timeout S      (default 60)
 *   --out FILE           JSON of the results (default bench/lab/results/lab-<time>.json)
 *   --sweep              N = 1,2,5,10,20,40 at F = 200 MB, plus N = 40 with 50mbit peers;
 *                        JSON + markdown table + SVG chart (docs/lab-sweep.svg)
 *   --sweep-points LIST  override, e.g. "1,2,5,40@50mbit"
 *   --markdown FILE      sweep table (default docs/lab-sweep.md)
 *   --svg FILE           sweep chart (default docs/lab-sweep.svg)
 *   --shoal-bin FILE     run this script as `shoal` (e.g. bin/shoal.mjs); default: a snapshot
 *                        of dist/shoal.mjs taken at the start, the same for every point
 *   --fs xfs|btrfs       every host's data and outputs (and the origin's file) on a new file
 *                        system of that kind (a loop device; ./fs.ts), where `shoal get`'s
 *                        output is a reflink instead of a copy; default: the machine's temp dir
 *   --shoal-exe FILE     run a copy of this single executable as `shoal` (dist-sea/shoal,
 *                        `npm run build:sea`: the binary users install)
 *   --files N            the many-files benchmark (bench/lab/files.ts): N files of --size MB each
 *                        (default 1) listed by the origin as an nginx autoindex, fetched with curl
 *                        (files-direct) and `shoal get --recursive` (files-shoal); reports the
 *                        per-file overhead (T_last − T_min)/N
 *   --image              the image benchmark (bench/lab/image.ts): an OCI image of --size MB
 *                        (default 500) in docker-registry on the origin host, pulled with skopeo
 *                        straight from it (image-direct) and through Shoal's mirror (image-shoal)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { makeLabFiles, perFileLine } from './files.js';
import { makeLabImage } from './image.js';
import { installSignalCleanup, labProblem, makeFile, netemAvailable, newWorkDir, onCleanup, type PointOptions, type PointResult, removeWorkDir, runPoint, shoalBundleFresh, snapshotExecutable, snapshotShoal } from './lab.js';
import { type MountedFs, mountWorkFs, parseLabFs } from './fs.js';
import { parseRate } from './netns.js';
import { boundLines, describePoint, imageLines, imageTable, pointTable, shoalPeerLines, sweepSvg, sweepTable } from './report.js';
import { FILES_SCENARIOS, IMAGE_SCENARIOS, REPO, SCENARIOS, type ScenarioName } from './scenarios.js';

function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)?$/i.exec(text.trim());
  if (m === null) throw new Error(`bad size "${text}" (e.g. 200 for 200 MB, 32MiB)`);
  const unit = (m[2] ?? 'mb').toLowerCase();
  const mult = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1048576, gib: 1073741824 }[unit]!;
  return Math.round(Number(m[1]) * mult);
}

const log = (s: string): void => void process.stderr.write(s + '\n');

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      peers: { type: 'string', short: 'n', default: '5' },
      size: { type: 'string' },
      'peer-rate': { type: 'string', default: '100mbit' },
      'origin-rate': { type: 'string', default: '200mbit' },
      'origin-down': { type: 'string', default: '1gbit' },
      'slow-peers': { type: 'string', default: '0' },
      'slow-rate': { type: 'string', default: '20mbit' },
      'slow-spread': { type: 'boolean', default: false },
      'no-gso-cap': { type: 'boolean', default: false },
      'tcp-cc': { type: 'string' },
      'tbf-burst': { type: 'string' },
      'seed-host': { type: 'boolean', default: false },
      'declare-rates': { type: 'boolean', default: false },
      'declare-seed-rate': { type: 'boolean', default: false },
      'no-tls': { type: 'boolean', default: false },
      scenarios: { type: 'string' },
      image: { type: 'boolean', default: false },
      files: { type: 'string' },
      'timeout-factor': { type: 'string', default: '4' },
      'min-timeout': { type: 'string', default: '60' },
      out: { type: 'string' },
      sweep: { type: 'boolean', default: false },
      'sweep-points': { type: 'string', default: '1,2,5,10,20,40,40@50mbit' },
      markdown: { type: 'string', default: join(REPO, 'docs/lab-sweep.md') },
      svg: { type: 'string', default: join(REPO, 'docs/lab-sweep.svg') },
      'shoal-bin': { type: 'string' },
      'shoal-exe': { type: 'string' },
      fs: { type: 'string' },
      'scheduler-config': { type: 'string' },
      'get-args': { type: 'string' },
      'daemon-config': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: false,
  });
  if (values.help) {
    log('usage: npm run lab -- [--peers N] [--size MB] [--peer-rate 100mbit] [--origin-rate 200mbit] [--origin-down 1gbit] [--slow-peers K --slow-rate 20mbit [--slow-spread]] [--no-gso-cap] [--tbf-burst MS] [--tcp-cc reno|bbr|…] [--seed-host] [--declare-rates | --declare-seed-rate] [--scenarios direct,bittorrent,shoal] [--image [--scenarios image-direct,image-shoal]] [--files N [--size MB-per-file]] [--out FILE.json] [--sweep [--sweep-points 1,2,5,40@50mbit]]  (see docs/lab.md)');
    return 0;
  }
  const problem = labProblem();
  if (problem !== undefined) {
    log(`lab: ${problem}. Run it as root: sudo npm run lab`);
    return 2;
  }
  installSignalCleanup(log);
  // --image, or image scenarios named in --scenarios, make an image point
  const image = values.image || (values.scenarios ?? '').includes('image-');
  const fileCount = values.files === undefined ? undefined : Number(values.files);
  if (fileCount !== undefined && (!Number.isInteger(fileCount) || fileCount < 1 || fileCount > 99_999)) throw new Error('--files must be 1..99999');
  if (fileCount !== undefined && (image || values.sweep)) throw new Error('--files goes with neither --image nor --sweep');
  const known: readonly ScenarioName[] = fileCount !== undefined ? FILES_SCENARIOS : image ? IMAGE_SCENARIOS : SCENARIOS;
  const scenarios = (values.scenarios ?? known.join(',')).split(',').map((s) => s.trim()).filter(Boolean) as ScenarioName[];
  for (const s of scenarios) if (!known.includes(s)) throw new Error(`unknown scenario "${s}" (${image ? 'with --image: ' : ''}${known.join(', ')})`);
  if (image && values.sweep) throw new Error('--sweep does not run the image benchmark; run one point per --peers');
  for (const [tool, scenario] of [['curl', 'direct'], ['aria2c', 'bittorrent'], ['opentracker', 'bittorrent'], ['mktorrent', 'bittorrent'], ['skopeo', 'image-direct'], ['skopeo', 'image-shoal'], ['docker-registry', 'image-direct'], ['docker-registry', 'image-shoal'], ['curl', 'image-direct'], ['curl', 'image-shoal']] as const) {
    if ((scenarios.includes(scenario) || (scenario === 'direct' && scenarios.includes('files-direct'))) && !(await hasTool(tool))) {
      log(`lab: ${tool} not found (the ${scenario} scenario needs it): apt-get install -y aria2 opentracker mktorrent curl skopeo docker-registry`);
      return 2;
    }
  }
  const usesShoal = scenarios.includes('shoal') || scenarios.includes('image-shoal') || scenarios.includes('files-shoal');
  if (usesShoal && !shoalBundleFresh()) log('lab: warning: dist/shoal.mjs is older than some file in src/: the lab measures the bundle as built (npm run build to refresh)');
  if (!netemAvailable()) log('lab: netem is not available in this kernel: links get bandwidth (tbf) but no added delay (RTT ≈ 0.1 ms)');

  const base: PointOptions = {
    peers: Number(values.peers),
    // --files: --size is per file; the point's F is the whole set
    sizeBytes: parseSize(values.size ?? (image ? '500' : fileCount !== undefined ? '1' : '200')) * (fileCount ?? 1),
    files: fileCount,
    peerRate: parseRate(values['peer-rate']),
    originUp: parseRate(values['origin-rate']),
    originDown: parseRate(values['origin-down']),
    slowPeers: Number(values['slow-peers']),
    slowRate: parseRate(values['slow-rate']),
    slowSpread: values['slow-spread'],
    capGso: !values['no-gso-cap'],
    tcpCc: values['tcp-cc'],
    burstMs: values['tbf-burst'] === undefined ? undefined : Number(values['tbf-burst']),
    seedHost: values['seed-host'],
    declareRates: values['declare-rates'],
    declareSeedRate: values['declare-seed-rate'],
    noTls: values['no-tls'],
    scenarios,
    timeoutFactor: Number(values['timeout-factor']),
    minTimeoutS: Number(values['min-timeout']),
    schedulerConfig: values['scheduler-config'] === undefined ? undefined : resolve(values['scheduler-config']),
    getArgs: values['get-args']?.split(' ').filter(Boolean),
    daemonConfig: values['daemon-config'] === undefined ? undefined : resolve(values['daemon-config']),
    image,
    log,
  };
  if (!Number.isInteger(base.peers) || base.peers < 1 || base.peers > 500) throw new Error('--peers must be 1..500');
  if (base.slowPeers > base.peers) throw new Error('--slow-peers must be at most --peers');
  if (base.burstMs !== undefined && !(base.burstMs >= 1 && base.burstMs <= 100)) throw new Error('--tbf-burst must be 1..100 (ms)');
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const outPath = values.out ?? join(REPO, 'bench/lab/results', `${values.sweep ? 'sweep' : image ? 'image' : fileCount !== undefined ? 'files' : 'lab'}-${stamp}.json`);
  mkdirSync(dirname(outPath), { recursive: true });

  const points: Array<Partial<PointOptions>> = values.sweep
    ? values['sweep-points'].split(',').map((t) => {
        const [n, rate] = t.trim().split('@');
        return rate === undefined ? { peers: Number(n) } : { peers: Number(n), peerRate: parseRate(rate) };
      })
    : [{}];
  const results: PointResult[] = [];
  const work = newWorkDir();
  let failed = false;
  let workFs: MountedFs | undefined;
  if (values.fs !== undefined) {
    // room for the origin's file, and every host's cache and output (sparse: only what is written takes space)
    const hosts = Math.max(base.peers, ...points.map((p) => p.peers ?? 0)) + 2;
    workFs = mountWorkFs(work, parseLabFs(values.fs), Math.ceil((hosts * base.sizeBytes * 3 + 4e9) / 1e9) * 1e9);
    onCleanup(workFs.remove); // on a signal; removing twice is harmless
    base.fileSystem = `${workFs.kind} (${workFs.device}, loop with direct I/O)`;
    log(`lab: work directory ${work} on ${base.fileSystem}`);
  }
  try {
    log(`lab: making a ${base.sizeBytes} B random ${image ? 'image' : fileCount !== undefined ? `set of ${fileCount} files` : 'file'} …`);
    const labImage = image ? makeLabImage(work, base.sizeBytes) : undefined;
    const labFiles = fileCount === undefined ? undefined : makeLabFiles(work, fileCount, Math.floor(base.sizeBytes / fileCount));
    const file = labImage?.file ?? labFiles?.file ?? makeFile(work, base.sizeBytes);
    // one Shoal for the whole run (a sweep takes half an hour; src/ may change meanwhile)
    if (usesShoal) {
      base.shoal =
        values['shoal-exe'] !== undefined
          ? snapshotExecutable(resolve(values['shoal-exe']), join(work, 'shoal-exe'))
          : values['shoal-bin'] !== undefined
            ? { bin: values['shoal-bin'], kind: 'bin/shoal.mjs' }
            : snapshotShoal(join(work, 'shoal-bin'));
      log(`lab: shoal = ${base.shoal.kind} ${base.shoal.bin}${base.shoal.bundleSha256 !== undefined ? ` (bundle sha256 ${base.shoal.bundleSha256.slice(0, 12)}, built ${base.shoal.bundleMtime}, HEAD ${base.shoal.gitHead?.slice(0, 9)}, uncommitted src changes: ${base.shoal.srcChanges?.length ? base.shoal.srcChanges.join(', ') : 'none'})` : ''}`);
    }
    for (const [i, pt] of points.entries()) {
      const o = { ...base, ...pt };
      const header = `\n== point ${i + 1}/${points.length}: N = ${o.peers}, peers ${values.sweep && pt.peerRate !== undefined ? formatPeer(pt.peerRate) : values['peer-rate']}`;
      log(header);
      const r = await runPoint(o, labImage !== undefined ? { work, file, image: labImage } : labFiles !== undefined ? { work, file, files: labFiles } : { work, file });
      results.push(r);
      printPoint(r);
      failed ||= r.error !== undefined || r.results.some((s) => !s.ok);
      writeFileSync(outPath, JSON.stringify({ sweep: values.sweep, command: process.argv.slice(2), points: results }, null, 2) + '\n');
    }
  } finally {
    workFs?.remove();
    removeWorkDir(work);
  }
  log(`\nresults: ${outPath}`);
  if (values.sweep) {
    const title = `Time to the last host, F = ${(base.sizeBytes / 1e6).toFixed(0)} MB, peers ${values['peer-rate']}, origin ${values['origin-rate']} up`;
    const md =
      `# Lab sweep (${new Date().toISOString().slice(0, 10)})\n\n` +
      `Command: \`npm run lab -- ${process.argv.slice(2).join(' ')}\`. ${describePoint(results[0]!).replace(/^N = \d+, /, '')}. ` +
      `Ratios are to T_min at tbf goodput (${results[0]!.tbfGoodput * 100} % of the set rates). CPU: whole machine (2 cores), user + system seconds during the scenario.\n\n` +
      sweepTable(results) +
      '\n';
    writeFileSync(values.markdown, md);
    writeFileSync(values.svg, sweepSvg(results, title));
    console.log('\n' + sweepTable(results));
    log(`markdown: ${values.markdown}\nchart: ${values.svg}`);
  }
  return failed ? 1 : 0;
}

function formatPeer(bps: number): string {
  return `${bps / 1e6}mbit`;
}

function printPoint(r: PointResult): void {
  console.log(`\n${describePoint(r)}`);
  for (const l of boundLines(r)) console.log(l);
  if (r.error !== undefined) console.log(`POINT FAILED: ${r.error}`);
  console.log(r.image === undefined ? pointTable(r) : imageTable(r));
  for (const s of r.results) {
    if (s.error !== undefined) console.log(`${s.scenario}: ${s.error}`);
    const times = s.hosts.map((h) => `${h.host} ${h.s === null ? '✗' : h.s.toFixed(1)}`).join(', ');
    console.log(`${s.scenario} per-host s: ${times}`);
    console.log(`${s.scenario} origin link: ${s.originTxBytes} B in ${s.originTxPackets} packets (≈ ${s.originPayloadCopiesEst} copies of payload without 66 B/packet of headers; ${s.originRetransmits} TCP segments retransmitted); peers' links sent ${(s.peersTxBytes / r.config.sizeBytes).toFixed(2)} copies in ${s.peersTxPackets} packets, received ${(s.peersRxBytes / r.config.sizeBytes).toFixed(2)} in ${s.peersRxPackets}`);
    const loss = s.details?.['loss'] as { softnetBacklogDrops: number; tbfUpDrops: number; tbfDownDrops: number; vethDrops: number; originLink: { up: number; down: number; dev: number } | null; worstLinks: Array<{ link: string; up: number; down: number }>; originTcp: Record<string, number> } | undefined;
    if (loss !== undefined) console.log(`${s.scenario} packets dropped: ${loss.softnetBacklogDrops} in full input backlogs (machine-wide), ${loss.tbfUpDrops} by upload tbfs, ${loss.tbfDownDrops} by download tbfs, ${loss.vethDrops} by veths; origin's link ${loss.originLink === null ? '?' : `${loss.originLink.up} up, ${loss.originLink.down} down, ${loss.originLink.dev} veth`} (most: ${loss.worstLinks.map((l) => `${l.link} ${l.up}/${l.down}`).join(', ') || 'none'}); origin TCP ${Object.entries(loss.originTcp).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    const seedLink = s.details?.['seedHostLink'] as { txCopies: number; rxCopies: number } | undefined;
    if (seedLink !== undefined) console.log(`${s.scenario} seed host's link: sent ${seedLink.txCopies} copies, received ${seedLink.rxCopies}`);
    if (s.cpu.samples !== undefined) console.log(`${s.scenario} machine busy % per second (2 cores = 100; ${s.cpu.backgroundPct ?? '?'} % in the 2 s before): ${s.cpu.samples.join(' ')}`);
    const fg = (s.details?.['foreignProcessesCpuS'] ?? []) as Array<{ pid: number; comm: string; cpuS: number }>;
    if (fg.length > 0) console.log(`${s.scenario} other processes on the VM during the run (CPU s): ${fg.map((x) => `${x.comm}[${x.pid}] ${x.cpuS}`).join(', ')}`);
    const pc = (s.details?.['processCpuS'] ?? {}) as Record<string, { user: number; system: number; processes: number }>;
    if (Object.keys(pc).length > 0) console.log(`${s.scenario} CPU s by process (user+sys, processes alive at the end): ${Object.entries(pc).map(([k, v]) => `${k} ×${v.processes} ${v.user.toFixed(1)}+${v.system.toFixed(1)}`).join(', ')}`);
    const ex = s.details?.['exitedProcessesCpuS'] as { user: number; system: number } | undefined;
    if (ex !== undefined && ex.user + ex.system > 0) console.log(`${s.scenario} CPU s of the processes that ended during the run (user+sys; the clients, e.g. every shoal get): ${ex.user.toFixed(1)}+${ex.system.toFixed(1)}`);
    if (s.scenario === 'shoal') for (const l of shoalPeerLines(s)) console.log(l);
    if (s.scenario.startsWith('files-')) {
      console.log(perFileLine(s, r.bound.adjusted));
      for (const l of (s.details?.['summaries'] ?? []) as string[]) console.log(`${s.scenario} ${l}`);
    }
    if (r.image !== undefined) for (const l of imageLines(s, r.image.bytes)) console.log(l);
  }
}

async function hasTool(name: string): Promise<boolean> {
  const { spawnSync } = await import('node:child_process');
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore', timeout: 5000 }).status === 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(`lab: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  },
);
