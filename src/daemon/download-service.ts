/**
 * The port through which the daemon's front ends (local API, registry
 * mirror, HTTP proxy) ask for content: start or join a download, wait for its
 * verified content, or find content already held. The daemon implements it
 * (./downloads.ts); each front end names the part it uses (`Pick<…>`), so none
 * of them depends on the daemon itself.
 */
import type { TaskStats } from './download/task-stats.js';
import type { DownloadRequest } from './request.js';
import type { PieceHandle } from './storage/piece-handle.js';
import type { TaskShape } from './storage/stored-task.js';

/** A complete, verified task's content file on this host. */
export interface DownloadedContent {
  readonly taskId: string;
  /** The content file in the cache (read it only while pinned). */
  readonly path: string;
  readonly contentLength: number;
  /** Its pieces' generation (StoredTask.generation): what a reader that copied pieces as they came compares. */
  readonly generation: number;
  /** Keeps the content in the cache (no eviction) until the returned function is called. */
  pin(): () => void;
}

/**
 * Where a running task's verified pieces are being written: the content file,
 * piece n at n × pieceSize. Read piece n there once onPiece has named it, and
 * only while `generation` is still the task's (a change means pieces were
 * dropped and their bytes may be rewritten).
 */
export interface PartialContent {
  readonly path: string;
  readonly pieceSize: number;
  readonly contentLength: number;
  readonly generation: number;
}

export interface DownloadHandle {
  readonly taskId: string;
  readonly stats: TaskStats;
  /** Resolves once every piece is held and verified (and the whole content matches its digest, when known). */
  readonly done: Promise<DownloadedContent>;
  onProgress(listener: (stats: TaskStats) => void): () => void;
  /** Piece `n` was stored and verified here (the listener runs as that happens). */
  onPiece(listener: (n: number) => void): () => void;
  /**
   * The task's content file as it fills: undefined while its length is
   * unknown, and for a caller that must pass the origin's access check
   * first (it sees no byte before the check, at the end).
   */
  partial(): PartialContent | undefined;
  /** The task's shape once the origin or the swarm told it; undefined before. */
  shape(): TaskShape | undefined;
  /**
   * Piece `n` if it is held and verified here now (its own SHA-256; the whole
   * content is checked against its digest only at the end), pinned until
   * `release()`. What a front end streams while the rest downloads.
   */
  openPiece(n: number): PieceHandle | undefined;
}

export interface DownloadService {
  /** Starts (or joins) a download. The signal releases this caller; the task stops when no caller is left. */
  download(request: DownloadRequest, signal?: AbortSignal): DownloadHandle;
  /** The content of a task held complete here, without starting anything. */
  held(taskId: string): DownloadedContent | undefined;
}
