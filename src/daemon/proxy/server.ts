/**
 * `createProxy(options)`: the daemon's HTTP forward proxy (`--proxy`,
 * `http_proxy=http://127.0.0.1:PORT`). Absolute-form requests (`GET
 * http://host/path`) whose URL matches a P2P rule (rules.ts; default
 * `blobs/sha256.*`) are served from the daemon's P2P downloads (p2p.ts);
 * everything else passes through to the origin (forward.ts); `CONNECT` opens a
 * raw tunnel (tunnel.ts), so HTTPS stays untouched.
 *
 * Hop-by-hop headers are removed both ways and a Via entry added; a request
 * for the proxy's own address, or one whose Via already names this proxy, is
 * refused (508) so the proxy never talks to itself. It has no authentication:
 * listen on loopback (the default host).
 *
 * Bounded: 16 KiB of request headers (431), an 8 KiB URL (414), 10 s to send
 * the headers, 1024 connections; the origin has `upstreamTimeoutMs` to answer
 * and between body bytes; a tunnel ends after `tunnelIdleTimeoutMs` without a
 * byte either way.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Duplex } from 'node:stream';
import { Agent } from 'undici';
import { ShoalError, toShoalError } from '../../common/errors.js';
import { silentLogger, type Logger } from '../../common/log.js';
import { forward } from './forward.js';
import { endToEnd, pairs, viaLoops } from './headers.js';
import { serveP2p, type ProxyDaemon } from './p2p.js';
import { rawError, sendError, statusFor } from './reply.js';
import { ProxyRules, type ProxyRule } from './rules.js';
import { openTunnel, parseAuthority } from './tunnel.js';
import { redactUrl } from '../../common/ids.js';

export interface ProxyOptions {
  /** Listen address. Default 127.0.0.1. */
  host?: string;
  /** Default 4002; 0 = any free port. */
  port?: number;
  daemon: ProxyDaemon;
  /** P2P rules, tried in order; default `blobs/sha256.*`. */
  rules?: readonly ProxyRule[] | undefined;
  /** The origin must answer, and keep sending, within this. Default 120 s. */
  upstreamTimeoutMs?: number;
  /** Connecting to an origin (pass-through and CONNECT). Default 10 s. */
  connectTimeoutMs?: number;
  /** A CONNECT tunnel with no byte either way this long is closed. Default 5 min. */
  tunnelIdleTimeoutMs?: number;
  logger?: Logger;
}

export interface ProxyStats {
  requests: number;
  /** Requests answered from P2P downloads, and their body bytes. */
  p2p: number;
  p2pBytes: number;
  /** Requests passed through to the origin, and their response body bytes. */
  passThrough: number;
  passThroughBytes: number;
  tunnels: number;
  activeTunnels: number;
  tunnelBytes: number;
  /** Refused: malformed, loops, origin-form requests. */
  refused: number;
  /** Failed: origin unreachable or timed out, P2P download failed. */
  errors: number;
}

export interface Proxy {
  readonly port: number;
  start(): Promise<void>;
  stats(): ProxyStats;
  /** Stops accepting, destroys connections and tunnels. Idempotent. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Limits on what a proxy client controls (docs/LIMITS.md). */
export const PROXY_LIMITS = { headerBytes: 16 * 1024, urlLength: 8192, headersTimeoutMs: 10_000, connections: 1024, keepAliveTimeoutMs: 60_000 } as const;

export function createProxy(options: ProxyOptions): Proxy {
  return new ForwardProxy(options);
}

class ForwardProxy implements Proxy {
  readonly #o: ProxyOptions;
  readonly #log: Logger;
  readonly #rules: ProxyRules;
  readonly #server: Server;
  readonly #agent: Agent;
  readonly #sockets = new Set<Socket>();
  readonly #closing = new AbortController();
  readonly #stats: ProxyStats = { requests: 0, p2p: 0, p2pBytes: 0, passThrough: 0, passThroughBytes: 0, tunnels: 0, activeTunnels: 0, tunnelBytes: 0, refused: 0, errors: 0 };
  #via = 'shoal';
  #started = false;
  #stopping: Promise<void> | undefined;

