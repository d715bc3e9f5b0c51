/**
 * Back to source: streams the pieces a peer lacks from the origin, cutting
 * the byte stream into pieces, hashing each (../storage/verify.ts; these
 * digests become the task's authoritative ones) and storing it. Resumes from what is held: one Range
 * request per run of missing pieces.
 */
import { ShoalError } from '../../common/errors.js';
import { pieceCount, pieceSizeFor } from '../../common/pieces.js';
import type { HttpSource } from '../source/http-source.js';
import type { PieceStore } from '../storage/store.js';
import type { StoredTask, TaskShape } from '../storage/stored-task.js';
import { pieceDigest } from '../storage/verify.js';
import { redactUrl } from '../../common/ids.js';

export interface SourceFetchOptions {
  source: HttpSource;
  store: PieceStore;
  task: StoredTask;
  url: string;
  headers: ReadonlyArray<readonly [string, string]>;
  /** Piece size asked for by the user; 0 = the rule. */
  pieceSize: number;
  signal: AbortSignal;
  /** The origin told us the content's shape (first time, or it changed). */
  onShape: (shape: TaskShape) => void;
  /** A piece was stored and verified. */
  onPiece: (n: number, digest: Buffer, length: number) => void;
  /** Skip pieces that arrived meanwhile from elsewhere. */
  isHeld: (n: number) => boolean;
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

export async function fetchFromSource(options: SourceFetchOptions): Promise<void> {
  const { task, store } = options;
  for (let attempt = 0; attempt < 2; attempt++) {
    const shape = task.shape;
    if (shape === undefined || shape.contentLength === undefined) {
      await streamRun(options, 0, undefined);
      return;
    }
    const count = pieceCount(shape.contentLength, shape.pieceSize);
    let changed = false;
    for (const [first, end] of missingRuns(count, (n) => options.isHeld(n))) {
      const stillShape = await streamRun(options, first, end);
      if (!stillShape) {
        changed = true;
        break;
      }
    }
    if (!changed) return;
    // The origin's content changed under us: start over once with the new shape.
    await store.invalidate(task);
  }
  throw new ShoalError('SOURCE_PROTOCOL', `the content at ${redactUrl(options.url)} keeps changing`);
}

/** Streams pieces [first, end) (end undefined: to the end). Returns false if the content's shape changed. */
async function streamRun(options: SourceFetchOptions, first: number, end: number | undefined): Promise<boolean> {
  const { task, store, signal } = options;
  const known = task.shape;
  const startByte = known === undefined ? 0 : first * known.pieceSize;
  const endByte =
    known?.contentLength === undefined || end === undefined ? undefined : Math.min(known.contentLength, end * known.pieceSize);
  const body = await options.source.openRange({ url: options.url, headers: options.headers, start: startByte, end: endByte, signal });

  let shape = known;
  const fresh: TaskShape = { contentLength: body.contentLength, pieceSize: options.pieceSize > 0 ? options.pieceSize : pieceSizeFor(body.contentLength) };
  if (shape === undefined) {
    shape = fresh;
    await store.setShape(task, shape);
    options.onShape(shape);
  } else if (shape.contentLength !== undefined && body.contentLength !== undefined && body.contentLength !== shape.contentLength) {
    await consumeNothing(body.chunks);
    await store.setShape(task, { contentLength: body.contentLength, pieceSize: shape.pieceSize });
    options.onShape(task.shape!);
    return false;
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
    options.onShape(learned);
  } else {
    const expectedEnd = endByte ?? shape.contentLength;
    if (total !== expectedEnd) {
      throw new ShoalError('SOURCE_NETWORK', `origin sent ${total - startByte} bytes, expected ${expectedEnd - startByte}, for ${redactUrl(options.url)}`);
    }
  }
  return true;
}

async function consumeNothing(chunks: AsyncIterable<Buffer>): Promise<void> {
  const iterator = chunks[Symbol.asyncIterator]();
  await iterator.return?.();
}
