/**
 * The web console's listener (`console.listen`, `--console HOST:PORT`):
 * HTTP on loopback, or HTTPS with the scheduler's TLS, where a client
 * certificate with role admin is accepted and a browser without one logs in
 * with the token (./auth.ts). Serves the page, its JSON snapshot, a stream
 * of snapshots (server-sent events, one a second when something changed),
 * and the preheat POST. Unauthenticated: 401 and the login page, no data.
 *
 *   GET  /                 the console (or the login page); /?token=T logs in
 *   POST /login, /logout   the session cookie
 *   GET  /assets/console.js, console.css
 *   GET  /api/snapshot[?task=ID]   GET /api/events[?task=ID]  (SSE)
 *   POST /api/preheat      {"urls":[{"url":…,"digest":…}]} → 202 {"id":…}
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { ConsoleSettings } from '../../common/config/schema.js';
import { splitHostPort } from '../../common/config/fields.js';
import { ShoalError, toShoalError } from '../../common/errors.js';
import { Service } from '../../common/lifecycle.js';
import { closeServer, formatAddress, listen } from '../../common/listen.js';
import type { Logger } from '../../common/log.js';
import { serverTls, type TlsMaterial } from '../../identity/tls.js';
import type { Preheater } from '../preheat.js';
import type { Swarm } from '../swarm.js';
import { consoleAssets, type ConsoleAssets } from './assets.js';
import { accessOf, clearedCookie, mayChange, sessionCookie, type Access } from './auth.js';
import type { SwarmJournal } from './journal.js';
import { appPage, loginPage, SECURITY_HEADERS } from './pages.js';
import { ConsolePreheats, type PreheatItem } from './preheats.js';
import { readBody, sendJson, sendError } from './respond.js';
import { consoleSnapshot } from './snapshot.js';
import { loadToken, tokensEqual } from './token.js';

/** Caps (docs/LIMITS.md): event streams open at once, request bodies. */
export const CONSOLE_LIMITS = { streams: 32, bodyBytes: 256 * 1024, loginBytes: 4096 } as const;
const TICK_MS = 1000;
const KEEPALIVE_MS = 15_000;

export interface ConsoleServerOptions {
  settings: ConsoleSettings;
  swarm: Pick<Swarm, 'hosts' | 'tasks'>;
  preheater: Pick<Preheater, 'run'>;
  journal: SwarmJournal;
  tls: TlsMaterial | undefined;
  insecure: boolean;
  logger: Logger;
  now: () => number;
}

export class ConsoleServer extends Service {
  protected readonly serviceName = 'console';
  readonly #options: ConsoleServerOptions;
  readonly #server: Server;
  readonly #preheats: ConsolePreheats;
  readonly #streams = new Set<ServerResponse>();
  #token = '';
  #assets: ConsoleAssets = { js: '', css: '' };
  #port = 0;

