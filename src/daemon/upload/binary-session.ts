/**
 * The server side of one binary-protocol connection (../../common/wire.ts), after its
 * preface: request frames in, answers out, one at a time and in order. Every
 * byte received is checked at once, the bytes that came with the preface
 * included (decodeRequests): a malformed frame anywhere in them, or more than
 * MAX_PIPELINE requests waiting behind the one being answered, is answered
 * with BAD_REQUEST and the connection closed before anything else of it is
 * served (closed without an answer when one is being sent: its body cannot be
 * cut into).
 */
import type { Socket } from 'node:net';
import type { ShoalError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { UPLOAD_LIMITS } from './limits.js';
import type { PieceReply, PieceUploads } from './piece-uploads.js';
import { Status, decodeRequests, encodeErrorResponse, encodeResponseHeader, type PieceRequest, type StatusCode } from '../../common/wire.js';

export interface BinarySessionHooks {
  uploads: PieceUploads;
  log: Logger;
  /** False once the server is stopping: requests are answered BUSY and the connection closed. */
  accepting(): boolean;
  /** An answer started (+1) or ended (-1) on this socket. */
  busy(delta: 1 | -1): void;
  /** A body being streamed, for the server's drain on stop. */
  track(upload: Promise<void>): void;
}

export function startBinarySession(socket: Socket, first: Buffer, hooks: BinarySessionHooks): void {
  /** Requests checked and waiting for their turn, in order. */
  const queue: PieceRequest[] = [];
  /** The start of the next request, not yet whole. */
  let partial: Buffer = Buffer.alloc(0);
  let answering = false;
  let closed = false;

  const idle = (): void => {
    socket.setTimeout(partial.length > 0 ? UPLOAD_LIMITS.headersTimeoutMs : UPLOAD_LIMITS.keepAliveTimeoutMs);
  };
  const refuse = (status: Exclude<StatusCode, 0>, message: string): void => {
    closed = true;
    queue.length = 0;
    if (answering) {
      socket.destroy();
      return;
    }
    socket.end(encodeErrorResponse(status, message));
    socket.destroySoon();
  };
  /** Checks everything received so far, then queues it; false when the connection was refused. */
  const receive = (chunk: Buffer): boolean => {
    const decoded = decodeRequests(partial.length === 0 ? chunk : Buffer.concat([partial, chunk]), queue.length);
    if (typeof decoded === 'string') {
      refuse(Status.BAD_REQUEST, decoded);
      return false;
    }
    queue.push(...decoded.requests);
    partial = decoded.rest;
    return true;
  };
  const next = (): void => {
    while (!answering && !closed && queue.length > 0) {
      const request = queue.shift()!;
      if (!hooks.accepting()) return refuse(Status.BUSY, 'the upload server is shutting down');
      const upload = hooks.uploads.serve(binaryReply(socket), request.taskId, request.piece, false, request.wait);
      if (upload === undefined) continue; // answered at once (not found, busy)
      // (a WAIT request's promise covers the wait too: answers stay in order)
      answering = true;
      hooks.busy(1);
      hooks.track(upload);
      void upload.finally(() => {
        answering = false;
        hooks.busy(-1);
        if (!hooks.accepting()) socket.destroySoon();
        else {
          idle();
          next();
        }
      });
    }
    if (!answering) idle();
  };

  socket.on('data', (chunk: Buffer) => {
    if (!closed && receive(chunk)) next();
  });
  socket.on('timeout', () => {
    hooks.log.debug({ remote: socket.remoteAddress }, 'binary piece connection idle; closing');
    socket.destroy();
  });
  socket.on('close', () => {
    closed = true;
  });
  if (receive(first)) next();
}

const STATUS_OF: Record<string, Exclude<StatusCode, 0>> = {
  PIECE_NOT_FOUND: Status.NOT_FOUND,
  BUSY: Status.BUSY,
  USAGE: Status.BAD_REQUEST,
};

function binaryReply(socket: Socket): PieceReply {
  return {
    error: (error: ShoalError) => {
      socket.write(encodeErrorResponse(STATUS_OF[error.code] ?? Status.ERROR, `${error.code}: ${error.message}`));
    },
    begin: (length, taskComplete) => {
      socket.write(encodeResponseHeader(Status.OK, length, taskComplete));
    },
    sink: socket,
    socket,
    end: () => undefined,
    destroy: () => socket.destroy(),
    onClose: (listener) => {
      socket.once('close', listener);
      return () => socket.removeListener('close', listener);
    },
  };
}
