/**
 * `createMirror(options)`: the daemon's OCI registry mirror, the pull side of
 * the distribution spec on its own node:http server. Containerd (hosts.toml),
 * CRI-O/podman/skopeo (registries.conf) and docker (registry-mirrors) point at
 * it; blobs travel through the daemon's P2P downloads, everything else is
 * relayed to the registry named by the request (upstream.ts).
 *
 * Every request is bounded: 16 KiB of headers, an 8 KiB URL, no body accepted,
 * 30 s to send a request; registry answers are capped (manifests 4 MiB, lists
 * 8 MiB, error bodies 64 KiB). Authorization values are never logged.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ShoalError, toShoalError } from '../../common/errors.js';
import { splitHostPort } from '../../common/config/fields.js';
import type { MirrorSettings } from '../../common/config/schema.js';
import { Service, type Lifecycle } from '../../common/lifecycle.js';
import { closeServer, listen } from '../../common/listen.js';
import { silentLogger, type Logger } from '../../common/log.js';
import { AccessChecker } from './access.js';
import { serveBlob } from './blobs.js';
import { ManifestCache, TtlCache } from './caches.js';
import type { MirrorDownloads, MirrorRequest, MirrorShared, MirrorStats } from './context.js';
import { serveManifest } from './manifests.js';
import { serveList, servePing } from './passthrough.js';
import { RegistryClient } from '../registry/client.js';
import { sendShoalError, sendSpecError } from './reply.js';
import { isRefusal, route, splitNamespace, type Route } from './route.js';
import { UpstreamResolver, upstreamName, type Upstream, type UpstreamEntry } from '../registry/upstream.js';

/** What the mirror is given besides its settings. */
export interface MirrorDeps {
  downloads: MirrorDownloads;
  /** The configured registries (settings.upstreams) with their CA files read. */
  upstreams: readonly UpstreamEntry[];
  /** Listening off loopback is allowed (--insecure): the mirror has no TLS of its own. */
  insecure: boolean;
  logger?: Logger;
}

export interface Mirror extends Lifecycle {
  /** The bound port (after start). */
  readonly port: number;
  readonly resolver: UpstreamResolver;
  stats(): MirrorStats & { manifestCache: { entries: number; bytes: number } };
}

/** Limits on what a mirror client controls (docs/LIMITS.md). */
export const MIRROR_LIMITS = { headerBytes: 16 * 1024, urlLength: 8192, headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, connections: 1024 } as const;

/** The mirror on `settings.listen`; stop() stops accepting, aborts requests in flight, closes registry connections. */
export function createMirror(settings: MirrorSettings, deps: MirrorDeps): Mirror {
  return new RegistryMirror(settings, deps);
}

class RegistryMirror extends Service implements Mirror {
  protected readonly serviceName = 'registry mirror';
  readonly resolver: UpstreamResolver;
  readonly #address: { host: string; port: number };
  readonly #insecure: boolean;
  readonly #log: Logger;
  readonly #closing = new AbortController();
  readonly #shared: MirrorShared;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #port = 0;

