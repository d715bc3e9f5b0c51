/**
 * `shoal cache import`, on the daemon: a local file's bytes (streamed by the
 * CLI over the local API, so the daemon never opens a path a caller names)
 * become a complete cache task in the store, cut into pieces, each hashed
 * here: the importing daemon computes the piece digests and the content
 * digest, and the scheduler takes them as the task's (the first importer's
 * win; docs/security.md, "Cache tasks"). Then the scheduler is told, and it
 * keeps the copies. A conflict or failure leaves nothing behind.
 */
import { createHash } from 'node:crypto';
import { cacheTaskId, importId } from '../../common/cache-id.js';
import { ShoalError } from '../../common/errors.js';
import { parseDigest } from '../../common/ids.js';
import { packDigests, pieceCount, pieceSizeFor } from '../../common/pieces.js';
import { fromConnectError } from '../../common/rpc-errors.js';
import type { SchedulerClient } from '../scheduler-link.js';
import type { PieceStore, StoredTask } from '../storage/store.js';
import { pieceDigest } from '../storage/verify.js';
import { cacheEntryOf } from '../announce.js';
import { entryJson, type CacheEntryJson } from './entry-json.js';

export interface CacheImportInput {
  body: AsyncIterable<Buffer>;
  /** Bytes the body has (the file's size when the CLI opened it). */
  length: number;
  /** `sha256:<hex>` of the whole file, as the CLI read it; checked against what arrives. */
  contentDigest: string;
  /** The cache ID asked for; absent: the content digest. */
  id: string | undefined;
  replicas: number;
  /** Kept this long from now; 0 = until removed. */
  ttlMs: number;
  signal: AbortSignal;
}

export interface CacheImportDeps {
  store: PieceStore;
  /** The scheduler of a task (its first live one in rendezvous order). */
  client: (taskId: string) => SchedulerClient;
  /** Every scheduler connected now: a listing of all entries asks each. */
  clients: () => SchedulerClient[];
  hostId: () => string;
  peerId: (taskId: string) => string;
}

/** Stores the body as a cache task and registers it with the scheduler; CACHE_CONFLICT, DIGEST_MISMATCH, CACHE_ID_INVALID, SCHEDULER_UNREACHABLE, STORAGE… */
export async function importCache(input: CacheImportInput, deps: CacheImportDeps): Promise<CacheEntryJson> {
  parseDigest(input.contentDigest);
  const id = importId(input.id, input.contentDigest);
  const taskId = cacheTaskId(id);
  await refuseTaken(deps.client(taskId), id, input.contentDigest, input.signal);
  const { store } = deps;
  // Whatever was held under this ID (an older import, a copy) is replaced by these bytes.
  await store.delete(taskId);
  const task = await store.ensure(taskId, '', input.contentDigest);
  const unpin = store.pin(task);
  try {
    await writePieces(store, task, input);
    await store.markComplete(task);
    store.setCache(task, { id, replicas: input.replicas, expiresAt: input.ttlMs > 0 ? Date.now() + input.ttlMs : 0 });
    const numbers = Array.from({ length: task.pieceCount ?? 0 }, (_, n) => n);
    const entry = await deps
      .client(taskId)
      .importCache({ hostId: deps.hostId(), peerId: deps.peerId(taskId), entry: cacheEntryOf(task), digests: packDigests(numbers.map((n) => task.digests.get(n)!)) }, { signal: input.signal })
      .catch((err: unknown) => {
        throw fromConnectError(err, 'SCHEDULER_UNREACHABLE');
      });
    return entryJson(entry);
  } catch (err) {
    unpin();
    await store.delete(taskId).catch(() => undefined);
    throw err;
  } finally {
    unpin();
  }
}

/** CACHE_CONFLICT before a byte is stored when the scheduler already knows the ID with other content. */
async function refuseTaken(client: SchedulerClient, id: string, digest: string, signal: AbortSignal): Promise<void> {
  const known = await client.listCache({ id }, { signal }).catch((err: unknown) => {
    throw fromConnectError(err, 'SCHEDULER_UNREACHABLE');
  });
  const other = known.entries.find((e) => e.contentDigest !== digest);
  if (other !== undefined) throw new ShoalError('CACHE_CONFLICT', `cache ID ${id} is taken by other content (${other.contentDigest}); this file is ${digest}`);
}

/** Cuts the body into pieces, hashing and storing each; the whole must be `length` bytes of `contentDigest`. */
async function writePieces(store: PieceStore, task: StoredTask, input: CacheImportInput): Promise<void> {
  const pieceSize = pieceSizeFor(input.length);
  await store.setShape(task, { contentLength: input.length, pieceSize });
  const whole = createHash('sha256');
  let buffer = Buffer.allocUnsafe(Math.min(pieceSize, Math.max(1, input.length)));
  let filled = 0;
  let n = 0;
  let total = 0;
  const flush = async (): Promise<void> => {
    const piece = buffer.subarray(0, filled);
    await store.write(task, n * pieceSize, piece);
    store.commitPiece(task, n, pieceDigest(piece));
    n++;
    filled = 0;
  };
  for await (const chunk of input.body) {
    if (input.signal.aborted) throw new ShoalError('ABORTED', 'the import was cancelled');
    total += chunk.length;
    if (total > input.length) throw new ShoalError('USAGE', `the file sent is longer than the ${input.length} bytes announced (did it change while it was read?)`);
    whole.update(chunk);
    let offset = 0;
    while (offset < chunk.length) {
      const take = Math.min(buffer.length - filled, chunk.length - offset);
      chunk.copy(buffer, filled, offset, offset + take);
      filled += take;
      offset += take;
      if (filled === buffer.length) await flush();
    }
  }
  if (filled > 0) await flush();
  buffer = Buffer.alloc(0);
  if (total !== input.length) throw new ShoalError('USAGE', `the file sent is ${total} bytes, not the ${input.length} announced (did it change while it was read?)`);
  if (n !== pieceCount(input.length, pieceSize)) throw new ShoalError('INTERNAL', `cut ${n} pieces of ${pieceCount(input.length, pieceSize)}`);
  const digest = `sha256:${whole.digest('hex')}`;
  if (digest !== input.contentDigest) throw new ShoalError('DIGEST_MISMATCH', `the file sent is ${digest}, not ${input.contentDigest} (did it change while it was read?)`);
}
