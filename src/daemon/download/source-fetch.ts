/**
 * Back to source: streams the pieces a peer lacks from the origin, cutting
 * the byte stream into pieces, hashing each (../storage/verify.ts; these
 * digests become the task's authoritative ones) and storing it. Resumes from
 * what is held: one Range request per run of missing pieces, each of the
 * version the pieces held are of.
 */
import { ShoalError } from '../../common/errors.js';
import { pieceCount, pieceSizeFor } from '../../common/pieces.js';
import type { HttpSource } from '../source/http-source.js';
import type { PieceStore } from '../storage/store.js';
import type { StoredTask, TaskShape } from '../storage/stored-task.js';
import { pieceDigest } from '../storage/verify.js';
import { redactUrl } from '../../common/ids.js';
import { takeAll, type RateLimiter } from '../../common/rate-limiter.js';

export interface SourceFetchOptions {
  source: HttpSource;
  store: PieceStore;
  task: StoredTask;
  url: string;
  headers: ReadonlyArray<readonly [string, string]>;
  /** Piece size asked for by the user; 0 = the rule. */
  pieceSize: number;
  signal: AbortSignal;
  /** The origin told us the content's shape and version (first time, or after a change). */
  onShape: (shape: TaskShape, validator: string) => void;
  /** The origin's content changed: the pieces held are dropped and the task starts again from its first byte. */
  onChanged: (err: ShoalError) => void;
  /** A piece was stored and verified. */
  onPiece: (n: number, digest: Buffer, length: number) => void;
  /** Skip pieces that arrived meanwhile from elsewhere. */
  isHeld: (n: number) => boolean;
  /** The rate limits the origin's bytes pass through (back-to-source, the daemon's download limit, the get's own); none: unlimited. */
  limiters?: () => ReadonlyArray<RateLimiter | undefined>;
}

/** Runs of consecutive missing pieces, as [first, end) pairs. */
export function missingRuns(count: number, held: (n: number) => boolean): Array<[number, number]> {
  const runs: Array<[number, number]> = [];
  let start = -1;
  for (let n = 0; n <= count; n++) {
    const missing = n < count && !held(n);
    if (missing && start < 0) start = n;
    if (!missing && start >= 0) {
      runs.push([start, n]);
      start = -1;
    }
  }
  return runs;
}

/**
 * Every piece the task lacks, from the origin, of the version the pieces held
 * are of (the task's validator goes with every request: If-Range, and an
 * answer of another version fails with SOURCE_CHANGED). When the origin's
 * content has changed, the pieces of the old version are dropped and the task
 * starts again from its first byte, once; a second change fails it.
 */
export async function fetchFromSource(options: SourceFetchOptions): Promise<void> {
  const { task, store } = options;
  for (let attempt = 0; ; attempt++) {
    try {
      await fetchMissing(options);
      return;
    } catch (err) {
      if (!(err instanceof ShoalError) || err.code !== 'SOURCE_CHANGED' || attempt > 0) throw err;
      options.onChanged(err);
      await store.resetVersion(task);
    }
  }
}

async function fetchMissing(options: SourceFetchOptions): Promise<void> {
  const shape = options.task.shape;
  if (shape === undefined || shape.contentLength === undefined) {
    await streamRun(options, 0, undefined);
    return;
  }
  const count = pieceCount(shape.contentLength, shape.pieceSize);
  for (const [first, end] of missingRuns(count, (n) => options.isHeld(n))) await streamRun(options, first, end);
}

/** Streams pieces [first, end) (end undefined: to the end), of the task's version. */
async function streamRun(options: SourceFetchOptions, first: number, end: number | undefined): Promise<void> {
  const { task, store, signal } = options;
  const known = task.shape;
  const startByte = known === undefined ? 0 : first * known.pieceSize;
  const endByte =
    known?.contentLength === undefined || end === undefined ? undefined : Math.min(known.contentLength, end * known.pieceSize);
  const validator = task.validator === '' ? undefined : task.validator;
  const body = await options.source.openRange({ url: options.url, headers: options.headers, start: startByte, end: endByte, validator, signal });

  let shape = known;
  if (known?.contentLength !== undefined && body.contentLength !== undefined && body.contentLength !== known.contentLength) {
    await consumeNothing(body.chunks);
    throw new ShoalError('SOURCE_CHANGED', `the content at ${redactUrl(options.url)} changed (length ${known.contentLength} became ${body.contentLength})`);
  }
  if (task.validator === '' && body.validator !== '') await store.setValidator(task, body.validator);
  if (shape === undefined) {
    shape = { contentLength: body.contentLength, pieceSize: options.pieceSize > 0 ? options.pieceSize : pieceSizeFor(body.contentLength) };
    await store.setShape(task, shape);
    options.onShape(shape, task.validator);
  }
  const pieceSize = shape.pieceSize;
  let n = first;
  let buffer = Buffer.allocUnsafe(pieceSize);
  let filled = 0;
  let total = startByte;

  const flush = async (length: number): Promise<void> => {
    if (!options.isHeld(n)) {
      const piece = buffer.subarray(0, length);
      const digest = pieceDigest(piece);
      await store.write(task, n * pieceSize, piece);
      if (store.commitPiece(task, n, digest)) options.onPiece(n, digest, length);
    }
    n++;
    filled = 0;
  };

  for await (const chunk of body.chunks) {
    // Waiting here stops reading the origin's stream: TCP slows the origin down to the limit.
    await takeAll(options.limiters?.() ?? [], chunk.length, signal);
    let offset = 0;
    while (offset < chunk.length) {
      const take = Math.min(pieceSize - filled, chunk.length - offset);
      chunk.copy(buffer, filled, offset, offset + take);
      filled += take;
      offset += take;
      if (filled === pieceSize) await flush(pieceSize);
    }
    total += chunk.length;
    if (total > Number.MAX_SAFE_INTEGER) throw new ShoalError('LIMIT_EXCEEDED', 'content too large');
  }
  if (filled > 0) await flush(filled);
  buffer = Buffer.alloc(0);

  if (shape.contentLength === undefined) {
    // Chunked: the length is known only now.
    const learned: TaskShape = { contentLength: total, pieceSize };
    await store.setShape(task, learned);
    options.onShape(learned, task.validator);
  } else {
    const expectedEnd = endByte ?? shape.contentLength;
    if (total !== expectedEnd) {
      throw new ShoalError('SOURCE_NETWORK', `origin sent ${total - startByte} bytes, expected ${expectedEnd - startByte}, for ${redactUrl(options.url)}`);
    }
  }
}

async function consumeNothing(chunks: AsyncIterable<Buffer>): Promise<void> {
  const iterator = chunks[Symbol.asyncIterator]();
  await iterator.return?.();
}
