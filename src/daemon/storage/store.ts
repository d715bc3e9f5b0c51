/**
 * The piece store: one content file per task, written at piece offsets, and
 * its metadata in SQLite. Survives restarts: verified pieces are reloaded and
 * reused. A piece counts as held only after its bytes are written and its
 * SHA-256 checked (./verify.ts), so a crash mid-piece never serves a partial
 * piece.
 *
 * Lifecycle (common/lifecycle.ts): `start()` creates the data directory,
 * takes its lock (DATA_DIR_LOCKED when another process holds it), opens the
 * metadata and loads the tasks; `stop()` lets writes in flight finish (for
 * STOP_GRACE_MS at most), closes every file and releases the lock.
 */
import { mkdirSync, writeSync } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { CacheSettings } from '../../common/config/schema.js';
import { ShoalError } from '../../common/errors.js';
import { Service, drainWithin } from '../../common/lifecycle.js';
import { silentLogger, type Logger } from '../../common/log.js';
import { MAX_PIECES, isValidPieceSize, pieceCount, pieceRange } from '../../common/pieces.js';
import { DirtyPages } from './dirty-pages.js';
import { chooseEvictions } from './eviction.js';
import { lockDataDir, type DirLock } from './lock.js';
import { MetadataDb } from './metadata.js';
import { StoredTask, type TaskShape } from './stored-task.js';
import { verifyPiece } from './verify.js';

// Re-exported for the store's users outside this folder.
export { StoredTask, type TaskShape } from './stored-task.js';

export interface PieceHandle {
  readonly length: number;
  readonly taskComplete: boolean;
  read(buf: Buffer, offset: number, length: number): Promise<number>;
  release(): void;
}

export interface PieceStoreOptions {
  dataDir: string;
  /** The quota and TTL that gc() applies (gcInterval is when its owner calls it). */
  cache: CacheSettings;
  /** Default: silent. */
  logger?: Logger;
  /** The clock of last-access times and the TTL. Default: Date.now. */
  now?: () => number;
}

/** Bytes per synchronous write (see PieceStore.write). */
const WRITE_CHUNK = 64 * 1024;
/** How long stop() waits for writes in flight. */
const STOP_GRACE_MS = 5000;
const dirtyPages = new DirtyPages();

export class PieceStore extends Service {
  protected readonly serviceName = 'piece store';
  readonly dataDir: string;
  readonly #tasks = new Map<string, StoredTask>();
  readonly #cache: CacheSettings;
  readonly #log: Logger;
  readonly #now: () => number;
  #lock: DirLock | undefined;
  /** Set while the store is open (between start() and stop()). */
  #db: MetadataDb | undefined;

  constructor(options: PieceStoreOptions) {
    super();
    this.dataDir = options.dataDir;
    this.#cache = options.cache;
    this.#log = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
  }

