/**
 * Task and piece metadata in SQLite (WAL). Synchronous and small: every
 * statement is prepared once. The driver (node:sqlite or better-sqlite3) is
 * ./sqlite.ts's choice.
 */
import { openSqlite, type SqlDatabase, type SqliteDriverName, type SqlStatement as Statement } from './sqlite.js';

export type TaskState = 'running' | 'complete';

export interface TaskRow {
  id: string;
  url: string;
  digest: string | null;
  content_length: number | null;
  piece_size: number | null;
  state: TaskState;
  created_at: number;
  last_access: number;
  /** The content file's stamp when the task completed or was last checked (./intact.ts): a change means someone touched it. */
  content_stamp: string | null;
  /** 1: fetched with credentials (docs/security.md, "Private content"). */
  private: number;
  /** The origin's version the pieces are of ('' when unknown). */
  validator: string;
  /** A cache task (shoal cache import, or a copy the scheduler asked for): its cache ID, else null. */
  cache_id: string | null;
  cache_replicas: number | null;
  /** Unix ms it is kept until; 0 = forever. */
  cache_expires: number | null;
}

export interface PieceRow {
  number: number;
  digest: Buffer;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS tasks (
  id TEXT PRIMARY KEY,
  url TEXT NOT NULL,
  digest TEXT,
  content_length INTEGER,
  piece_size INTEGER,
  state TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  last_access INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pieces (
  task_id TEXT NOT NULL,
  number INTEGER NOT NULL,
  digest BLOB NOT NULL,
  PRIMARY KEY (task_id, number)
) WITHOUT ROWID;
`;

export class MetadataDb {
  readonly #db: SqlDatabase;
  readonly #insertTask: Statement<[string, string, string | null, number, number]>;
  readonly #setShape: Statement<[number | null, number, string]>;
  readonly #setState: Statement<[TaskState, number, string]>;
  readonly #setStamp: Statement<[string | null, string]>;
  readonly #setPrivate: Statement<[string]>;
  readonly #setValidator: Statement<[string, string]>;
  readonly #setCache: Statement<[string, number, number, string]>;
  readonly #resetVersion: Statement<[string]>;
  readonly #touch: Statement<[number, string]>;
  readonly #deleteTask: Statement<[string]>;
  readonly #deletePieces: Statement<[string]>;
  readonly #insertPiece: Statement<[string, number, Buffer]>;
  readonly #deletePiece: Statement<[string, number]>;
  readonly #tasks: Statement<[], TaskRow>;
  readonly #pieces: Statement<[string], PieceRow>;

  /** `driver`: by default the one ./sqlite.ts prefers on this Node. */
  constructor(path: string, driver?: SqliteDriverName) {
    this.#db = openSqlite(path, driver);
    this.#db.exec('PRAGMA journal_mode = WAL');
    this.#db.exec('PRAGMA synchronous = NORMAL');
    this.#db.exec(SCHEMA);
    const columns = this.#db.prepare<[], { name: string }>(`PRAGMA table_info(tasks)`).all();
    if (!columns.some((c) => c.name === 'content_stamp')) this.#db.exec(`ALTER TABLE tasks ADD COLUMN content_stamp TEXT`);
    if (!columns.some((c) => c.name === 'private')) this.#db.exec(`ALTER TABLE tasks ADD COLUMN private INTEGER NOT NULL DEFAULT 0`);
    if (!columns.some((c) => c.name === 'validator')) this.#db.exec(`ALTER TABLE tasks ADD COLUMN validator TEXT NOT NULL DEFAULT ''`);
    if (!columns.some((c) => c.name === 'cache_id')) this.#db.exec(`ALTER TABLE tasks ADD COLUMN cache_id TEXT; ALTER TABLE tasks ADD COLUMN cache_replicas INTEGER; ALTER TABLE tasks ADD COLUMN cache_expires INTEGER`);
    // OR REPLACE: a row left behind by a delete that failed (a full disk) is the same task starting over.
    this.#insertTask = this.#db.prepare(
      `INSERT OR REPLACE INTO tasks (id, url, digest, state, created_at, last_access) VALUES (?, ?, ?, 'running', ?, ?)`,
    );
    this.#setShape = this.#db.prepare(`UPDATE tasks SET content_length = ?, piece_size = ? WHERE id = ?`);
    this.#setState = this.#db.prepare(`UPDATE tasks SET state = ?, last_access = ? WHERE id = ?`);
    this.#touch = this.#db.prepare(`UPDATE tasks SET last_access = ? WHERE id = ?`);
    this.#setStamp = this.#db.prepare(`UPDATE tasks SET content_stamp = ? WHERE id = ?`);
    this.#setPrivate = this.#db.prepare(`UPDATE tasks SET private = 1 WHERE id = ?`);
    this.#setValidator = this.#db.prepare(`UPDATE tasks SET validator = ? WHERE id = ?`);
    this.#setCache = this.#db.prepare(`UPDATE tasks SET cache_id = ?, cache_replicas = ?, cache_expires = ? WHERE id = ?`);
    this.#resetVersion = this.#db.prepare(`UPDATE tasks SET validator = '', content_length = NULL, piece_size = NULL WHERE id = ?`);
    this.#deleteTask = this.#db.prepare(`DELETE FROM tasks WHERE id = ?`);
    this.#deletePieces = this.#db.prepare(`DELETE FROM pieces WHERE task_id = ?`);
    this.#insertPiece = this.#db.prepare(`INSERT OR REPLACE INTO pieces (task_id, number, digest) VALUES (?, ?, ?)`);
    this.#deletePiece = this.#db.prepare(`DELETE FROM pieces WHERE task_id = ? AND number = ?`);
    this.#tasks = this.#db.prepare(`SELECT * FROM tasks`);
    this.#pieces = this.#db.prepare(`SELECT number, digest FROM pieces WHERE task_id = ?`);
  }

  /** A new task, without pieces (any left by an earlier one of the same ID are forgotten). */
  insertTask(id: string, url: string, digest: string | null, now: number): void {
    this.#db.transaction(() => {
      this.#deletePieces.run(id);
      this.#insertTask.run(id, url, digest, now, now);
    });
  }

  setShape(id: string, contentLength: number | null, pieceSize: number): void {
    this.#setShape.run(contentLength, pieceSize, id);
  }

  setState(id: string, state: TaskState, now: number): void {
    this.#setState.run(state, now, id);
  }

  setContentStamp(id: string, stamp: string | null): void {
    this.#setStamp.run(stamp, id);
  }

  /** Forgets a task's shape and version (its content changed at the origin). */
  resetVersion(id: string): void {
    this.#resetVersion.run(id);
  }

  setValidator(id: string, validator: string): void {
    this.#setValidator.run(validator, id);
  }

  setCache(id: string, cacheId: string, replicas: number, expiresAt: number): void {
    this.#setCache.run(cacheId, replicas, expiresAt, id);
  }

  setPrivate(id: string): void {
    this.#setPrivate.run(id);
  }

  touch(id: string, now: number): void {
    this.#touch.run(now, id);
  }

  insertPiece(id: string, number: number, digest: Buffer): void {
    this.#insertPiece.run(id, number, digest);
  }

  deleteTask(id: string): void {
    this.#db.transaction(() => {
      this.#deletePieces.run(id);
      this.#deleteTask.run(id);
    });
  }

  /** Forgets some of a task's pieces (they no longer match their digests). */
  dropPieces(id: string, numbers: readonly number[]): void {
    this.#db.transaction(() => {
      for (const n of numbers) this.#deletePiece.run(id, n);
    });
  }

  /** Forgets a task's pieces (its content failed verification). */
  clearPieces(id: string): void {
    this.#deletePieces.run(id);
  }

  allTasks(): TaskRow[] {
    return this.#tasks.all();
  }

  pieces(id: string): PieceRow[] {
    return this.#pieces.all(id);
  }

  get driver(): SqliteDriverName {
    return this.#db.driver;
  }

  close(): void {
    this.#db.close();
  }
}
