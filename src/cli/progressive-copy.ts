/**
 * `shoal get`'s output copied while the download runs. The daemon names each
 * piece once it is stored and verified in the task's content file (`pieces`
 * events, src/daemon/api/piece-events.ts); this copies those pieces into the
 * output's temporary file, with O_DIRECT both ways as ./direct-copy.ts does,
 * so that when the download is done only what is left (the last piece, any
 * piece not named) is copied before the rename. Without it every host
 * copies its whole file after its last piece, all of them at once at the end
 * of a fleet's rollout: on the lab's disk, twenty 100 MB copies took 1.4 s
 * of each host's time (docs/benchmarks.md, "The output copied as pieces
 * come").
 *
 * What it trusts: only pieces the daemon named, and only in the generation
 * they were named in. A change of generation (the daemon dropped pieces: the
 * origin's content changed, a whole-content digest failed, the cache was
 * found modified) throws away every copy made before it; the `done` event
 * carries the final generation, and the content file must still be the file
 * opened (same device and inode), else the caller copies the whole file the
 * usual way. A copy that meets any error stops being used, and the caller's
 * ordinary copy runs instead; nothing here renames, so the output never
 * exists before it is complete.
 *
 * Not used where a reflink works (the end costs nothing there), for
 * pieces not a multiple of 4 KiB, nor where O_DIRECT is refused.
 */
import { constants as fsc } from 'node:fs';
import { copyFile, open, rm, stat, type FileHandle } from 'node:fs/promises';
import { DIRECT_ALIGN, alignedBuffer } from '../common/aligned-buffers.js';
import { pieceCount } from '../common/pieces.js';
import { writeFully } from '../common/write-fully.js';
import { copyTail, readFully } from './direct-copy.js';
import { removeOnAbort } from './remove-on-abort.js';

const CHUNK = 4 * 1024 * 1024;

/** What a `pieces` event says (checked: checkPieces). */
export interface PiecesNotice {
  path: string;
  pieceSize: number;
  contentLength: number;
  generation: number;
  numbers: number[];
}

const count = (v: unknown, max = Number.MAX_SAFE_INTEGER): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= max;

/** A `pieces` event from the daemon, checked field by field; undefined when it is not one (it is then ignored). */
export function checkPieces(event: Record<string, unknown>): PiecesNotice | undefined {
  const { path, pieceSize, contentLength, generation, numbers } = event;
  if (typeof path !== 'string' || path === '' || !count(pieceSize) || pieceSize === 0 || !count(contentLength) || !count(generation) || !Array.isArray(numbers)) return undefined;
  const pieces = pieceCount(contentLength, pieceSize);
  if (!numbers.every((n) => count(n, pieces - 1))) return undefined;
  return { path, pieceSize, contentLength, generation, numbers };
}

/** What it was that was opened: a later notice of another file or shape ends the copy. */
interface Opened {
  src: FileHandle;
  dst: FileHandle;
  dev: number;
  ino: number;
  mode: number;
}

export class ProgressiveCopy {
  readonly #tmp: string;
  #notice: Omit<PiecesNotice, 'numbers'> | undefined;
  #opening: Promise<Opened | undefined> | undefined;
  /** Spans ready to copy, in order of readiness. */
  #queue: number[] = [];
  /** Pieces named in the current generation. */
  #named = new Set<number>();
  /** Of each span not yet whole, how many of its pieces are named. */
  #namedIn = new Map<number, number>();
  /** Spans copied in the current generation. */
  #copied = new Set<number>();
  #working: Promise<void> | undefined;
  #off = false;
  #buffer: Buffer | undefined;

  readonly #stopRemoving: () => void;

  /** `tmp`: the output's temporary file, created here (it must not exist); removed by discard(), or the moment `signal` aborts. */
  constructor(tmp: string, signal?: AbortSignal) {
    this.#tmp = tmp;
    this.#stopRemoving = signal === undefined ? () => undefined : removeOnAbort(tmp, signal);
  }

  get tmp(): string {
    return this.#tmp;
  }

