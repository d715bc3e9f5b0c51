/**
 * One task's AnnouncePeer stream, re-opened (and re-registered with what the
 * peer holds) whenever it breaks, so a scheduler restart costs a download
 * nothing but a short pause in new parent assignments.
 *
 * Lifecycle (common/lifecycle.ts): `start()` opens the stream; `stop()` ends
 * it after the messages queued (finished, failed) are sent, waiting
 * STOP_GRACE_MS at most; `destroy()` ends it at once.
 */
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { PeerRequestSchema, type PeerRequest, type PeerResponse, type RegisterPeer } from '../../gen/shoal/v1/scheduler_pb.js';
import { AsyncQueue } from '../../common/async-queue.js';
import { Service, drainWithin } from '../../common/lifecycle.js';
import type { Logger } from '../../common/log.js';
import { reconnectDelay, sleep, type SchedulerClient } from '../scheduler-link.js';

export interface PeerSessionOptions {
  /** The scheduler, or a function that gives the task's scheduler at each (re)connect (./scheduler-pool.ts: it moves when one dies). */
  client: SchedulerClient | (() => SchedulerClient);
  /** Builds the register message; `reconnect` is true after the stream broke. */
  register: (reconnect: boolean) => RegisterPeer;
  onResponse: (response: PeerResponse) => void;
  /** Called when the stream comes up (true) or breaks (false). */
  onConnection: (up: boolean) => void;
  logger: Logger;
}

/** How long stop() waits for the queued messages to be sent. */
const STOP_GRACE_MS = 2000;

export class PeerSession extends Service {
  protected readonly serviceName = 'peer session';
  readonly #options: PeerSessionOptions;
  readonly #abort = new AbortController();
  #queue: AsyncQueue<PeerRequest> | undefined;
  #loop: Promise<void> | undefined;
  #closing = false;

  constructor(options: PeerSessionOptions) {
    super();
    this.#options = options;
  }

  protected async onStart(): Promise<void> {
    this.#loop = this.#run();
  }

  protected async onStop(): Promise<void> {
    this.#closing = true;
    this.#queue?.end();
    await drainWithin(this.#loop!, STOP_GRACE_MS, this.destroyed);
    this.#abort.abort();
    await this.#loop;
  }

  /** Sends a message on the current stream; lost if the stream is down (re-register carries the state). */
  send(request: MessageInitShape<typeof PeerRequestSchema>['request']): void {
    this.#queue?.push(create(PeerRequestSchema, request === undefined ? {} : { request }));
  }

  async #run(): Promise<void> {
    let attempt = 0;
    let reconnect = false;
    while (!this.#abort.signal.aborted && !this.#closing) {
      const queue = new AsyncQueue<PeerRequest>();
      this.#queue = queue;
      queue.push(create(PeerRequestSchema, { request: { case: 'register', value: this.#options.register(reconnect) } }));
      let up = false;
      try {
        const client = typeof this.#options.client === 'function' ? this.#options.client() : this.#options.client;
        for await (const response of client.announcePeer(queue, { signal: this.#abort.signal })) {
          if (!up) {
            up = true;
            attempt = 0;
            this.#options.onConnection(true);
          }
          this.#options.onResponse(response);
        }
        if (this.#closing) break;
      } catch (err) {
        if (this.#abort.signal.aborted || this.#closing) break;
        this.#options.logger.debug({ err: (err as Error).message }, 'peer stream lost; reconnecting');
      } finally {
        queue.end();
        if (up) this.#options.onConnection(false);
      }
      reconnect = true;
      await sleep(reconnectDelay(attempt++), this.#abort.signal);
    }
  }
}
