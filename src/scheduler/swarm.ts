/**
 * The swarm, the scheduler's one entry point for what hosts and peers
 * report (service.ts, preheat.ts): it keeps the picture of hosts, tasks and
 * peers (./model.ts) and the task's digests (./digest-trust.ts), and hands
 * each change to the scheduling (./scheduling.ts), which decides parents,
 * the origin and seeds. Streams are plain callbacks, so tests drive it
 * directly.
 *
 * Lifecycle: `start()` starts the recovery window; `stop()` clears every
 * timer (the swarm holds no sockets). Scheduling rounds run on the next
 * turn (setImmediate, or a simulation's clock: ./timers.ts).
 */
import type { CacheEntry, HeldTask, ImportCacheRequest, PeerResponse, RegisterPeer, TaskMetadata } from '../gen/shoal/v1/scheduler_pb.js';
import { CacheKeeper, checkEntry } from './cache-keeper.js';
import type { SchedulerConfig } from '../common/config/schema.js';
import { ShoalError } from '../common/errors.js';
import type { Lifecycle } from '../common/lifecycle.js';
import type { Logger } from '../common/log.js';
import { originRefused, refusedWith, seedFetchesFirst } from './back-to-source.js';
import { carriesCredentials } from '../common/credentials.js';
import { heldTrust, learnDigests, registerTrust, reportTrust, type TrustPolicy } from './digest-trust.js';
import { accessRequiredMessage, broadcast, broadcastDigests, completeMessage, failedMessage, metadataMessage, parentPiecesMessage, piecesToTell, sendDigests } from './messages.js';
import { HostEntry, PeerEntry, TaskEntry, type HostInfo, type TaskShape } from './model.js';
import { Scheduling } from './scheduling.js';
import { stripeFor } from './stripes.js';
import { NO_EVENTS, type SchedulerEvents } from './events.js';
import { NODE_TIMERS, type SchedulerTimers } from './timers.js';
import { adoptHeldCache, applyCache, holdCache } from './cache-swarm.js';

/** What the swarm is given besides its settings. */
export interface SwarmDeps {
  readonly logger: Logger;
  /** The scheduler's clock, in ms. */
  readonly now: () => number;
  /** Told of registrations, decisions and pieces (metrics); default: nobody. */
  readonly events?: SchedulerEvents;
  /** How it waits (a simulation's virtual clock); default Node's timers. */
  readonly timers?: SchedulerTimers;
}

function shapeOf(metadata: TaskMetadata): TaskShape {
  return { contentLength: metadata.contentLength === undefined ? undefined : Number(metadata.contentLength), pieceSize: metadata.pieceSize };
}

function sameShape(a: TaskShape | undefined, b: TaskShape | undefined): boolean {
  return a?.contentLength === b?.contentLength && a?.pieceSize === b?.pieceSize;
}

export class Swarm implements Lifecycle {
  readonly hosts = new Map<string, HostEntry>();
  readonly tasks = new Map<string, TaskEntry>();
  /** Cache tasks (imported files, no origin) and their copies. */
  readonly cache: CacheKeeper;
  readonly #timers: SchedulerTimers;
  readonly #seedChildren: number;
  readonly #peerChildren: number;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #scheduling: Scheduling;
  readonly #events: SchedulerEvents;
  /** Strict with TLS (roles proven by certificates), open without (./digest-trust.ts). */
  readonly #trust: TrustPolicy;
  #state: 'idle' | 'running' | 'stopped' = 'idle';

  constructor(settings: SchedulerConfig, deps: SwarmDeps) {
    this.#trust = settings.tls === undefined ? 'open' : 'strict';
    this.#events = deps.events ?? NO_EVENTS;
    this.#seedChildren = settings.seedChildren;
    this.#peerChildren = settings.peerChildren;
    this.#log = deps.logger;
    this.#now = deps.now;
    this.#timers = deps.timers ?? NODE_TIMERS;
    this.#scheduling = new Scheduling(this.hosts, this.tasks, settings, deps.logger, deps.now, this.#events, this.#timers);
    this.cache = new CacheKeeper({
      hosts: this.hosts,
      tasks: this.tasks,
      now: deps.now,
      restoreTimeout: settings.cacheRestoreTimeout,
      dropTask: (task) => {
        for (const peer of [...task.peers.values()]) this.#scheduling.removePeer(peer, 'left');
        this.tasks.delete(task.id);
      },
      logger: deps.logger,
    });
  }

  // ---- lifecycle ----

