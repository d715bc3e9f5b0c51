/**
 * Caps on what a peer or client may send the scheduler (docs/LIMITS.md). A
 * message over one fails its stream with LIMIT_EXCEEDED (the RPC code
 * resource_exhausted, ../common/rpc-errors.ts); the peer's free-text error
 * messages are cut to `stringLength` instead.
 */
import { ShoalError } from '../common/errors.js';
import { MAX_PIECES } from '../common/pieces.js';
import type { HeldTask, RegisterPeer } from '../gen/shoal/v1/scheduler_pb.js';

export const RPC_LIMITS = {
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

/** A task a host re-announces: its IDs and pieces within the limits. */
export function checkHeldTask(item: HeldTask): void {
  checkLength('task ID', item.taskId);
  checkLength('peer ID', item.peerId);
  checkCount('pieces of one held task', item.pieces.length, RPC_LIMITS.piecesPerTask);
}

/** A peer registering: its IDs, URL and pieces within the limits. */
export function checkRegister(request: RegisterPeer): void {
  checkLength('peer ID', request.peerId);
  checkLength('host ID', request.hostId);
  checkLength('task ID', request.task?.taskId ?? '');
  checkLength('URL', request.task?.url ?? '');
  checkCount('pieces registered', request.pieces.length, RPC_LIMITS.piecesPerTask);
}
