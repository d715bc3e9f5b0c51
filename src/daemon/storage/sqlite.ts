/**
 * The SQLite driver under the store's metadata (./metadata.ts): Node's
 * built-in `node:sqlite` where the running Node has it without a flag
 * (22.13+, 24: the single binary, docs/deployment.md), else the
 * better-sqlite3 addon (Node 20). Both are synchronous and speak the same
 * SQL; this file evens out what differs: blobs come back as Buffers, a
 * transaction is one call, and an error carries SQLite's code name
 * (`SQLITE_FULL`, ./space.ts) whichever driver raised it.
 */
import { createRequire } from 'node:module';
import { ShoalError } from '../../common/errors.js';

export type SqliteDriverName = 'node:sqlite' | 'better-sqlite3';

export type SqlValue = string | number | bigint | Buffer | null;

export interface SqlStatement<P extends SqlValue[], R = never> {
  run(...params: P): void;
  all(...params: P): R[];
}

export interface SqlDatabase {
  readonly driver: SqliteDriverName;
  exec(sql: string): void;
  prepare<P extends SqlValue[] = [], R = never>(sql: string): SqlStatement<P, R>;
  /** Runs `fn` in one transaction: all of it is written, or none (it threw). */
  transaction(fn: () => void): void;
  close(): void;
}

/** What either driver's statement offers (the subset used here). */
interface RawStatement {
  run(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}
interface RawDatabase {
  exec(sql: string): unknown;
  prepare(sql: string): RawStatement;
  close(): unknown;
}
type NodeSqlite = { DatabaseSync: new (path: string) => RawDatabase };
type BetterSqlite3 = new (path: string) => RawDatabase;

/** SQLite's primary result codes by number (node:sqlite gives the number, better-sqlite3 the name). */
const CODE_NAMES: Record<number, string> = {
  1: 'SQLITE_ERROR', 3: 'SQLITE_PERM', 5: 'SQLITE_BUSY', 6: 'SQLITE_LOCKED', 7: 'SQLITE_NOMEM', 8: 'SQLITE_READONLY',
  10: 'SQLITE_IOERR', 11: 'SQLITE_CORRUPT', 13: 'SQLITE_FULL', 14: 'SQLITE_CANTOPEN', 19: 'SQLITE_CONSTRAINT', 26: 'SQLITE_NOTADB',
};

let nodeSqlite: NodeSqlite | null | undefined;

/** node:sqlite when this Node has it unflagged; null on Node 20 (and 22 before 22.13, where it needs a flag). */
function loadNodeSqlite(): NodeSqlite | null {
  if (nodeSqlite !== undefined) return nodeSqlite;
  const getBuiltin = (process as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule;
  nodeSqlite = null;
  if (typeof getBuiltin !== 'function') return nodeSqlite;
  // Node 22/23 print an ExperimentalWarning when the module is first loaded; the daemon's logs are not the place for it.
  const emitWarning = process.emitWarning.bind(process) as (...a: unknown[]) => void;
  const original = Object.getOwnPropertyDescriptor(process, 'emitWarning');
  process.emitWarning = (warning: string | Error, ...rest: unknown[]) => {
    if (!String(warning instanceof Error ? warning.message : warning).includes('SQLite')) emitWarning(warning, ...rest);
  };
  try {
    const mod = getBuiltin.call(process, 'node:sqlite') as NodeSqlite | undefined;
    nodeSqlite = mod !== undefined && typeof mod.DatabaseSync === 'function' ? mod : null;
  } catch {
    nodeSqlite = null;
  } finally {
    if (original !== undefined) Object.defineProperty(process, 'emitWarning', original);
    else Reflect.deleteProperty(process, 'emitWarning');
  }
  return nodeSqlite;
}

function loadBetterSqlite3(): BetterSqlite3 {
  try {
    return createRequire(import.meta.url)('better-sqlite3') as BetterSqlite3;
  } catch (err) {
    throw new ShoalError('INTERNAL', `no SQLite driver: this Node has no node:sqlite and better-sqlite3 could not be loaded (${(err as Error).message})`, { cause: err });
  }
}

/** The drivers this Node can use, the preferred first. */
export function availableDrivers(): SqliteDriverName[] {
  const names: SqliteDriverName[] = [];
  if (loadNodeSqlite() !== null) names.push('node:sqlite');
  try {
    // The addon loads on first open: one built for another Node fails only then.
    new (loadBetterSqlite3())(':memory:').close();
    names.push('better-sqlite3');
  } catch {
    // not installed (the single binary), or built for another Node
  }
  return names;
}

/** Gives a node:sqlite error the code name better-sqlite3 would have given it. */
function named(err: unknown): unknown {
  if (typeof err !== 'object' || err === null) return err;
  const e = err as { code?: unknown; errcode?: unknown };
  if (e.code === 'ERR_SQLITE_ERROR' && typeof e.errcode === 'number') {
    const name = CODE_NAMES[e.errcode & 0xff];
    if (name !== undefined) Object.defineProperty(err, 'code', { value: name, configurable: true, writable: true });
  }
  return err;
}

function guarded<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw named(err);
  }
}

/** node:sqlite hands blobs back as Uint8Arrays; the store works with Buffers. */
function withBuffers<R>(row: unknown): R {
  const r = row as Record<string, unknown>;
  for (const key of Object.keys(r)) {
    const v = r[key];
    if (v instanceof Uint8Array && !Buffer.isBuffer(v)) r[key] = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  }
  return r as R;
}

class Database implements SqlDatabase {
  readonly driver: SqliteDriverName;
  readonly #raw: RawDatabase;
  #depth = 0;

  constructor(raw: RawDatabase, driver: SqliteDriverName) {
    this.#raw = raw;
    this.driver = driver;
  }

  exec(sql: string): void {
    guarded(() => this.#raw.exec(sql));
  }

  prepare<P extends SqlValue[] = [], R = never>(sql: string): SqlStatement<P, R> {
    const stmt = guarded(() => this.#raw.prepare(sql));
    const convert = this.driver === 'node:sqlite';
    return {
      run: (...params: P) => void guarded(() => stmt.run(...params)),
      all: (...params: P) => {
        const rows = guarded(() => stmt.all(...params));
        return convert ? rows.map((row) => withBuffers<R>(row)) : (rows as R[]);
      },
    };
  }

  transaction(fn: () => void): void {
    // Nested: part of the outer one (no savepoints needed by the store).
    if (this.#depth > 0) return fn();
    this.exec('BEGIN');
    this.#depth++;
    try {
      fn();
      this.#depth--;
      this.exec('COMMIT');
    } catch (err) {
      this.#depth = 0;
      try {
        this.#raw.exec('ROLLBACK');
      } catch {
        // SQLite may have rolled back by itself (SQLITE_FULL does): nothing is open any more
      }
      throw named(err);
    }
  }

  close(): void {
    guarded(() => this.#raw.close());
  }
}

/** Opens (creating) the database at `path` with `driver`, by default the first of availableDrivers(). */
export function openSqlite(path: string, driver?: SqliteDriverName): SqlDatabase {
  const chosen = driver ?? (loadNodeSqlite() !== null ? 'node:sqlite' : 'better-sqlite3');
  if (chosen === 'node:sqlite') {
    const mod = loadNodeSqlite();
    if (mod === null) throw new ShoalError('INTERNAL', `node:sqlite is not available on Node ${process.versions.node}`);
    return new Database(guarded(() => new mod.DatabaseSync(path)), chosen);
  }
  const Better = loadBetterSqlite3();
  return new Database(guarded(() => new Better(path)), chosen);
}
