/**
 * The daemon's schedulers (docs/architecture.md, "Several schedulers"): a
 * host stream to each (./scheduler-link.ts), so that every scheduler knows
 * every host and can ask any seed; each task lives on one of them, the
 * first live one in the task's rendezvous order (common/rendezvous.ts), so
 * that all peers of a task meet in one place with no coordination. When a
 * scheduler's stream goes down, its tasks move to the next in their order:
 * downloads in flight register there again with the pieces they hold
 * (./download/peer-session.ts), and the complete tasks it was told of are
 * announced to the task's new scheduler. Scheduler state stays memory-only.
 *
 * One URL whose host name resolves to several addresses (a DNS name with
 * one record per scheduler, a Kubernetes headless Service) is one scheduler
 * per address, looked up again every RESOLVE_EVERY_MS.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { HeldTask, Host, SeedTask } from '../gen/shoal/v1/scheduler_pb.js';
import { ShoalError } from '../common/errors.js';
import { Service } from '../common/lifecycle.js';
import type { Logger } from '../common/log.js';
import { rendezvousOrder } from '../common/rendezvous.js';
import type { TlsMaterial } from '../identity/tls.js';
import { SchedulerLink, type SchedulerClient } from './scheduler-link.js';

/** How often a scheduler name is looked up again for its addresses. */
const RESOLVE_EVERY_MS = 30_000;
/** Schedulers one daemon keeps streams to, at most (docs/LIMITS.md). */
export const MAX_SCHEDULERS = 64;
/** A complete task is announced to this many of its schedulers, first in its order: its own and the one its tasks move to. */
const HELD_ON = 2;

export interface SchedulerPoolOptions {
  /** As configured: one URL or several. */
  urls: readonly string[];
  host: () => Host;
  heldTasks: () => HeldTask[];
  onSeedTask: (command: SeedTask) => void;
  /** A scheduler asks this host to drop a task (a cache entry removed or expired). */
  onDropTask?: (taskId: string) => void;
  tls?: TlsMaterial | undefined;
  logger: Logger;
  /** Looks a host name up (default: dns.lookup, every address). */
  resolve?: (hostname: string) => Promise<string[]>;
}

async function lookupAll(hostname: string): Promise<string[]> {
  const found = await lookup(hostname, { all: true });
  return [...new Set(found.map((a) => a.address))];
}

/** The scheduler URLs `urls` stands for: a single URL with a host name, one per address it resolves to (else itself). */
export async function expandSchedulers(urls: readonly string[], resolve: (hostname: string) => Promise<string[]> = lookupAll): Promise<string[]> {
  if (urls.length !== 1) return [...new Set(urls)];
  const url = new URL(urls[0]!);
  const name = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(name) !== 0 || name === 'localhost') return [urls[0]!];
  let addresses: string[];
  try {
    addresses = await resolve(name);
  } catch {
    // Not resolvable now: the one URL, which the link keeps retrying.
    return [urls[0]!];
  }
  if (addresses.length <= 1) return [urls[0]!];
  return addresses
    .sort()
    .slice(0, MAX_SCHEDULERS)
    .map((address) => {
      const each = new URL(url);
      each.hostname = isIP(address) === 6 ? `[${address}]` : address;
      return each.toString().replace(/\/$/, '');
    });
}

export class SchedulerPool extends Service {
  protected readonly serviceName = 'scheduler pool';
  readonly #options: SchedulerPoolOptions;
  /** By URL, in the order found. */
  readonly #links = new Map<string, SchedulerLink>();
  /** Per link: the complete tasks announced on its current stream. */
  readonly #announced = new Map<SchedulerLink, Set<string>>();
  #timer: NodeJS.Timeout | undefined;

  constructor(options: SchedulerPoolOptions) {
    super();
    if (options.urls.length === 0) throw new ShoalError('USAGE', 'no scheduler URL');
    if (options.urls.length > MAX_SCHEDULERS) throw new ShoalError('LIMIT_EXCEEDED', `${options.urls.length} schedulers: at most ${MAX_SCHEDULERS}`);
    this.#options = options;
  }

