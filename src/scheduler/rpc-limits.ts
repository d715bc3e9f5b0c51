/**
 * Caps on what a peer or client may send the scheduler (docs/LIMITS.md),
 * checked on every message before the swarm does any work with it. A message
 * over one fails its stream with LIMIT_EXCEEDED (the RPC code
 * resource_exhausted, ../common/rpc-errors.ts); a piece number the task
 * cannot have is USAGE; the peer's free-text error messages are cut to
 * `stringLength` instead.
 *
 * Every size and count a message carries is bounded here: a task's shape
 * (piece size, content length, pieces: ../common/pieces.ts shapeProblem), the
 * piece numbers (below the task's piece count, or MAX_PIECES while its length
 * is unknown), the lists' lengths and the strings'.
 */
import { ShoalError } from '../common/errors.js';
import { MAX_PIECES, shapeProblem } from '../common/pieces.js';
import type { HeldTask, RegisterPeer, TaskMetadata } from '../gen/shoal/v1/scheduler_pb.js';
import { learnedShape, pieceLimit, type TaskShape } from './model.js';

export const RPC_LIMITS = {
  /** Bytes of one message, checked as it is read, before it is decoded (Connect's own default is 4 GiB). */
  messageBytes: 256 * 1024 * 1024,
  /** Piece numbers in one report. */
  piecesPerReport: 65_536,
  /** Piece numbers a peer registers or a host re-announces for one task (the pieces of a task). */
  piecesPerTask: MAX_PIECES,
  /** Tasks re-announced, or reported evicted, by one host at once. */
  heldTasksPerHost: 100_000,
  /** Length of IDs, URLs and error codes and messages. */
  stringLength: 8192,
  /** Length of a host's labels. */
  hostnameLength: 255,
  idcLength: 255,
  locationLength: 1024,
} as const;

/** LIMIT_EXCEEDED when there are more than `limit` of `what`. */
export function checkCount(what: string, count: number, limit: number): void {
  if (count > limit) throw new ShoalError('LIMIT_EXCEEDED', `${count} ${what}: at most ${limit}`);
}

/** LIMIT_EXCEEDED when `value`, the `what`, is longer than `limit` characters. */
export function checkLength(what: string, value: string, limit: number = RPC_LIMITS.stringLength): void {
  if (value.length > limit) throw new ShoalError('LIMIT_EXCEEDED', `a ${what} of ${value.length} characters: at most ${limit}`);
}

/** The shape a peer reports, within the limits (LIMIT_EXCEEDED otherwise); undefined when it sent none. */
export function checkShape(metadata: TaskMetadata | undefined): TaskShape | undefined {
  if (metadata === undefined) return undefined;
  const contentLength = metadata.contentLength === undefined ? undefined : Number(metadata.contentLength);
  const problem = shapeProblem(contentLength, metadata.pieceSize);
  if (problem !== undefined) throw new ShoalError('LIMIT_EXCEEDED', `a task of ${problem}`);
  return { contentLength, pieceSize: metadata.pieceSize };
}

/** USAGE when one of `numbers`, the `what`, is not a piece of a task of `shape`. */
export function checkPieceNumbers(what: string, numbers: readonly number[], shape: TaskShape | undefined): void {
  const limit = pieceLimit(shape);
  for (const n of numbers) {
    if (n < limit) continue;
    const pieces = shape?.contentLength === undefined ? `pieces are numbered below ${limit}` : `the task has ${limit} pieces`;
    throw new ShoalError('USAGE', `piece ${n} in ${what}: ${pieces}`);
  }
}

/** A task a host re-announces, whose task is known as `known`: its IDs, shape and pieces within the limits. */
export function checkHeldTask(item: HeldTask, known: TaskShape | undefined): void {
  checkLength('task ID', item.taskId);
  checkLength('peer ID', item.peerId);
  checkCount('pieces of one held task', item.pieces.length, RPC_LIMITS.piecesPerTask);
  checkPieceNumbers('a held task', item.pieces, learnedShape(known, checkShape(item.metadata)));
}

/** A peer registering for a task known as `known`: its IDs, URL, shape and pieces within the limits. */
export function checkRegister(request: RegisterPeer, known: TaskShape | undefined): void {
  checkLength('peer ID', request.peerId);
  checkLength('host ID', request.hostId);
  checkLength('task ID', request.task?.taskId ?? '');
  checkLength('URL', request.task?.url ?? '');
  checkCount('pieces registered', request.pieces.length, RPC_LIMITS.piecesPerTask);
  checkPieceNumbers('the pieces registered', request.pieces, learnedShape(known, checkShape(request.metadata)));
}
