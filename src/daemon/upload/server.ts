/**
 * The peer-to-peer data plane. One port speaks two protocols, told apart by a
 * connection's first byte: the binary piece protocol (../../common/wire.ts, what Shoal
 * children use by default) and plain HTTP/1.1, `GET /pieces/<taskId>/<n>`
 * over kept-alive connections (curl, debugging, `download.protocol: http`).
 * A piece is served as soon as the provider reports it verified.
 *
 * HTTP responses:
 *   200  piece body; Content-Length, X-Shoal-Task-Complete: 1|0
 *   400  USAGE: malformed target, or a request with a body (connection closed)
 *   404  PIECE_NOT_FOUND; unknown path (code USAGE, status 404)
 *   405  other methods (code USAGE, `Allow: GET, HEAD`)
 *   503  BUSY: every upload slot is in use, or the server is stopping
 * A read failure mid-body destroys the socket, so the child sees a short body.
 * HEAD answers the piece headers without taking an upload slot.
 * `GET /healthy` → 200 {"ok":true}. Limits: ./limits.ts.
 *
 * With the cluster's certificates (`tls`), the port is mutual TLS: a client
 * must show a certificate the cluster CA signed with a member role, or it is
 * closed before a byte is read; both protocols run inside TLS.
 */
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { setMaxListeners } from 'node:events';
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { ShoalError } from '../../common/errors.js';
import { Service, drainWithin, type Lifecycle } from '../../common/lifecycle.js';
import { listen, type ListenSecurity } from '../../common/listen.js';
import { silentLogger, type Logger } from '../../common/log.js';
import { UPLOAD_LIMITS } from './limits.js';
import type { RateLimiter } from '../../common/rate-limiter.js';
import { quote, sendError, sendJson } from './reply.js';
import { parseTarget } from './route.js';
import type { PieceProvider } from './piece-provider.js';
import { startBinarySession } from './binary-session.js';
import { httpPieceReply, PieceUploads } from './piece-uploads.js';
import { PREFACE } from '../../common/wire.js';
import { hasRole, identityOf, type Role } from '../../identity/roles.js';
import { serverTls, type TlsMaterial } from '../../identity/tls.js';

export type { PieceHandle, PieceProvider } from './piece-provider.js';

export interface UploadServerOptions {
  /** Listen address, e.g. '127.0.0.1' or '0.0.0.0'. */
  host: string;
  /** 0 = any free port. */
  port: number;
  provider: PieceProvider;
  /** Concurrent piece responses; beyond it answer 503 with code BUSY (a child then tries another parent). Default 64. */
  maxConcurrentUploads?: number;
  /** Shared upload rate limiter (bytes/s across all responses); optional. */
  rateLimiter?: RateLimiter;
  /** Default: silent. */
  logger?: Logger;
  /** Called once after each GET piece response ends (completed or not) with the body bytes flushed to the socket. */
  onUploaded?: (taskId: string, piece: number, bytes: number) => void;
  /** Mutual TLS: only cluster members (peer, seed or admin certificates) are served. Absent: plain TCP. */
  tls?: TlsMaterial | undefined;
  /** Plain TCP off loopback is allowed (--insecure). */
  insecure?: boolean;
}

/** Who may fetch pieces: members of the cluster (admins too, for `curl --cert`). */
const DOWNLOADER_ROLES: readonly Role[] = ['peer', 'seed', 'admin'];

/**
 * start() listens (LISTEN_FAILED when the address cannot be bound); stop()
 * stops accepting, lets in-flight responses finish (destroys them after 5 s)
 * and closes every socket; destroy() closes everything now, also during stop().
 */
export interface UploadServer extends Lifecycle {
  /** Actual port after start (0 before). */
  readonly port: number;
  /** Current concurrent piece uploads (reported to the scheduler as load). */
  readonly activeUploads: number;
}

export function createUploadServer(options: UploadServerOptions): UploadServer {
  return new HttpUploadServer(options);
}

class HttpUploadServer extends Service implements UploadServer {
  protected readonly serviceName = 'upload server';
  readonly #log: Logger;
  readonly #shutdown = new AbortController();
  readonly #uploads: PieceUploads;
  readonly #host: string;
  readonly #requestedPort: number;
  /** Accepts every connection and hands it to HTTP or the binary protocol. */
  readonly #server: Server;
  /** Never listens: parses the HTTP connections #server hands it. */
  readonly #http: HttpServer;
  readonly #sockets = new Set<Socket>();
  /** Responses not yet closed, per socket; a socket absent here is idle. */
  readonly #busy = new Map<Socket, number>();
  readonly #inflight = new Set<Promise<void>>();
  readonly #closed: Promise<void>;
  readonly #security: ListenSecurity;
  #port = 0;

