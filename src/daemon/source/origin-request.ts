/** One GET to an origin, following redirects, with credentials kept to the user's origin. */
import type { Dispatcher } from 'undici';
import { buildHeaders, sameOrigin, type HeaderList } from './request-headers.js';
import { header, type ResponseHeaders } from './response-meta.js';
import { protocolError } from './source-errors.js';

/** Buffer per response body; undici pauses the socket above it (backpressure). */
const BODY_HIGH_WATER_MARK = 1 << 20;
/** Bytes of a redirect or error body read (and dropped) to keep the connection; more closes it. */
const DISCARD_LIMIT = 64 * 1024;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export interface OriginGet {
  /** The URL the user gave; credentials go to its origin only. */
  readonly url: URL;
  readonly userHeaders: HeaderList;
  /** Range, If-Range. */
  readonly ownHeaders: HeaderList;
  readonly maxRedirects: number;
  readonly signal: AbortSignal;
  /** Signs each request to the user's origin (an S3 object: SigV4); a redirect elsewhere goes unsigned. */
  readonly sign?: ((method: 'GET', url: URL, headers: readonly string[]) => Promise<string[]>) | undefined;
}

export interface OriginResponse {
  /** The URL that answered, after redirects. */
  readonly url: URL;
  readonly status: number;
  readonly headers: ResponseHeaders;
  readonly body: Dispatcher.ResponseData['body'];
}

/** Resolves with the first non-redirect response; rejects with undici's errors or SOURCE_PROTOCOL. */
export async function getFollowingRedirects(dispatcher: Dispatcher, get: OriginGet): Promise<OriginResponse> {
  let url = get.url;
  for (let hop = 0; ; hop += 1) {
    const home = sameOrigin(url, get.url);
    const built = buildHeaders(get.userHeaders, get.ownHeaders, home);
    const { statusCode, headers, body } = await dispatcher.request({
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      method: 'GET',
      headers: home && get.sign !== undefined ? await get.sign('GET', url, built) : built,
      signal: get.signal,
      highWaterMark: BODY_HIGH_WATER_MARK,
    });
    if (!REDIRECTS.has(statusCode)) return { url, status: statusCode, headers, body };
    await discard(body, get.signal);
    if (hop >= get.maxRedirects) throw protocolError(url, `more than ${get.maxRedirects} redirects`, statusCode);
    url = nextUrl(url, header(headers, 'location'), statusCode);
  }
}

/** Reads and drops a small body so the connection can be reused; a big one is destroyed instead. */
export async function discard(body: Dispatcher.ResponseData['body'], signal: AbortSignal): Promise<void> {
  await body.dump({ limit: DISCARD_LIMIT, signal }).catch(() => undefined);
  if (signal.aborted) throw signal.reason;
}

function nextUrl(from: URL, location: string | undefined, status: number): URL {
  if (location === undefined) throw protocolError(from, 'redirect without Location', status);
  let to: URL;
  try {
    to = new URL(location, from);
  } catch {
    throw protocolError(from, 'redirect to a malformed Location', status);
  }
  if (to.protocol !== 'http:' && to.protocol !== 'https:') throw protocolError(from, `redirect to a ${to.protocol} URL`, status);
  return to;
}
