/**
 * The daemon's local API for the CLI: HTTP/1.1 on a unix socket (mode 0600)
 * or on a loopback address only (./address.ts).
 *   POST /v1/download  JSON request → NDJSON events: started, progress… (at most 10 a
 *                      second; none with "progress": false), done | error
 *   POST /v1/preheat   JSON {urls | image, headers, timeoutMs} → NDJSON events:
 *                      [resolved], started, task… (running, then done | failed), end | error
 *   GET  /v1/stats     where bytes came from, per task and in total
 *   GET  /healthy
 */
import { chmod, rm } from 'node:fs/promises';
import { mkdirSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
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

/** What the API serves: the daemon supplies it. */
export interface ApiBackend extends Pick<DownloadService, 'download'> {
  preheat(input: PreheatInput, signal: AbortSignal): AsyncIterable<PreheatEvent>;
  stats(): DaemonStats;
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

export class LocalApi extends Service {
  protected readonly serviceName = 'local API';
  readonly #backend: ApiBackend;
  readonly #address: ListenAddress;
  readonly #server: Server;

  constructor(options: ApiServerOptions) {
    super();
    this.#backend = options.backend;
    this.#address = parseApiAddress(options.address);
    this.#server = createServer({ maxHeaderSize: 16 * 1024 }, (req, res) => void this.#handle(req, res));
    this.#server.headersTimeout = 10_000;
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
  }

  protected async onStop(): Promise<void> {
    const closed = closeServer(this.#server);
    this.#server.closeAllConnections();
    await closed;
    if ('path' in this.#address) await rm(this.#address.path, { force: true });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method === 'GET' && path === '/healthy') return json(res, 200, { ok: true });
      if (req.method === 'GET' && path === '/v1/stats') return json(res, 200, this.#backend.stats());
      if (req.method === 'POST' && path === '/v1/download') return await this.#download(req, res);
      if (req.method === 'POST' && path === '/v1/preheat') return await this.#preheat(req, res);
      json(res, 404, { code: 'USAGE', message: `no route ${req.method ?? ''} ${path ?? ''}` });
    } catch (err) {
      const e = toShoalError(err);
      if (!res.headersSent) json(res, e.status, e.toJSON());
      else res.destroy();
    }
  }

  async #download(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const request = asRequest(await readJson(req));
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort(new ShoalError('ABORTED', 'client went away'));
    });
    const timer =
      request.timeoutMs !== undefined && request.timeoutMs > 0
        ? setLongTimeout(() => abort.abort(new ShoalError('TIMEOUT', `download did not finish within ${request.timeoutMs} ms`)), request.timeoutMs)
        : undefined;
    const handle = this.#backend.download({ ...request, requester: 'get' }, abort.signal);
    const write = ndjson(res);
    write({ event: 'started', taskId: handle.taskId });
    let last = 0;
    const off = handle.onProgress((stats) => {
      if (request.progress === false) return;
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      write({ event: 'progress', stats: stats.toJSON() });
    });
    try {
      const content = await handle.done;
      write({ event: 'done', path: content.path, contentLength: content.contentLength, stats: handle.stats.toJSON() });
    } catch (err) {
      write({ event: 'error', error: toShoalError(err).toJSON() });
    } finally {
      off();
      timer?.clear();
      res.end();
    }
  }

  async #preheat(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const input = asPreheat(await readJson(req));
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort(new ShoalError('ABORTED', 'client went away'));
    });
    const write = ndjson(res);
    try {
      for await (const event of this.#backend.preheat(input, abort.signal)) write(event);
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
