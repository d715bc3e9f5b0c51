/** The CLI side of the daemon's local API (unix socket or loopback HTTP). */
import { Client } from 'undici';
import { ShoalError, fromJSON } from '../common/errors.js';
import { parseApiAddress, socketAlive, type ApiDownloadRequest } from '../daemon/api/server.js';
import type { PreheatEvent, PreheatInput } from '../daemon/preheat/run.js';

export interface DownloadEvent {
  event: 'started' | 'progress' | 'done' | 'error';
  taskId?: string;
  path?: string;
  contentLength?: number;
  stats?: Record<string, unknown>;
  error?: { code?: unknown; message?: unknown; sourceStatus?: unknown };
}

export async function endpointAlive(endpoint: string): Promise<boolean> {
  const address = parseApiAddress(endpoint);
  if ('socket' in address) return socketAlive(address.socket);
  const client = openClient(endpoint);
  try {
    const res = await client.request({ path: '/healthy', method: 'GET', headersTimeout: 2000 });
    await res.body.dump();
    return res.statusCode === 200;
  } catch {
    return false;
  } finally {
    await client.close().catch(() => undefined);
  }
}

function openClient(endpoint: string): Client {
  const address = parseApiAddress(endpoint);
  return 'socket' in address
    ? new Client('http://localhost', { socketPath: address.socket })
    : new Client(`http://${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`);
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
  const client = openClient(endpoint);
  try {
    let res;
    try {
      res = await client.request({
        path,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal,
        bodyTimeout: 0,
      });
    } catch (err) {
      if (signal.aborted) throw new ShoalError('ABORTED', 'cancelled');
      throw new ShoalError('DAEMON_UNREACHABLE', `cannot reach the daemon at ${endpoint}: ${(err as Error).message}`);
    }
    if (res.statusCode !== 200) {
      const text = await res.body.text();
      let parsed: Record<string, unknown> = {};
      try {
        parsed = JSON.parse(text) as Record<string, unknown>;
      } catch {
        parsed = { code: 'INTERNAL', message: text.slice(0, 500) };
      }
      throw fromJSON(parsed);
    }
    let buffered = '';
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      buffered += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.trim() !== '') yield JSON.parse(line) as E;
      }
      if (buffered.length > 1024 * 1024) throw new ShoalError('LIMIT_EXCEEDED', 'daemon sent an oversized event');
    }
  } finally {
    await client.destroy().catch(() => undefined);
  }
}

export async function fetchStats(endpoint: string): Promise<Record<string, unknown>> {
  const client = openClient(endpoint);
  try {
    const res = await client.request({ path: '/v1/stats', method: 'GET', headersTimeout: 5000 });
    if (res.statusCode !== 200) throw new ShoalError('DAEMON_UNREACHABLE', `daemon answered ${res.statusCode}`);
    return (await res.body.json()) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof ShoalError) throw err;
    throw new ShoalError('DAEMON_UNREACHABLE', `cannot reach the daemon at ${endpoint}: ${(err as Error).message}`);
  } finally {
    await client.close().catch(() => undefined);
  }
}