  /** Pieces the daemon stored and verified: copied in the background, in order of arrival. */
  pieces(notice: PiecesNotice): void {
    if (this.#off) return;
    const known = this.#notice;
    if (known === undefined) {
      if (notice.pieceSize % DIRECT_ALIGN !== 0) return this.#stop();
      this.#notice = { path: notice.path, pieceSize: notice.pieceSize, contentLength: notice.contentLength, generation: notice.generation };
      this.#opening = this.#open(notice.path);
    } else if (known.path !== notice.path || known.pieceSize !== notice.pieceSize || known.contentLength !== notice.contentLength) {
      return this.#stop();
    } else if (known.generation !== notice.generation) {
      this.#newGeneration(notice.generation);
    }
    for (const n of notice.numbers) this.#name(n);
    if (this.#queue.length > 0) this.#working ??= this.#work();
  }

  /**
   * The download is done: `path` is the content file, `generation` its
   * pieces'. Copies what is left and returns true with the temporary file
   * complete (the caller renames it), or false when this copy cannot be
   * used (the caller copies the whole file, after discard()).
   */
  async finish(path: string, generation: number | undefined, signal: AbortSignal): Promise<boolean> {
    const notice = this.#notice;
    if (this.#off || notice === undefined || generation === undefined || path !== notice.path) return false;
    this.#queue = [];
    await this.#working;
    const opened = await this.#opening;
    if (this.#off || opened === undefined) return false;
    if (generation !== notice.generation) this.#newGeneration(generation);
    try {
      const now = await stat(path);
      if (now.dev !== opened.dev || now.ino !== opened.ino) return false;
      const { contentLength } = notice;
      const span = this.#spanBytes();
      const aligned = contentLength - (contentLength % DIRECT_ALIGN);
      for (let j = 0; j * span < aligned; j++) {
        signal.throwIfAborted();
        if (!this.#copied.has(j)) await this.#copyRange(opened, j * span, Math.min((j + 1) * span, aligned));
      }
      await opened.dst.chmod(opened.mode & 0o777);
      await this.#close(opened);
      if (aligned < contentLength) await copyTail(path, this.#tmp, aligned, contentLength);
      return true;
    } catch (err) {
      if (signal.aborted) throw err;
      return false;
    }
  }

  /** Stops copying and removes the temporary file. */
  async discard(): Promise<void> {
    this.#stopRemoving();
    this.#off = true;
    this.#queue = [];
    await this.#working;
    const opened = await this.#opening;
    if (opened !== undefined) await this.#close(opened);
    await rm(this.#tmp, { force: true });
  }

  /** Pieces were dropped: every copy made so far may be of bytes since rewritten. */
  #newGeneration(generation: number): void {
    this.#notice = { ...this.#notice!, generation };
    this.#named = new Set();
    this.#namedIn = new Map();
    this.#copied = new Set();
    this.#queue = [];
  }

  /**
   * Bytes per span: the pieces copied together, about CHUNK (one read and
   * one write per 4 MiB, as ./direct-copy.ts: a read and a write per 1 MiB
   * piece cost the get half as much system time again).
   */
  #spanBytes(): number {
    const { pieceSize } = this.#notice!;
    return Math.max(1, Math.floor(CHUNK / pieceSize)) * pieceSize;
  }

  /** Piece `n` is named: its span goes to the queue once every piece of it is, unless its end is the content's unaligned end (left to finish()). */
  #name(n: number): void {
    const { pieceSize, contentLength } = this.#notice!;
    if (this.#named.has(n)) return;
    this.#named.add(n);
    const span = this.#spanBytes();
    const j = Math.floor((n * pieceSize) / span);
    const end = Math.min((j + 1) * span, contentLength);
    if (end % DIRECT_ALIGN !== 0) return;
    const named = (this.#namedIn.get(j) ?? 0) + 1;
    if (named < Math.ceil((end - j * span) / pieceSize)) {
      this.#namedIn.set(j, named);
      return;
    }
    this.#namedIn.delete(j);
    this.#queue.push(j);
  }

  #stop(): void {
    this.#off = true;
    this.#queue = [];
  }

  async #open(path: string): Promise<Opened | undefined> {
    try {
      // Where the file system makes reflinks, the end costs nothing: no copy to overlap.
      const reflinks = await copyFile(path, this.#tmp, fsc.COPYFILE_FICLONE_FORCE).then(
        () => true,
        () => false,
      );
      await rm(this.#tmp, { force: true });
      if (reflinks) throw new Error('reflinks');
      const src = await open(path, fsc.O_RDONLY | fsc.O_DIRECT);
      try {
        const dst = await open(this.#tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_DIRECT, 0o600);
        const info = await src.stat();
        return { src, dst, dev: info.dev, ino: info.ino, mode: info.mode };
      } catch (err) {
        await src.close();
        throw err;
      }
    } catch {
      this.#stop();
      return undefined;
    }
  }

  async #work(): Promise<void> {
    const opened = await this.#opening;
    try {
      while (opened !== undefined && !this.#off && this.#queue.length > 0) {
        const j = this.#queue.shift()!;
        const { contentLength, generation } = this.#notice!;
        const span = this.#spanBytes();
        if (this.#copied.has(j)) continue;
        await this.#copyRange(opened, j * span, Math.min((j + 1) * span, contentLength));
        if (this.#notice?.generation === generation) this.#copied.add(j);
      }
    } catch {
      // O_DIRECT refused at the first write, the disk full, …: the ordinary copy at the end meets it and says so.
      this.#stop();
    } finally {
      this.#working = undefined;
    }
  }

  async #copyRange(opened: Opened, start: number, end: number): Promise<void> {
    this.#buffer ??= alignedBuffer(CHUNK);
    for (let pos = start; pos < end; pos += CHUNK) {
      const n = Math.min(CHUNK, end - pos);
      await readFully(opened.src, this.#buffer, n, pos);
      await writeFully(opened.dst, this.#buffer.subarray(0, n), pos);
    }
  }

  async #close(opened: Opened): Promise<void> {
    await opened.src.close().catch(() => undefined);
    await opened.dst.close().catch(() => undefined);
  }
}