  /** Starts the recovery window; then every task is scheduled again. */
  start(): Promise<void> {
    if (this.#state === 'stopped') return Promise.reject(new ShoalError('USAGE', 'the swarm was stopped; create a new one'));
    if (this.#state === 'idle') {
      this.#state = 'running';
      this.#scheduling.start();
      this.cache.start(this.#timers);
    }
    return Promise.resolve();
  }

  /** Clears every timer; events still update the model, but arm none. */
  stop(): Promise<void> {
    this.#state = 'stopped';
    this.cache.stop();
    this.#scheduling.stop();
    return Promise.resolve();
  }

  /** As stop(): the swarm has no work in flight to abort. */
  destroy(): Promise<void> {
    return this.stop();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  // ---- hosts ----

  announceHost(info: HostInfo, command: HostEntry['command'], held: readonly HeldTask[]): HostEntry {
    let host = this.hosts.get(info.id);
    if (host === undefined) {
      host = new HostEntry(info, command);
      this.hosts.set(info.id, host);
    } else {
      host.info = info;
      host.command = command;
      host.roomChanged();
    }
    host.childLimit = info.seed ? this.#seedChildren : this.#peerChildren;
    for (const item of held) this.#adoptHeld(host, item);
    if (held.length > 0) this.#events.reannounced(held.length);
    this.#log.info({ host: info.id, seed: info.seed, held: held.length }, 'host announced');
    return host;
  }

  updateLoad(hostId: string, load: number): void {
    const host = this.hosts.get(hostId);
    if (host === undefined) return;
    host.info.uploadLoad = load;
    host.roomChanged();
  }

  leaveHost(hostId: string): void {
    const host = this.hosts.get(hostId);
    if (host === undefined) return;
    this.hosts.delete(hostId);
    for (const peer of [...host.peers]) this.#scheduling.removePeer(peer, 'left');
    this.#log.info({ host: hostId }, 'host left');
    this.cache.maintain();
  }

  evict(hostId: string, taskIds: readonly string[]): void {
    const host = this.hosts.get(hostId);
    if (host === undefined) return;
    const evicted = new Set(taskIds);
    for (const peer of [...host.peers]) if (evicted.has(peer.task.id)) this.#scheduling.removePeer(peer, 'left');
    this.cache.maintain();
  }

  // ---- cache tasks ----

  /**
   * A host imported a file as a cache task (ImportCache): the entry is
   * recorded (CACHE_CONFLICT when the ID is taken by other content), the
   * host's copy becomes a complete peer whose digests are the entry's, and
   * missing copies are asked for.
   */
  importCache(host: HostEntry, request: ImportCacheRequest, owner: string): CacheEntry {
    const record = this.cache.adopt(checkEntry(request.entry, request.digests), owner);
    const task = this.#task(record.taskId);
    applyCache(task, record);
    holdCache(host, task, request.peerId, this.#scheduling);
    this.cache.maintain();
    return this.cache.entry(record);
  }

  /** A complete task the host still holds (re-announced after a restart) becomes a peer that serves it. */
  #adoptHeld(host: HostEntry, item: HeldTask): void {
    if (!item.complete || item.metadata === undefined) return;
    if (item.cache !== undefined) {
      const task = adoptHeldCache(this.cache, item, (id) => this.#task(id), this.#log);
      if (task !== undefined) holdCache(host, task, item.peerId, this.#scheduling);
      return;
    }
    const task = this.#task(item.taskId);
    // Pieces of another version than the task's are stale: not a holder of this task.
    if (task.validator !== '' && item.metadata.validator !== task.validator) return;
    if (task.validator === '' && heldTrust(this.#trust, host) === 'trusted') task.validator = item.metadata.validator;
    task.learnShape(shapeOf(item.metadata));
    const existing = host.peerOf(task);
    if (existing !== undefined) this.#scheduling.removePeer(existing, 'left');
    const peer = new PeerEntry(item.peerId, host, task, 'complete');
    for (const n of item.pieces) peer.pieces.add(n);
    broadcastDigests(task, learnDigests(task, item.pieces, item.digests, heldTrust(this.#trust, host)), undefined);
    if (item.private) this.#markPrivate(task);
    task.peers.set(peer.id, peer);
    host.addPeer(peer);
    this.#scheduling.scheduleTask(task);
  }

  /** The task turned out to be fetched with credentials: every peer of it checks its requesters' own from now on. */
  #markPrivate(task: TaskEntry): void {
    if (task.private) return;
    task.private = true;
    broadcast(task, accessRequiredMessage(), undefined);
  }

  // ---- peers ----

  /** A peer opened its AnnouncePeer stream and registered; undefined (the caller ends the stream) before its host announced itself or without a task. */
  register(request: RegisterPeer, send: (response: PeerResponse) => void): PeerEntry | undefined {
    const host = this.hosts.get(request.hostId);
    const spec = request.task;
    if (host === undefined || spec === undefined) return undefined;
    const task = this.#task(spec.taskId);
    if (spec.cacheId !== '') task.cacheId = spec.cacheId;
    task.spec ??= spec;
    if (carriesCredentials(spec)) this.#markPrivate(task);
    const old = task.peers.get(request.peerId);
    if (old !== undefined) this.#scheduling.removePeer(old, 'left');
    // One peer per host and task: a re-registration replaces the old one.
    const other = host.peerOf(task);
    if (other !== undefined && other.id !== request.peerId) this.#scheduling.removePeer(other, 'left');

    this.#events.registered(request.reconnect);
    const peer = new PeerEntry(request.peerId, host, task, 'waiting');
    if (task.stripes > 1) peer.stripe = stripeFor(task.peers.values(), task.stripes);
    peer.send = send;
    peer.reconnected = request.reconnect;
    task.peers.set(peer.id, peer);
    host.addPeer(peer);
    const reported = request.metadata?.validator ?? '';
    // Pieces of another version (validator or length) than the task's are stale: the peer drops them when it hears the task's.
    const stale = (task.validator !== '' && reported !== task.validator) || lengthDiffers(task, request.metadata === undefined ? undefined : shapeOf(request.metadata).contentLength);
    if (!stale && request.metadata !== undefined && request.metadata.pieceSize > 0) task.learnShape(shapeOf(request.metadata));
    if (!stale) for (const n of request.pieces) peer.pieces.add(n);
    // A claim to be fetching from the origin is believed only where anyone is (the open policy).
    const claimsSource = request.backToSource && (this.#trust === 'open' || host.info.seed);
    const trust = stale ? 'none' : registerTrust(this.#trust, host, claimsSource);
    if (trust === 'trusted' && task.validator === '') task.validator = reported;
    broadcastDigests(task, learnDigests(task, request.pieces, request.digests, trust), peer);

    if (task.private) send(accessRequiredMessage());
    if (task.shape !== undefined) send(metadataMessage(task.shape, task.validator));
    sendDigests(peer, [...task.digests.keys()]);
    if (peer.holdsEveryPiece) {
      peer.state = 'complete';
      send(completeMessage());
      return peer;
    }
    if (claimsSource) peer.state = 'source';
    else if (task.cacheId === '' && seedFetchesFirst(peer)) this.#scheduling.toSource(peer, 'seed peer fetches first');
    else this.#scheduling.schedulePeer(peer);
    this.#scheduling.splitIfDue(task);
    this.#scheduling.scheduleTask(task);
    return peer;
  }

  /**
   * The content's shape and version, as the peer fetching from the origin
   * learned them; others only fill in a shape not yet known. A source that
   * finds another version than the task's (another validator or length) starts the
   * task afresh: the old version's digests are forgotten and every other peer
   * of the task fails with SOURCE_CHANGED, since what it holds or is fetching
   * is of the old version (never mixed; docs/reliability.md).
   */
  metadata(peer: PeerEntry, contentLength: number | undefined, pieceSize: number, validator = ''): void {
    const task = peer.task;
    const vouches = peer.state === 'source' && reportTrust(this.#trust, peer) === 'trusted';
    if (vouches && ((task.validator !== '' && validator !== task.validator) || lengthDiffers(task, contentLength))) {
      this.#versionChanged(task, peer, { contentLength, pieceSize }, validator);
      return;
    }
    if (vouches && task.validator === '') task.validator = validator;
    if (peer.state !== 'source' && task.shape !== undefined) return;
    const before = task.shape;
    task.learnShape({ contentLength, pieceSize });
    if (!sameShape(before, task.shape)) broadcast(task, metadataMessage(task.shape!, task.validator), peer);
  }

  #versionChanged(task: TaskEntry, source: PeerEntry, shape: TaskShape, validator: string): void {
    this.#log.warn({ task: task.id, peer: source.id, was: task.validator, now: validator }, 'the origin content changed; the task starts afresh');
    task.digests.clear();
    task.trusted.clear();
    task.shape = shape;
    task.validator = validator;
    source.pieces.clear();
    const message = failedMessage('SOURCE_CHANGED', 'the origin content changed during the download; nothing of the two versions was mixed: run it again', 0);
    const others = [...task.peers.values()].filter((p) => p !== source);
    for (const p of others) {
      if (p.active) p.send?.(message);
      p.send = undefined;
      p.state = 'failed';
    }
    for (const p of others) this.#scheduling.removePeer(p, 'failed');
    this.#scheduling.scheduleTask(task);
  }

  /** A peer verified and stored pieces. */
  piecesFinished(peer: PeerEntry, numbers: readonly number[], digests: Uint8Array): void {
    const task = peer.task;
    const wasServing = peer.canServe;
    const fresh = numbers.filter((n) => peer.pieces.add(n));
    if (fresh.length > 0) {
      const fromOrigin = peer.state === 'source';
      if (fromOrigin) task.originPieces += fresh.length;
      this.#events.piecesReported(fresh.length, fromOrigin);
    }
    if (peer.state === 'waiting' && fresh.length > 0) peer.state = 'running';
    broadcastDigests(task, learnDigests(task, numbers, digests, reportTrust(this.#trust, peer)), peer);
    const now = this.#now();
    if (fresh.length > 0) {
      peer.recordArrivals(fresh, now);
      for (const child of peer.children) {
        const told = piecesToTell(child, peer, fresh);
        if (told.length > 0) child.send?.(parentPiecesMessage(peer, told));
      }
      for (const parent of peer.parents) parent.host.uploads += fresh.length / Math.max(1, peer.parents.size);
    }
    if (!wasServing && peer.canServe) this.#scheduling.scheduleTask(task);
    if (fresh.length > 0) this.#scheduling.piecesReported(task, now);
  }

  finished(peer: PeerEntry): void {
    const task = peer.task;
    peer.state = 'complete';
    // Its parents keep its place spent while it stays (a seed sends each byte about once).
    for (const parent of [...peer.parents]) {
      parent.retiredChildren.set(peer, peer.parentMasks.get(parent));
      peer.unlink(parent);
    }
    if (task.pieceCount !== undefined) peer.pieces.fill(task.pieceCount);
    this.#log.info({ task: task.id, peer: peer.id }, 'peer finished');
    this.#scheduling.scheduleTask(task);
    if (task.cacheId !== '') this.cache.maintain();
  }

  failed(peer: PeerEntry, code: string, message: string, status: number): void {
    const task = peer.task;
    this.#log.warn({ task: task.id, peer: peer.id, code, message }, 'peer failed');
    if (originRefused(peer, code)) {
      peer.state = 'failed';
      const refused = refusedWith(peer);
      for (const p of refused) {
        p.send?.(failedMessage(code, message, status));
        p.send = undefined;
        p.state = 'failed';
      }
      for (const p of refused) this.#scheduling.removePeer(p, 'failed');
      task.seedHost = undefined;
    }
    this.#scheduling.removePeer(peer, 'failed');
    this.#scheduling.scheduleTask(task);
  }

  parentFailed(peer: PeerEntry, parentId: string, corrupt: boolean): void {
    peer.blocked.add(parentId);
    const parent = peer.task.peers.get(parentId);
    if (parent !== undefined) {
      parent.host.uploadFailures += corrupt ? 10 : 1;
      peer.unlink(parent);
    }
    this.#log.warn({ task: peer.task.id, peer: peer.id, parent: parentId, corrupt }, 'parent failed');
    this.#scheduling.schedulePeer(peer, true);
  }

  /** The peer starves and asks again. */
  reschedule(peer: PeerEntry): void {
    this.#scheduling.schedulePeer(peer, true);
  }

  /** The peer's stream closed. A complete peer stays as a holder; others leave. */
  disconnected(peer: PeerEntry): void {
    peer.send = undefined;
    if (peer.state === 'complete') return;
    if (peer.task.peers.get(peer.id) !== peer) return;
    this.#scheduling.removePeer(peer, 'left');
    this.#scheduling.scheduleTask(peer.task);
  }

  #task(id: string): TaskEntry {
    let task = this.tasks.get(id);
    if (task === undefined) {
      task = new TaskEntry(id);
      this.tasks.set(id, task);
      const record = this.cache.byTask(id);
      if (record !== undefined) applyCache(task, record);
    }
    return task;
  }
}

/** Whether a reported content length contradicts the task's known one (another version of the content). */
function lengthDiffers(task: TaskEntry, contentLength: number | undefined): boolean {
  const known = task.shape?.contentLength;
  return known !== undefined && contentLength !== undefined && contentLength !== known;
}
