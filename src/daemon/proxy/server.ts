/**
 * `createProxy(settings, deps)`: the daemon's HTTP forward proxy (`--proxy`,
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
import type { Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Duplex } from 'node:stream';
import { Agent } from 'undici';
import { ShoalError, toShoalError } from '../../common/errors.js';
import { splitHostPort } from '../../common/config/fields.js';
import type { ProxySettings } from '../../common/config/schema.js';
import { Service, type Lifecycle } from '../../common/lifecycle.js';
import { closeServer, isLoopbackHost, listen } from '../../common/listen.js';
import { silentLogger, type Logger } from '../../common/log.js';
import { forward } from './forward.js';
import { endToEnd, pairs, viaLoops } from './headers.js';
import { serveP2p, type ProxyDownloads } from './p2p.js';
import { rawError, sendError, statusFor } from './reply.js';
import { ProxyRules } from './rules.js';
import { openTunnel, parseAuthority } from './tunnel.js';
import { redactUrl } from '../../common/ids.js';

/** What the proxy is given besides its settings. */
export interface ProxyDeps {
  downloads: ProxyDownloads;
  /** This daemon's host ID, for the proxy's name in Via. */
  hostId: () => string;
  /** Listening off loopback is allowed (--insecure): the proxy has no authentication. */
  insecure: boolean;
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

export interface Proxy extends Lifecycle {
  readonly port: number;
  stats(): ProxyStats;
}

/** Limits on what a proxy client controls (docs/LIMITS.md). */
export const PROXY_LIMITS = { headerBytes: 16 * 1024, urlLength: 8192, headersTimeoutMs: 10_000, connections: 1024, keepAliveTimeoutMs: 60_000 } as const;

/** `proxy.listen` (--proxy): HOST:PORT, or a bare port on loopback. */
export function proxyAddress(value: string | number): { host: string; port: number } {
  const text = String(value);
  if (!/^\d{1,5}$/.test(text)) return splitHostPort(text);
  if (Number(text) > 65535) throw new ShoalError('CONFIG_INVALID', `proxy port ${text} is over 65535`);
  return { host: '127.0.0.1', port: Number(text) };
}

/** The proxy on `settings.listen`; stop() stops accepting and destroys connections and tunnels. */
export function createProxy(settings: ProxySettings, deps: ProxyDeps): Proxy {
  return new ForwardProxy(settings, deps);
}

class ForwardProxy extends Service implements Proxy {
  protected readonly serviceName = 'HTTP proxy';
  readonly #settings: ProxySettings;
  readonly #deps: ProxyDeps;
  readonly #address: { host: string; port: number };
  readonly #log: Logger;
  readonly #rules: ProxyRules;
  readonly #server: Server;
  readonly #agent: Agent;
  readonly #sockets = new Set<Socket>();
  readonly #closing = new AbortController();
  readonly #stats: ProxyStats = { requests: 0, p2p: 0, p2pBytes: 0, passThrough: 0, passThroughBytes: 0, tunnels: 0, activeTunnels: 0, tunnelBytes: 0, refused: 0, errors: 0 };
  #via = 'shoal';
  #port = 0;

  constructor(settings: ProxySettings, deps: ProxyDeps) {
    super();
    if (settings.listen === undefined) throw new ShoalError('CONFIG_INVALID', 'proxy.listen is required to run the proxy');
    this.#settings = settings;
    this.#deps = deps;
    this.#address = proxyAddress(settings.listen);
    this.#log = deps.logger ?? silentLogger;
    this.#rules = new ProxyRules(settings.rules);
    this.#agent = new Agent({
      headersTimeout: settings.upstreamTimeout,
      bodyTimeout: settings.upstreamTimeout,
      connections: 64,
      maxResponseSize: -1,
      connect: { timeout: settings.connectTimeout },
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
    this.#server.on('connection', (socket: Socket) => {
      // Every client socket keeps an error handler for its whole life: Node's own leaves a socket it
      // hands to 'connect', and a reset after a refused CONNECT (to the proxy itself) crashed the process.
      socket.on('error', (err) => this.#log.debug({ err: err.message }, 'proxy client connection error'));
      this.#track(socket);
    });
    this.#server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
      this.#stats.refused++;
      const [status, text] = err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'request headers too large'] : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'request timeout'] : [400, 'malformed request'];
      rawError(socket, status, 'USAGE', text, this.#via);
    });
  }

  get port(): number {
    return this.#port;
  }

  #track(socket: Socket): void {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
  }

  protected async onStart(): Promise<void> {
    const host = this.#address.host;
    this.#port = await listen(this.#server, this.#address, 'HTTP proxy', { tls: false, insecure: this.#deps.insecure });
    this.#server.on('error', (err) => this.#log.error({ err }, 'HTTP proxy listener error'));
    // The name this proxy gives itself in Via, unique per daemon and port: a request carrying it has looped.
    const hostId = this.#deps.hostId();
    this.#via = `shoal-${hostId === '' ? 'proxy' : hostId}-${this.port}`.replace(/[^\w.-]/g, '_');
    if (!isLoopbackHost(host)) this.#log.warn({ host }, 'HTTP proxy listens on a non-loopback address: it has no authentication');
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
        this.#stats.p2pBytes += await serveP2p(this.#deps.downloads, { req, res, url, headers, via: this.#via, signal: controller.signal });
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
    if (this.state !== 'running') {
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
      connectTimeoutMs: this.#settings.connectTimeout,
      idleTimeoutMs: this.#settings.tunnelIdleTimeout,
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
    const bound = this.#address.host.replace(/^\[|\]$/g, '').toLowerCase();
    if (host === bound) return true;
    const all = bound === '0.0.0.0' || bound === '::';
    if ((all || isLoopbackHost(bound)) && (host === 'localhost' || host.endsWith('.localhost') || isLoopbackHost(host))) return true;
    if (all) {
      if (host === '0.0.0.0' || host === '::') return true;
      for (const addresses of Object.values(networkInterfaces())) for (const a of addresses ?? []) if (a.address.toLowerCase() === host) return true;
    }
    return false;
  }

  protected async onStop(): Promise<void> {
    this.#closing.abort(new ShoalError('ABORTED', 'the proxy is stopping'));
    const closed = closeServer(this.#server);
    for (const socket of this.#sockets) socket.destroy();
    await closed;
    await this.#agent.destroy().catch(() => undefined);
  }
}

