/**
 * The mirror's own requests to registries (ping, manifests, tags, referrers and
 * the HEADs of the access check): one undici Agent per trust configuration,
 * bounded bodies, redirects followed with Authorization kept to the registry's
 * own origin. Blob bytes never pass here: they go through the daemon (P2P).
 *
 * Errors: ShoalErrors only — SOURCE_NETWORK (unreachable, reset, timeout),
 * SOURCE_PROTOCOL (bad redirect), UPSTREAM_TOO_LARGE (a body over its cap),
 * ABORTED.
 */
import { rootCertificates } from 'node:tls';
import { Agent, type Dispatcher } from 'undici';
import { ShoalError } from '../../common/errors.js';
import { buildHeaders, sameOrigin, type HeaderList } from '../source/request-headers.js';
import type { Upstream } from './upstream.js';
import { redactUrl } from '../../common/ids.js';

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

export interface RegistryRequest {
  upstream: Upstream;
  method: 'GET' | 'HEAD';
  /** Starts with /v2/. */
  path: string;
  query?: URLSearchParams | undefined;
  /** Sent verbatim (Authorization only to the registry's origin). */
  headers: HeaderList;
  /** The mirror's own headers (Range), sent on every hop. */
  own?: HeaderList | undefined;
  /** Bytes of a 2xx body accepted; more is UPSTREAM_TOO_LARGE. */
  maxBody: number;
  signal: AbortSignal;
}

export interface RegistryResponse {
  readonly status: number;
  readonly headers: Dispatcher.ResponseData['headers'];
  /** The whole body (2xx, up to maxBody) or its first ERROR_BODY_MAX bytes (errors); empty for HEAD. */
  readonly body: Buffer;
  /** The URL that answered, after redirects. */
  readonly url: URL;
}

/** Bytes of an upstream error body relayed to the client. */
export const ERROR_BODY_MAX = 64 * 1024;

export interface RegistryClientOptions {
  /** No response headers or body bytes for this long fails the request. Default 30 s. */
  timeoutMs?: number;
  connectTimeoutMs?: number;
}

export class RegistryClient {
  readonly #agents = new Map<string, Agent>();
  readonly #timeout: number;
  readonly #connectTimeout: number;

  constructor(options: RegistryClientOptions = {}) {
    this.#timeout = options.timeoutMs ?? 30_000;
    this.#connectTimeout = options.connectTimeoutMs ?? 10_000;
  }

  #agent(ca: string | undefined): Agent {
    const key = ca ?? '';
    let agent = this.#agents.get(key);
    if (agent === undefined) {
      agent = new Agent({
        headersTimeout: this.#timeout,
        bodyTimeout: this.#timeout,
        maxResponseSize: -1,
        connect: { timeout: this.#connectTimeout, ...(ca === undefined ? {} : { ca: [...rootCertificates, ca] }) },
      });
      this.#agents.set(key, agent);
    }
    return agent;
  }

  async request(req: RegistryRequest): Promise<RegistryResponse> {
    const first = new URL(`${req.upstream.origin}${req.path}${req.query === undefined || req.query.size === 0 ? '' : `?${req.query.toString()}`}`);
    const dispatcher = this.#agent(req.upstream.ca);
    let url = first;
    for (let hop = 0; ; hop++) {
      let response: Dispatcher.ResponseData;
      try {
        response = await dispatcher.request({
          origin: url.origin,
          path: `${url.pathname}${url.search}`,
          method: req.method,
          headers: buildHeaders(req.headers, req.own ?? [], sameOrigin(url, first)),
          signal: req.signal,
        });
      } catch (err) {
        throw failure(err, req, url);
      }
      const { statusCode, headers, body } = response;
      if (REDIRECTS.has(statusCode)) {
        await body.dump({ limit: ERROR_BODY_MAX }).catch(() => undefined);
        if (hop >= MAX_REDIRECTS) throw new ShoalError('SOURCE_PROTOCOL', `${req.method} ${redactUrl(first)}: more than ${MAX_REDIRECTS} redirects`, { sourceStatus: statusCode });
        url = nextUrl(url, headers['location'], req, first);
        continue;
      }
      if (req.method === 'HEAD') {
        await body.dump().catch(() => undefined);
        return { status: statusCode, headers, body: Buffer.alloc(0), url };
      }
      const ok = statusCode >= 200 && statusCode < 300;
      const declared = Number(headers['content-length']);
      if (ok && Number.isFinite(declared) && declared > req.maxBody) {
        body.destroy();
        throw new ShoalError('UPSTREAM_TOO_LARGE', `${req.method} ${redactUrl(url)}: response of ${declared} bytes is over the ${req.maxBody}-byte cap`);
      }
      return { status: statusCode, headers, body: await readBody(body, ok ? req.maxBody : ERROR_BODY_MAX, ok, req, url), url };
    }
  }

  async close(): Promise<void> {
    const agents = [...this.#agents.values()];
    this.#agents.clear();
    await Promise.all(agents.map((a) => a.destroy().catch(() => undefined)));
  }
}

async function readBody(body: Dispatcher.ResponseData['body'], cap: number, strict: boolean, req: RegistryRequest, url: URL): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > cap) {
        body.destroy();
        if (strict) throw new ShoalError('UPSTREAM_TOO_LARGE', `${req.method} ${redactUrl(url)}: response body over ${cap} bytes`);
        chunks.push(chunk.subarray(0, chunk.length - (size - cap)));
        return Buffer.concat(chunks);
      }
      chunks.push(chunk);
    }
  } catch (err) {
    throw failure(err, req, url);
  }
  return Buffer.concat(chunks);
}

function nextUrl(from: URL, location: string | string[] | undefined, req: RegistryRequest, first: URL): URL {
  const value = Array.isArray(location) ? location[0] : location;
  if (value === undefined) throw new ShoalError('SOURCE_PROTOCOL', `${req.method} ${redactUrl(first)}: redirect without Location`);
  let to: URL;
  try {
    to = new URL(value, from);
  } catch {
    throw new ShoalError('SOURCE_PROTOCOL', `${req.method} ${redactUrl(first)}: redirect to a malformed Location`);
  }
  if (to.protocol !== 'https:' && !(to.protocol === 'http:' && from.protocol === 'http:')) {
    throw new ShoalError('SOURCE_PROTOCOL', `${req.method} ${redactUrl(first)}: redirect from ${from.protocol} to ${to.protocol} refused`);
  }
  return to;
}

function failure(err: unknown, req: RegistryRequest, url: URL): ShoalError {
  if (err instanceof ShoalError) return err;
  if (req.signal.aborted) {
    const reason: unknown = req.signal.reason;
    return reason instanceof ShoalError ? reason : new ShoalError('ABORTED', `${req.method} ${redactUrl(url)}: aborted`, { cause: reason });
  }
  const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : '';
  const detail = err instanceof Error ? err.message : String(err);
  return new ShoalError('SOURCE_NETWORK', `${req.method} ${redactUrl(url)}: ${detail}${code === '' ? '' : ` (${code})`}`, { cause: err });
}

