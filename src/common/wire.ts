/**
 * The binary piece protocol (SPP/1): what a child and a parent exchange on the
 * parent's upload port when the child does not speak HTTP. Same port as the
 * HTTP data plane; the server tells them apart by the first byte (0x00 never
 * starts an HTTP request). docs/design.md, "Data plane".
 *
 *   client → server, once:     PREFACE (8 bytes: "\0SHOALP1")
 *   client → server, request:  40 bytes
 *       [0]      op (1 = get piece)
 *       [1]      flags (bit 0, WAIT: if the piece is on its way to the server,
 *                the answer waits until it is held; see below)
 *       [2..3]   zero
 *       [4..7]   piece number, u32 big-endian
 *       [8..39]  task ID, 32 raw bytes (the 64-hex ID decoded)
 *   server → client, response: 8-byte header, then `length` body bytes
 *       [0]      status (Status below)
 *       [1]      flags (bit 0: the parent holds the whole task)
 *       [2..3]   zero
 *       [4..7]   length, u32 big-endian: the piece's bytes for OK, else a
 *                UTF-8 message of at most MAX_MESSAGE bytes
 *
 * Requests on one connection are answered in order; a client may pipeline up
 * to MAX_PIPELINE of them beyond the one being answered. A BAD_REQUEST answer
 * is followed by the server closing the connection. The server checks every
 * byte it has received at once (decodeRequests): a segment carrying more
 * requests than that, or one malformed frame anywhere in it, is refused
 * before any of it is answered.
 *
 * WAIT makes a chain of peers a pipeline in the data plane: a child asks its
 * parent for the pieces the parent is still receiving, and each is sent the
 * moment the parent holds it, without the round through the scheduler that
 * announces it. The server waits only for a piece it is fetching right now
 * (from a parent or the origin) and answers NOT_FOUND at once otherwise; the
 * wait ends with that fetch, so it is bounded by the server's own stall timer.
 */
import { MAX_PIECES } from './pieces.js';

export const PREFACE = Buffer.from('\0SHOALP1', 'latin1');
export const REQUEST_SIZE = 40;
export const RESPONSE_HEADER_SIZE = 8;
export const OP_GET_PIECE = 1;
export const FLAG_TASK_COMPLETE = 1;
export const FLAG_WAIT = 1;
export const MAX_MESSAGE = 1024;
export const MAX_PIPELINE = 8;

export const Status = {
  OK: 0,
  NOT_FOUND: 1,
  BUSY: 2,
  BAD_REQUEST: 3,
  ERROR: 4,
} as const;
export type StatusCode = (typeof Status)[keyof typeof Status];

export interface PieceRequest {
  taskId: string;
  piece: number;
  /** FLAG_WAIT was set. */
  wait: boolean;
}

export function encodeRequest(taskIdRaw: Buffer, piece: number, wait = false): Buffer {
  const frame = Buffer.alloc(REQUEST_SIZE);
  frame[0] = OP_GET_PIECE;
  frame[1] = wait ? FLAG_WAIT : 0;
  frame.writeUInt32BE(piece, 4);
  taskIdRaw.copy(frame, 8);
  return frame;
}

/** Parses one request frame; a string is what is wrong with it. */
export function decodeRequest(frame: Buffer): PieceRequest | string {
  if (frame.length !== REQUEST_SIZE) return `a request is ${REQUEST_SIZE} bytes`;
  if (frame[0] !== OP_GET_PIECE) return `unknown operation ${frame[0]!}`;
  if ((frame[1]! & ~FLAG_WAIT) !== 0 || frame[2] !== 0 || frame[3] !== 0) return 'reserved request bits must be zero';
  const piece = frame.readUInt32BE(4);
  if (piece >= MAX_PIECES) return `piece number must be below ${MAX_PIECES}`;
  return { taskId: frame.toString('hex', 8, 40), piece, wait: frame[1] === FLAG_WAIT };
}

/** The whole requests at the front of `buffer`, and the bytes of the next one not yet complete. */
export interface DecodedRequests {
  requests: PieceRequest[];
  rest: Buffer;
}

/**
 * Decodes every whole request in `buffer`, which a peer sent while `queued`
 * of its requests wait for their answer: a string says what is wrong when
 * they would be more than MAX_PIPELINE (a started frame counts) or when any
 * of them is malformed. Nothing of the buffer is trusted before all of it is
 * checked.
 */
export function decodeRequests(buffer: Buffer, queued: number): DecodedRequests | string {
  if (queued + Math.ceil(buffer.length / REQUEST_SIZE) > MAX_PIPELINE) return `more than ${MAX_PIPELINE} requests unanswered`;
  const whole = buffer.length - (buffer.length % REQUEST_SIZE);
  const requests: PieceRequest[] = [];
  for (let at = 0; at < whole; at += REQUEST_SIZE) {
    const request = decodeRequest(buffer.subarray(at, at + REQUEST_SIZE));
    if (typeof request === 'string') return request;
    requests.push(request);
  }
  return { requests, rest: buffer.subarray(whole) };
}

export function encodeResponseHeader(status: StatusCode, length: number, taskComplete: boolean): Buffer {
  const header = Buffer.alloc(RESPONSE_HEADER_SIZE);
  header[0] = status;
  header[1] = taskComplete ? FLAG_TASK_COMPLETE : 0;
  header.writeUInt32BE(length, 4);
  return header;
}

/** A response carrying a message instead of a piece (everything but OK). */
export function encodeErrorResponse(status: Exclude<StatusCode, 0>, message: string): Buffer {
  let body = Buffer.from(message, 'utf8');
  if (body.length > MAX_MESSAGE) body = body.subarray(0, MAX_MESSAGE);
  return Buffer.concat([encodeResponseHeader(status, body.length, false), body]);
}
