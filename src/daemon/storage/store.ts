/**
 * The piece store: one content file per task, written at piece offsets, and
 * its metadata in SQLite. Survives restarts: verified pieces are reloaded and
 * reused. A piece counts as held only after its bytes are written and its
 * SHA-256 checked, so a crash mid-piece never serves a partial piece.
 */
import { mkdirSync, writeSync } from 'node:fs';
import { open, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { ShoalError } from '../../common/errors.js';
import { silentLogger, type Logger } from '../../common/log.js';
import { MAX_PIECES, isValidPieceSize, pieceCount, pieceRange } from '../../common/pieces.js';
import { DirtyPages } from './dirty-pages.js';
import { lockDataDir, type DirLock } from './lock.js';
import { MetadataDb, type TaskRow } from './metadata.js';
import { verifyPiece } from './verify.js';

export interface PieceHandle {
  readonly length: number;
  readonly taskComplete: boolean;
  read(buf: Buffer, offset: number, length: number): Promise<number>;
  release(): void;
}

export interface PieceStoreOptions {
  dataDir: string;
  /** Content bytes kept before least-recently-used complete tasks are evicted. 0 = no quota. */
  quotaBytes?: number;
  /** Complete tasks unused for this long are evicted. 0 = never. */
  ttlMs?: number;
  logger?: Logger;
  now?: () => number;
}

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

/** Bytes per synchronous write (see PieceStore.write). */
const WRITE_CHUNK = 64 * 1024;
const dirtyPages = new DirtyPages();

export class PieceStore {
  readonly dataDir: string;
  readonly #db: MetadataDb;
  readonly #lock: DirLock;
  readonly #tasks = new Map<string, StoredTask>();
  readonly #quota: number;
  readonly #ttl: number;
  readonly #log: Logger;
  readonly #now: () => number;
  #closed = false;

  private constructor(options: PieceStoreOptions, db: MetadataDb, lock: DirLock) {
    this.dataDir = options.dataDir;
    this.#db = db;
    this.#lock = lock;
    this.#quota = options.quotaBytes ?? 0;
    this.#ttl = options.ttlMs ?? 0;
    this.#log = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
  }

  static async open(options: PieceStoreOptions): Promise<PieceStore> {
    const dir = options.dataDir;
    try {
      mkdirSync(join(dir, 'content'), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new ShoalError('STORAGE', `cannot create data directory ${dir}: ${(err as Error).message}`, { cause: err });
    }
    const lock = lockDataDir(dir);
    let db: MetadataDb;
    try {
      db = new MetadataDb(join(dir, 'metadata.db'));
    } catch (err) {
      lock.release();
      throw new ShoalError('STORAGE', `cannot open ${join(dir, 'metadata.db')}: ${(err as Error).message}`, { cause: err });
    }
    const store = new PieceStore(options, db, lock);
    await store.#load();
    return store;
  }

  async #load(): Promise<void> {
    for (const row of this.#db.allTasks()) {
      const task = new StoredTask(row, this.contentPath(row.id));
      if (row.piece_size !== null) {
        task.shape = { contentLength: row.content_length ?? undefined, pieceSize: row.piece_size };
      }
      const size = await stat(task.path).then((s) => s.size, () => -1);
      if (size < 0) {
        // The content file is gone: the metadata is worthless.
        this.#db.deleteTask(row.id);
        continue;
      }
      for (const piece of this.#db.pieces(row.id)) task.digests.set(piece.number, piece.digest);
      task.complete = row.state === 'complete' && task.pieceCount === task.digests.size;
      task.contentMtime = row.content_mtime ?? undefined;
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
    this.#assertOpen();
    let task = this.#tasks.get(id);
    if (task !== undefined) return task;
    const now = this.#now();
    task = new StoredTask({ id, url, digest: digest ?? null, last_access: now }, this.contentPath(id));
    try {
      mkdirSync(join(this.dataDir, 'content', id.slice(0, 3)), { recursive: true, mode: 0o700 });
      this.#db.insertTask(id, url, digest ?? null, now);
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
      this.#db.clearPieces(task.id);
    }
    task.shape = shape;
    this.#db.setShape(task.id, shape.contentLength ?? null, shape.pieceSize);
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
    this.#db.insertPiece(task.id, n, digest);
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
    this.#db.setState(task.id, 'complete', task.lastAccess);
    task.contentMtime = await stat(task.path).then((s) => s.mtimeMs, () => undefined);
    this.#db.setContentMtime(task.id, task.contentMtime ?? null);
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
      this.#db.setContentMtime(task.id, mtime ?? null);
      return 0;
    }
    this.#log.warn({ task: task.id, pieces: bad.length }, 'cached content was modified; refetching those pieces');
    task.complete = false;
    for (const n of bad) task.digests.delete(n);
    this.#db.clearPieces(task.id);
    for (const [n, digest] of task.digests) this.#db.insertPiece(task.id, n, digest);
    this.#db.setState(task.id, 'running', this.#now());
    return bad.length;
  }

  touch(task: StoredTask): void {
    task.lastAccess = this.#now();
    this.#db.touch(task.id, task.lastAccess);
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
    this.#tasks.delete(id);
    this.#db.deleteTask(id);
    await task.closeFile();
    await rm(task.path, { force: true });
  }

  /** Drops every piece of a task whose content failed verification. */
  async invalidate(task: StoredTask): Promise<void> {
    task.digests.clear();
    task.complete = false;
    this.#db.clearPieces(task.id);
    this.#db.setState(task.id, 'running', this.#now());
  }

  /**
   * Evicts tasks unused for longer than the TTL, then least recently used
   * tasks until the content fits the quota (complete ones first, then partial
   * ones: a partial task no one downloads any more is only dead weight).
   * Pinned tasks (being downloaded or served) are never evicted. Returns the
   * evicted task IDs.
   */
  async gc(): Promise<string[]> {
    const now = this.#now();
    const evicted = new Set<string>();
    const byAge = (a: StoredTask, b: StoredTask): number => a.lastAccess - b.lastAccess;
    const unpinned = this.tasks().filter((t) => t.pins === 0);
    const candidates = [...unpinned.filter((t) => t.complete).sort(byAge), ...unpinned.filter((t) => !t.complete).sort(byAge)];
    if (this.#ttl > 0) {
      for (const task of candidates) if (now - task.lastAccess > this.#ttl) evicted.add(task.id);
    }
    if (this.#quota > 0) {
      let used = this.tasks().reduce((sum, t) => sum + (evicted.has(t.id) ? 0 : t.heldBytes), 0);
      for (const task of candidates) {
        if (used <= this.#quota) break;
        if (evicted.has(task.id)) continue;
        evicted.add(task.id);
        used -= task.heldBytes;
      }
    }
    for (const id of evicted) await this.delete(id);
    if (evicted.size > 0) this.#log.info({ evicted: evicted.size }, 'cache gc');
    return [...evicted];
  }

  usedBytes(): number {
    return this.tasks().reduce((sum, t) => sum + t.heldBytes, 0);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const task of this.#tasks.values()) await task.closeFile();
    this.#db.close();
    this.#lock.release();
  }

  #assertOpen(): void {
    if (this.#closed) throw new ShoalError('STORAGE', 'piece store is closed');
  }
}
