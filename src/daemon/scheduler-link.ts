/**
 * The daemon's connection to its scheduler: the SyncHost stream (announce,
 * load, seed commands) kept open with reconnects, and the Connect client the
 * per-task AnnouncePeer streams use.
 */
import { create } from '@bufbuild/protobuf';
import { createClient, type Client } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import {
  HostRequestSchema,
  Scheduler,
  type HeldTask,
  type Host,
  type HostRequest,
  type SeedTask,
} from '../gen/shoal/v1/scheduler_pb.js';
import { AsyncQueue } from '../common/async-queue.js';
import { ShoalError } from '../common/errors.js';
import { Service } from '../common/lifecycle.js';
import { clientTls, type TlsMaterial } from '../identity/tls.js';
import type { Logger } from '../common/log.js';

export type SchedulerClient = Client<typeof Scheduler>;

export interface SchedulerLinkOptions {
  url: string;
  host: () => Host;
  /** The complete tasks to announce: all of them on a new stream (`newStream`), else those not yet told on this one. */
  heldTasks: (newStream: boolean) => HeldTask[];
  onSeedTask: (command: SeedTask) => void;
  /** The scheduler has this host drop a cache task (removed, or expired). */
  onDropTask?: ((taskId: string) => void) | undefined;
  /** This member's certificates, for a scheduler at an https URL. */
  tls?: TlsMaterial | undefined;
  /** The host stream came up (true) or went down (false). */
  onConnection?: (up: boolean) => void;
  logger: Logger;
}

/**
 * A client of the scheduler at `url`. With `tls` (the URL must be https) it
 * shows this member's certificate and accepts only a scheduler's; a plain
 * http URL with TLS material, or https without, is refused (CERT_INVALID).
 */
export function createSchedulerClient(url: string, tls?: TlsMaterial): SchedulerClient {
  const https = url.startsWith('https:');
  if (https !== (tls !== undefined)) {
    throw new ShoalError('CERT_INVALID', https ? `the scheduler ${url} is TLS: give this member's certificates (tls: ca, cert, key)` : `the scheduler ${url} is plain http, but this member has TLS certificates: use https://`);
  }
  const transport = createGrpcTransport({
    baseUrl: url,
    pingIntervalMs: 5000,
    pingTimeoutMs: 5000,
    idleConnectionTimeoutMs: 60_000,
    ...(tls === undefined ? {} : { nodeOptions: clientTls(tls, ['scheduler']) }),
  });
  return createClient(Scheduler, transport);
}

/** Delay before reconnect attempt `n` (0-based): 100 ms doubling to 2 s, with jitter. */
export function reconnectDelay(attempt: number): number {
  const base = Math.min(2000, 100 * 2 ** attempt);
  return base / 2 + Math.random() * (base / 2);
}

export class SchedulerLink extends Service {
  protected readonly serviceName = 'scheduler link';
  readonly client: SchedulerClient;
  readonly #options: SchedulerLinkOptions;
  readonly #abort = new AbortController();
  #queue: AsyncQueue<HostRequest> | undefined;
  #connected = false;
  #loop: Promise<void> | undefined;
  readonly #connectWaiters = new Set<() => void>();

  constructor(options: SchedulerLinkOptions) {
    super();
    this.#options = options;
    this.client = createSchedulerClient(options.url, options.tls);
  }

  get url(): string {
    return this.#options.url;
  }

  get connected(): boolean {
    return this.#connected;
  }

  /** Opens the host stream and keeps it open (reconnecting) until stop(); does not wait for it to be up. */
  protected onStart(): Promise<void> {
    this.#loop = this.#run();
    return Promise.resolve();
  }

  /** Resolves when the host stream is up, or after `ms`. */
  waitConnected(ms: number): Promise<boolean> {
    if (this.#connected) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#connectWaiters.delete(done);
        resolve(this.#connected);
      };
      const timer = setTimeout(done, ms);
      this.#connectWaiters.add(done);
    });
  }

  reportLoad(uploadLoad: number): void {
    this.#queue?.push(create(HostRequestSchema, { request: { case: 'load', value: { uploadLoad } } }));
  }

  /** Announces the host again on the open stream, with what heldTasks() now gives (complete tasks that moved here). */
  reannounce(): void {
    if (!this.#connected) return;
    const tasks = this.#options.heldTasks(false);
    if (tasks.length === 0) return;
    this.#queue?.push(create(HostRequestSchema, { request: { case: 'announce', value: { host: this.#options.host(), tasks } } }));
  }

  reportEvicted(taskIds: string[]): void {
    if (taskIds.length === 0) return;
    this.#queue?.push(create(HostRequestSchema, { request: { case: 'evicted', value: { taskIds } } }));
  }

  async #run(): Promise<void> {
    const log = this.#options.logger;
    let attempt = 0;
    while (!this.#abort.signal.aborted) {
      const queue = new AsyncQueue<HostRequest>();
      this.#queue = queue;
      queue.push(
        create(HostRequestSchema, {
          request: { case: 'announce', value: { host: this.#options.host(), tasks: this.#options.heldTasks(true) } },
        }),
      );
      try {
        const commands = this.client.syncHost(queue, { signal: this.#abort.signal });
        let first = true;
        for await (const command of commands) {
          if (first) this.#setConnected();
          first = false;
          attempt = 0;
          if (command.command.case === 'seedTask') this.#options.onSeedTask(command.command.value);
          else if (command.command.case === 'dropTask') this.#options.onDropTask?.(command.command.value.taskId);
        }
      } catch (err) {
        if (this.#abort.signal.aborted) break;
        if (this.#connected || attempt === 0) log.warn({ err: (err as Error).message }, 'scheduler host stream lost; reconnecting');
      } finally {
        queue.end();
        const was = this.#connected;
        this.#connected = false;
        if (was) this.#options.onConnection?.(false);
      }
      if (this.#abort.signal.aborted) break;
      await sleep(reconnectDelay(attempt++), this.#abort.signal);
    }
  }

  #setConnected(): void {
    this.#connected = true;
    this.#options.onConnection?.(true);
    for (const waiter of [...this.#connectWaiters]) waiter();
  }

  /** Tells the scheduler this host leaves (unless destroyed), then closes the stream. */
  protected async onStop(): Promise<void> {
    if (this.#queue !== undefined && !this.#queue.ended && !this.destroyed.aborted) {
      this.#queue.push(create(HostRequestSchema, { request: { case: 'leave', value: {} } }));
      this.#queue.end();
      await sleep(20, this.destroyed);
    }
    this.#abort.abort();
    await this.#loop;
  }
}

export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
