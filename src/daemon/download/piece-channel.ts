/**
 * One binary-protocol connection to a parent (../../common/wire.ts), carrying up
 * to `depth` pipelined requests: one TCP flow per parent keeps its link full
 * without the drops and retransmissions of several flows competing in a
 * shaped queue. The socket reads straight into the caller's piece buffer
 * (Node's `onread` with a buffer chosen before every read, never more than
 * the answer at the head still owes), so a piece costs no stream machinery,
 * no per-chunk allocation and no copy: shaped links deliver many small reads
 * and each one is cheap.
 */
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { ShoalError } from '../../common/errors.js';
import { MAX_MESSAGE, PREFACE, RESPONSE_HEADER_SIZE, Status, encodeRequest, FLAG_TASK_COMPLETE } from '../../common/wire.js';

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

/** The parent did not connect, or sent nothing for the stall timeout, while answers were owed. */
export class PieceTimeoutError extends ShoalError {
  constructor(message: string) {
    super('PEER_FAILED', message);
  }
}

interface Pending {
  /** Aborted by the caller: its answer is still read (answers come in order) but thrown away. */
  discard: boolean;
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
/** Reads of a discarded answer's body land here. */
const sink = Buffer.allocUnsafe(64 * 1024);

/**
 * Stall detection for every open channel, on one coarse timer: a socket
 * timeout would be re-armed on each of the many small reads a shaped link
 * delivers, and that re-arming cost more CPU than the rest of the read path.
 */
const STALL_CHECK_MS = 500;
const watched = new Set<PieceChannel>();
let stallTimer: NodeJS.Timeout | undefined;

function watch(channel: PieceChannel): void {
  watched.add(channel);
  stallTimer ??= setInterval(() => {
    const now = Date.now();
    for (const ch of watched) ch.checkStall(now);
  }, STALL_CHECK_MS).unref();
}

function unwatch(channel: PieceChannel): void {
  watched.delete(channel);
  if (watched.size === 0 && stallTimer !== undefined) {
    clearInterval(stallTimer);
    stallTimer = undefined;
  }
}

export class PieceChannel {
  readonly #socket: Socket;
  readonly #who: string;
  readonly #stallMs: number;
  readonly #depth: number;
  readonly #header = Buffer.alloc(RESPONSE_HEADER_SIZE);
  /** Where a read lands when no answer is expected, or before the right buffer was offered. */
  readonly #scratch = Buffer.allocUnsafe(SCRATCH_SIZE);
  #headerGot = 0;
  /** Reads so far, and when the stall check last saw that number change (or a wait begin). */
  #reads = 0;
  #readsSeen = 0;
  #quietSince = 0;
  /** What #nextBuffer last returned: a read into exactly it needs no copy. */
  #offered: Buffer | undefined;
  /** Requests sent, answers not yet complete, in order; the head is being received. */
  readonly #queue: Pending[] = [];
  #dead: Error | undefined;

  /** `tls`: the cluster's mutual TLS (../../identity/tls.ts clientTls); reads still land straight in the piece buffer. */
  constructor(host: string, port: number, who: string, stallMs: number, depth = 1, connectTimeoutMs = 5000, tls?: ConnectionOptions) {
    this.#who = who;
    this.#stallMs = stallMs;
    this.#depth = depth;
    const onread = { buffer: () => this.#nextBuffer(), callback: (n: number, buf: Uint8Array) => this.#onRead(n, buf) };
    // tls.connect takes `onread` too (since Node 15; its types lack it): a TLS read also lands straight in the piece buffer.
    const secure = { ...tls, host, port, onread };
    this.#socket = tls === undefined ? connect({ host, port, noDelay: true, keepAlive: true, onread }) : tlsConnect(secure);
    if (tls !== undefined) {
      this.#socket.setNoDelay(true);
      this.#socket.setKeepAlive(true);
    }
    this.#socket.setTimeout(connectTimeoutMs);
    this.#socket.once(tls === undefined ? 'connect' : 'secureConnect', () => {
      this.#socket.setTimeout(0);
      this.#quietSince = Date.now();
      watch(this);
    });
    this.#socket.on('timeout', () => this.#fail(new PieceTimeoutError(`${this.#who} did not connect within ${connectTimeoutMs} ms`)));
    this.#socket.on('error', (err) => this.#fail(new ShoalError('PEER_FAILED', `${this.#who}: ${err.message}`, { cause: err })));
    this.#socket.on('end', () => this.#fail(new ShoalError('PEER_FAILED', `${this.#who} closed the connection`)));
    this.#socket.on('close', () => this.#fail(new ShoalError('PEER_FAILED', `${this.#who} closed the connection`)));
    this.#socket.write(PREFACE);
  }