  constructor(settings: MirrorSettings, deps: MirrorDeps) {
    super();
    if (settings.listen === undefined) throw new ShoalError('CONFIG_INVALID', 'mirror.listen is required to run the mirror');
    this.#address = splitHostPort(settings.listen);
    this.#insecure = deps.insecure;
    this.#log = deps.logger ?? silentLogger;
    this.resolver = new UpstreamResolver({ upstreams: deps.upstreams, defaultUpstream: settings.upstream });
    const client = new RegistryClient({ timeoutMs: settings.upstreamTimeout });
    this.#shared = {
      downloads: deps.downloads,
      client,
      access: new AccessChecker(client, settings.authTtl, this.#closing.signal),
      manifests: new ManifestCache(settings.manifestCache),
      tags: new TtlCache<string>(settings.tagTtl, 10_000),
      tagTtlMs: settings.tagTtl,
      stallTimeoutMs: settings.stallTimeout,
      stats: { requests: 0, blobs: 0, blobBytes: 0, manifestsFromCache: 0, manifestsFromUpstream: 0, denied: 0, errors: 0, prefetched: 0, rangesRelayed: 0 },
      logger: this.#log,
      prefetch: settings.prefetch,
      closing: this.#closing.signal,
    };
    this.#server = createServer({
      maxHeaderSize: MIRROR_LIMITS.headerBytes,
      headersTimeout: MIRROR_LIMITS.headersTimeoutMs,
      requestTimeout: MIRROR_LIMITS.requestTimeoutMs,
      keepAliveTimeout: 60_000,
    });
    this.#server.maxConnections = MIRROR_LIMITS.connections;
    this.#server.on('request', (req: IncomingMessage, res: ServerResponse) => void this.#handle(req, res));
    this.#server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
      socket.on('error', (err) => this.#log.debug({ err: err.message }, 'mirror connection error'));
    });
    this.#server.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
      if (!socket.writable) {
        socket.destroy();
        return;
      }
      const [status, text] =
        err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'Request Header Fields Too Large'] : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'Request Timeout'] : [400, 'Bad Request'];
      const body = JSON.stringify({ errors: [{ code: 'UNSUPPORTED', message: `malformed request: ${text.toLowerCase()}` }] });
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    });
  }

  get port(): number {
    return this.#port;
  }

  protected async onStart(): Promise<void> {
    this.#port = await listen(this.#server, this.#address, 'registry mirror', { tls: false, insecure: this.#insecure });
    this.#server.on('error', (err) => this.#log.error({ err }, 'registry mirror listener error'));
    const d = this.resolver.defaultUpstream;
    if (d?.origin.startsWith('http:') === true) this.#log.warn({ upstream: d.origin }, 'mirror default upstream is plain HTTP');
    this.#log.info({ port: this.port, upstream: d?.origin }, 'registry mirror listening');
  }

  stats(): MirrorStats & { manifestCache: { entries: number; bytes: number } } {
    return { ...this.#shared.stats, manifestCache: { entries: this.#shared.manifests.size, bytes: this.#shared.manifests.bytes } };
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    this.#shared.stats.requests++;
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    const rawUrl = req.url ?? '';
    const method = req.method ?? '';
    const qmark = rawUrl.indexOf('?');
    const path = qmark < 0 ? rawUrl : rawUrl.slice(0, qmark);
    let subject: 'blob' | 'manifest' | 'name' = 'name';
    const controller = new AbortController();
    const onClose = (): void => {
      if (!res.writableFinished) controller.abort(new ShoalError('ABORTED', 'the mirror client went away'));
    };
    const onStop = (): void => controller.abort(this.#closing.signal.reason);
    res.once('close', onClose);
    this.#closing.signal.addEventListener('abort', onStop, { once: true });
    try {
      if (method !== 'GET' && method !== 'HEAD') res.setHeader('Connection', 'close');
      if (rawUrl.length > MIRROR_LIMITS.urlLength) {
        sendSpecError(res, 414, 'UNSUPPORTED', `request URL over ${MIRROR_LIMITS.urlLength} characters`);
        return;
      }
      if (!path.startsWith('/')) {
        sendSpecError(res, 404, 'UNSUPPORTED', 'this is a registry mirror, not an HTTP proxy');
        return;
      }
      const routed = route(method, path);
      if (isRefusal(routed)) {
        sendSpecError(res, routed.status, routed.code, routed.message, routed.status === 405 ? { Allow: 'GET, HEAD' } : {});
        return;
      }
      subject = routed.kind === 'blob' ? 'blob' : routed.kind === 'manifest' ? 'manifest' : 'name';
      const query = new URLSearchParams(qmark < 0 ? '' : rawUrl.slice(qmark + 1));
      query.delete('ns');
      const prefixed = 'name' in routed ? splitNamespace(routed.name) : undefined;
      const ns = new URLSearchParams(qmark < 0 ? '' : rawUrl.slice(qmark + 1)).get('ns') ?? prefixed?.registry;
      const upstream = this.resolver.resolve(ns, headerValue(req, 'x-shoal-registry') ?? headerValue(req, 'x-dragonfly-registry'));
      const clientName = prefixed?.name ?? ('name' in routed ? routed.name : '');
      const r: MirrorRequest = {
        req,
        res,
        method: method as 'GET' | 'HEAD',
        upstream,
        name: 'name' in routed ? upstreamName(upstream, clientName) : '',
        query,
        ns,
        authorization: headerValue(req, 'authorization'),
        accept: headerValue(req, 'accept'),
        signal: controller.signal,
      };
      await this.#dispatch(r, routed);
    } catch (err) {
      const e = toShoalError(err);
      if (e.code !== 'ABORTED' || !controller.signal.aborted) this.#shared.stats.errors++;
      if (controller.signal.aborted && res.destroyed) return;
      this.#log.debug({ code: e.code, err: e.message, path }, 'mirror request failed');
      sendShoalError(res, e, subject);
    } finally {
      res.off('close', onClose);
      this.#closing.signal.removeEventListener('abort', onStop);
      this.#log.debug({ method, path, status: res.statusCode, ms: Date.now() - started }, 'mirror request');
    }
  }

  #dispatch(r: MirrorRequest, routed: Route): Promise<void> {
    switch (routed.kind) {
      case 'base':
        return servePing(this.#shared, r);
      case 'manifest':
        return serveManifest(this.#shared, r, routed.reference);
      case 'blob':
        return serveBlob(this.#shared, r, routed.digest);
      case 'tags':
        return serveList(this.#shared, r, `/v2/${r.name}/tags/list`, ['n', 'last']);
      case 'referrers':
        return serveList(this.#shared, r, `/v2/${r.name}/referrers/${routed.digest}`, ['artifactType']);
    }
  }

  protected async onStop(): Promise<void> {
    this.#closing.abort(new ShoalError('ABORTED', 'the mirror is stopping'));
    const closed = closeServer(this.#server);
    for (const socket of this.#sockets) socket.destroy();
    await closed;
    await this.#shared.client.close();
  }
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  if (Array.isArray(value)) return value[0];
  return value === undefined || value === '' ? undefined : value;
}

export type { Upstream, UpstreamEntry };
