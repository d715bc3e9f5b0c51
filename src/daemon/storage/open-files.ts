/**
 * The content files the store holds open. A descriptor per task held for
 * ever ran a daemon out of them (EMFILE after ~100 tasks under a 128-fd
 * limit), so: at most MAX_OPEN_FILES are open, the least recently used idle
 * one is closed first, and a task's file is closed as soon as the task is
 * complete and nobody holds it (`release`). A file in use (a read or write
 * under way) is never closed under its user; it is opened again, created if
 * absent, on its next use.
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

/** Content files open at once, beyond those in use right now (docs/LIMITS.md). */
export const MAX_OPEN_FILES = 64;

interface OpenFile {
  readonly handle: Promise<FileHandle>;
  /** The same file opened with O_DIRECT, once a direct write asked for it. */
  direct: Promise<FileHandle> | undefined;
  /** Operations under way on it. */
  users: number;
  /** Close it when its last user is done. */
  closing: boolean;
  closed: boolean;
}

export class OpenFiles {
  readonly #max: number;
  /** By path, least recently used first. */
  readonly #files = new Map<string, OpenFile>();
  readonly #closes = new Set<Promise<void>>();

  constructor(max = MAX_OPEN_FILES) {
    this.#max = max;
  }

  /** How many are open (or opening). */
  get size(): number {
    return this.#files.size;
  }

  /**
   * Runs `work` with the file at `path` open for reading and writing (created
   * when absent); with `direct`, through a descriptor opened with O_DIRECT
   * (the open's error, EINVAL where the file system refuses it, is work's).
   */
  async use<T>(path: string, work: (file: FileHandle) => Promise<T> | T, direct = false): Promise<T> {
    let file = this.#files.get(path);
    if (file === undefined) {
      file = { handle: open(path, constants.O_RDWR | constants.O_CREAT, 0o666), direct: undefined, users: 0, closing: false, closed: false };
      const opened = file;
      file.handle.catch(() => {
        if (this.#files.get(path) === opened) this.#files.delete(path);
      });
    } else {
      this.#files.delete(path);
    }
    this.#files.set(path, file);
    file.users++;
    try {
      const handle = await file.handle;
      if (!direct) return await work(handle);
      const entry = file;
      entry.direct ??= open(path, constants.O_RDWR | constants.O_DIRECT);
      const directHandle = await entry.direct.catch((err: unknown) => {
        entry.direct = undefined; // tried again on the next direct write (the store stops asking after EINVAL)
        throw err;
      });
      return await work(directHandle);
    } finally {
      file.users--;
      if (file.closing && file.users === 0) this.#close(file);
      this.#trim();
    }
  }

  /** Closes the file at `path` now, or when its last user is done. */
  release(path: string): void {
    const file = this.#files.get(path);
    if (file === undefined) return;
    this.#files.delete(path);
    file.closing = true;
    if (file.users === 0) this.#close(file);
  }

  /** Closes every file, in use or not (the store is stopping: its writes have drained). */
  async closeAll(): Promise<void> {
    for (const file of this.#files.values()) this.#close(file);
    this.#files.clear();
    await Promise.all(this.#closes);
  }

  #trim(): void {
    for (const [path, file] of this.#files) {
      if (this.#files.size <= this.#max) return;
      if (file.users === 0) this.release(path);
    }
  }

  #close(file: OpenFile): void {
    if (file.closed) return;
    file.closed = true;
    const closeOne = (handle: Promise<FileHandle> | undefined): Promise<void> =>
      handle === undefined
        ? Promise.resolve()
        : handle.then(
            (fh) => fh.close(),
            () => undefined,
          );
    const closed = Promise.all([closeOne(file.handle), closeOne(file.direct)])
      .then(() => undefined)
      .catch(() => undefined);
    this.#closes.add(closed);
    void closed.finally(() => this.#closes.delete(closed));
  }
}
