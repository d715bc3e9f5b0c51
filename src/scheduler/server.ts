/**
 * `createScheduler(options)`: the scheduler as a service with a lifecycle.
 * Speaks gRPC and Connect over HTTP/2 without TLS (h2c).
 */
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { silentLogger, type Logger } from '../common/log.js';
import { Preheater } from './preheat.js';
import { schedulerRoutes } from './service.js';
import { Swarm, type SwarmOptions } from './swarm.js';

export interface SchedulerOptions extends SwarmOptions {
  host?: string;
  port?: number;
  logger?: Logger;
}

export interface SchedulerService {
  readonly swarm: Swarm;
  /** The address peers use, e.g. http://127.0.0.1:8002. */
  readonly url: string;
  readonly port: number;
  start(): Promise<void>;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

class Scheduler implements SchedulerService {
  readonly swarm: Swarm;
  readonly #server: http2.Http2Server;
  readonly #sessions = new Set<http2.ServerHttp2Session>();
  readonly #host: string;
  readonly #port: number;
  #started = false;
  #stopped: Promise<void> | undefined;

  constructor(options: SchedulerOptions) {
    const log = options.logger ?? silentLogger;
    this.swarm = new Swarm({ ...options, logger: log });
    this.#host = options.host ?? '127.0.0.1';
    this.#port = options.port ?? 0;
    const preheater = new Preheater(this.swarm, { logger: log });
    this.#server = http2.createServer({}, connectNodeAdapter({ routes: schedulerRoutes(this.swarm, log, preheater) }));
    this.#server.on('session', (session) => {
      this.#sessions.add(session);
      session.on('close', () => this.#sessions.delete(session));
    });
  }

  get port(): number {
    const address = this.#server.address() as AddressInfo | null;
    return address?.port ?? this.#port;
  }

  get url(): string {
    const host = this.#host === '0.0.0.0' || this.#host === '::' ? '127.0.0.1' : this.#host;
    return `http://${host.includes(':') ? `[${host}]` : host}:${this.port}`;
  }

  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#port, this.#host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
  }

  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      this.swarm.close();
      const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
      for (const session of this.#sessions) session.destroy();
      if (this.#started) await closed;
    })();
    return this.#stopped;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

export function createScheduler(options: SchedulerOptions = {}): SchedulerService {
  return new Scheduler(options);
}