  protected async onStart(): Promise<void> {
    const dir = this.dataDir;
    try {
      mkdirSync(join(dir, 'content'), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new ShoalError('STORAGE', `cannot create data directory ${dir}: ${(err as Error).message}`, { cause: err });
    }
    this.#lock = lockDataDir(dir);
    const dbPath = join(dir, 'metadata.db');
    let db: MetadataDb;
    try {
      db = new MetadataDb(dbPath);
    } catch (err) {
      throw new ShoalError('STORAGE', `cannot open ${dbPath}: ${(err as Error).message}`, { cause: err });
    }
    this.#db = db;
    await this.#load(db);
  }

  protected async onStop(): Promise<void> {
    const writes = Promise.all([...this.#tasks.values()].map((t) => t.writeChain));
    await drainWithin(writes, STOP_GRACE_MS, this.destroyed);
    const db = this.#db;
    this.#db = undefined;
    for (const task of this.#tasks.values()) await task.closeFile();
    db?.close();
    this.#lock?.release();
  }

  /** The metadata, while the store is open. */
  get #meta(): MetadataDb {
    if (this.#db === undefined) throw new ShoalError('STORAGE', `the piece store is ${this.state === 'idle' || this.state === 'starting' ? 'not started' : 'closed'}`);
    return this.#db;
  }

  async #load(db: MetadataDb): Promise<void> {
    for (const row of db.allTasks()) {
      const task = new StoredTask(row, this.contentPath(row.id));
      if (row.piece_size !== null) {
        task.shape = { contentLength: row.content_length ?? undefined, pieceSize: row.piece_size };
      }
      const size = await stat(task.path).then((s) => s.size, () => -1);
      if (size < 0) {
        // The content file is gone: the metadata is worthless.
        db.deleteTask(row.id);
        continue;
      }
      for (const piece of db.pieces(row.id)) task.digests.set(piece.number, piece.digest);
      task.complete = row.state === 'complete' && task.pieceCount === task.digests.size;
      task.contentMtime = row.content_mtime ?? undefined;
      task.private = row.private === 1;
      task.validator = row.validator;
      this.#tasks.set(task.id, task);
    }
    this.#log.debug({ tasks: this.#tasks.size }, 'piece store loaded');
  }

  contentPath(id: string): string {
    return join(this.dataDir, 'content', id.slice(0, 3), id);
  }

  get(id: string): StoredTask | undefined {
    return this.#tasks.get(id);
  }

  tasks(): StoredTask[] {
    return [...this.#tasks.values()];
  }

  /** Returns the task, creating its record (and content file) if absent. */
  async ensure(id: string, url: string, digest: string | undefined): Promise<StoredTask> {
    const db = this.#meta;
    let task = this.#tasks.get(id);
    if (task !== undefined) return task;
    const now = this.#now();
    task = new StoredTask({ id, url, digest: digest ?? null, last_access: now }, this.contentPath(id));
    try {
      mkdirSync(join(this.dataDir, 'content', id.slice(0, 3)), { recursive: true, mode: 0o700 });
      db.insertTask(id, url, digest ?? null, now);
      await task.handle();
    } catch (err) {
      throw new ShoalError('STORAGE', `cannot create task ${id}: ${(err as Error).message}`, { cause: err });
    }
    this.#tasks.set(id, task);
    return task;
  }

  /**
   * Records the task's shape. A shape that contradicts the one stored (the
   * origin's content changed) drops every piece held.
   */
  async setShape(task: StoredTask, shape: TaskShape): Promise<void> {
    if (!isValidPieceSize(shape.pieceSize)) throw new ShoalError('SOURCE_PROTOCOL', `invalid piece size ${shape.pieceSize}`);
    if (shape.contentLength !== undefined) {
      if (!Number.isSafeInteger(shape.contentLength) || shape.contentLength < 0) {
        throw new ShoalError('SOURCE_PROTOCOL', `invalid content length ${shape.contentLength}`);
      }
      if (pieceCount(shape.contentLength, shape.pieceSize) > MAX_PIECES) {
        throw new ShoalError('LIMIT_EXCEEDED', `content of ${shape.contentLength} bytes needs more than ${MAX_PIECES} pieces`);
      }
    }
    const old = task.shape;
    if (old !== undefined && old.pieceSize === shape.pieceSize && old.contentLength === shape.contentLength) return;
    // A length learned at the end of a chunked response keeps the pieces; anything else is new content.
    const lengthLearned = old !== undefined && old.pieceSize === shape.pieceSize && old.contentLength === undefined;
    if (old !== undefined && !lengthLearned) {
      this.#log.warn({ task: task.id, old, shape }, 'task shape changed; dropping its pieces');
      task.digests.clear();
      task.complete = false;
      this.#meta.clearPieces(task.id);
    }
    task.shape = shape;
    this.#meta.setShape(task.id, shape.contentLength ?? null, shape.pieceSize);
    if (shape.contentLength !== undefined) {
      const fh = await task.handle();
      await fh.truncate(shape.contentLength).catch((err: unknown) => {
        throw new ShoalError('STORAGE', `cannot size ${task.path}: ${(err as Error).message}`, { cause: err });
      });
    }
  }

  /**
   * Writes bytes at an absolute content offset (not yet a verified piece).
   * Writes to one task's file go one at a time: concurrent pwrites to one
   * file contend on its inode lock (measured: more system time, no gain).
   *
   * The bytes go in WRITE_CHUNK synchronous writes on the calling thread: the
   * piece was just received into that thread's CPU cache, and copying it into
   * the page cache from there in small chunks cost a quarter of what 1 MiB
   * writes from libuv's thread pool cost (lab, 10 peers: pwrite 22 % → 5 % of
   * the machine). A page-cache write takes microseconds, unless the kernel is
   * throttling writers because too much is dirty (a disk slower than the
   * network): then, and whenever that is near (./dirty-pages.ts), writes go
   * to the thread pool so the event loop never sleeps on the disk.
   */
  write(task: StoredTask, offset: number, data: Buffer): Promise<void> {
    const next = task.writeChain.then(() => this.#write(task, offset, data));
    task.writeChain = next.catch(() => undefined);
    return next;
  }

  async #write(task: StoredTask, offset: number, data: Buffer): Promise<void> {
    const fh = await task.handle();
    let done = 0;
    try {
      if (!dirtyPages.near()) {
        while (done < data.length) done += writeSync(fh.fd, data, done, Math.min(WRITE_CHUNK, data.length - done), offset + done);
        return;
      }
      while (done < data.length) {
        const { bytesWritten } = await fh.write(data, done, data.length - done, offset + done);
        done += bytesWritten;
      }
    } catch (err) {
      throw new ShoalError('STORAGE', `write to ${task.path} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Marks a piece verified and held. Returns false if it was already held. */
  commitPiece(task: StoredTask, n: number, digest: Buffer): boolean {
    if (task.digests.has(n)) return false;
    this.#meta.insertPiece(task.id, n, digest);
    task.digests.set(n, digest);
    return true;
  }

  /** Marks a task complete: every piece is held. */
  async markComplete(task: StoredTask): Promise<void> {
    if (task.pieceCount !== task.digests.size) {
      throw new ShoalError('INTERNAL', `task ${task.id} marked complete with ${task.digests.size}/${String(task.pieceCount)} pieces`);
    }
    task.complete = true;
    task.lastAccess = this.#now();
    this.#meta.setState(task.id, 'complete', task.lastAccess);
    task.contentMtime = await stat(task.path).then((s) => s.mtimeMs, () => undefined);
    this.#meta.setContentMtime(task.id, task.contentMtime ?? null);
  }

  /**
   * Checks that a complete task's content file was not written since it
   * completed (an output hard-linked from the cache is the same file). If its
   * mtime moved, every piece is hashed again and the ones that fail are
   * dropped, so they are fetched again. Returns the number of pieces dropped.
   */
  async checkIntact(task: StoredTask): Promise<number> {
    const mtime = await stat(task.path).then((s) => s.mtimeMs, () => undefined);
    if (mtime !== undefined && mtime === task.contentMtime) return 0;
    const { contentLength, pieceSize } = task.shape!;
    const fh = await task.handle();
    const buf = Buffer.allocUnsafe(pieceSize);
    const bad: number[] = [];
    for (const [n, digest] of task.digests) {
      const range = pieceRange(n, contentLength!, pieceSize);
      const { bytesRead } = await fh.read(buf, 0, range.length, range.offset);
      if (bytesRead !== range.length || !verifyPiece(buf.subarray(0, bytesRead), digest)) bad.push(n);
    }
    if (bad.length === 0) {
      task.contentMtime = mtime;
      this.#meta.setContentMtime(task.id, mtime ?? null);
      return 0;
    }
    this.#log.warn({ task: task.id, pieces: bad.length }, 'cached content was modified; refetching those pieces');
    task.complete = false;
    for (const n of bad) task.digests.delete(n);
    this.#meta.clearPieces(task.id);
    for (const [n, digest] of task.digests) this.#meta.insertPiece(task.id, n, digest);
    this.#meta.setState(task.id, 'running', this.#now());
    return bad.length;
  }

  /**
   * Records the version of the origin's content the task's pieces are of. A
   * different one than held means the pieces held are of another version:
   * they are dropped first (never mixed). Returns whether pieces were dropped.
   */
  async setValidator(task: StoredTask, validator: string): Promise<boolean> {
    if (task.validator === validator) return false;
    const dropped = task.validator !== '' && task.digests.size > 0;
    if (dropped) {
      this.#log.warn({ task: task.id, held: task.digests.size }, 'the origin content changed; dropping the pieces of the old version');
      await this.invalidate(task);
    }
    task.validator = validator;
    this.#meta.setValidator(task.id, validator);
    return dropped;
  }

  /** The origin's content changed: the task starts over, with no piece, shape or version (they come with the next answer). */
  async resetVersion(task: StoredTask): Promise<void> {
    await this.invalidate(task);
    task.shape = undefined;
    task.validator = '';
    this.#meta.resetVersion(task.id);
  }

  /** Records that the task was fetched with credentials (kept across restarts; never undone). */
  markPrivate(task: StoredTask): void {
    if (task.private) return;
    task.private = true;
    this.#meta.setPrivate(task.id);
  }

  touch(task: StoredTask): void {
    task.lastAccess = this.#now();
    this.#meta.touch(task.id, task.lastAccess);
  }

  pin(task: StoredTask): () => void {
    task.pins++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      task.pins--;
    };
  }

  /** Opens a verified piece for the upload server. */
  openPiece(id: string, n: number): PieceHandle | undefined {
    const task = this.#tasks.get(id);
    if (task === undefined || task.shape === undefined || !task.digests.has(n)) return undefined;
    const { contentLength, pieceSize } = task.shape;
    const range =
      contentLength === undefined ? { offset: n * pieceSize, length: pieceSize } : pieceRange(n, contentLength, pieceSize);
    const unpin = this.pin(task);
    return {
      length: range.length,
      taskComplete: task.complete,
      read: async (buf, offset, length) => {
        const fh = await task.handle();
        const { bytesRead } = await fh.read(buf, 0, Math.min(length, range.length - offset), range.offset + offset);
        return bytesRead;
      },
      release: unpin,
    };
  }

  async delete(id: string): Promise<void> {
    const task = this.#tasks.get(id);
    if (task === undefined) return;
    this.#meta.deleteTask(id);
    this.#tasks.delete(id);
    await task.closeFile();
    await rm(task.path, { force: true });
  }

  /** Drops every piece of a task whose content failed verification. */
  async invalidate(task: StoredTask): Promise<void> {
    task.digests.clear();
    task.complete = false;
    this.#meta.clearPieces(task.id);
    this.#meta.setState(task.id, 'running', this.#now());
  }

  /** Evicts what the cache policy chooses (./eviction.ts). Returns the evicted task IDs. */
  async gc(): Promise<string[]> {
    const evicted = chooseEvictions(this.tasks(), this.#cache, this.#now());
    for (const id of evicted) await this.delete(id);
    if (evicted.length > 0) this.#log.info({ evicted: evicted.length }, 'cache gc');
    return evicted;
  }

  usedBytes(): number {
    return this.tasks().reduce((sum, t) => sum + t.heldBytes, 0);
  }
}
