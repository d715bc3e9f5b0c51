/**
 * A parent peer as the child sees it: kept-alive connections to its upload
 * server (binary piece protocol by default, ./piece-channel.ts; or HTTP through
 * an undici Pool), the pieces it announced, and how it has behaved.
 * `fetchPiece` downloads one piece into memory and verifies it
 * (../storage/verify.ts) before anything is written, so a liar's bytes never
 * reach the content file.
 */
import { Writable } from 'node:stream';
import { Pool } from 'undici';
import type { ConnectionOptions } from 'node:tls';
import { ShoalError } from '../../common/errors.js';
import { inStripes, isStriped } from '../../common/stripes.js';
import type { Role } from '../../identity/roles.js';
import { clientTls, type TlsMaterial } from '../../identity/tls.js';
import { MAX_PIPELINE } from '../../common/wire.js';
import { verifyPiece } from '../storage/verify.js';
import { PieceChannel, PieceLengthError } from './piece-channel.js';

/** How a child talks to its parents: the binary piece protocol, or HTTP/1.1 (the baseline). */
export type DataProtocol = 'tcp' | 'http';

export interface ParentInfo {
  peerId: string;
  hostId: string;
  ip: string;
  port: number;
  seed: boolean;
  /** Split trees: only pieces n with bit (n % stripes) of stripeMask set come from this parent. 0 or 1: any piece. */
  stripes?: number;
  stripeMask?: number;
  /** The certificate name the scheduler saw for its host (empty without TLS): the TLS connection must find it. */
  identity?: string;
}

/** Who may serve pieces: members of the cluster with a daemon's role. */
const PARENT_ROLES: readonly Role[] = ['peer', 'seed'];

export class ParentConn {
  readonly info: ParentInfo;
  readonly protocol: DataProtocol;
  readonly #connections: number;
  /** Mutual TLS to the parent, or plain TCP. */
  readonly #tls: ConnectionOptions | undefined;
  #pool: Pool | undefined;
  /** Open binary connections. */
  readonly #channels: PieceChannel[] = [];
  readonly pieces = new Set<number>();
  inflight = 0;
  failures = 0;
  /** Not asked again before this time (it answered BUSY). */
  busyUntil = 0;
  /** Not asked for a piece it does not hold yet before this time (it was not fetching the last one asked). */
  aheadAfter = 0;
  bytes = 0;
  /** Smoothed throughput in bytes/ms, for choosing between holders. */
  rate = 0;
  /** Split trees (ParentInfo.stripes): the scheduler may change them with each parent list. */
  stripes = 0;
  stripeMask = 0;

  constructor(info: ParentInfo, connections: number, protocol: DataProtocol = 'tcp', tls?: TlsMaterial) {
    this.info = info;
    this.protocol = protocol;
    this.#connections = connections;
    this.#tls = tls === undefined ? undefined : clientTls(tls, PARENT_ROLES, info.identity);
    this.setStripes(info.stripes ?? 0, info.stripeMask ?? 0);
  }

  /** A count that does not stripe (common/stripes.ts) means every piece may come from this parent. */
  setStripes(stripes: number, mask: number): void {
    const striped = isStriped(stripes);
    this.stripes = striped ? stripes : 0;
    this.stripeMask = striped ? mask >>> 0 : 0;
  }

  /** Whether piece `n` is to be taken from this parent (its stripe, or any piece without stripes). */
  serves(n: number): boolean {
    return inStripes(n, this.stripes, this.stripeMask);
  }