  /** Open (possibly busy). */
  get alive(): boolean {
    return this.#dead === undefined;
  }

  /** Requests in flight on it. */
  get inflight(): number {
    return this.#queue.length;
  }

  /** Can take another request now. */
  get ready(): boolean {
    return this.#dead === undefined && this.#queue.length < this.#depth;
  }

  /**
   * Asks for one piece of `target.length` bytes, received into `target`.
   * Rejects with ShoalError BUSY / PIECE_NOT_FOUND (the connection stays
   * usable), ProtocolError, PEER_FAILED, or the signal's reason: then the
   * answer is still read, into nothing, and `target` is no longer touched.
   * `wait`: the parent may hold the answer until a piece it is fetching
   * arrives (wire.ts FLAG_WAIT).
   */
  fetch(taskIdRaw: Buffer, piece: number, target: Buffer, signal: AbortSignal, wait = false): Promise<ChannelAnswer> {
    if (this.#dead !== undefined) return Promise.reject(this.#dead);
    if (this.#queue.length >= this.#depth) return Promise.reject(new ShoalError('INTERNAL', 'piece channel is full'));
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<ChannelAnswer>((resolve, reject) => {
      const p: Pending = { discard: false, target, length: 0, got: 0, status: -1, taskComplete: false, message: undefined, resolve, reject, signal, onAbort: () => undefined };
      p.onAbort = (): void => {
        p.discard = true;
        p.reject(signal.reason instanceof Error ? signal.reason : new ShoalError('ABORTED', 'aborted'));
      };
      if (this.#queue.length === 0) this.#quietSince = Date.now(); // the stall clock starts with the wait
      this.#queue.push(p);
      signal.addEventListener('abort', p.onAbort, { once: true });
      this.#socket.write(encodeRequest(taskIdRaw, piece, wait));
    });
  }

  close(): void {
    this.#fail(new ShoalError('ABORTED', 'piece channel closed'));
  }

  /** Called by the shared stall timer: fails the channel when answers are owed and nothing came for stallMs. */
  checkStall(now: number): void {
    if (this.#reads !== this.#readsSeen) {
      this.#readsSeen = this.#reads;
      this.#quietSince = now;
    } else if (this.#queue.length > 0 && now - this.#quietSince >= this.#stallMs) {
      this.#fail(new PieceTimeoutError(`${this.#who} sent nothing for ${this.#stallMs} ms`));
    }
  }

  /** The buffer the next read goes into: exactly what the current answer still owes. */
  #nextBuffer(): Buffer {
    const p = this.#queue[0];
    this.#offered = p === undefined ? this.#scratch : this.#expectedBuffer(p);
    return this.#offered;
  }

  /** Always true: returning false would pause the socket. */
  #onRead(n: number, buf: Uint8Array): true {
    if (n <= 0 || this.#dead !== undefined) return true;
    this.#reads++;
    const p = this.#queue[0];
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
    while (data.length > 0 && this.#queue[0] === p) {
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
    if (p.status !== Status.OK) return p.message!.subarray(p.got, p.length);
    return p.discard ? sink.subarray(0, Math.min(sink.length, p.length - p.got)) : p.target.subarray(p.got, p.length);
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
    this.#queue.shift();
    this.#headerGot = 0;
    p.signal.removeEventListener('abort', p.onAbort);
    this.#quietSince = Date.now(); // the stall clock restarts for the next answer
    if (p.discard) return;
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
      unwatch(this);
      this.#socket.destroy();
    }
    for (const p of this.#queue.splice(0)) {
      p.signal.removeEventListener('abort', p.onAbort);
      if (!p.discard) p.reject(err);
    }
  }
}
