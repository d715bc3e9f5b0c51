/**
 * A task as the piece store holds it: its content file, its shape, the pieces
 * verified so far with their digests, and who holds it open (pins).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { pieceCount, pieceRange } from '../../common/pieces.js';
import type { TaskRow } from './metadata.js';

export interface TaskShape {
  /** undefined while the origin has not said (chunked). */
  contentLength: number | undefined;
  pieceSize: number;
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
  /** The content file's mtime when it completed (see PieceStore.checkIntact). */
  contentMtime: number | undefined;
  /** Fetched with credentials (here or elsewhere): a requester gets it only once the origin accepts its own. */
  private = false;
  /** The version of the origin's content the pieces held are of (../source/validator.ts); empty: not known. */
  validator = '';
  /** Verified pieces and their SHA-256. */
  readonly digests = new Map<number, Buffer>();
  pins = 0;
  file: FileHandle | undefined;
  /** Serialises writes to the content file. */
  writeChain: Promise<void> = Promise.resolve();
  #opening: Promise<FileHandle> | undefined;

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

  /** Bytes held on disk (verified pieces). */
  get heldBytes(): number {
    if (this.shape === undefined) return 0;
    const { contentLength, pieceSize } = this.shape;
    if (contentLength === undefined) return this.digests.size * pieceSize;
    let bytes = 0;
    for (const n of this.digests.keys()) bytes += pieceRange(n, contentLength, pieceSize).length;
    return bytes;
  }

  async handle(): Promise<FileHandle> {
    if (this.file !== undefined) return this.file;
    this.#opening ??= open(this.path, 'a+').then(async (fh) => {
      await fh.close();
      const rw = await open(this.path, 'r+');
      this.file = rw;
      return rw;
    });
    return this.#opening;
  }

  async closeFile(): Promise<void> {
    const fh = this.file ?? (this.#opening === undefined ? undefined : await this.#opening.catch(() => undefined));
    this.file = undefined;
    this.#opening = undefined;
    await fh?.close().catch(() => undefined);
  }
}