  get pool(): Pool {
    if (this.#pool === undefined) {
      const host = this.info.ip.includes(':') ? `[${this.info.ip}]` : this.info.ip;
      this.#pool = new Pool(`${this.#tls === undefined ? 'http' : 'https'}://${host}:${this.info.port}`, {
        connections: this.#connections,
        pipelining: 1,
        keepAliveTimeout: 30_000,
        connectTimeout: 5000,
        ...(this.#tls === undefined ? {} : { connect: this.#tls as NonNullable<Pool.Options['connect']> }),
      });
    }
    return this.#pool;
  }

  /**
   * The binary connection to send the next request on. One TCP flow per
   * parent, its requests pipelined up to `connections` (the per-parent
   * limit): several flows into one shaped link drop and retransmit each
   * other's packets (lab: 12 % of the seed's segments with 4). A second one
   * opens only while the first is full of aborted answers still arriving.
   */
  channel(stallMs: number): PieceChannel {
    for (let i = this.#channels.length - 1; i >= 0; i--) if (!this.#channels[i]!.alive) this.#channels.splice(i, 1);
    const ready = this.#channels.find((ch) => ch.ready);
    if (ready !== undefined) return ready;
    const ch = new PieceChannel(this.info.ip, this.info.port, `parent ${this.info.peerId}`, stallMs, Math.min(MAX_PIPELINE, this.#connections), undefined, this.#tls);
    this.#channels.push(ch);
    return ch;
  }

  recordRate(bytes: number, ms: number): void {
    const sample = bytes / Math.max(1, ms);
    this.rate = this.rate === 0 ? sample : this.rate * 0.7 + sample * 0.3;
  }

  close(): void {
    for (const ch of this.#channels.splice(0)) ch.close();
    void this.#pool?.destroy().catch(() => undefined);
  }
}

export interface FetchedPiece {
  data: Buffer;
  /** The parent held the whole task when it served this piece. */
  parentComplete: boolean;
}

export class CorruptPieceError extends ShoalError {
  constructor(message: string) {
    super('PIECE_CORRUPT', message);
  }
}

export interface FetchPieceOptions {
  taskId: string;
  piece: number;
  length: number;
  digest: Buffer;
  /** A parent that sends no bytes for this long loses the piece. */
  stallMs: number;
  signal: AbortSignal;
  /** Where the piece is received (exactly `length` bytes); the caller owns it. */
  buffer: Buffer;
  /** The parent does not hold the piece yet: it answers when its own fetch of it ends (binary protocol only). */
  ahead?: boolean;
}

/** Fetches and verifies one piece; throws CorruptPieceError, ShoalError('BUSY'|'PIECE_NOT_FOUND'|'PEER_FAILED'). */
export async function fetchPiece(parent: ParentConn, options: FetchPieceOptions): Promise<FetchedPiece> {
  const fetched = parent.protocol === 'tcp' ? await fetchOverChannel(parent, options) : await fetchOverHttp(parent, options);
  if (!verifyPiece(fetched.data, options.digest)) {
    throw new CorruptPieceError(`piece ${options.piece} from parent ${parent.info.peerId} failed its SHA-256 check`);
  }
  return fetched;
}

async function fetchOverChannel(parent: ParentConn, options: FetchPieceOptions): Promise<FetchedPiece> {
  const { taskId, piece } = options;
  const data = options.buffer;
  const ch = parent.channel(options.stallMs);
  try {
    const answer = await ch.fetch(Buffer.from(taskId, 'hex'), piece, data, options.signal, options.ahead === true);
    return { data, parentComplete: answer.taskComplete };
  } catch (err) {
    if (err instanceof PieceLengthError) throw new CorruptPieceError(err.message);
    throw err;
  }
}

/**
 * Uses undici's `stream()` with a Writable that copies each chunk into the
 * piece buffer: no promise per chunk (shaped links deliver many small chunks).
 */
async function fetchOverHttp(parent: ParentConn, options: FetchPieceOptions): Promise<FetchedPiece> {
  const { taskId, piece, length } = options;
  const data = options.buffer;
  const who = `parent ${parent.info.peerId}`;
  let received = 0;
  let status = 0;
  let complete = false;
  try {
    await parent.pool.stream(
      {
        path: `/pieces/${taskId}/${piece}`,
        method: 'GET',
        signal: options.signal,
        headersTimeout: options.stallMs,
        bodyTimeout: options.stallMs,
        opaque: null,
      },
      ({ statusCode, headers }) => {
        status = statusCode;
        complete = headers['x-shoal-task-complete'] === '1';
        if (statusCode !== 200) return new Writable({ write: (_chunk, _encoding, callback) => callback() });
        if (Number(headers['content-length']) !== length) {
          const declared = String(headers['content-length']);
          return new Writable({ write: (_c, _e, callback) => callback(new CorruptPieceError(`${who} declared ${declared} bytes for piece ${piece} of ${length}`)) });
        }
        return new Writable({
          highWaterMark: 1024 * 1024,
          write(chunk: Buffer, _encoding, callback) {
            if (received + chunk.length > length) return callback(new CorruptPieceError(`${who} sent more than ${length} bytes for piece ${piece}`));
            chunk.copy(data, received);
            received += chunk.length;
            callback();
          },
        });
      },
    );
  } catch (err) {
    if (err instanceof ShoalError) throw err;
    throw new ShoalError('PEER_FAILED', `${who}: ${(err as Error).message}`, { cause: err });
  }
  if (status === 503) throw new ShoalError('BUSY', `${who} is busy`);
  if (status === 404) throw new ShoalError('PIECE_NOT_FOUND', `${who} does not hold piece ${piece}`);
  if (status !== 200) throw new ShoalError('PEER_FAILED', `${who} answered ${status} for piece ${piece}`);
  if (received !== length) throw new ShoalError('PEER_FAILED', `${who} sent ${received}/${length} bytes of piece ${piece}`);
  return { data, parentComplete: complete };
}
