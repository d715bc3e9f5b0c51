/**
 * `shoal get --recursive URL -O DIR`: every file under an s3:// prefix or an
 * HTTP directory index (nginx autoindex), each its own task, into DIR under
 * its listed name — checked (./safe-path.ts), filtered (./glob.ts) —
 * `--parallel` at a time, with one progress line for the whole set. A file
 * already in DIR with the listed size and modification time is complete and
 * skipped (a file is placed whole or not at all, then given the listed
 * time), so a re-run fetches only what is missing or changed. A file that
 * fails does not stop the others; the exit code is the first failure's.
 */
import { mkdir, realpath, stat, utimes } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { ERRORS, ShoalError, toShoalError } from '../../common/errors.js';
import { parseSourceUrl } from '../../common/ids.js';
import { parseS3Url } from '../../common/s3-url.js';
import { buildRequest, parseHeader, type GetOptions } from '../get.js';
import { openFetcher, type Fetcher, type StartEmbedded } from '../fetcher.js';
import type { CliIo } from '../io.js';
import { checkOutputPath, placeOutput } from '../output.js';
import { createProgress, human } from '../progress.js';
import { withS3Options } from '../s3-options.js';
import { compileFilters, type Filter } from './glob.js';
import { listHttpIndex } from './http-list.js';
import type { ListedFile } from './listing.js';
import { listS3Prefix } from './s3-list.js';
import { prepareTarget, safeSegments } from './safe-path.js';

export interface RecursiveOptions extends GetOptions {
  filters: readonly Filter[];
  /** Files fetched at once (default 4). */
  parallel?: string | undefined;
}

const MAX_PARALLEL = 64;

async function list(url: string, options: RecursiveOptions, io: CliIo): Promise<ListedFile[]> {
  if (url.startsWith('s3:')) {
    const located = withS3Options(url, options, io.env, true);
    if (options.header.length > 0) throw new ShoalError('USAGE', 'headers are not sent to an object store');
    return listS3Prefix(parseS3Url(new URL(located), true), io.env, io.signal);
  }
  const parsed = parseSourceUrl(url);
  withS3Options(url, options, io.env); // refuses S3 options on an http(s) URL
  return listHttpIndex(parsed, options.header.map(parseHeader), io.signal);
}

function parallelism(value: string | undefined): number {
  if (value === undefined) return 4;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > MAX_PARALLEL) throw new ShoalError('USAGE', `--parallel is a whole number from 1 to ${MAX_PARALLEL}`);
  return n;
}

/** Complete already: the listed size (when listed) and modification time (to the second, when listed) match. */
async function isComplete(path: string, file: ListedFile): Promise<boolean> {
  const info = await stat(path).catch(() => undefined);
  if (info === undefined || !info.isFile()) return false;
  if (file.size !== undefined && info.size !== file.size) return false;
  if (file.mtime !== undefined && Math.floor(info.mtimeMs / 1000) !== Math.floor(file.mtime / 1000)) return false;
  return file.size !== undefined || file.mtime !== undefined;
}

export async function runRecursive(url: string, options: RecursiveOptions, io: CliIo, embedded: StartEmbedded | undefined): Promise<number> {
  if (options.digest !== undefined) throw new ShoalError('USAGE', '--digest names one file; it does not go with --recursive');
  if (options.output === '-') throw new ShoalError('USAGE', '--recursive writes into a directory: -O DIR');
  const parallel = parallelism(options.parallel);
  const taken = compileFilters(options.filters);
  const say = (line: string): void => {
    if (!options.quiet) io.stderr.write(line + '\n');
  };

  const listed = await list(url, options, io);
  const files = listed.filter((f) => taken(f.name));
  const names = new Set<string>();
  for (const file of files) {
    safeSegments(file.name); // a hostile listing is refused before anything is written
    if (names.has(file.name)) throw new ShoalError('LISTING_INVALID', `the listing names ${JSON.stringify(file.name.slice(0, 200))} twice`);
    names.add(file.name);
  }
  await mkdir(resolve(options.output), { recursive: true }).catch((err: Error) => {
    throw new ShoalError('OUTPUT_UNWRITABLE', `cannot create ${options.output}: ${err.message}`);
  });
  const dir = await realpath(resolve(options.output));

  const total = files.reduce((sum, f) => sum + (f.size ?? 0), 0);
  const done = { files: 0, skipped: 0, failed: 0, bytes: 0 };
  const inFlight = new Map<string, number>();
  const sources = { cache: 0, peers: 0, seeds: 0, source: 0 };
  const progress = await createProgress(io.stderr, options.progress && !options.quiet, () => `${done.files + done.skipped + done.failed}/${files.length} files`);
  const tick = (): void => progress.update(done.bytes + [...inFlight.values()].reduce((a, b) => a + b, 0), total);
  const failures: Array<{ name: string; error: ShoalError }> = [];
  const checkedDirs = new Set<string>();

  let fetcher: Fetcher | undefined;
  try {
    fetcher = await openFetcher(io, options.endpoint, embedded);
    const one = async (file: ListedFile): Promise<void> => {
      const target = await prepareTarget(dir, file.name);
      if (await isComplete(target, file)) {
        done.skipped++;
        done.bytes += file.size ?? 0;
        return;
      }
      if (!checkedDirs.has(dirname(target))) {
        checkedDirs.add(dirname(target));
        await checkOutputPath(target); // removes what killed gets left there
      }
      const request = buildRequest(file.url, { ...options, endpointUrl: undefined, region: undefined, addressingStyle: undefined, header: file.url.startsWith('s3:') ? [] : options.header }, io.env);
      const result = await fetcher!.fetch({ ...request, progress: progress.shown }, (bytes) => {
        inFlight.set(file.name, bytes);
        tick();
      });
      await prepareTarget(dir, file.name); // again: nothing became a symlink meanwhile
      await placeOutput(result.path, target, io.stdout, io.signal, { direct: options.directIo !== false });
      if (file.mtime !== undefined) await utimes(target, new Date(), new Date(file.mtime));
      const bytes = result.stats?.bytes;
      if (bytes !== undefined) for (const k of ['cache', 'peers', 'seeds', 'source'] as const) sources[k] += bytes[k];
      done.files++;
      done.bytes += file.size ?? result.stats?.contentLength ?? 0;
    };
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < files.length && !io.signal.aborted) {
        const file = files[next++]!;
        try {
          await one(file);
        } catch (err) {
          const error = toShoalError(err);
          if (error.code === 'ABORTED') throw error;
          done.failed++;
          failures.push({ name: file.name, error });
        } finally {
          inFlight.delete(file.name);
          tick();
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(parallel, Math.max(1, files.length)) }, worker));
    if (io.signal.aborted) throw new ShoalError('ABORTED', 'cancelled');
  } finally {
    progress.stop();
    await fetcher?.close();
  }
  for (const { name, error } of failures) io.stderr.write(`failed ${name}: ${error.code}: ${error.message}\n`);
  say(
    `${done.files} fetched, ${done.skipped} already complete, ${done.failed} failed, of ${files.length} files (${listed.length - files.length} filtered out) into ${options.output}` +
      ` (${human(total)}; from cache ${sources.cache} B, peers ${sources.peers} B, seeds ${sources.seeds} B, origin ${sources.source} B)`,
  );
  const first = failures[0];
  return first === undefined ? 0 : ERRORS[first.error.code].exit;
}
