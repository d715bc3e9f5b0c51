/**
 * A task as the piece store holds it: its content file, its shape, the pieces
 * verified so far with their digests, and who holds it open (pins). The
 * file's descriptor is the store's (./open-files.ts).
 */
import { stat } from 'node:fs/promises';
import { ShoalError } from '../../common/errors.js';
import { MAX_PIECES, isValidPieceSize, pieceCount, pieceRange } from '../../common/pieces.js';
import type { MetadataDb, TaskRow } from './metadata.js';

export interface TaskShape {
  /** undefined while the origin has not said (chunked). */
  contentLength: number | undefined;
  pieceSize: number;
}

/** Throws unless `shape` is one the store can hold: SOURCE_PROTOCOL, or LIMIT_EXCEEDED past MAX_PIECES. */
export function checkShape(shape: TaskShape): void {
  if (!isValidPieceSize(shape.pieceSize)) throw new ShoalError('SOURCE_PROTOCOL', `invalid piece size ${shape.pieceSize}`);
  if (shape.contentLength === undefined) return;
  if (!Number.isSafeInteger(shape.contentLength) || shape.contentLength < 0) {
    throw new ShoalError('SOURCE_PROTOCOL', `invalid content length ${shape.contentLength}`);
  }
  if (pieceCount(shape.contentLength, shape.pieceSize) > MAX_PIECES) {
    throw new ShoalError('LIMIT_EXCEEDED', `content of ${shape.contentLength} bytes needs more than ${MAX_PIECES} pieces`);
  }
}

/** What a cache task was imported as (docs/cache.md). */
export interface CacheInfo {
  readonly id: string;
  readonly replicas: number;
  /** Unix ms it is kept until; 0 = forever. */
  readonly expiresAt: number;
}

/** A task held (fully or partly) in the store. */
export class StoredTask {
  readonly id: string;
  readonly url: string;
  readonly digest: string | undefined;
  readonly path: string;
  shape: TaskShape | undefined;
  complete = false;
  lastAccess: number;
  /** The content file's stamp when it completed or was last checked (./intact.ts). */
  stamp: string | undefined;
  /** A write for it failed for lack of space: dropped once nobody holds it, unless it completes first. */
  dropWhenIdle = false;
  /** Fetched with credentials (here or elsewhere): a requester gets it only once the origin accepts its own. */
  private = false;
  /** The version of the origin's content the pieces held are of (../source/validator.ts); empty: not known. */
  validator = '';
  /** A cache task (kept until it expires, never evicted by the quota or the TTL before): what it was imported as. */
  cache: CacheInfo | undefined;
  /** Verified pieces and their SHA-256 (dropped through dropPieces only). */
  readonly digests = new Map<number, Buffer>();
  /**
   * One more each time held pieces are dropped: the content file's bytes there
   * are no longer the verified ones. A reader copying pieces as they are
   * stored (`shoal get`'s output, src/cli/progressive-copy.ts) starts over
   * when it changes.
   */
  generation = 0;
  pins = 0;
  /** Serialises writes to the content file. */
  writeChain: Promise<void> = Promise.resolve();

  constructor(row: Pick<TaskRow, 'id' | 'url' | 'digest' | 'last_access'>, path: string) {
    this.id = row.id;
    this.url = row.url;
    this.digest = row.digest ?? undefined;
    this.path = path;
    this.lastAccess = row.last_access;
  }

  get pieceCount(): number | undefined {
    if (this.shape?.contentLength === undefined) return undefined;
    return pieceCount(this.shape.contentLength, this.shape.pieceSize);
  }

  has(n: number): boolean {
    return this.digests.has(n);
  }

  /** Forgets the pieces `numbers` (every piece when omitted) and moves to the next generation. */
  dropPieces(numbers?: Iterable<number>): void {
    if (numbers === undefined) this.digests.clear();
    else for (const n of numbers) this.digests.delete(n);
    this.generation++;
  }

  /** Bytes held on disk (verified pieces). */
  get heldBytes(): number {
    if (this.shape === undefined) return 0;
    const { contentLength, pieceSize } = this.shape;
    if (contentLength === undefined) return this.digests.size * pieceSize;
    let bytes = 0;
    for (const n of this.digests.keys()) bytes += pieceRange(n, contentLength, pieceSize).length;
    return bytes;
  }
}

/**
 * The tasks recorded in `db`, with their pieces. A record whose content file
 * is gone is worthless: `forget` is called with its ID instead.
 */
export async function loadTasks(db: MetadataDb, pathOf: (id: string) => string, forget: (id: string) => void): Promise<StoredTask[]> {
  const tasks: StoredTask[] = [];
  for (const row of db.allTasks()) {
    const task = new StoredTask(row, pathOf(row.id));
    if (row.piece_size !== null) task.shape = { contentLength: row.content_length ?? undefined, pieceSize: row.piece_size };
    if (!(await stat(task.path).then(() => true, () => false))) {
      forget(row.id);
      continue;
    }
    for (const piece of db.pieces(row.id)) task.digests.set(piece.number, piece.digest);
    task.complete = row.state === 'complete' && task.pieceCount === task.digests.size;
    task.stamp = row.content_stamp ?? undefined;
    task.private = row.private === 1;
    task.validator = row.validator;
    if (row.cache_id !== null) task.cache = { id: row.cache_id, replicas: row.cache_replicas ?? 1, expiresAt: row.cache_expires ?? 0 };
    tasks.push(task);
  }
  return tasks;
}
