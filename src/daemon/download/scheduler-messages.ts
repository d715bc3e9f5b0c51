/**
 * A download's conversation with the scheduler as messages (the AnnouncePeer
 * stream, proto/shoal/v1/scheduler.proto): what a peer registers with, what
 * it reports, and the scheduler's responses read into orders the download
 * acts on. Pure: no stream, no state.
 */
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { RegisterPeerSchema, type PeerRequestSchema, type PeerResponse, type RegisterPeer, type TaskSpec } from '../../gen/shoal/v1/scheduler_pb.js';
import { ShoalError, isErrorCode } from '../../common/errors.js';
import { packDigests, unpackDigests } from '../../common/pieces.js';
import type { StoredTask, TaskShape } from '../storage/stored-task.js';
import type { ParentInfo } from './parent.js';

/** What the scheduler tells a downloading peer. */
export type SchedulerOrder =
  | { kind: 'backToSource'; reason: string }
  /** The full set of parents to use now: replaces the previous one. */
  | { kind: 'parents'; parents: readonly ParentInfo[] }
  /** The content's shape, and the version (../source/validator.ts) the task's pieces and digests are of. */
  | { kind: 'shape'; shape: TaskShape; validator: string }
  /** Authoritative digests of pieces. */
  | { kind: 'digests'; digests: ReadonlyMap<number, Buffer> }
  /** A parent announced pieces. */
  | { kind: 'parentPieces'; peerId: string; numbers: readonly number[] }
  /** The task is complete (check what is held). */
  | { kind: 'complete' }
  | { kind: 'failed'; error: ShoalError }
  /** The task was fetched with credentials: a requester gets it only once the origin accepts its own. */
  | { kind: 'accessRequired' };

/** The response as an order; undefined for a response this peer does not know. */
export function readResponse(response: PeerResponse): SchedulerOrder | undefined {
  const r = response.response;
  switch (r.case) {
    case 'backToSource':
      return { kind: 'backToSource', reason: r.value.reason };
    case 'parents':
      return { kind: 'parents', parents: r.value.parents };
    case 'metadata': {
      const contentLength = r.value.contentLength === undefined ? undefined : Number(r.value.contentLength);
      return { kind: 'shape', shape: { contentLength, pieceSize: r.value.pieceSize }, validator: r.value.validator };
    }
    case 'digests':
      // Digests of the wrong size are ignored.
      return { kind: 'digests', digests: unpackDigests(r.value.numbers, r.value.digests) ?? new Map() };
    case 'parentPieces':
      return { kind: 'parentPieces', peerId: r.value.peerId, numbers: r.value.numbers };
    case 'complete':
      return { kind: 'complete' };
    case 'accessRequired':
      return { kind: 'accessRequired' };
    case 'failed': {
      const code = isErrorCode(r.value.code) ? r.value.code : 'SOURCE_STATUS';
      const error = new ShoalError(code, r.value.message, r.value.status > 0 ? { sourceStatus: r.value.status } : {});
      return { kind: 'failed', error };
    }
    default:
      return undefined;
  }
}

export interface RegisterInput {
  peerId: string;
  hostId: string;
  spec: TaskSpec;
  /** What is held: its shape and pieces. */
  task: StoredTask;
  /** Send the digests of the pieces held (they are authoritative: from the origin, or a seed's). */
  withDigests: boolean;
  /** Fetching from the origin now. */
  backToSource: boolean;
  /** Registering again after the stream broke. */
  reconnect: boolean;
}

export function registerMessage(input: RegisterInput): RegisterPeer {
  const { task } = input;
  const numbers = [...task.digests.keys()];
  return create(RegisterPeerSchema, {
    peerId: input.peerId,
    hostId: input.hostId,
    task: input.spec,
    ...(task.shape === undefined ? {} : { metadata: shapeMessage(task.shape, task.validator) }),
    pieces: numbers,
    digests: input.withDigests ? packDigests(numbers.map((n) => task.digests.get(n)!)) : new Uint8Array(0),
    backToSource: input.backToSource,
    reconnect: input.reconnect,
  });
}

/** A message a peer sends on its stream after registering. */
export type PeerReport = MessageInitShape<typeof PeerRequestSchema>['request'];

/** Bounds of the free text in reports. */
const MAX_REASON = 500;
const MAX_MESSAGE = 1000;

export const report = {
  /** Pieces stored; `digests` packed, or empty when they are not authoritative. */
  pieces: (numbers: number[], digests: Uint8Array): PeerReport => ({ case: 'pieces', value: { numbers, digests } }),
  /** The origin told this peer the content's shape and version. */
  shape: (shape: TaskShape, validator: string): PeerReport => ({ case: 'metadata', value: { metadata: shapeMessage(shape, validator) } }),
  parentFailed: (parentPeerId: string, reason: string, corrupt: boolean): PeerReport => ({
    case: 'parentFailed',
    value: { parentPeerId, reason: reason.slice(0, MAX_REASON), corrupt },
  }),
  /** Asks for other parents. */
  reschedule: (reason: string): PeerReport => ({ case: 'reschedule', value: { reason } }),
  finished: (contentLength: number): PeerReport => ({ case: 'finished', value: { contentLength: BigInt(contentLength) } }),
  failed: (err: ShoalError): PeerReport => ({
    case: 'failed',
    value: { code: err.code, message: err.message.slice(0, MAX_MESSAGE), status: err.sourceStatus ?? 0 },
  }),
};

function shapeMessage(shape: TaskShape, validator: string): { contentLength?: bigint; pieceSize: number; validator: string } {
  return shape.contentLength === undefined ? { pieceSize: shape.pieceSize, validator } : { contentLength: BigInt(shape.contentLength), pieceSize: shape.pieceSize, validator };
}
