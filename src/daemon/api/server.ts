/**
 * The daemon's local API for the CLI: HTTP/1.1 on a unix socket (mode 0600)
 * or on a loopback address only.
 *   POST /v1/download  JSON request → NDJSON events: started, progress… (at most 10 a
 *                      second; none with "progress": false), done | error
 *   POST /v1/preheat   JSON {urls | image, headers, timeoutMs} → NDJSON events:
 *                      [resolved], started, task… (running, then done | failed), end | error
 *   GET  /v1/stats     where bytes came from, per task and in total
 *   GET  /healthy
 */
import { chmod, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { mkdirSync } from 'node:fs';
import { ShoalError, toShoalError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import type { Daemon } from '../daemon.js';
import type { PreheatInput } from '../preheat/run.js';
import type { DownloadRequest } from '../request.js';

export interface ApiServerOptions {
  /** A unix socket path, or HOST:PORT where HOST is a loopback address. */
  address: string;
  daemon: Daemon;
  logger: Logger;
}

export interface ApiServer {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export const MAX_API_BODY = 64 * 1024;

export interface ApiDownloadRequest extends DownloadRequest {
  timeoutMs?: number | undefined;
  /** Send `progress` events (default true); a client that shows none says false and is woken only for the result. */
  progress?: boolean | undefined;
}

export function parseApiAddress(address: string): { socket: string } | { host: string; port: number } {
  const m = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\]):(\d{1,5})$/.exec(address);
  if (m !== null) return { host: m[1] === '[::1]' ? '::1' : m[1]!, port: Number(m[2]) };
  if (/^[\w.[\]-]+:\d+$/.test(address)) {
    throw new ShoalError('USAGE', `the local API listens on a unix socket or a loopback address only, not ${address}`);
  }
  return { socket: address };
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_API_BODY) throw new ShoalError('LIMIT_EXCEEDED', `request body over ${MAX_API_BODY} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new ShoalError('USAGE', 'request body is not JSON');
  }
}

function asRequest(body: unknown): ApiDownloadRequest {
  if (typeof body !== 'object' || body === null) throw new ShoalError('USAGE', 'request must be a JSON object');
  const b = body as Record<string, unknown>;
  const str = (k: string): string | undefined => {
    const v = b[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') throw new ShoalError('USAGE', `${k} must be a string`);
    return v;
  };
  const headers = b['headers'] ?? [];
  if (!Array.isArray(headers) || !headers.every((h) => Array.isArray(h) && h.length === 2 && typeof h[0] === 'string' && typeof h[1] === 'string')) {
    throw new ShoalError('USAGE', 'headers must be a list of [name, value] string pairs');
  }
  const filters = b['filteredQueryParams'] ?? [];
  if (!Array.isArray(filters) || !filters.every((f) => typeof f === 'string')) throw new ShoalError('USAGE', 'filteredQueryParams must be strings');
  const num = (k: string): number | undefined => {
    const v = b[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new ShoalError('USAGE', `${k} must be a non-negative number`);
    return v;
  };
  const url = str('url');
  if (url === undefined) throw new ShoalError('USAGE', 'url is required');
  const progress = b['progress'];
  if (progress !== undefined && progress !== null && typeof progress !== 'boolean') throw new ShoalError('USAGE', 'progress must be true or false');
  return {
    url,
    headers: headers as Array<[string, string]>,
    digest: str('digest'),
    tag: str('tag'),
    application: str('application'),
    filteredQueryParams: filters as string[],
    pieceSize: num('pieceSize'),
    timeoutMs: num('timeoutMs'),
    progress: progress === true || progress === false ? progress : undefined,
  };
}

function asHeaders(value: unknown): Array<[string, string]> {
  const headers = value ?? [];
  if (!Array.isArray(headers) || !headers.every((h) => Array.isArray(h) && h.length === 2 && typeof h[0] === 'string' && typeof h[1] === 'string')) {
    throw new ShoalError('USAGE', 'headers must be a list of [name, value] string pairs');
  }
  return headers as Array<[string, string]>;
}

function optionalString(b: Record<string, unknown>, k: string): string | undefined {
  const v = b[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new ShoalError('USAGE', `${k} must be a string`);
  return v;
}

/** Files preheated in one request, at most (the scheduler's cap too). */
export const MAX_PREHEAT_URLS = 1024;

export function asPreheat(body: unknown): PreheatInput {
  if (typeof body !== 'object' || body === null) throw new ShoalError('USAGE', 'request must be a JSON object');
  const b = body as Record<string, unknown>;
  const headers = asHeaders(b['headers']);
  const timeout = b['timeoutMs'];
  if (timeout !== undefined && timeout !== null && (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout < 0)) {
    throw new ShoalError('USAGE', 'timeoutMs must be a non-negative number');
  }
  const timeoutMs = typeof timeout === 'number' ? timeout : undefined;
  if (b['image'] !== undefined && b['image'] !== null) {
    if (typeof b['image'] !== 'object') throw new ShoalError('USAGE', 'image must be an object');
    const i = b['image'] as Record<string, unknown>;
    const ref = optionalString(i, 'ref');
    if (ref === undefined) throw new ShoalError('USAGE', 'image.ref is required');
    return { image: { ref, platform: optionalString(i, 'platform'), upstream: optionalString(i, 'upstream') }, headers, timeoutMs };
  }
  const urls = b['urls'];
  if (!Array.isArray(urls) || urls.length === 0) throw new ShoalError('USAGE', 'urls (a non-empty list) or image is required');
  if (urls.length > MAX_PREHEAT_URLS) throw new ShoalError('LIMIT_EXCEEDED', `at most ${MAX_PREHEAT_URLS} URLs per preheat`);
  return {
    urls: urls.map((u: unknown) => {
      if (typeof u !== 'object' || u === null) throw new ShoalError('USAGE', 'each of urls must be {url, digest?}');
      const url = optionalString(u as Record<string, unknown>, 'url');
      if (url === undefined) throw new ShoalError('USAGE', 'each of urls needs a url');
      return { url, digest: optionalString(u as Record<string, unknown>, 'digest') };
    }),
    headers,
    timeoutMs,
  };
}

class LocalApi implements ApiServer {
  readonly #o: ApiServerOptions;
  readonly #server: Server;

  constructor(options: ApiServerOptions) {
    this.#o = options;
    this.#server = createServer({ maxHeaderSize: 16 * 1024 }, (req, res) => void this.#handle(req, res));
    this.#server.headersTimeout = 10_000;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method === 'GET' && path === '/healthy') return json(res, 200, { ok: true });
      if (req.method === 'GET' && path === '/v1/stats') return json(res, 200, this.#o.daemon.stats());
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
        ? setTimeout(() => abort.abort(new ShoalError('TIMEOUT', `download did not finish within ${request.timeoutMs} ms`)), request.timeoutMs)
        : undefined;
    const handle = this.#o.daemon.download({ ...request, requester: 'get' }, abort.signal);
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    const write = (event: Record<string, unknown>): void => {
      if (!res.writableEnded) res.write(JSON.stringify(event) + '\n');
    };
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
      const task = await handle.done;
      write({ event: 'done', path: task.path, contentLength: task.shape?.contentLength ?? 0, stats: handle.stats.toJSON() });
    } catch (err) {
      write({ event: 'error', error: toShoalError(err).toJSON() });
    } finally {
      off();
      if (timer !== undefined) clearTimeout(timer);
      res.end();
    }
  }

  async #preheat(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const input = asPreheat(await readJson(req));
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort(new ShoalError('ABORTED', 'client went away'));
    });
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    const write = (event: unknown): void => {
      if (!res.writableEnded) res.write(JSON.stringify(event) + '\n');
    };
    try {
      for await (const event of this.#o.daemon.preheat(input, abort.signal)) write(event);
    } catch (err) {
      write({ event: 'error', error: toShoalError(err).toJSON() });
    } finally {
      res.end();
    }
  }

  async start(): Promise<void> {
    const address = parseApiAddress(this.#o.address);
    if ('socket' in address) {
      mkdirSync(dirname(address.socket), { recursive: true, mode: 0o700 });
      if (await socketAlive(address.socket)) {
        throw new ShoalError('DATA_DIR_LOCKED', `another daemon answers on ${address.socket}`);
      }
      await rm(address.socket, { force: true });
      await listen(this.#server, { path: address.socket });
      await chmod(address.socket, 0o600);
    } else {
      await listen(this.#server, { host: address.host, port: address.port });
    }
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
    const address = parseApiAddress(this.#o.address);
    if ('socket' in address) await rm(address.socket, { force: true });
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function listen(server: Server, options: { path: string } | { host: string; port: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

export function socketAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export function createApiServer(options: ApiServerOptions): ApiServer {
  return new LocalApi(options);
}
