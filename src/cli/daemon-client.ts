/**
 * The CLI side of the daemon's local API (unix socket or loopback HTTP), on
 * node:http: a `shoal get` starts on every host of a fleet at once, and the
 * built-in client costs it nothing to load.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { ShoalError, fromJSON } from '../common/errors.js';
import { parseApiAddress, socketAlive } from '../daemon/api/address.js';
import type { ApiDownloadRequest } from '../daemon/api/requests.js';
import type { TaskStatsJson } from '../daemon/download/task-stats.js';
import type { DaemonStats } from '../daemon/stats.js';
import type { PreheatEvent, PreheatInput } from '../daemon/preheat/run.js';

export interface DownloadEvent {
  event: 'started' | 'progress' | 'pieces' | 'done' | 'error';
  taskId?: string;
  path?: string;
  contentLength?: number;
  /** done: the generation of the content's pieces (pieces events carry theirs). */
  generation?: number;
  stats?: TaskStatsJson;
  error?: { code?: unknown; message?: unknown; sourceStatus?: unknown };
}

/** An event line longer than this is the daemon misbehaving. */
const MAX_EVENT = 1024 * 1024;

interface ApiCall {
  method: 'GET' | 'POST';
  path: string;
  body?: unknown;
  signal?: AbortSignal | undefined;
  /** Bound on the wait for the response head (the body may stream for as long as it takes). */
  headersTimeoutMs?: number;
}

/** One request to the local API; resolves with the response head, its body still to read. */
function call(endpoint: string, c: ApiCall): Promise<IncomingMessage> {
  const address = parseApiAddress(endpoint);
  const body = c.body === undefined ? undefined : JSON.stringify(c.body);
  return new Promise<IncomingMessage>((resolve, reject) => {
    const req = httpRequest({
      ...('path' in address ? { socketPath: address.path } : { host: address.host, port: address.port }),
      method: c.method,
      path: c.path,
      headers: body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      signal: c.signal,
    });
    const timer = c.headersTimeoutMs === undefined ? undefined : setTimeout(() => req.destroy(new Error(`no answer within ${c.headersTimeoutMs} ms`)), c.headersTimeoutMs);
    req.once('response', (res) => {
      clearTimeout(timer);
      resolve(res);
    });
    req.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(body);
  });
}

async function readText(res: IncomingMessage, limit: number): Promise<string> {
  let text = '';
  for await (const chunk of res as AsyncIterable<Buffer>) {
    text += chunk.toString('utf8');
    if (text.length > limit) throw new ShoalError('LIMIT_EXCEEDED', 'daemon sent an oversized answer');
  }
  return text;
}

export async function endpointAlive(endpoint: string): Promise<boolean> {
  const address = parseApiAddress(endpoint);
  if ('path' in address) return socketAlive(address.path);
  try {
    const res = await call(endpoint, { method: 'GET', path: '/healthy', headersTimeoutMs: 2000 });
    res.resume();
    return res.statusCode === 200;
  } catch {
    return false;
  }
}

/** Streams a download's events; the last one is `done` or `error`. */
export function requestDownload(endpoint: string, request: ApiDownloadRequest, signal: AbortSignal): AsyncGenerator<DownloadEvent> {
  return postEvents<DownloadEvent>(endpoint, '/v1/download', request, signal);
}

/** Streams a preheat's events; the last one is `end` or `error`. */
export function requestPreheat(endpoint: string, input: PreheatInput, signal: AbortSignal): AsyncGenerator<PreheatEvent> {
  return postEvents<PreheatEvent>(endpoint, '/v1/preheat', input, signal);
}

/** POSTs JSON to the local API and yields the NDJSON events it answers with. */
async function* postEvents<E>(endpoint: string, path: string, body: unknown, signal: AbortSignal): AsyncGenerator<E> {
  let res: IncomingMessage;
  try {
    res = await call(endpoint, { method: 'POST', path, body, signal });
  } catch (err) {
    if (signal.aborted) throw new ShoalError('ABORTED', 'cancelled');
    throw new ShoalError('DAEMON_UNREACHABLE', `cannot reach the daemon at ${endpoint}: ${(err as Error).message}`);
  }
  try {
    if (res.statusCode !== 200) {
      const text = await readText(res, MAX_EVENT);
      let parsed: Record<string, unknown> = {};
      try {
        parsed = JSON.parse(text) as Record<string, unknown>;
      } catch {
        parsed = { code: 'INTERNAL', message: text.slice(0, 500) };
      }
      throw fromJSON(parsed);
    }
    let buffered = '';
    try {
      for await (const chunk of res as AsyncIterable<Buffer>) {
        buffered += chunk.toString('utf8');
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          if (line.trim() !== '') yield JSON.parse(line) as E;
        }
        if (buffered.length > MAX_EVENT) throw new ShoalError('LIMIT_EXCEEDED', 'daemon sent an oversized event');
      }
    } catch (err) {
      if (err instanceof ShoalError || err instanceof SyntaxError) throw err;
      if (signal.aborted) throw new ShoalError('ABORTED', 'cancelled');
      throw new ShoalError('DAEMON_UNREACHABLE', `lost the daemon at ${endpoint}: ${(err as Error).message}`);
    }
  } finally {
    res.destroy();
  }
}

export async function fetchStats(endpoint: string): Promise<DaemonStats> {
  try {
    const res = await call(endpoint, { method: 'GET', path: '/v1/stats', headersTimeoutMs: 5000 });
    if (res.statusCode !== 200) {
      res.resume();
      throw new ShoalError('DAEMON_UNREACHABLE', `daemon answered ${res.statusCode}`);
    }
    return JSON.parse(await readText(res, 64 * 1024 * 1024)) as DaemonStats;
  } catch (err) {
    if (err instanceof ShoalError) throw err;
    throw new ShoalError('DAEMON_UNREACHABLE', `cannot reach the daemon at ${endpoint}: ${(err as Error).message}`);
  }
}

/**
 * A JSON call to the local API (`shoal cache`): `body` streams as the
 * request body (a file's bytes) when given. A non-200 answer is the
 * daemon's ShoalError.
 */
export async function callJson<T>(endpoint: string, method: 'GET' | 'POST' | 'DELETE', path: string, body?: { stream: NodeJS.ReadableStream; length: number }, signal?: AbortSignal): Promise<T> {
  const address = parseApiAddress(endpoint);
  let res: IncomingMessage;
  try {
    res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest({
        ...('path' in address ? { socketPath: address.path } : { host: address.host, port: address.port }),
        method,
        path,
        headers: body === undefined ? {} : { 'content-type': 'application/octet-stream', 'content-length': body.length },
        signal,
      });
      req.once('response', resolve);
      req.once('error', reject);
      if (body === undefined) req.end();
      else body.stream.pipe(req);
    });
  } catch (err) {
    if (signal?.aborted === true) throw new ShoalError('ABORTED', 'cancelled');
    throw new ShoalError('DAEMON_UNREACHABLE', `cannot reach the daemon at ${endpoint}: ${(err as Error).message}`);
  }
  const text = await readText(res, 64 * 1024 * 1024);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ShoalError('INTERNAL', `the daemon answered ${res.statusCode}: ${text.slice(0, 300)}`);
  }
  if (res.statusCode !== 200) throw fromJSON(parsed as Record<string, unknown>);
  return parsed as T;
}