  constructor(options: ConsoleServerOptions) {
    super();
    this.#options = options;
    this.#preheats = new ConsolePreheats(options.preheater, options.now, options.logger);
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
      this.#handle(req, res).catch((err: unknown) => sendError(res, toShoalError(err)));
    };
    // A browser without a client certificate still connects (and logs in with the token); one with an admin certificate needs no token.
    this.#server = options.tls === undefined ? createHttpServer(handler) : createHttpsServer({ ...serverTls(options.tls), rejectUnauthorized: false }, handler);
    this.#server.headersTimeout = 10_000;
    this.#server.requestTimeout = 30_000;
    this.#server.on('clientError', (_err, socket) => socket.destroy());
  }

  get port(): number {
    return this.#port;
  }

  get #secure(): boolean {
    return this.#options.tls !== undefined;
  }

  /** Where a browser on this host opens it. */
  get url(): string {
    const { host } = splitHostPort(this.#options.settings.listen);
    const local = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
    return `${this.#secure ? 'https' : 'http'}://${formatAddress({ host: local, port: this.#port })}/`;
  }

  protected async onStart(): Promise<void> {
    this.#token = loadToken(this.#options.settings.tokenFile, this.#options.logger);
    this.#assets = await consoleAssets();
    this.#port = await listen(this.#server, splitHostPort(this.#options.settings.listen), 'console', { tls: this.#secure, insecure: this.#options.insecure });
  }

  protected async onStop(): Promise<void> {
    this.#preheats.stop();
    for (const res of this.#streams) res.end();
    const closed = closeServer(this.#server);
    this.#server.closeAllConnections();
    await closed;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://console');
    const route = `${req.method ?? 'GET'} ${url.pathname}`;
    if (route === 'GET /assets/console.js') return this.#asset(res, 'text/javascript', this.#assets.js);
    if (route === 'GET /assets/console.css') return this.#asset(res, 'text/css', this.#assets.css);
    if (route === 'POST /login') return this.#login(req, res);
    if (route === 'POST /logout') {
      res.writeHead(303, { location: '/', 'set-cookie': clearedCookie(this.#secure) }).end();
      return;
    }
    const token = url.searchParams.get('token');
    if (route === 'GET /' && token !== null) return this.#loggedIn(res, token);
    const access = accessOf(req, this.#token);
    if (access === undefined) return this.#refuse(res, url.pathname);
    switch (route) {
      case 'GET /':
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(appPage());
        return;
      case 'GET /api/snapshot':
        return sendJson(res, 200, this.#snapshot(url.searchParams.get('task')));
      case 'GET /api/events':
        return this.#stream(req, res, url.searchParams.get('task'));
      case 'POST /api/preheat':
        return this.#preheat(req, res, access);
      default:
        sendError(res, new ShoalError('TASK_NOT_FOUND', `no such page: ${route.slice(0, 200)}`), 404);
    }
  }

  #asset(res: ServerResponse, type: string, body: string): void {
    res.writeHead(200, { 'content-type': `${type}; charset=utf-8` }).end(body);
  }

  /** 401: the login page for a page, a JSON error for the API; nothing of the swarm. */
  #refuse(res: ServerResponse, path: string): void {
    if (path.startsWith('/api/')) return sendError(res, new ShoalError('ROLE_REQUIRED', 'the console needs an admin certificate or its token'), 401);
    res.writeHead(401, { 'content-type': 'text/html; charset=utf-8', 'www-authenticate': 'Bearer realm="shoal console"' }).end(loginPage());
  }

  #loggedIn(res: ServerResponse, token: string): void {
    if (!tokensEqual(token, this.#token)) {
      res.writeHead(401, { 'content-type': 'text/html; charset=utf-8' }).end(loginPage('That is not the console’s token.'));
      return;
    }
    // Off the address bar (and out of the history) at once.
    res.writeHead(303, { location: '/', 'set-cookie': sessionCookie(this.#token, this.#secure) }).end();
  }

  async #login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req, CONSOLE_LIMITS.loginBytes);
    this.#loggedIn(res, new URLSearchParams(body).get('token') ?? '');
  }

  #snapshot(taskId: string | null) {
    const o = this.#options;
    return consoleSnapshot({ hosts: o.swarm.hosts, tasks: o.swarm.tasks, journal: o.journal, preheats: this.#preheats }, taskId ?? undefined, o.now());
  }

  #stream(req: IncomingMessage, res: ServerResponse, taskId: string | null): void {
    if (this.#streams.size >= CONSOLE_LIMITS.streams) {
      sendError(res, new ShoalError('LIMIT_EXCEEDED', `${CONSOLE_LIMITS.streams} console event streams are open already`), 503);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'x-accel-buffering': 'no' });
    this.#streams.add(res);
    let last = '';
    let quietSince = Date.now();
    let blocked = false;
    const tick = (): void => {
      if (blocked) return;
      const snapshot = this.#snapshot(taskId);
      const same = JSON.stringify({ ...snapshot, at: 0 });
      let frame: string | undefined;
      if (same !== last) frame = `event: snapshot\ndata: ${JSON.stringify(snapshot)}\n\n`;
      else if (Date.now() - quietSince >= KEEPALIVE_MS) frame = ': keepalive\n\n';
      if (frame === undefined) return;
      last = same;
      quietSince = Date.now();
      // A slow reader gets the next snapshot once it has taken this one, never a queue of them.
      if (!res.write(frame)) {
        blocked = true;
        res.once('drain', () => (blocked = false));
      }
    };
    const timer = setInterval(tick, TICK_MS);
    tick();
    const done = (): void => {
      clearInterval(timer);
      this.#streams.delete(res);
    };
    req.on('close', done);
    res.on('close', done);
  }

  async #preheat(req: IncomingMessage, res: ServerResponse, access: Access): Promise<void> {
    if (!mayChange(req, access, this.#secure)) {
      sendError(res, new ShoalError('ROLE_REQUIRED', "a change must come from the console's own page (its Origin) or carry the token in an Authorization header"), 403);
      return;
    }
    const body = await readBody(req, CONSOLE_LIMITS.bodyBytes);
    let items: PreheatItem[];
    try {
      items = preheatItems(JSON.parse(body));
    } catch (err) {
      throw err instanceof ShoalError ? err : new ShoalError('USAGE', `the preheat request is not JSON: ${(err as Error).message}`);
    }
    sendJson(res, 202, { id: this.#preheats.start(items) });
  }
}

/** `{"urls": [{"url": "…", "digest": "sha256:…"}]}`, each URL a string; USAGE otherwise. */
function preheatItems(value: unknown): PreheatItem[] {
  const urls = (value as { urls?: unknown } | null)?.urls;
  if (!Array.isArray(urls)) throw new ShoalError('USAGE', 'a preheat request is {"urls": [{"url": "…", "digest": "sha256:…"}]}');
  return urls.map((u: unknown) => {
    const { url, digest } = (u ?? {}) as { url?: unknown; digest?: unknown };
    if (typeof url !== 'string' || (digest !== undefined && typeof digest !== 'string')) throw new ShoalError('USAGE', 'each preheat entry is {"url": string, "digest"?: string}');
    return { url, digest };
  });
}
