/**
 * The daemon's local API for the CLI: HTTP/1.1 on a unix socket (mode 0600)
 * or on a loopback address only (./address.ts).
 *   POST /v1/download  JSON request → NDJSON events: started, progress… (at most 10 a
 *                      second; none with "progress": false), pieces… (with "pieces": true:
 *                      ./piece-events.ts), done | error
 *   POST /v1/preheat   JSON {urls | image, headers, timeoutMs} → NDJSON events:
 *                      [resolved], started, task… (running, then done | failed), end | error
 *   GET  /v1/stats     where bytes came from, per task and in total
 *   POST /v1/cache/import?digest=&length=&replicas=&ttlMs=[&id=]  the file's bytes → its cache entry (shoal cache import)
 *   GET  /v1/cache[?id=]   cache entries; DELETE /v1/cache?id=  removes one (shoal cache ls | stat | rm)
 *   GET  /healthy
 */
import { chmod, rm } from 'node:fs/promises';
import { mkdirSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { dirname } from 'node:path';
import { ShoalError, toShoalError } from '../../common/errors.js';
import { Service } from '../../common/lifecycle.js';
import { closeServer, listen, type ListenAddress } from '../../common/listen.js';
import type { Logger } from '../../common/log.js';
import { setLongTimeout } from '../../common/timers.js';
import type { DownloadService } from '../download-service.js';
import type { PreheatEvent, PreheatInput } from '../preheat/run.js';
import type { DaemonStats } from '../stats.js';
import { parseApiAddress, socketAlive } from './address.js';
import { asPreheat, asRequest, readJson } from './requests.js';
import { asCacheImport } from './cache-requests.js';
import { pieceEvents } from './piece-events.js';
import type { CacheService } from '../cache/service.js';

/** What the API serves: the daemon supplies it. */
export interface ApiBackend extends Pick<DownloadService, 'download'> {
  preheat(input: PreheatInput, signal: AbortSignal): AsyncIterable<PreheatEvent>;
  stats(): DaemonStats;
  readonly cache?: CacheService | undefined;
}

export interface ApiServerOptions {
  /** A unix socket path, or HOST:PORT where HOST is a loopback address. */
  address: string;
  backend: ApiBackend;
  logger: Logger;
}

/** The API is reached from this host only (./address.ts refuses other addresses). */
const LOCAL_ONLY = { tls: false, insecure: false } as const;

export function createApiServer(options: ApiServerOptions): LocalApi {
  return new LocalApi(options);
}

/**
 * The client of one request, for as long as it waits: `signal` aborts when it
 * goes away (its connection closes, or the response closes before it ended).
 * Made before anything is awaited, from the connection as well as the
 * response, so a client that left at once is seen too, and so is one whose
 * request was pipelined behind another (its response has no socket yet, and
 * never closes). `end()` once the handler is done: whatever the request
 * started and still waits for is released then too.
 */
interface ClientCall {
  readonly signal: AbortSignal;
  abort(reason: ShoalError): void;
  end(): void;
}

function clientCall(req: IncomingMessage, res: ServerResponse): ClientCall {
  const abort = new AbortController();
  const socket = req.socket;
  const gone = (): void => {
    if (!res.writableFinished) abort.abort(new ShoalError('ABORTED', 'client went away'));
  };
  socket.once('close', gone);
  res.once('close', gone);
  if (socket.destroyed) gone();
  return {
    signal: abort.signal,
    abort: (reason) => abort.abort(reason),
    end: () => {
      socket.removeListener('close', gone);
      res.removeListener('close', gone);
      abort.abort(new ShoalError('ABORTED', 'the request ended'));
    },
  };
}

export class LocalApi extends Service {
  protected readonly serviceName = 'local API';
  readonly #backend: ApiBackend;
  readonly #address: ListenAddress;
  readonly #server: Server;
  readonly #log: Logger;

  constructor(options: ApiServerOptions) {
    super();
    this.#backend = options.backend;
    this.#address = parseApiAddress(options.address);
    this.#log = options.logger;
    this.#server = createServer({ maxHeaderSize: 16 * 1024 }, (req, res) => void this.#handle(req, res));
    this.#server.headersTimeout = 10_000;
    this.#server.on('connection', (socket: Socket) => socket.on('error', (err) => this.#log.debug({ err: err.message }, 'local API connection error')));
  }

  protected async onStart(): Promise<void> {
    const address = this.#address;
    if ('path' in address) {
      mkdirSync(dirname(address.path), { recursive: true, mode: 0o700 });
      if (await socketAlive(address.path)) throw new ShoalError('DATA_DIR_LOCKED', `another daemon answers on ${address.path}`);
      await rm(address.path, { force: true });
      await listen(this.#server, address, 'local API', LOCAL_ONLY);
      await chmod(address.path, 0o600);
    } else {
      await listen(this.#server, address, 'local API', LOCAL_ONLY);
    }
    this.#server.on('error', (err) => this.#log.error({ err }, 'local API listener error'));
  }

  protected async onStop(): Promise<void> {
    const closed = closeServer(this.#server);
    this.#server.closeAllConnections();
    await closed;
    if ('path' in this.#address) await rm(this.#address.path, { force: true });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const call = clientCall(req, res);
    try {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method === 'GET' && path === '/healthy') return json(res, 200, { ok: true });
      if (req.method === 'GET' && path === '/v1/stats') return json(res, 200, this.#backend.stats());
      if (req.method === 'POST' && path === '/v1/download') return await this.#download(req, res, call);
      if (req.method === 'POST' && path === '/v1/preheat') return await this.#preheat(req, res, call);
      if (path === '/v1/cache' || path === '/v1/cache/import') return await this.#cache(req, res, call, path);
      json(res, 404, { code: 'USAGE', message: `no route ${req.method ?? ''} ${path ?? ''}` });
    } catch (err) {
      const e = toShoalError(err);
      if (!res.headersSent) json(res, e.status, e.toJSON());
      else res.destroy();
    } finally {
      call.end();
    }
  }

  /** A download for as long as its client waits: released the moment it goes (downloads.ts stops a task nobody waits for). */
  async #download(req: IncomingMessage, res: ServerResponse, call: ClientCall): Promise<void> {
    const request = asRequest(await readJson(req));
    // A refused request throws here, before anything is armed (a timer armed first kept a stopped daemon alive).
    const handle = this.#backend.download({ ...request, requester: 'get' }, call.signal);
    const timer =
      request.timeoutMs !== undefined && request.timeoutMs > 0
        ? setLongTimeout(() => call.abort(new ShoalError('TIMEOUT', `download did not finish within ${request.timeoutMs} ms`)), request.timeoutMs)
        : undefined;
    let off = (): void => undefined;
    let stopPieces = (): void => undefined;
    try {
      const write = ndjson(res);
      if (request.pieces === true) stopPieces = pieceEvents(handle, write);
      write({ event: 'started', taskId: handle.taskId });
      let last = 0;
      off = handle.onProgress((stats) => {
        if (request.progress === false) return;
        const now = Date.now();
        if (now - last < 100) return;
        last = now;
        write({ event: 'progress', stats: stats.toJSON() });
      });
      try {
        const content = await handle.done;
        stopPieces();
        write({ event: 'done', path: content.path, contentLength: content.contentLength, generation: content.generation, stats: handle.stats.toJSON() });
      } catch (err) {
        stopPieces();
        write({ event: 'error', error: toShoalError(err).toJSON() });
      }
    } finally {
      stopPieces();
      off();
      timer?.clear();
      res.end();
    }
  }

  async #cache(req: IncomingMessage, res: ServerResponse, call: ClientCall, path: string): Promise<void> {
    const cache = this.#backend.cache;
    if (cache === undefined) throw new ShoalError('ABORTED', 'the daemon is not running');
    const query = new URL(req.url ?? '/', 'http://local').searchParams;
    const id = query.get('id') ?? undefined;
    if (req.method === 'POST' && path === '/v1/cache/import') {
      return json(res, 200, await cache.importFile({ ...asCacheImport(query, req.headers['content-length']), body: req as AsyncIterable<Buffer>, signal: call.signal }));
    }
    if (req.method === 'GET' && path === '/v1/cache') return json(res, 200, await cache.list(id, call.signal));
    if (req.method === 'DELETE' && path === '/v1/cache' && id !== undefined) return json(res, 200, await cache.remove(id, call.signal));
    json(res, 404, { code: 'USAGE', message: `no route ${req.method ?? ''} ${path}` });
  }

  async #preheat(req: IncomingMessage, res: ServerResponse, call: ClientCall): Promise<void> {
    const input = asPreheat(await readJson(req));
    const write = ndjson(res);
    try {
      for await (const event of this.#backend.preheat(input, call.signal)) write(event);
    } catch (err) {
      write({ event: 'error', error: toShoalError(err).toJSON() });
    } finally {
      res.end();
    }
  }
}

/** Starts an NDJSON response; the returned function writes one event, unless the response has ended. */
function ndjson(res: ServerResponse): (event: unknown) => void {
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  return (event) => {
    if (!res.writableEnded) res.write(JSON.stringify(event) + '\n');
  };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
