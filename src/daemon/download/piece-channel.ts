/**
 * One binary-protocol connection to a parent (../upload/wire.ts), one request
 * at a time. The socket reads straight into the caller's piece buffer (Node's
 * `onread` with a buffer chosen before every read, never more than the answer
 * still owes), so a piece costs no stream machinery, no per-chunk allocation
 * and no copy: shaped links deliver many small reads and each one is cheap.
 */
import { connect, type Socket } from 'node:net';
import { ShoalError } from '../../common/errors.js';
import { MAX_MESSAGE, PREFACE, RESPONSE_HEADER_SIZE, Status, encodeRequest, FLAG_TASK_COMPLETE } from '../upload/wire.js';

export interface ChannelAnswer {
  /** The parent held the whole task when it answered. */
  taskComplete: boolean;
}

/** The parent broke the protocol or sent a piece of the wrong length (its fault, not the link's). */
export class ProtocolError extends ShoalError {
  constructor(message: string) {
    super('PEER_FAILED', message);
  }
}

/** The parent declared a piece length other than the piece's: a liar, like a bad digest. */
export class PieceLengthError extends ProtocolError {}

interface Pending {
  target: Buffer;
  /** Body bytes expected (the piece length, or an error message's). */
  length: number;
  got: number;
  status: number;
  taskComplete: boolean;
  message: Buffer | undefined;
  resolve: (answer: ChannelAnswer) => void;
  reject: (err: Error) => void;
  signal: AbortSignal;
  onAbort: () => void;
}

/**
 * Node picks the next read's buffer right after a read, so an answer's first
 * read lands here (no request was pending then): header-sized, it takes the
 * header and nothing of the body, which then goes straight to the piece.
 */
const SCRATCH_SIZE = RESPONSE_HEADER_SIZE;

export class PieceChannel {
  readonly #socket: Socket;
  readonly #who: string;
  readonly #stallMs: number;
  readonly #header = Buffer.alloc(RESPONSE_HEADER_SIZE);
  /** Where a read lands when no answer is expected, or before the right buffer was offered. */
  readonly #scratch = Buffer.allocUnsafe(SCRATCH_SIZE);
  #headerGot = 0;
  /** What #nextBuffer last returned: a read into exactly it needs no copy. */
  #offered: Buffer | undefined;
  #pending: Pending | undefined;
  #dead: Error | undefined;

