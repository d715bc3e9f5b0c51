/**
 * The metrics listener of a daemon or a scheduler (`--metrics`): `GET
 * /metrics` in Prometheus's text format, `GET /healthy`. With the component's
 * TLS material it is mutual TLS like every other listener: a scraper shows a
 * certificate of the cluster CA (any role); without, loopback only unless
 * `insecure` (../listen.ts).
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Registry } from 'prom-client';
import { splitHostPort } from '../config/fields.js';
import { ShoalError } from '../errors.js';
import { Service } from '../lifecycle.js';
import { closeServer, listen } from '../listen.js';
import { serverTls, type TlsMaterial } from '../../identity/tls.js';

export interface MetricsServerOptions {
  /** HOST:PORT, or a bare port on 127.0.0.1. */
  listen: string;
  registry: Registry;
  tls: TlsMaterial | undefined;
  insecure: boolean;
}

/** `metrics.listen`: HOST:PORT, or a bare port on loopback. */
export function metricsAddress(value: string): { host: string; port: number } {
  if (/^\d{1,5}$/.test(value)) {
    if (Number(value) > 65535) throw new ShoalError('CONFIG_INVALID', `metrics port ${value} is over 65535`);
    return { host: '127.0.0.1', port: Number(value) };
  }
  return splitHostPort(value);
}

export class MetricsServer extends Service {
  protected readonly serviceName = 'metrics listener';
  readonly #options: MetricsServerOptions;
  readonly #server: Server;
  #port = 0;

  constructor(options: MetricsServerOptions) {
    super();
    this.#options = options;
    const handler = (req: IncomingMessage, res: ServerResponse): void => void this.#handle(req, res);
    this.#server = options.tls === undefined ? createHttpServer(handler) : createHttpsServer(serverTls(options.tls), handler);
    this.#server.headersTimeout = 10_000;
    this.#server.requestTimeout = 30_000;
    this.#server.on('clientError', (_err, socket) => socket.destroy());
  }

  get port(): number {
    return this.#port;
  }

  protected async onStart(): Promise<void> {
    this.#port = await listen(this.#server, metricsAddress(this.#options.listen), 'metrics listener', { tls: this.#options.tls !== undefined, insecure: this.#options.insecure });
  }

  protected async onStop(): Promise<void> {
    const closed = closeServer(this.#server);
    this.#server.closeAllConnections();
    await closed;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthy') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      return;
    }
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: /metrics, /healthy\n');
      return;
    }
    try {
      const text = await this.#options.registry.metrics();
      res.writeHead(200, { 'content-type': this.#options.registry.contentType, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : text);
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${(err as Error).message}\n`);
    }
  }
}
