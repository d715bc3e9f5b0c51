/**
 * `shoal cache import | export | stat | ls | rm` (docs/cache.md), through
 * the local daemon. Import reads the file here (hashing it first, then
 * streaming it to the daemon, which hashes every piece again and checks the
 * whole), so the daemon never opens a path a caller names. Export is a
 * `shoal get` of the cache ID: through the swarm, every piece verified
 * against the importer's digests.
 */
import { createReadStream } from 'node:fs';
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { importId } from '../common/cache-id.js';
import { ShoalError } from '../common/errors.js';
import { parseDuration } from '../common/units.js';
import type { CacheEntryJson } from '../daemon/cache/entry-json.js';
import { callJson, endpointAlive } from './daemon-client.js';
import { defaultEndpoint } from './defaults.js';
import { viaDaemon } from './fetcher.js';
import type { CliIo } from './io.js';
import { checkOutputPath, placeOutput } from './output.js';

export interface CacheFlags {
  endpoint?: string;
  json?: boolean;
  quiet?: boolean;
}

export interface ImportFlags extends CacheFlags {
  id?: string;
  replicas?: string;
  ttl?: string;
}

async function endpointOf(flags: CacheFlags, io: CliIo): Promise<string> {
  const endpoint = flags.endpoint ?? defaultEndpoint(io.env);
  // A cache task lives in the cluster: an in-process daemon would forget it when this command ends.
  if (!(await endpointAlive(endpoint))) throw new ShoalError('DAEMON_UNREACHABLE', `no daemon answers at ${endpoint} (shoal cache needs a running daemon: shoal daemon)`);
  return endpoint;
}

async function fileDigest(path: string, signal: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { signal }) as AsyncIterable<Buffer>) hash.update(chunk);
  return `sha256:${hash.digest('hex')}`;
}

function describe(e: CacheEntryJson): string {
  const expires = e.expiresAt === null ? 'never expires' : `expires ${e.expiresAt}`;
  return `${e.id}\t${e.contentLength} B\t${e.contentDigest}\tcopies ${e.holders.length}/${e.replicas}${e.restoring > 0 ? ` (+${e.restoring} being made)` : ''}\t${expires}`;
}

export async function runCacheImport(file: string, flags: ImportFlags, io: CliIo): Promise<number> {
  const info = await stat(file).catch((err: unknown) => {
    throw new ShoalError('USAGE', `cannot read ${file}: ${(err as Error).message}`);
  });
  if (!info.isFile()) throw new ShoalError('USAGE', `${file} is not a regular file`);
  const replicas = flags.replicas === undefined ? 2 : Number(flags.replicas);
  if (!Number.isSafeInteger(replicas) || replicas < 1) throw new ShoalError('USAGE', `--replicas must be a whole number >= 1, got ${flags.replicas ?? ''}`);
  let ttlMs = 0;
  if (flags.ttl !== undefined) {
    try {
      ttlMs = parseDuration(flags.ttl);
    } catch (err) {
      throw new ShoalError('USAGE', `--ttl: ${(err as Error).message}`);
    }
  }
  const endpoint = await endpointOf(flags, io);
  const digest = await fileDigest(file, io.signal);
  importId(flags.id, digest); // CACHE_ID_INVALID before a byte is sent
  const query = new URLSearchParams({ digest, length: String(info.size), replicas: String(replicas), ttlMs: String(ttlMs), ...(flags.id === undefined ? {} : { id: flags.id }) });
  const entry = await callJson<CacheEntryJson>(endpoint, 'POST', `/v1/cache/import?${query.toString()}`, { stream: createReadStream(file), length: info.size }, io.signal);
  if (flags.json === true) io.stdout.write(JSON.stringify(entry, null, 2) + '\n');
  else io.stdout.write(entry.id + '\n');
  if (flags.quiet !== true && flags.json !== true) io.stderr.write(`imported ${file} as ${describe(entry)}\n`);
  return 0;
}

export async function runCacheExport(id: string, flags: CacheFlags & { output: string }, io: CliIo): Promise<number> {
  const output = await checkOutputPath(flags.output);
  const endpoint = await endpointOf(flags, io);
  const result = await viaDaemon(endpoint, { url: '', cacheId: id, progress: false }, io.signal, () => undefined);
  const how = await placeOutput(result.path, output, io.stdout, io.signal);
  const bytes = result.stats?.bytes;
  if (flags.quiet !== true && output !== '-' && bytes !== undefined) io.stderr.write(`saved ${output} (${how}; from cache ${bytes.cache} B, peers ${bytes.peers} B, seeds ${bytes.seeds} B)\n`);
  return 0;
}

export async function runCacheList(id: string | undefined, flags: CacheFlags, io: CliIo): Promise<number> {
  const endpoint = await endpointOf(flags, io);
  const entries = await callJson<CacheEntryJson[]>(endpoint, 'GET', `/v1/cache${id === undefined ? '' : `?id=${encodeURIComponent(id)}`}`, undefined, io.signal);
  if (id !== undefined && entries.length === 0) throw new ShoalError('CACHE_NOT_FOUND', `no cache ID ${id} in the cluster`);
  if (flags.json === true) io.stdout.write(JSON.stringify(id === undefined ? entries : entries[0], null, 2) + '\n');
  else for (const e of entries) io.stdout.write(describe(e) + '\n');
  return 0;
}

export async function runCacheRemove(id: string, flags: CacheFlags, io: CliIo): Promise<number> {
  const endpoint = await endpointOf(flags, io);
  const entry = await callJson<CacheEntryJson>(endpoint, 'DELETE', `/v1/cache?id=${encodeURIComponent(id)}`, undefined, io.signal);
  if (flags.quiet !== true) io.stderr.write(`removed ${entry.id} (it was on ${entry.holders.length} hosts)\n`);
  return 0;
}