  constructor(host: string, port: number, who: string, stallMs: number, connectTimeoutMs = 5000) {
    this.#who = who;
    this.#stallMs = stallMs;
    this.#socket = connect({
      host,
      port,
      noDelay: true,
      keepAlive: true,
      onread: { buffer: () => this.#nextBuffer(), callback: (n: number, buf: Uint8Array) => this.#onRead(n, buf) },
    });
    this.#socket.setTimeout(connectTimeoutMs);
    this.#socket.once('connect', () => this.#socket.setTimeout(this.#pending === undefined ? 0 : this.#stallMs));
    this.#socket.on('timeout', () => this.#fail(new ShoalError('PEER_FAILED', `${this.#who} sent nothing for ${this.#socket.connecting ? connectTimeoutMs : this.#stallMs} ms`)));
    this.#socket.on('error', (err) => this.#fail(new ShoalError('PEER_FAILED', `${this.#who}: ${err.message}`, { cause: err })));
    this.#socket.on('end', () => this.#fail(new ShoalError('PEER_FAILED', `${this.#who} closed the connection`)));
    this.#socket.on('close', () => this.#fail(new ShoalError('PEER_FAILED', `${this.#who} closed the connection`)));
    this.#socket.write(PREFACE);
  }

  /** Usable for another request. */
  get reusable(): boolean {
    return this.#dead === undefined && this.#pending === undefined;
  }

  /**
   * Asks for one piece of `target.length` bytes, received into `target`.
   * Rejects with ShoalError BUSY / PIECE_NOT_FOUND (the connection stays
   * usable), ProtocolError, PEER_FAILED, or the signal's reason (the
   * connection is then closed: an answer cannot be cut short otherwise).
   */
  fetch(taskIdRaw: Buffer, piece: number, target: Buffer, signal: AbortSignal): Promise<ChannelAnswer> {
    if (this.#dead !== undefined) return Promise.reject(this.#dead);
    if (this.#pending !== undefined) return Promise.reject(new ShoalError('INTERNAL', 'piece channel already has a request'));
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<ChannelAnswer>((resolve, reject) => {
      const onAbort = (): void => this.#fail(signal.reason instanceof Error ? signal.reason : new ShoalError('ABORTED', 'aborted'));
      this.#pending = { target, length: 0, got: 0, status: -1, taskComplete: false, message: undefined, resolve, reject, signal, onAbort };
      this.#headerGot = 0;
      signal.addEventListener('abort', onAbort, { once: true });
      if (!this.#socket.connecting) this.#socket.setTimeout(this.#stallMs);
      this.#socket.write(encodeRequest(taskIdRaw, piece));
    });
  }

  close(): void {
    this.#fail(new ShoalError('ABORTED', 'piece channel closed'));
  }

  /** The buffer the next read goes into: exactly what the current answer still owes. */
  #nextBuffer(): Buffer {
    const p = this.#pending;
    this.#offered = p === undefined ? this.#scratch : this.#expectedBuffer(p);
    return this.#offered;
  }

  /** Always true: returning false would pause the socket. */
  #onRead(n: number, buf: Uint8Array): true {
    if (n <= 0 || this.#dead !== undefined) return true;
    const p = this.#pending;
    if (p === undefined) {
      this.#fail(new ProtocolError(`${this.#who} sent ${n} bytes nobody asked for`));
      return true;
    }
    // The fast path: the bytes landed where #nextBuffer said.
    if (buf === this.#offered && buf !== this.#scratch) {
      this.#advance(p, n);
      return true;
    }
    // They landed in the scratch buffer (offered before this request existed): copy them where they belong.
    let data = Buffer.from(buf.buffer, buf.byteOffset, n);
    while (data.length > 0 && this.#pending === p) {
      const into = this.#expectedBuffer(p);
      const take = Math.min(into.length, data.length);
      data.copy(into, 0, 0, take);
      data = data.subarray(take);
      this.#advance(p, take);
    }
    if (data.length > 0) this.#fail(new ProtocolError(`${this.#who} sent ${data.length} bytes past its answer`));
    return true;
  }

  #expectedBuffer(p: Pending): Buffer {
    if (this.#headerGot < RESPONSE_HEADER_SIZE) return this.#header.subarray(this.#headerGot);
    return p.status === Status.OK ? p.target.subarray(p.got, p.length) : p.message!.subarray(p.got, p.length);
  }

  #advance(p: Pending, n: number): void {
    if (this.#headerGot < RESPONSE_HEADER_SIZE) {
      this.#headerGot += n;
      if (this.#headerGot < RESPONSE_HEADER_SIZE) return;
      const h = this.#header;
      p.status = h[0]!;
      p.taskComplete = (h[1]! & FLAG_TASK_COMPLETE) !== 0;
      p.length = h.readUInt32BE(4);
      if (p.status === Status.OK) {
        if (p.length !== p.target.length) {
          this.#fail(new PieceLengthError(`${this.#who} declared ${p.length} bytes for a piece of ${p.target.length}`));
          return;
        }
      } else if (p.status <= Status.ERROR && p.length <= MAX_MESSAGE) {
        p.message = Buffer.alloc(p.length);
      } else {
        this.#fail(new ProtocolError(`${this.#who} answered status ${p.status} with ${p.length} bytes`));
        return;
      }
    } else {
      p.got += n;
    }
    if (p.got === p.length) this.#settle(p);
  }

  #settle(p: Pending): void {
    this.#pending = undefined;
    p.signal.removeEventListener('abort', p.onAbort);
    this.#socket.setTimeout(0);
    if (p.status === Status.OK) {
      p.resolve({ taskComplete: p.taskComplete });
      return;
    }
    const text = p.message!.toString('utf8');
    if (p.status === Status.BUSY) p.reject(new ShoalError('BUSY', `${this.#who} is busy: ${text}`));
    else if (p.status === Status.NOT_FOUND) p.reject(new ShoalError('PIECE_NOT_FOUND', `${this.#who}: ${text}`));
    else {
      this.#fail(new ShoalError('PEER_FAILED', `${this.#who} answered ${p.status === Status.BAD_REQUEST ? 'bad request' : 'error'}: ${text}`));
      p.reject(this.#dead!);
    }
  }

  #fail(err: Error): void {
    if (this.#dead === undefined) {
      this.#dead = err;
      this.#socket.destroy();
    }
    const p = this.#pending;
    if (p === undefined) return;
    this.#pending = undefined;
    p.signal.removeEventListener('abort', p.onAbort);
    p.reject(err);
  }
}
