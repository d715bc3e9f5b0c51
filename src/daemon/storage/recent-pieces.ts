/**
 * The pieces received last, kept in memory to serve to children. Children
 * ask for a piece just after their parent stored it (a chain or a tree
 * passes each piece on as it arrives), so nearly every upload is of one of
 * the last few pieces. Served from here, an upload reads no file: where the
 * store writes pieces with O_DIRECT (cache.directIo) they are in no page
 * cache, and reading them back would fill one, the cost the direct write
 * saved. At most `maxBytes` are kept, the least recently stored leave first.
 *
 * An entry is the verified bytes of piece n with the digest it was verified
 * against; it is served only while the task still holds piece n with that
 * digest (so a piece dropped, or of another version, is never served from
 * here). The buffer is the receiver's pool buffer: `release` gives it back
 * when the entry leaves, or, if an upload is still writing from it then,
 * when the last such upload is done (`lend`): uploads are sent straight from
 * it, with no copy.
 */
import type { StoredTask } from './stored-task.js';

interface Entry {
  task: StoredTask;
  digest: Buffer;
  data: Buffer;
  release: () => void;
  /** Uploads writing from `data` now. */
  lent: number;
  /** No longer kept: `release` is due once `lent` is 0. */
  dropped: boolean;
}

/** A kept piece's bytes, lent to one upload: `done()` (once) when every write from them has completed. */
export interface LentPiece {
  readonly data: Buffer;
  done(): void;
}

export class RecentPieces {
  readonly #maxBytes: number;
  /** By `${task id}/${n}`, least recently stored first. */
  readonly #entries = new Map<string, Entry>();
  #bytes = 0;
  /** Reads asked of `read`, by whether the piece was here. */
  readonly reads = { memory: 0, file: 0 };

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Keeps piece n's bytes (ownership passes here: `release` is called when they leave, at once when they cannot be kept). */
  keep(task: StoredTask, n: number, digest: Buffer, data: Buffer, release: () => void): void {
    if (data.length > this.#maxBytes || task.digests.get(n)?.equals(digest) !== true) {
      release();
      return;
    }
    const key = `${task.id}/${n}`;
    this.#drop(key);
    this.#entries.set(key, { task, digest, data, release, lent: 0, dropped: false });
    this.#bytes += data.length;
    for (const oldest of this.#entries.keys()) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#drop(oldest);
    }
  }

  /** Piece n's bytes, to write from until `done()`; undefined when the piece is not here (or no longer held as it was). */
  lend(task: StoredTask, n: number): LentPiece | undefined {
    const key = `${task.id}/${n}`;
    const entry = this.#entries.get(key);
    if (entry === undefined || entry.task !== task || task.digests.get(n)?.equals(entry.digest) !== true) {
      if (entry !== undefined) this.#drop(key);
      this.reads.file++;
      return undefined;
    }
    this.reads.memory++;
    entry.lent++;
    let returned = false;
    return {
      data: entry.data,
      done: () => {
        if (returned) return;
        returned = true;
        entry.lent--;
        if (entry.dropped && entry.lent === 0) entry.release();
      },
    };
  }

  /** Forgets every piece of the task with this id. */
  dropTask(id: string): void {
    for (const key of [...this.#entries.keys()]) if (key.startsWith(`${id}/`)) this.#drop(key);
  }

  clear(): void {
    for (const key of [...this.#entries.keys()]) this.#drop(key);
  }

  #drop(key: string): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    this.#bytes -= entry.data.length;
    entry.dropped = true;
    if (entry.lent === 0) entry.release();
  }
}
