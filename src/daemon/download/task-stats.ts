/** Where a task's bytes came from, and every fallback to the origin with its reason. */
import type { ShoalError } from '../../common/errors.js';
import type { TaskShape } from '../storage/stored-task.js';
import { redactUrl } from '../../common/ids.js';
import { rateLimitJson, type RateLimitJson, type RateLimiter } from '../../common/rate-limiter.js';

export interface BackToSourceEvent {
  at: string;
  reason: string;
}

/** A task's figures as the local API, `shoal status` and the tests read them. */
export interface TaskStatsJson {
  taskId: string;
  /** With signed query parameters and credentials redacted. */
  url: string;
  state: 'running' | 'complete' | 'failed';
  contentLength: number | undefined;
  pieceCount: number | undefined;
  completedPieces: number;
  completedBytes: number;
  /** Bytes by where they came from. */
  bytes: { cache: number; peers: number; seeds: number; source: number };
  piecesFromRunningParents: number;
  corruptPieces: number;
  /** Bytes received from each parent, by peer ID. */
  parents: Record<string, number>;
  backToSource: BackToSourceEvent[];
  startedAt: string;
  durationMs: number;
  error: { code: string; message: string } | undefined;
  /** The task's own cap (`shoal get --limit-rate`), when a caller set one. */
  limit?: RateLimitJson;
}

export class TaskStats {
  readonly taskId: string;
  readonly url: string;
  state: 'running' | 'complete' | 'failed' = 'running';
  contentLength: number | undefined;
  pieceCount: number | undefined;
  completedPieces = 0;
  completedBytes = 0;
  readonly bytes = { cache: 0, peers: 0, seeds: 0, source: 0 };
  /** Pieces received from non-seed parents that were themselves still downloading. */
  piecesFromRunningParents = 0;
  corruptPieces = 0;
  /** Piece fetches from parents that failed, by why (a corrupt piece is counted in corruptPieces). */
  readonly pieceFailures = { timeout: 0, busy: 0, gone: 0, error: 0 };
  /** Parents ruled out for the task: for a corrupt piece (a liar), or for failing again and again. */
  readonly excludedParents = { corrupt: 0, failures: 0 };
  readonly parents = new Map<string, number>();
  readonly backToSourceEvents: BackToSourceEvent[] = [];
  readonly startedAt = Date.now();
  finishedAt: number | undefined;
  error: { code: string; message: string } | undefined;
  /** The task's own cap, when a caller set one (set by ../downloads.ts). */
  limiter: RateLimiter | undefined;

  constructor(taskId: string, url: string) {
    this.taskId = taskId;
    this.url = redactUrl(url);
  }

  setShape(shape: TaskShape | undefined, pieces: number, bytes: number): void {
    this.contentLength = shape?.contentLength;
    this.pieceCount = shape?.contentLength === undefined ? undefined : Math.ceil(shape.contentLength / shape.pieceSize);
    this.completedPieces = pieces;
    this.completedBytes = bytes;
  }

  fromCache(bytes: number): void {
    this.bytes.cache += bytes;
    this.completedBytes = bytes;
  }

  piece(length: number, from: 'source' | 'peer' | 'seed'): void {
    this.completedPieces++;
    this.completedBytes += length;
    if (from === 'source') this.bytes.source += length;
    else if (from === 'seed') this.bytes.seeds += length;
    else this.bytes.peers += length;
  }

  fromParent(peerId: string, length: number): void {
    this.parents.set(peerId, (this.parents.get(peerId) ?? 0) + length);
  }

  backToSource(reason: string): void {
    this.backToSourceEvents.push({ at: new Date().toISOString(), reason });
  }

  finish(error?: ShoalError): void {
    this.finishedAt = Date.now();
    this.state = error === undefined ? 'complete' : 'failed';
    if (error !== undefined) this.error = { code: error.code, message: error.message };
  }

  toJSON(): TaskStatsJson {
    return {
      taskId: this.taskId,
      url: this.url,
      state: this.state,
      contentLength: this.contentLength,
      pieceCount: this.pieceCount,
      completedPieces: this.completedPieces,
      completedBytes: this.completedBytes,
      bytes: { ...this.bytes },
      piecesFromRunningParents: this.piecesFromRunningParents,
      corruptPieces: this.corruptPieces,
      parents: Object.fromEntries(this.parents),
      backToSource: this.backToSourceEvents,
      startedAt: new Date(this.startedAt).toISOString(),
      durationMs: (this.finishedAt ?? Date.now()) - this.startedAt,
      error: this.error,
      ...(this.limiter === undefined ? {} : { limit: rateLimitJson(this.limiter) }),
    };
  }
}
