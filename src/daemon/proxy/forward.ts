/**
 * Pass-through: the request goes to the origin with undici as it came — method,
 * end-to-end headers, body streamed — and the answer comes back the same way,
 * status and end-to-end headers kept, body streamed with backpressure in both
 * directions. Redirects are the client's business (not followed). The origin
 * unreachable answers 502, too slow 504.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { Dispatcher } from 'undici';
import { endToEnd, fromObject, withVia, without, type HeaderPairs } from './headers.js';
import { sendError } from './reply.js';

/** Set by undici itself, or refused by it. */
const NOT_FORWARDED = new Set(['host', 'expect']);

export interface ForwardRequest {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  /** The client's end-to-end headers. */
  headers: HeaderPairs;
  hasBody: boolean;
  via: string;
  signal: AbortSignal;
}

export interface ForwardResult {
  status: number;
  bytes: number;
}

export async function forward(dispatcher: Dispatcher, r: ForwardRequest): Promise<ForwardResult> {
  const headers = withVia(without(r.headers, NOT_FORWARDED), r.via);
  let response: Dispatcher.ResponseData;
  try {
    response = await dispatcher.request({
      origin: r.url.origin,
      path: `${r.url.pathname}${r.url.search}`,
      method: r.req.method as Dispatcher.HttpMethod,
      headers: headers.flat(),
      body: r.hasBody ? r.req : null,
      signal: r.signal,
    });
  } catch (err) {
    if (r.signal.aborted) throw err;
    const { status, code, message } = upstreamFailure(err, r.url);
    sendError(r.res, status, code, message, r.via);
    return { status, bytes: 0 };
  }
  const back = withVia(endToEnd(fromObject(response.headers)), r.via);
  const res = r.res;
  res.statusCode = response.statusCode;
  for (const [name, value] of group(back)) {
    try {
      res.setHeader(name, value);
    } catch {
      // A header Node refuses (control characters) is left out rather than failing the answer.
    }
  }
  let bytes = 0;
  response.body.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
  });
  try {
    await pipeline(response.body, res, { signal: r.signal });
  } catch (err) {
    // Headers are out: the only way to tell the client is to cut the response.
    response.body.destroy();
    res.destroy();
    if (!r.signal.aborted) throw err;
  }
  return { status: response.statusCode, bytes };
}

/** Pairs grouped by name (case-insensitive), for setHeader. */
function group(headers: HeaderPairs): Map<string, string | string[]> {
  const out = new Map<string, string | string[]>();
  const names = new Map<string, string>();
  for (const [name, value] of headers) {
    const lower = name.toLowerCase();
    const key = names.get(lower) ?? name;
    names.set(lower, key);
    const prev = out.get(key);
    out.set(key, prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value]);
  }
  return out;
}

export function upstreamFailure(err: unknown, url: URL): { status: number; code: string; message: string } {
  const code = typeof err === 'object' && err !== null && 'code' in err ? String((err).code) : '';
  const detail = err instanceof Error ? err.message : String(err);
  const where = `${url.protocol}//${url.host}`;
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'ETIMEDOUT') {
    return { status: 504, code: 'TIMEOUT', message: `${where} did not answer in time (${code})` };
  }
  return { status: 502, code: 'SOURCE_NETWORK', message: `${where}: ${detail}${code === '' ? '' : ` (${code})`}` };
}
