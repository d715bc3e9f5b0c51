/**
 * What the scheduler tells peers and hosts, shaped from the model: the
 * AnnouncePeer responses and SyncHost commands, and the few ways they are
 * sent (a peer's `send` is undefined while it has no stream; those sends are
 * dropped, as the peer learns everything again when it registers).
 */
import { create } from '@bufbuild/protobuf';
import { HostCommandSchema, PeerResponseSchema, type HostCommand, type PeerResponse, type TaskSpec } from '../gen/shoal/v1/scheduler_pb.js';
import { packDigests } from '../common/pieces.js';
import { inStripes, isStriped } from '../common/stripes.js';
import type { PeerEntry, TaskEntry, TaskShape } from './model.js';

function shapeValue(shape: TaskShape): { contentLength?: bigint; pieceSize: number } {
  return shape.contentLength === undefined ? { pieceSize: shape.pieceSize } : { contentLength: BigInt(shape.contentLength), pieceSize: shape.pieceSize };
}

/** The content's length, piece size and version; for a task whose shape is known. */
export function metadataMessage(shape: TaskShape, validator: string): PeerResponse {
  return create(PeerResponseSchema, { response: { case: 'metadata', value: { ...shapeValue(shape), validator } } });
}

/** The task's authoritative digests of pieces `numbers`. */
export function digestsMessage(task: TaskEntry, numbers: readonly number[]): PeerResponse {
  const digests = numbers.map((n) => task.digests.get(n)!);
  return create(PeerResponseSchema, { response: { case: 'digests', value: { numbers: [...numbers], digests: packDigests(digests) } } });
}

/** `peer`'s whole parent list, each with the stripes it serves (none: every piece). */
export function parentsMessage(peer: PeerEntry): PeerResponse {
  const parents = [...peer.parents].map((p) => {
    const mask = peer.parentMasks.get(p);
    return {
      peerId: p.id,
      hostId: p.host.info.id,
      ip: p.host.info.ip,
      port: p.host.info.port,
      seed: p.host.info.seed,
      identity: p.host.info.identity,
      ...(mask === undefined ? {} : { stripes: peer.task.stripes, stripeMask: mask }),
    };
  });
  return create(PeerResponseSchema, { response: { case: 'parents', value: { parents } } });
}

/** Pieces `parent` holds (all of them, or the ones it just reported). */
export function parentPiecesMessage(parent: PeerEntry, numbers: readonly number[]): PeerResponse {
  return create(PeerResponseSchema, { response: { case: 'parentPieces', value: { peerId: parent.id, numbers: [...numbers] } } });
}

export function backToSourceMessage(reason: string): PeerResponse {
  return create(PeerResponseSchema, { response: { case: 'backToSource', value: { reason } } });
}

export function completeMessage(): PeerResponse {
  return create(PeerResponseSchema, { response: { case: 'complete', value: {} } });
}

/** The task was fetched with credentials: the peer must check a requester's own with the origin. */
export function accessRequiredMessage(): PeerResponse {
  return create(PeerResponseSchema, { response: { case: 'accessRequired', value: {} } });
}

export function failedMessage(code: string, message: string, status: number): PeerResponse {
  return create(PeerResponseSchema, { response: { case: 'failed', value: { code, message, status } } });
}

export function seedTaskCommand(task: TaskSpec): HostCommand {
  return create(HostCommandSchema, { command: { case: 'seedTask', value: { task } } });
}

/** A stripe mask with every bit: the parent serves every piece (no split, or no mask on the edge). */
export const EVERY_PIECE = -1;

/** The pieces of `numbers` in the stripes of `mask` (common/stripes.ts). */
function ofStripes(numbers: readonly number[], mask: number, stripes: number): readonly number[] {
  if (mask === EVERY_PIECE || !isStriped(stripes)) return numbers;
  return numbers.filter((n) => inStripes(n, stripes, mask));
}

/**
 * Of the pieces `parent` just reported, the ones `child` is told of: in split
 * trees a child takes from a parent only the pieces of that edge's stripes, so
 * the others are not worth a message (half of a relay's reports, with two
 * stripes). Those of the stripes it was last told as well, until it is told
 * the new mask; a stripe it is given later comes with the parent's whole set
 * (sendParents).
 */
export function piecesToTell(child: PeerEntry, parent: PeerEntry, numbers: readonly number[]): readonly number[] {
  const mask = (child.parentMasks.get(parent) ?? EVERY_PIECE) | (child.toldMasks.get(parent) ?? 0);
  return ofStripes(numbers, mask, child.task.stripes);
}

/**
 * Tells `peer` its parent list, then what each parent in `added`, or whose
 * stripes grew since the last list, already holds (of its stripes).
 */
export function sendParents(peer: PeerEntry, added: readonly PeerEntry[]): void {
  const send = peer.send;
  if (send === undefined) return;
  send(parentsMessage(peer));
  const told = new Map<PeerEntry, number>();
  for (const parent of peer.parents) {
    const mask = peer.parentMasks.get(parent) ?? EVERY_PIECE;
    const before = peer.toldMasks.get(parent);
    told.set(parent, mask);
    const grew = before === undefined || (mask & ~before) !== 0;
    if (!(grew || added.includes(parent)) || parent.pieces.size === 0) continue;
    const held = ofStripes([...parent.pieces], mask, peer.task.stripes);
    if (held.length > 0) send(parentPiecesMessage(parent, held));
  }
  peer.toldMasks.clear();
  for (const [parent, mask] of told) peer.toldMasks.set(parent, mask);
}

export function sendDigests(peer: PeerEntry, numbers: readonly number[]): void {
  if (numbers.length === 0 || peer.send === undefined) return;
  peer.send(digestsMessage(peer.task, numbers));
}

/** Sends `message` to every active peer of the task but `except`. */
export function broadcast(task: TaskEntry, message: PeerResponse, except: PeerEntry | undefined): void {
  for (const p of task.peers.values()) if (p !== except && p.active) p.send?.(message);
}

/** Sends digests `numbers` to every active peer of the task but `except`. */
export function broadcastDigests(task: TaskEntry, numbers: readonly number[], except: PeerEntry | undefined): void {
  if (numbers.length === 0) return;
  for (const p of task.peers.values()) if (p !== except && p.active) sendDigests(p, numbers);
}