  constructor(options: ProxyOptions) {
    this.#o = options;
    this.#log = options.logger ?? silentLogger;
    this.#rules = new ProxyRules(options.rules);
    const upstreamTimeout = options.upstreamTimeoutMs ?? 120_000;
    this.#agent = new Agent({
      headersTimeout: upstreamTimeout,
      bodyTimeout: upstreamTimeout,
      connections: 64,
      maxResponseSize: -1,
      connect: { timeout: options.connectTimeoutMs ?? 10_000 },
    });
    this.#server = createServer({
      maxHeaderSize: PROXY_LIMITS.headerBytes,
      headersTimeout: PROXY_LIMITS.headersTimeoutMs,
      // Uploads through the proxy may take long; the origin's timeouts bound them.
      requestTimeout: 0,
      keepAliveTimeout: PROXY_LIMITS.keepAliveTimeoutMs,
    });
    this.#server.maxConnections = PROXY_LIMITS.connections;
    this.#server.on('request', (req: IncomingMessage, res: ServerResponse) => void this.#handle(req, res));
    this.#server.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#connect(req, socket, head));
    this.#server.on('connection', (socket: Socket) => this.#track(socket));
    this.#server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
      this.#stats.refused++;
      const [status, text] = err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'request headers too large'] : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'request timeout'] : [400, 'malformed request'];
      rawError(socket, status, 'USAGE', text, this.#via);
    });
  }

  get port(): number {
    return (this.#server.address() as AddressInfo | null)?.port ?? 0;
  }

  #track(socket: Socket): void {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
  }

  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    const host = this.#o.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(new ShoalError('USAGE', `proxy cannot listen on ${host}:${this.#o.port ?? 4002}: ${err.message}`, { cause: err }));
      this.#server.once('error', onError);
      this.#server.listen(this.#o.port ?? 4002, host, () => {
        this.#server.off('error', onError);
        resolve();
      });
    });
    // The name this proxy gives itself in Via, unique per daemon and port: a request carrying it has looped.
    this.#via = `shoal-${this.#o.daemon.hostId === '' ? 'proxy' : this.#o.daemon.hostId}-${this.port}`.replace(/[^\w.-]/g, '_');
    if (!isLoopback(host)) this.#log.warn({ host }, 'HTTP proxy listens on a non-loopback address: it has no authentication');
    this.#log.info({ port: this.port }, 'HTTP proxy listening');
  }

  stats(): ProxyStats {
    return { ...this.#stats };
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.#stats.requests++;
    const started = Date.now();
    const rawUrl = req.url ?? '';
    const controller = new AbortController();
    const onClose = (): void => {
      if (!res.writableFinished) controller.abort(new ShoalError('ABORTED', 'the proxy client went away'));
    };
    const onStop = (): void => controller.abort(this.#closing.signal.reason);
    res.once('close', onClose);
    this.#closing.signal.addEventListener('abort', onStop, { once: true });
    let kind: 'p2p' | 'direct' | 'refused' = 'refused';
    try {
      const refusal = this.#check(req, rawUrl);
      if (refusal !== undefined) {
        this.#stats.refused++;
        res.setHeader('Connection', 'close');
        sendError(res, refusal.status, refusal.code, refusal.message, this.#via);
        return;
      }
      const url = new URL(rawUrl);
      const headers = endToEnd(pairs(req.rawHeaders));
      const hasBody = (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') || req.headers['transfer-encoding'] !== undefined;
      kind = this.#rules.decide(req.method ?? '', url.href, hasBody);
      if (kind === 'p2p') {
        this.#stats.p2p++;
        this.#stats.p2pBytes += await serveP2p(this.#o.daemon, { req, res, url, headers, via: this.#via, signal: controller.signal });
      } else {
        this.#stats.passThrough++;
        const result = await forward(this.#agent, { req, res, url, headers, hasBody, via: this.#via, signal: controller.signal });
        this.#stats.passThroughBytes += result.bytes;
        if (result.status >= 502 && res.getHeader('X-Shoal-Error') !== undefined) this.#stats.errors++;
      }
    } catch (err) {
      const e = toShoalError(err);
      if (controller.signal.aborted && (res.destroyed || e.code === 'ABORTED')) {
        res.destroy();
        return;
      }
      this.#stats.errors++;
      this.#log.debug({ code: e.code, err: e.message, url: redactUrl(rawUrl) }, 'proxy request failed');
      sendError(res, statusFor(e), e.code, e.message, this.#via);
    } finally {
      res.off('close', onClose);
      this.#closing.signal.removeEventListener('abort', onStop);
      this.#log.debug({ method: req.method, url: redactUrl(rawUrl), kind, status: res.statusCode, ms: Date.now() - started }, 'proxy request');
    }
  }

  /** Why a request is refused before anything is fetched, or undefined. */
  #check(req: IncomingMessage, rawUrl: string): { status: number; code: string; message: string } | undefined {
    if (rawUrl.length > PROXY_LIMITS.urlLength) return { status: 414, code: 'LIMIT_EXCEEDED', message: `request URL over ${PROXY_LIMITS.urlLength} characters` };
    if (!/^https?:\/\//i.test(rawUrl)) {
      return { status: 400, code: 'USAGE', message: 'this is an HTTP forward proxy: send absolute-form requests (http_proxy=http://HOST:PORT), or CONNECT for HTTPS' };
    }
    let url: URL;
    try {
      url = new URL(rawUrl);
    } catch {
      return { status: 400, code: 'URL_INVALID', message: 'malformed request URL' };
    }
    if (url.hostname === '') return { status: 400, code: 'URL_INVALID', message: 'request URL without a host' };
    const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
    if (this.#isSelf(url.hostname, port)) return { status: 508, code: 'PROXY_LOOP', message: `${url.host} is this proxy itself` };
    if (viaLoops(pairs(req.rawHeaders), this.#via)) return { status: 508, code: 'PROXY_LOOP', message: 'the request already passed through this proxy (Via)' };
    return undefined;
  }

  #connect(req: IncomingMessage, client: Duplex, head: Buffer): void {
    this.#stats.requests++;
    const target = parseAuthority(req.url ?? '');
    if (target === undefined) {
      this.#stats.refused++;
      rawError(client, 400, 'USAGE', 'CONNECT needs host:port', this.#via);
      return;
    }
    if (this.#isSelf(target.host, target.port)) {
      this.#stats.refused++;
      rawError(client, 508, 'PROXY_LOOP', `${target.host}:${target.port} is this proxy itself`, this.#via);
      return;
    }
    if (this.#stopping !== undefined) {
      rawError(client, 503, 'ABORTED', 'the proxy is stopping', this.#via);
      return;
    }
    this.#stats.tunnels++;
    this.#stats.activeTunnels++;
    openTunnel({
      host: target.host,
      port: target.port,
      client,
      head,
      connectTimeoutMs: this.#o.connectTimeoutMs ?? 10_000,
      idleTimeoutMs: this.#o.tunnelIdleTimeoutMs ?? 300_000,
      via: this.#via,
      track: (socket) => this.#track(socket),
      onClose: (result) => {
        this.#stats.activeTunnels--;
        this.#stats.tunnelBytes += result.up + result.down;
        if (!result.established) this.#stats.errors++;
        this.#log.debug({ target: `${target.host}:${target.port}`, ...result }, 'proxy tunnel closed');
      },
    });
  }

  /** True for this proxy's own listening address (loopback, the bound address, or any local address when bound to all). */
  #isSelf(hostname: string, port: number): boolean {
    if (port !== this.port) return false;
    const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
    const bound = (this.#o.host ?? '127.0.0.1').replace(/^\[|\]$/g, '').toLowerCase();
    if (host === bound) return true;
    const all = bound === '0.0.0.0' || bound === '::';
    if ((all || isLoopback(bound)) && (host === 'localhost' || host.endsWith('.localhost') || isLoopback(host))) return true;
    if (all) {
      if (host === '0.0.0.0' || host === '::') return true;
      for (const addresses of Object.values(networkInterfaces())) for (const a of addresses ?? []) if (a.address.toLowerCase() === host) return true;
    }
    return false;
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#closing.abort(new ShoalError('ABORTED', 'the proxy is stopping'));
      const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
      for (const socket of this.#sockets) socket.destroy();
      if (this.#started) await closed;
      await this.#agent.destroy().catch(() => undefined);
    })();
    return this.#stopping;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || h.startsWith('::ffff:127.');
  return h === 'localhost';
}