  /** The schedulers' URLs (after a name was resolved). */
  get urls(): string[] {
    return [...this.#links.keys()];
  }

  /** Some scheduler's host stream is up. */
  get connected(): boolean {
    return [...this.#links.values()].some((l) => l.connected);
  }

  /** The URLs of the schedulers whose stream is up. */
  get connectedUrls(): string[] {
    return [...this.#links].filter(([, l]) => l.connected).map(([u]) => u);
  }

  /** `taskId`'s schedulers, in its rendezvous order. */
  order(taskId: string): SchedulerLink[] {
    return rendezvousOrder(taskId, [...this.#links.values()], (l) => l.url);
  }

  /** The scheduler `taskId` lives on: the first in its order whose stream is up (none up: the first). */
  clientFor(taskId: string): SchedulerClient {
    const order = this.order(taskId);
    return (order.find((l) => l.connected) ?? order[0]!).client;
  }

  /** Resolves when some scheduler's stream is up, or after `ms`. */
  /** The client of every scheduler connected now (the first configured one when none is). */
  connectedClients(): SchedulerClient[] {
    const links = [...this.#links.values()];
    const up = links.filter((l) => l.connected);
    return (up.length > 0 ? up : links.slice(0, 1)).map((l) => l.client);
  }

  async waitConnected(ms: number): Promise<boolean> {
    if (this.connected) return true;
    await Promise.race([...this.#links.values()].map((l) => l.waitConnected(ms)));
    return this.connected;
  }

  reportLoad(uploadLoad: number): void {
    for (const l of this.#links.values()) l.reportLoad(uploadLoad);
  }

  reportEvicted(taskIds: string[]): void {
    for (const l of this.#links.values()) l.reportEvicted(taskIds);
    for (const set of this.#announced.values()) for (const id of taskIds) set.delete(id);
  }

  protected async onStart(): Promise<void> {
    await this.#sync();
    this.#timer = setInterval(() => void this.#sync(), RESOLVE_EVERY_MS);
    this.#timer.unref();
  }

  protected async onStop(): Promise<void> {
    clearInterval(this.#timer);
    await Promise.all([...this.#links.values()].map((l) => (this.destroyed.aborted ? l.destroy(this.destroyed.reason) : l.stop())));
  }

  /** Links to the schedulers the URLs stand for now: new ones are opened, gone ones closed. */
  async #sync(): Promise<void> {
    const urls = await expandSchedulers(this.#options.urls, this.#options.resolve);
    if (this.state === 'stopping' || this.state === 'stopped') return;
    for (const [url, link] of [...this.#links]) {
      if (urls.includes(url)) continue;
      this.#links.delete(url);
      this.#announced.delete(link);
      void link.stop();
      this.#moved();
    }
    for (const url of urls) {
      if (this.#links.has(url)) continue;
      const link: SchedulerLink = new SchedulerLink({
        url,
        tls: this.#options.tls,
        host: this.#options.host,
        heldTasks: (newStream) => this.#heldFor(link, newStream),
        onSeedTask: this.#options.onSeedTask,
        onDropTask: this.#options.onDropTask,
        onConnection: (up) => {
          if (up) return;
          // Its tasks move on: their new schedulers hear of the complete ones.
          this.#announced.set(link, new Set());
          this.#moved();
        },
        logger: this.#options.logger.child({ scheduler: url }),
      });
      this.#links.set(url, link);
      this.#announced.set(link, new Set());
      await link.start();
    }
    this.#options.logger.debug({ schedulers: urls }, 'schedulers');
  }

  /**
   * The complete tasks `link` is to hear of that it has not on this stream
   * (`newStream`: it is being opened):
   * those it is among the first HELD_ON live schedulers of (in the task's
   * order), so that when a task's scheduler dies the next already knows
   * who holds it.
   */
  #heldFor(link: SchedulerLink, newStream: boolean): HeldTask[] {
    // A new stream (each attempt to open one) starts with nothing told.
    const sent = newStream ? new Set<string>() : (this.#announced.get(link) ?? new Set<string>());
    this.#announced.set(link, sent);
    const fresh = this.#options.heldTasks().filter((t) => {
      if (sent.has(t.taskId)) return false;
      const live = this.order(t.taskId).filter((l) => l === link || l.connected);
      return live.indexOf(link) < HELD_ON && live.includes(link);
    });
    for (const t of fresh) sent.add(t.taskId);
    return fresh;
  }

  /** A scheduler went away: each live one is told of the complete tasks that moved to it. */
  #moved(): void {
    for (const l of this.#links.values()) l.reannounce();
  }
}
