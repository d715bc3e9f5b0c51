/**
 * The many-files benchmark (`npm run lab -- --files N [--size MB-per-file]`,
 * docs/lab.md): N files of one size in a directory the origin's static server
 * lists as nginx's autoindex does, copied to every peer host two ways —
 *
 *   files-direct  one curl per peer host fetching every file (URL glob, 4 at a time);
 *   files-shoal   `shoal get --recursive URL/files/ -O DIR --parallel 4` per peer host
 *                 (each file its own task, through the local daemon);
 *
 * and the time above the bound for the whole set, per file, is reported as the
 * per-file overhead: (T_last − T_min(N·F)) / N.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sha256File } from './measure.js';
import { Procs } from './netns.js';
import { cleanOutputs, type Ctx, type FilesScenario, freshDir, type LabFile, measure, ORIGIN_HTTP_PORT, outDir, type ScenarioResult, shoalCmd, startShoalSwarm } from './scenarios.js';

export { FILES_SCENARIOS, type FilesScenario } from './scenarios.js';

/** Files at once, for both ways (curl --parallel-max, shoal get --parallel). */
const PARALLEL = 4;
const DIR = 'files';

export interface LabFiles {
  /** The whole set as the lab's payload: `size` is the total, `path` the directory, `sha256` empty (verify() checks each file). */
  readonly file: LabFile;
  readonly count: number;
  readonly each: number;
  /** name → SHA-256 */
  readonly digests: ReadonlyMap<string, string>;
}

const nameOf = (i: number): string => `f${String(i).padStart(5, '0')}.bin`;

/** Writes `count` random files of `each` bytes to work/origin/files. */
export function makeLabFiles(work: string, count: number, each: number): LabFiles {
  if (!Number.isInteger(count) || count < 1 || count > 99_999) throw new Error('--files must be 1..99999');
  const dir = join(work, 'origin', DIR);
  mkdirSync(dir, { recursive: true });
  const digests = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const body = randomBytes(each);
    writeFileSync(join(dir, nameOf(i)), body);
    digests.set(nameOf(i), createHash('sha256').update(body).digest('hex'));
  }
  return { file: { path: dir, name: DIR, size: count * each, sha256: '' }, count, each, digests };
}

function filesUrl(ctx: Ctx): string {
  return `http://${ctx.topo.origin.ip}:${ORIGIN_HTTP_PORT}/${DIR}/`;
}

/** What is wrong with a peer's copy of the set, or undefined. */
async function verifySet(files: LabFiles, dir: string): Promise<string | undefined> {
  const present = new Set(readdirSync(dir));
  const missing = [...files.digests.keys()].filter((n) => !present.has(n));
  if (missing.length > 0) return `${missing.length} files missing (${missing.slice(0, 3).join(', ')}…)`;
  for (const [name, digest] of files.digests) if ((await sha256File(join(dir, name))) !== digest) return `${name}: SHA-256 differs`;
  return undefined;
}

export async function runFilesScenario(ctx: Ctx, files: LabFiles, name: FilesScenario): Promise<ScenarioResult> {
  return name === 'files-direct' ? runFilesDirect(ctx, files) : runFilesShoal(ctx, files);
}

async function runFilesDirect(ctx: Ctx, files: LabFiles): Promise<ScenarioResult> {
  const procs = new Procs();
  try {
    const glob = `${filesUrl(ctx)}f[${nameOf(0).slice(1, 6)}-${nameOf(files.count - 1).slice(1, 6)}].bin`;
    return await measure(
      ctx,
      'files-direct',
      () => {
        const outputs: string[] = [];
        const done = ctx.topo.peers.map((p) => {
          const out = outDir(ctx, 'files-direct', p);
          outputs.push(out);
          const c = procs.start(p.ns, `curl@${p.name}`, ['curl', '-s', '-S', '-f', '-Z', '--parallel-max', String(PARALLEL), '-o', join(out, 'f#1.bin'), glob]);
          return c.exited.then(({ code, at }) => (code === 0 ? { ok: true, at } : { ok: false, at, detail: `curl exit ${code}: ${c.output().trim().slice(-300)}` }));
        });
        return { done, outputs };
      },
      { stop: () => procs.stopAll(), watch: () => procs.all, verify: (out) => verifySet(files, out) },
      { files: files.count, bytesPerFile: files.each, parallel: PARALLEL },
    );
  } finally {
    await procs.stopAll();
    cleanOutputs(ctx, 'files-direct');
  }
}

async function runFilesShoal(ctx: Ctx, files: LabFiles): Promise<ScenarioResult> {
  const procs = new Procs();
  const dir = freshDir(join(ctx.work, 'shoal-files'));
  try {
    const { peers } = await startShoalSwarm(ctx, procs, dir);
    const summaries: string[] = [];
    return await measure(
      ctx,
      'files-shoal',
      () => {
        const outputs: string[] = [];
        const done = ctx.topo.peers.map((p, i) => {
          const out = outDir(ctx, 'files-shoal', p);
          outputs.push(out);
          const g = procs.start(p.ns, `get@${p.name}`, shoalCmd(ctx, ['get', '--recursive', filesUrl(ctx), '-O', out, '-e', peers[i]!.api, '--no-progress', '--parallel', String(PARALLEL), ...(ctx.getArgs ?? [])]), { keepOutput: 64 * 1024 });
          return g.exited.then(({ code, at }) => {
            summaries[i] = g.output().trim().split('\n').at(-1) ?? '';
            return code === 0 ? { ok: true, at } : { ok: false, at, detail: `shoal get --recursive exit ${code}: ${g.output().trim().slice(-500)}` };
          });
        });
        return { done, outputs };
      },
      {
        beforeStop: () => Promise.resolve({ summaries: ctx.topo.peers.map((p, i) => `${p.name}: ${summaries[i] ?? '?'}`) }),
        stop: () => procs.stopAll(),
        watch: () => procs.all,
        verify: (out) => verifySet(files, out),
      },
      { files: files.count, bytesPerFile: files.each, parallel: PARALLEL },
    );
  } finally {
    await procs.stopAll();
    cleanOutputs(ctx, 'files-shoal');
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The per-file overhead line of a scenario: seconds above T_min for the whole set, per file. */
export function perFileLine(r: ScenarioResult, tMinS: number): string {
  const count = Number(r.details?.['files'] ?? 0);
  if (r.lastS === null || count === 0) return `${r.scenario}: no per-file figure (not every host finished)`;
  const over = r.lastS - tMinS;
  return `${r.scenario}: ${count} files in ${r.lastS.toFixed(1)} s, T_min ${tMinS.toFixed(1)} s: per-file overhead (T_last − T_min)/files = ${((over / count) * 1000).toFixed(1)} ms`;
}
