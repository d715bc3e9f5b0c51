/**
 * `createScheduler(init)`: the scheduler as a service with a lifecycle.
 * Speaks gRPC and Connect over HTTP/2: with the cluster's certificates
 * (`tls`), mutual TLS, every caller's roles read from its certificate
 * (./caller.ts); without, h2c, on loopback unless `insecure`.
 */
import http2 from 'node:http2';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { validateConfig } from '../common/config/load.js';
import { splitHostPort } from '../common/config/fields.js';
import { SchedulerConfigSchema, type SchedulerConfig, type SchedulerInit } from '../common/config/schema.js';
import { Service } from '../common/lifecycle.js';
import { closeServer, formatAddress, listen } from '../common/listen.js';
import { silentLogger, type Logger } from '../common/log.js';
import { loadTls, serverTls, type TlsMaterial } from '../identity/tls.js';
import { callerValues } from './caller.js';
import { Preheater } from './preheat.js';
import { MetricsServer } from '../common/metrics/server.js';
import { createSchedulerMetrics } from './metrics.js';
import { RPC_LIMITS } from './rpc-limits.js';
import { ConsoleServer } from './console/server.js';
import { SwarmJournal } from './console/journal.js';
import { fanOut } from './events.js';
import { schedulerRoutes } from './service.js';
import { Swarm } from './swarm.js';

/** What the scheduler is given besides its settings. */
export interface SchedulerDeps {
  /** Default: silent. */
  logger?: Logger;
  /** The swarm's clock (tests, the simulation). Default Date.now. */
  now?: () => number;
}

export interface SchedulerService {
  /** Its settings, parsed: every default applied. */
  readonly settings: SchedulerConfig;
  readonly swarm: Swarm;
  /** The address peers use, e.g. http://127.0.0.1:8002. */
  readonly url: string;
  /** The host it listens on, and its port once started. */
  readonly host: string;
  readonly port: number;
  /** The metrics listener's port, when it runs (`metrics`). */
  readonly metricsPort: number | undefined;
  /** The web console's address once started, when it runs (`console`). */
  readonly consoleUrl: string | undefined;
  start(): Promise<void>;
  stop(): Promise<void>;
  destroy(err?: unknown): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

class Scheduler extends Service implements SchedulerService {
  protected readonly serviceName = 'scheduler';
  readonly settings: SchedulerConfig;
  readonly swarm: Swarm;
  readonly host: string;
  readonly #preheater: Preheater;
  readonly #requestedPort: number;
  readonly #server: http2.Http2Server | http2.Http2SecureServer;
  readonly #tls: TlsMaterial | undefined;
  readonly #metrics: MetricsServer | undefined;
  readonly #console: ConsoleServer | undefined;
  readonly #sessions = new Set<http2.ServerHttp2Session>();
  readonly #log: Logger;
  #port = 0;

  constructor(settings: SchedulerConfig, deps: SchedulerDeps) {
    super();
    const log = deps.logger ?? silentLogger;
    this.#log = log;
    const now = deps.now ?? Date.now;
    this.settings = settings;
    const at = splitHostPort(settings.listen);
    this.host = at.host;
    this.#requestedPort = at.port;
    this.#tls = settings.tls === undefined ? undefined : loadTls(settings.tls, ['scheduler']);
    const metrics = settings.metrics === undefined ? undefined : createSchedulerMetrics(() => this.swarm);
    const journal = settings.console === undefined ? undefined : new SwarmJournal(now);
    const events = fanOut(metrics?.events, journal);
    this.swarm = new Swarm(settings, { logger: log, now, events });
    this.#preheater = new Preheater(this.swarm, settings.preheat, { logger: log, now, events });
    this.#metrics =
      metrics === undefined || settings.metrics === undefined ? undefined : new MetricsServer({ listen: settings.metrics.listen, registry: metrics.registry, tls: this.#tls, insecure: settings.insecure });
    this.#console =
      journal === undefined || settings.console === undefined
        ? undefined
        : new ConsoleServer({ settings: settings.console, swarm: this.swarm, preheater: this.#preheater, journal, tls: this.#tls, insecure: settings.insecure, logger: log, now });
    const secure = this.#tls !== undefined;
    const adapter = connectNodeAdapter({
      routes: schedulerRoutes(this.swarm, this.#preheater, log),
      contextValues: (req) => callerValues(secure, req.socket),
      readMaxBytes: RPC_LIMITS.messageBytes,
    });
    this.#server = this.#tls === undefined ? http2.createServer({}, adapter) : http2.createSecureServer({ ...serverTls(this.#tls), allowHTTP1: false }, adapter);
    this.#server.on('session', (session) => {
      this.#sessions.add(session);
      session.on('close', () => this.#sessions.delete(session));
      session.on('error', (err: Error) => log.debug({ err: err.message }, 'scheduler session error'));
    });
    if (this.#tls !== undefined) this.#server.on('tlsClientError', (err: Error) => log.debug({ err: err.message }, 'scheduler TLS handshake failed'));
  }

  get port(): number {
    return this.#port;
  }

  get url(): string {
    const host = this.host === '0.0.0.0' || this.host === '::' ? '127.0.0.1' : this.host;
    return `${this.#tls === undefined ? 'http' : 'https'}://${formatAddress({ host, port: this.port })}`;
  }

  protected async onStart(): Promise<void> {
    await this.swarm.start();
    await this.#preheater.start();
    this.#port = await listen(this.#server, { host: this.host, port: this.#requestedPort }, 'scheduler', { tls: this.#tls !== undefined, insecure: this.settings.insecure });
    this.#server.on('error', (err) => this.#log.error({ err }, 'scheduler listener error'));
    await this.#metrics?.start();
    await this.#console?.start();
  }

  /** The metrics listener's port, when it runs. */
  get metricsPort(): number | undefined {
    return this.#metrics?.port;
  }

  get consoleUrl(): string | undefined {
    return this.#console?.url;
  }

  protected async onStop(): Promise<void> {
    await this.#console?.stop();
    await this.#metrics?.stop();
    await this.#preheater.stop();
    await this.swarm.stop();
    const closed = closeServer(this.#server);
    for (const session of this.#sessions) session.destroy();
    await closed;
  }
}

/** Parses `init` through the schema (CONFIG_INVALID naming the key); the scheduler is not started. */
export function createScheduler(init: SchedulerInit = {}, deps: SchedulerDeps = {}): SchedulerService {
  return new Scheduler(validateConfig(SchedulerConfigSchema, init, 'scheduler settings'), deps);
}
