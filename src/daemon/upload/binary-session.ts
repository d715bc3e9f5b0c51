/**
 * The server side of one binary-protocol connection (../../common/wire.ts), after its
 * preface: request frames in, answers out, one at a time and in order. A
 * malformed frame is answered with BAD_REQUEST and the connection closed;
 * more than MAX_PIPELINE unanswered requests is malformed too.
 */
import type { Socket } from 'node:net';
import type { ShoalError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { UPLOAD_LIMITS } from './limits.js';
import type { PieceReply, PieceUploads } from './piece-uploads.js';
import { MAX_PIPELINE, REQUEST_SIZE, Status, decodeRequest, encodeErrorResponse, encodeResponseHeader, type StatusCode } from '../../common/wire.js';

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
  let pending = first;
  let answering = false;
  let closed = false;

  const idle = (): void => {
    socket.setTimeout(pending.length > 0 ? UPLOAD_LIMITS.headersTimeoutMs : UPLOAD_LIMITS.keepAliveTimeoutMs);
  };
  const refuse = (status: Exclude<StatusCode, 0>, message: string): void => {
    closed = true;
    socket.end(encodeErrorResponse(status, message));
    socket.destroySoon();
  };
  const next = (): void => {
    while (!answering && !closed && pending.length >= REQUEST_SIZE) {
      const request = decodeRequest(pending.subarray(0, REQUEST_SIZE));
      pending = pending.subarray(REQUEST_SIZE);
      if (typeof request === 'string') return refuse(Status.BAD_REQUEST, request);
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
    if (closed) return;
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    if (pending.length > MAX_PIPELINE * REQUEST_SIZE) return refuse(Status.BAD_REQUEST, `more than ${MAX_PIPELINE} requests unanswered`);
    next();
  });
  socket.on('timeout', () => {
    hooks.log.debug({ remote: socket.remoteAddress }, 'binary piece connection idle; closing');
    socket.destroy();
  });
  socket.on('close', () => {
    closed = true;
  });
  next();
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