  constructor(options: UploadServerOptions) {
    super();
    const max = options.maxConcurrentUploads ?? UPLOAD_LIMITS.defaultMaxConcurrentUploads;
    if (!Number.isSafeInteger(max) || max < 1) {
      throw new ShoalError('USAGE', `maxConcurrentUploads must be a positive integer, got ${String(max)}`);
    }
    if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
      throw new ShoalError('USAGE', `port must be an integer 0..65535, got ${String(options.port)}`);
    }
    this.#log = (options.logger ?? silentLogger).child({ component: 'upload' });
    // One listener per upload in flight (up to the slot count).
    setMaxListeners(max + 16, this.#shutdown.signal);
    this.#uploads = new PieceUploads({
      provider: options.provider,
      maxConcurrentUploads: max,
      rateLimiter: options.rateLimiter,
      log: this.#log,
      onUploaded: options.onUploaded,
      shutdown: this.#shutdown.signal,
    });
    this.#host = options.host;
    this.#requestedPort = options.port;
    this.#http = createServer(
      {
        maxHeaderSize: UPLOAD_LIMITS.maxHeaderSize,
        headersTimeout: UPLOAD_LIMITS.headersTimeoutMs,
        requestTimeout: UPLOAD_LIMITS.requestTimeoutMs,
        keepAliveTimeout: UPLOAD_LIMITS.keepAliveTimeoutMs,
        connectionsCheckingInterval: UPLOAD_LIMITS.connectionsCheckingIntervalMs,
        keepAlive: true, // TCP keep-alive, to notice vanished peers
        keepAliveInitialDelay: UPLOAD_LIMITS.keepAliveTimeoutMs,
      },
      (req, res) => this.#onRequest(req, res),
    );
    this.#http.keepAliveTimeout = UPLOAD_LIMITS.keepAliveTimeoutMs;
    const tcp = { keepAlive: true, keepAliveInitialDelay: UPLOAD_LIMITS.keepAliveTimeoutMs, noDelay: true };
    this.#security = { tls: options.tls !== undefined, insecure: options.insecure === true };
    if (options.tls === undefined) {
      this.#server = createNetServer(tcp, (socket) => this.#onConnection(socket));
    } else {
      const server = createTlsServer({ ...tcp, ...serverTls(options.tls), handshakeTimeout: UPLOAD_LIMITS.headersTimeoutMs }, (socket) => this.#onSecureConnection(socket));
      server.on('tlsClientError', (err) => this.#log.debug({ err: err.message }, 'upload TLS handshake failed'));
      this.#server = server;
    }
    this.#closed = new Promise((resolve) => this.#server.once('close', () => resolve()));
  }

  get port(): number {
    return this.#port;
  }

  get activeUploads(): number {
    return this.#uploads.active;
  }

  /** Serving: not stopping (nor stopped). */
  get #accepting(): boolean {
    return this.state === 'running';
  }

  protected async onStart(): Promise<void> {
    this.#port = await listen(this.#server, { host: this.#host, port: this.#requestedPort }, 'upload server', this.#security);
    this.#server.on('error', (err) => this.#log.error({ err }, 'upload server error'));
    // The HTTP server never listens itself; 'listening' starts its header and request timeouts.
    this.#http.emit('listening');
    this.#log.info({ host: this.#host, port: this.#port }, 'upload server listening');
  }

  protected async onStop(): Promise<void> {
    if (!this.#server.listening) return;
    this.#server.close();
    this.#http.close();
    for (const socket of this.#sockets) if (!this.#busy.has(socket)) socket.destroy();
    const drained = Promise.all([this.#closed, ...this.#inflight]);
    if (!(await drainWithin(drained, UPLOAD_LIMITS.stopGraceMs, this.destroyed)) && !this.destroyed.aborted) {
      this.#log.warn({ active: this.#uploads.active }, 'uploads did not finish in time; closing them');
    }
    this.#forceClose();
    await drained;
    this.#log.info('upload server stopped');
  }

  #forceClose(): void {
    if (!this.#shutdown.signal.aborted) this.#shutdown.abort(new ShoalError('ABORTED', 'the upload server is shutting down'));
    for (const socket of this.#sockets) socket.destroy();
  }

  /** A TLS client whose certificate the CA signed: served if it is a member, closed otherwise. */
  #onSecureConnection(socket: TLSSocket): void {
    const who = identityOf(socket.getPeerCertificate());
    if (!DOWNLOADER_ROLES.some((role) => hasRole(who, role))) {
      this.#log.debug({ who: who?.name, roles: who?.roles }, 'upload client without a member role; closed');
      socket.destroy();
      return;
    }
    this.#onConnection(socket);
  }

  #onConnection(socket: Socket): void {
    if (!this.#accepting) {
      socket.destroy();
      return;
    }
    this.#sockets.add(socket);
    socket.once('close', () => {
      this.#sockets.delete(socket);
      this.#busy.delete(socket);
    });
    socket.on('error', (err) => this.#log.debug({ err: err.message }, 'upload connection error'));
    this.#sniff(socket);
  }

  /** Reads until the protocol is known: a first byte 0x00 and the preface is binary, anything else HTTP. */
  #sniff(socket: Socket): void {
    let head: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      if (head[0] !== PREFACE[0]) {
        done();
        socket.pause();
        socket.unshift(head);
        this.#http.emit('connection', socket);
        socket.resume();
        return;
      }
      if (head.length < PREFACE.length) return;
      done();
      if (!head.subarray(0, PREFACE.length).equals(PREFACE)) {
        socket.destroy();
        return;
      }
      startBinarySession(socket, head.subarray(PREFACE.length), {
        uploads: this.#uploads,
        log: this.#log,
        accepting: () => this.#accepting,
        busy: (delta) => this.#markBusy(socket, delta),
        track: (upload) => this.#track(upload),
      });
    };
    const onTimeout = (): void => void socket.destroy();
    const done = (): void => {
      socket.removeListener('data', onData);
      socket.removeListener('timeout', onTimeout);
      socket.setTimeout(0);
    };
    socket.setTimeout(UPLOAD_LIMITS.headersTimeoutMs);
    socket.on('timeout', onTimeout);
    socket.on('data', onData);
  }

  #markBusy(socket: Socket, delta: 1 | -1): void {
    const count = (this.#busy.get(socket) ?? 0) + delta;
    if (count > 0) this.#busy.set(socket, count);
    else this.#busy.delete(socket);
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket;
    this.#markBusy(socket, 1);
    res.once('close', () => {
      this.#markBusy(socket, -1);
      if (!this.#busy.has(socket) && this.state === 'stopping') socket.destroySoon();
    });
    try {
      this.#route(req, res);
    } catch (err) {
      this.#log.error({ err }, 'upload request handler failed');
      if (!res.headersSent) sendError(res, new ShoalError('INTERNAL', 'internal error'), { close: true });
      else res.destroy();
    }
  }

  #route(req: IncomingMessage, res: ServerResponse): void {
    const target = req.url ?? '';
    const method = req.method ?? '';
    // A body is never read: answer and close rather than drain what a peer sends.
    const close = hasBody(req);
    const route = parseTarget(target);
    if (route.kind === 'unknown') {
      sendError(res, new ShoalError('USAGE', `no such endpoint ${quote(target)}`), { status: 404, close });
    } else if (method !== 'GET' && method !== 'HEAD') {
      const error = new ShoalError('USAGE', `method ${quote(method)} is not allowed`);
      sendError(res, error, { status: 405, headers: { allow: 'GET, HEAD' }, close });
    } else if (close) {
      sendError(res, new ShoalError('USAGE', 'requests must not have a body'), { close });
    } else if (route.kind === 'invalid') {
      sendError(res, new ShoalError('USAGE', `${route.message}: ${quote(target)}`));
    } else if (route.kind === 'healthy') {
      sendJson(res, 200, { ok: true });
    } else if (!this.#accepting) {
      sendError(res, new ShoalError('BUSY', 'the upload server is shutting down'), { close: true });
    } else {
      const upload = this.#uploads.serve(httpPieceReply(res), route.taskId, route.piece, method === 'HEAD');
      if (upload !== undefined) this.#track(upload);
    }
  }

  /** A body being streamed: stop() waits for it. */
  #track(upload: Promise<void>): void {
    this.#inflight.add(upload);
    void upload.finally(() => this.#inflight.delete(upload));
  }
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}
