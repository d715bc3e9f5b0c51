/**
 * The piece store: one content file per task, written at piece offsets (./write-at.ts: O_DIRECT
 * for aligned pieces, else the page cache), its metadata in SQLite, and the pieces received last
 * in memory for uploads (./recent-pieces.ts). Survives restarts: verified pieces are reloaded and
 * reused. A piece counts as held only after its bytes are written and its SHA-256 checked
 * (./verify.ts), so a crash mid-piece never serves a partial piece. A cache task (docs/cache.md) is
 * kept until it expires. A complete task is served from the cache only while its content file is
 * the one verified (./intact.ts). At most MAX_OPEN_FILES content files stay open (./open-files.ts).
 * A write that fails for lack of space fails with STORAGE_FULL and reclaims space (./space.ts).
 *
 * Lifecycle (common/lifecycle.ts): `start()` opens the data directory (./data-dir.ts) and loads
 * the tasks; `stop()` lets writes in flight finish (for STOP_GRACE_MS at most), closes every file
 * and releases the lock.
 */
import { mkdirSync } from 'node:fs';
import { rm, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { CacheSettings } from '../../common/config/schema.js';
import { ShoalError } from '../../common/errors.js';
import { Service, drainWithin } from '../../common/lifecycle.js';
import { silentLogger, type Logger } from '../../common/log.js';
import { chooseEvictions } from './eviction.js';
import { readStamp, recheckContent } from './intact.js';
import type { DirLock } from './lock.js';
import { openDataDir } from './data-dir.js';
import type { MetadataDb } from './metadata.js';
import { OpenFiles } from './open-files.js';
import { pieceHandle, type PieceHandle } from './piece-handle.js';
import { SpaceReclaimer, isNoSpace } from './space.js';
import { StoredTask, checkShape, loadTasks, type CacheInfo, type TaskShape } from './stored-task.js';
import { ContentWriter } from './write-at.js';
import { RecentPieces } from './recent-pieces.js';

// Re-exported for the store's users outside this folder.
export { StoredTask, type CacheInfo, type TaskShape } from './stored-task.js';
export type { PieceHandle } from './piece-handle.js';

export interface PieceStoreOptions {
  dataDir: string;
  /** The quota and TTL that gc() applies (gcInterval is when its owner calls it). */
  cache: CacheSettings;
  /** Default: silent. */
  logger?: Logger;
  /** The clock of last-access times and the TTL. Default: Date.now. */
  now?: () => number;
  /** Write aligned pieces with O_DIRECT (./write-at.ts ContentWriter). Default: false. */
  directIo?: boolean;
  /** Bytes of the latest pieces kept in memory for uploads (./recent-pieces.ts). Default: 0. */
  recentBytes?: number;
}

/** How long stop() waits for writes in flight. */
const STOP_GRACE_MS = 5000;

export class PieceStore extends Service {
  protected readonly serviceName = 'piece store';
  readonly dataDir: string;
  readonly #tasks = new Map<string, StoredTask>();
  readonly #cache: CacheSettings;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #files = new OpenFiles();
  /** The pieces received last, kept in memory for uploads (./recent-pieces.ts); the receiver gives them. */
  readonly recent: RecentPieces;
  readonly #writer: ContentWriter;
  /** Deletes and reclaims under way (stop() waits for them). */
  readonly #background = new Set<Promise<void>>();
  readonly #deleting = new Map<string, Promise<void>>();
  readonly #space: SpaceReclaimer;
  #lock: DirLock | undefined;
  /** Set while the store is open (between start() and stop()). */
  #db: MetadataDb | undefined;

  constructor(options: PieceStoreOptions) {
    super();
    this.dataDir = options.dataDir;
    this.#cache = options.cache;
    this.#log = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
    this.#space = new SpaceReclaimer(this, this.#log);
    this.#writer = new ContentWriter(options.directIo ?? false, this.#log, this.dataDir);
    this.recent = new RecentPieces(options.recentBytes ?? 0);
  }

  protected async onStart(): Promise<void> {
    const { lock, db } = openDataDir(this.dataDir, (err, what) => this.#error(err, what));
    this.#lock = lock;
    this.#db = db;
    await this.#load(db);
  }

  protected async onStop(): Promise<void> {
    const writes = Promise.all([...this.#tasks.values()].map((t) => t.writeChain));
    await drainWithin(writes, STOP_GRACE_MS, this.destroyed);
    await drainWithin(Promise.all(this.#background), STOP_GRACE_MS, this.destroyed);
    const db = this.#db;
    this.#db = undefined;
    this.recent.clear();
    await this.#files.closeAll();
    db?.close();
    this.#lock?.release();
  }

  /** The metadata, while the store is open. */
  get #meta(): MetadataDb {
    if (this.#db === undefined) throw new ShoalError('STORAGE', `the piece store is ${this.state === 'idle' || this.state === 'starting' ? 'not started' : 'closed'}`);
    return this.#db;
  }

  async #load(db: MetadataDb): Promise<void> {
    for (const task of await loadTasks(db, (id) => this.contentPath(id), (id) => this.#delete(() => db.deleteTask(id), id))) {
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
    await this.#deleting.get(id)?.catch(() => undefined);
    let task = this.#tasks.get(id);
    if (task !== undefined) return task;
    const now = this.#now();
    task = new StoredTask({ id, url, digest: digest ?? null, last_access: now }, this.contentPath(id));
    try {
      mkdirSync(dirname(task.path), { recursive: true, mode: 0o700 });
      db.insertTask(id, url, digest ?? null, now);
      await this.#files.use(task.path, () => undefined);
    } catch (err) {
      throw this.#error(err, `create task ${id}`);
    }
    const raced = this.#tasks.get(id);
    if (raced !== undefined) return raced;
    this.#tasks.set(id, task);
    return task;
  }

  /**
   * Records the task's shape. A shape that contradicts the one stored (the
   * origin's content changed) drops every piece held.
   */
  async setShape(task: StoredTask, shape: TaskShape): Promise<void> {
    checkShape(shape);
    const old = task.shape;
    if (old !== undefined && old.pieceSize === shape.pieceSize && old.contentLength === shape.contentLength) return;
    // A length learned at the end of a chunked response keeps the pieces; anything else is new content.
    const lengthLearned = old !== undefined && old.pieceSize === shape.pieceSize && old.contentLength === undefined;
    try {
      if (old !== undefined && !lengthLearned) {
        this.#log.warn({ task: task.id, old, shape }, 'task shape changed; dropping its pieces');
        this.#meta.clearPieces(task.id);
        task.dropPieces();
        task.complete = false;
      }
      this.#meta.setShape(task.id, shape.contentLength ?? null, shape.pieceSize);
      task.shape = shape;
      const length = shape.contentLength;
      if (length !== undefined) await this.#use(task, (fh) => fh.truncate(length));
    } catch (err) {
      throw this.#error(err, `size ${task.path}`, task);
    }
  }

  /**
   * Writes bytes at an absolute content offset (not yet a verified piece), as ./write-at.ts says, one
   * write to a task's file at a time (concurrent pwrites contend on its inode lock: more system time).
   */
  write(task: StoredTask, offset: number, data: Buffer): Promise<void> {
    const next = task.writeChain.then(() => this.#write(task, offset, data));
    task.writeChain = next.catch(() => undefined);
    return next;
  }

  async #write(task: StoredTask, offset: number, data: Buffer): Promise<void> {
    try {
      await this.#writer.write((work, direct) => this.#use(task, work, direct), offset, data);
    } catch (err) {
      throw this.#error(err, `write to ${task.path}`, task);
    }
  }

  /** Marks a piece verified and held. Returns false if it was already held. */
  commitPiece(task: StoredTask, n: number, digest: Buffer): boolean {
    if (task.digests.has(n)) return false;
    this.#record(task, `record piece ${n} of ${task.id}`, (meta) => meta.insertPiece(task.id, n, digest));
    task.digests.set(n, digest);
    return true;
  }

  /** Marks a task complete: every piece is held. Its file's stamp is recorded (./intact.ts). */
  async markComplete(task: StoredTask): Promise<void> {
    if (task.pieceCount !== task.digests.size) {
      throw new ShoalError('INTERNAL', `task ${task.id} marked complete with ${task.digests.size}/${String(task.pieceCount)} pieces`);
    }
    const now = this.#now();
    try {
      const stamp = (await readStamp(task.path))?.stamp;
      this.#meta.setState(task.id, 'complete', now);
      this.#meta.setContentStamp(task.id, stamp ?? null);
      task.stamp = stamp;
    } catch (err) {
      throw this.#error(err, `complete ${task.id}`, task);
    }
    task.complete = true;
    task.dropWhenIdle = false;
    task.lastAccess = now;
    if (task.pins === 0) this.#files.release(task.path);
  }

  /** Before a complete task is served from the cache: ./intact.ts recheckContent. Returns the number of pieces dropped. */
  async checkIntact(task: StoredTask): Promise<number> {
    try {
      return await recheckContent(task, { files: this.#files, meta: this.#meta, log: this.#log, now: this.#now });
    } catch (err) {
      throw this.#error(err, `check ${task.path}`, task);
    }
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

  /** Makes the task a cache task (kept across restarts, evicted only once expired; ./eviction.ts). */
  setCache(task: StoredTask, cache: CacheInfo): void {
    this.#record(task, `record ${task.id}`, (meta) => meta.setCache(task.id, cache.id, cache.replicas, cache.expiresAt));
    task.cache = cache;
  }

  /** Records that the task was fetched with credentials (kept across restarts; never undone). */
  markPrivate(task: StoredTask): void {
    if (task.private) return;
    this.#record(task, `record ${task.id}`, (meta) => meta.setPrivate(task.id));
    task.private = true;
  }

  /** Writes to the metadata about `task`; a failure to do `what` is STORAGE or STORAGE_FULL. */
  #record(task: StoredTask, what: string, write: (meta: MetadataDb) => void): void {
    try {
      write(this.#meta);
    } catch (err) {
      throw this.#error(err, what, task);
    }
  }

  /** Records a use (for the LRU). Best effort: a full disk does not fail a cache hit. */
  touch(task: StoredTask): void {
    task.lastAccess = this.#now();
    try {
      this.#meta.touch(task.id, task.lastAccess);
    } catch (err) {
      const e = this.#error(err, `record a use of ${task.id}`);
      if (e.code !== 'STORAGE_FULL') throw e;
    }
  }

  pin(task: StoredTask): () => void {
    task.pins++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      task.pins--;
      if (task.pins === 0) this.#idle(task);
    };
  }

  /** Nobody holds the task any more: a complete one's file is closed; one that hit a full disk is dropped. */
  #idle(task: StoredTask): void {
    if (this.#tasks.get(task.id) !== task) return;
    if (task.complete) this.#files.release(task.path);
    else if (task.dropWhenIdle) void this.#track(this.delete(task.id));
  }

  /** Opens a verified piece for the upload server. */
  openPiece(id: string, n: number): PieceHandle | undefined {
    const task = this.#tasks.get(id);
    if (task === undefined || task.shape === undefined || !task.digests.has(n)) return undefined;
    return pieceHandle(task, n, (work) => this.#use(task, work), this.pin(task), () => this.recent.lend(task, n));
  }

  /**
   * Forgets a task and removes its content file. The file goes first: on a
   * full disk that is what frees the space the metadata needs, and a record
   * whose file is gone is dropped at the next start anyway.
   */
  delete(id: string): Promise<void> {
    const task = this.#tasks.get(id);
    if (task === undefined) return this.#deleting.get(id) ?? Promise.resolve();
    this.#tasks.delete(id);
    this.recent.dropTask(id);
    this.#files.release(task.path);
    const deleted = (async () => {
      try {
        await rm(task.path, { force: true });
      } catch (err) {
        throw this.#error(err, `remove ${task.path}`);
      }
      this.#delete(() => this.#meta.deleteTask(id), id);
    })().finally(() => this.#deleting.delete(id));
    this.#deleting.set(id, deleted);
    return deleted;
  }

  /** Drops every piece of a task whose content failed verification. */
  async invalidate(task: StoredTask): Promise<void> {
    this.#record(task, `reset ${task.id}`, (meta) => {
      meta.clearPieces(task.id);
      meta.setState(task.id, 'running', this.#now());
    });
    task.dropPieces();
    task.complete = false;
    this.recent.dropTask(task.id);
  }

  /** Evicts what the cache policy chooses (./eviction.ts). Returns the evicted task IDs. */
  async gc(): Promise<string[]> {
    const evicted = chooseEvictions(this.tasks(), this.#cache, this.#now(), Date.now());
    for (const id of evicted) await this.delete(id);
    if (evicted.length > 0) this.#log.info({ evicted: evicted.length }, 'cache gc');
    return evicted;
  }

  usedBytes(): number {
    return this.tasks().reduce((sum, t) => sum + t.heldBytes, 0);
  }

  /** Deletes a task's record; if that fails (a full disk), the next start drops it, its file being gone. */
  #delete(deleteRecord: () => void, id: string): void {
    try {
      deleteRecord();
    } catch (err) {
      this.#log.warn({ task: id, err: (err as Error).message }, 'task removed, its record kept until the next start');
    }
  }

  /** Runs `work` on the task's content file; STORAGE once the task was removed (its file is not made again). */
  #use<T>(task: StoredTask, work: (file: FileHandle) => Promise<T> | T, direct = false): Promise<T> {
    if (this.#tasks.get(task.id) !== task) return Promise.reject(new ShoalError('STORAGE', `task ${task.id} was removed from the store`));
    return this.#files.use(task.path, work, direct);
  }

  /** How many content files are open now (at most MAX_OPEN_FILES beyond those in use). */
  get openFiles(): number {
    return this.#files.size;
  }

  /** STORAGE_FULL when no space is left (space is reclaimed: a partial `task` is dropped once idle), else STORAGE. */
  #error(err: unknown, what: string, task?: StoredTask): ShoalError {
    if (err instanceof ShoalError) return err;
    if (!isNoSpace(err)) return new ShoalError('STORAGE', `cannot ${what}: ${(err as Error).message}`, { cause: err });
    if (task !== undefined && !task.complete) task.dropWhenIdle = true;
    if (this.#db !== undefined) {
      void this.#track(this.#space.run(task).then(() => (task !== undefined && task.pins === 0 ? this.#idle(task) : undefined)));
    }
    return new ShoalError('STORAGE_FULL', `no space left in ${this.dataDir} to ${what} (${String((err as { code?: unknown }).code)})`, { cause: err });
  }

  /** Runs `work` in the background; stop() waits for it; its failure is logged. */
  #track(work: Promise<void>): Promise<void> {
    const tracked = work.catch((err: unknown) => this.#log.warn({ err: (err as Error).message }, 'storage cleanup failed'));
    this.#background.add(tracked);
    void tracked.finally(() => this.#background.delete(tracked));
    return tracked;
  }
}
