/**
 * Scheduling: what the swarm does about a peer or a task once the model has
 * changed. A peer gets parents, in a chain (./chain.ts) or split trees
 * (./tree-links.ts), past the child limits when it starves (./starving.ts),
 * or goes to the origin (./back-to-source.ts) unless a seed is asked
 * (./seeds.ts); a task's peers are scheduled again once per tick, its chain
 * becomes split trees when it grows, and it is rebuilt (./rebuild.ts) when
 * the seed's relay leaves or a slow link is measured (./slow-links.ts). The
 * rules are pure functions over the model; this applies them in order,
 * tells the peers (./messages.ts) and holds the timers: the recovery window
 * and the seeds' timeouts.
 */
import type { SchedulerConfig } from '../common/config/schema.js';
import type { Logger } from '../common/log.js';
import type { SchedulerEvents } from './events.js';
import type { SchedulerTimers } from './timers.js';
import { allStripes } from '../common/stripes.js';
import { hasSupply, sourceReason, waitsForSupply } from './back-to-source.js';
import { linkInChain, relinkInChain } from './chain.js';
import { backToSourceMessage, failedMessage, seedTaskCommand, sendParents } from './messages.js';
import type { HostEntry, PeerEntry, PeerState, TaskEntry } from './model.js';
import { unlinkForRebuild } from './rebuild.js';
import { seedHostFor, seedStillExpected } from './seeds.js';
import { dueForMeasure, measureLinks, rebuildDue } from './slow-links.js';
import { linkPastLimits, mayPassLimits } from './starving.js';
import { coveredStripes, isRelay } from './stripes.js';
import { leaveSlowParents, linkStripes } from './tree-links.js';

/** Whether `peer` could use another parent: a stripe without one, or, in a chain, room under the parent limit. */
function wantsParents(peer: PeerEntry, parentLimit: number): boolean {
  const k = peer.task.stripes;
  if (k > 1) return coveredStripes(peer, k) !== allStripes(k);
  return peer.parents.size < parentLimit;
}

/** Whether `peer` is scheduled at all: it is downloading from peers and has a stream to hear its parents on. */
function schedulable(peer: PeerEntry): boolean {
  return peer.active && peer.state !== 'source' && peer.send !== undefined;
}

export class Scheduling {
  readonly #hosts: ReadonlyMap<string, HostEntry>;
  readonly #tasks: Map<string, TaskEntry>;
  readonly #parentLimit: number;
  readonly #sourceLimit: number;
  readonly #stripes: number;
  readonly #stripesFrom: number;
  readonly #seedTimeout: number;
  readonly #recoveryWindow: number;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #timers = new Set<{ cancel(): void }>();
  readonly #clock: SchedulerTimers;
  #stopped = false;
  #startedAt: number | undefined;

  readonly #events: SchedulerEvents;

  constructor(hosts: ReadonlyMap<string, HostEntry>, tasks: Map<string, TaskEntry>, settings: SchedulerConfig, log: Logger, now: () => number, events: SchedulerEvents, clock: SchedulerTimers) {
    this.#events = events;
    this.#clock = clock;
    this.#hosts = hosts;
    this.#tasks = tasks;
    this.#parentLimit = settings.candidateParents;
    this.#sourceLimit = settings.backToSourceLimit;
    this.#stripes = settings.stripes;
    this.#stripesFrom = settings.stripesFrom;
    this.#seedTimeout = settings.seedTimeout;
    this.#recoveryWindow = settings.recoveryWindow;
    this.#log = log;
    this.#now = now;
  }

  /** The recovery window starts: peers re-registering are not sent to the origin until it ends, then every task is scheduled again. */
  start(): void {
    this.#startedAt = this.#now();
    if (this.#recoveryWindow > 0) this.#after(this.#recoveryWindow + 10, () => this.#scheduleAll());
  }

  /** Clears every timer; none is armed after. */
  stop(): void {
    this.#stopped = true;
    for (const timer of this.#timers) timer.cancel();
    this.#timers.clear();
  }

  /** Takes `peer` out of the swarm; its children get parents again, or the trees are rebuilt when it was the seed's relay. */
  removePeer(peer: PeerEntry, state: PeerState): void {
    const wasRelay = peer.task.stripes > 1 && isRelay(peer);
    const orphans = peer.detach(state);
    if (wasRelay) {
      // Every stripe ran through it: one peer again takes them all from the seed.
      this.#rebuild(peer.task, false);
    } else {
      for (const child of orphans) {
        if (child.send === undefined) continue;
        this.#sendParents(child, []);
        this.schedulePeer(child);
      }
    }
    this.scheduleTask(peer.task);
  }

  /** Once per tick: schedules every peer of the task that could use more parents, and forgets the task once it has none. */
  scheduleTask(task: TaskEntry): void {
    if (task.scheduled) return;
    task.scheduled = true;
    this.#clock.soon(() => {
      task.scheduled = false;
      for (const peer of task.peers.values()) if (schedulable(peer) && wantsParents(peer, this.#parentLimit)) this.schedulePeer(peer);
      if (task.stripes > 1) for (const { peer, added } of leaveSlowParents(task, this.#now())) this.#sendParents(peer, added);
      if (task.peers.size === 0) this.#tasks.delete(task.id);
    });
  }

  /** Gives `peer` parents, or decides whether it goes to the origin. `starving`: it asked again. */
  schedulePeer(peer: PeerEntry, starving = false): void {
    if (!schedulable(peer)) return;
    const started = performance.now();
    try {
      this.#schedulePeer(peer, starving);
    } finally {
      this.#events.decided((performance.now() - started) / 1000);
    }
  }

  #schedulePeer(peer: PeerEntry, starving: boolean): void {
    const task = peer.task;
    const now = this.#now();
    let added: PeerEntry[];
    if (task.stripes > 1) {
      added = this.#linkStripes(peer, starving, now);
    } else {
      const links = linkInChain(peer, this.#parentLimit, starving, now);
      if (links === undefined) return;
      if (links.demoted !== undefined) this.#sendParents(links.demoted, [peer]);
      added = links.added;
    }
    if (added.length === 0 && starving && mayPassLimits(peer, now)) added = linkPastLimits(peer, now);
    if (added.length > 0) {
      this.#sendParents(peer, added);
      return;
    }
    if (task.cacheId !== '') {
      // A cache task has no origin: a peer waits for a holder, and hears there is none.
      if (!hasSupply(peer)) this.#noHolder(peer);
      return;
    }
    const recovering = this.#startedAt !== undefined && now - this.#startedAt < this.#recoveryWindow;
    if (waitsForSupply(peer, { sourceLimit: this.#sourceLimit, recovering }) || this.#seedFor(task) !== undefined) return;
    this.toSource(peer, sourceReason([...this.#hosts.values()].some((h) => h.info.seed)));
  }

  /** A peer of a cache task that no connected host holds: it fails with CACHE_NOT_FOUND (there is no origin to send it to). */
  #noHolder(peer: PeerEntry): void {
    this.#log.info({ task: peer.task.id, peer: peer.id, cache: peer.task.cacheId }, 'cache task held nowhere');
    peer.send?.(failedMessage('CACHE_NOT_FOUND', `cache ID ${peer.task.cacheId} is held by no connected host`, 0));
    peer.send = undefined;
    this.removePeer(peer, 'failed');
  }

  toSource(peer: PeerEntry, reason: string): void {
    this.#events.sentToSource(reason, { taskId: peer.task.id, peerId: peer.id, hostId: peer.host.info.id, seed: peer.host.info.seed });
    peer.state = 'source';
    peer.sentToSource = true;
    peer.task.backToSourceCount++;
    this.#log.info({ task: peer.task.id, peer: peer.id, reason }, 'back to source');
    peer.send?.(backToSourceMessage(reason));
  }

  /** A peer registered: a chain that has grown to `stripesFrom` downloading peers becomes split trees. */
  splitIfDue(task: TaskEntry): void {
    if (this.#stripes <= task.stripes || task.downloaders().length < this.#stripesFrom) return;
    task.stripes = this.#stripes;
    // Room is counted in stripes from now on: every peer is looked at again.
    for (const peer of task.peers.values()) task.roomy.add(peer);
    this.#log.info({ task: task.id, stripes: task.stripes, peers: task.peers.size }, 'split trees');
    this.#rebuild(task, true);
  }

  /** A peer reported new pieces at `now`: the task's links are measured, every so often, and rebuilt for slow hosts found. */
  piecesReported(task: TaskEntry, now: number): void {
    if (!dueForMeasure(task, now)) return;
    task.linksMeasuredAt = now;
    for (const f of measureLinks(task, now)) {
      if (f.kind === 'recovered') this.#log.info({ task: task.id, peer: f.peer.id, rate: Math.round(f.rate) }, 'slow link no longer');
      else this.#log.info({ task: task.id, peer: f.peer.id, rate: Math.round(f.rate), parent: f.parent.id, parentRate: Math.round(f.parentRate), parentSent: Math.round(f.parentSent) }, 'slow link measured');
    }
    if (rebuildDue(task, now)) this.#rebuild(task, task.stripes > 1);
  }

  #scheduleAll(): void {
    for (const task of this.#tasks.values()) this.scheduleTask(task);
  }

  #linkStripes(peer: PeerEntry, starving: boolean, now: number): PeerEntry[] {
    const { added, displaced } = linkStripes(peer, starving, now);
    // A leaf that gave up a stripe hears so, and looks for it elsewhere (this peer, usually).
    for (const from of displaced) {
      this.#sendParents(from, []);
      this.schedulePeer(from);
    }
    // The parents gained a stripe to pass on: peers still lacking one may now find it.
    if (added.length > 0) this.scheduleTask(peer.task);
    return added;
  }

  /** Links the task's downloading peers again (./rebuild.ts); `deal`: deal their stripes afresh. */
  #rebuild(task: TaskEntry, deal: boolean): void {
    const rebuild = unlinkForRebuild(task, deal, this.#now());
    for (const p of rebuild.order) {
      if (task.stripes > 1) {
        this.schedulePeer(p);
        continue;
      }
      const added = relinkInChain(p, this.#now());
      if (added.length > 0) this.#sendParents(p, added);
    }
    // Peers not linked again at once hear that their parents are gone (and get one when one frees).
    for (const p of rebuild.order) if (p.parents.size === 0) this.#sendParents(p, []);
    rebuild.keepAges();
  }

  /** The seed host asked for this task, asking one now if none was; undefined when no seed can help. */
  #seedFor(task: TaskEntry): HostEntry | undefined {
    const now = this.#now();
    if (task.seedHost !== undefined) {
      const host = this.#hosts.get(task.seedHost);
      return host !== undefined && seedStillExpected(task, host, now, this.#seedTimeout) ? host : undefined;
    }
    const spec = task.spec;
    const seed = spec === undefined ? undefined : seedHostFor(task.id, this.#hosts.values());
    if (spec === undefined || seed === undefined) return undefined;
    task.seedHost = seed.info.id;
    task.seedRequestedAt = now;
    this.#log.info({ task: task.id, seed: seed.info.id }, 'seed peer asked to fetch');
    seed.command(seedTaskCommand(spec));
    this.#events.seedTriggered('download');
    this.#after(this.#seedTimeout + 10, () => this.scheduleTask(task));
    return seed;
  }

  #sendParents(peer: PeerEntry, added: readonly PeerEntry[]): void {
    if (peer.send === undefined) return;
    if (this.#log.isLevelEnabled('debug')) {
      const parents = [...peer.parents].map((p) => `${p.host.info.ip}${peer.parentMasks.has(p) ? `/${peer.parentMasks.get(p)}` : ''}`);
      this.#log.debug({ task: peer.task.id, peer: peer.host.info.ip, parents, added: added.map((p) => p.host.info.ip) }, 'parents');
    }
    sendParents(peer, added);
  }

  /** Runs `fn` in `ms` (an unref'd timer, cleared by stop()); not once stopped. */
  #after(ms: number, fn: () => void): void {
    if (this.#stopped) return;
    const timer = this.#clock.after(ms, () => {
      this.#timers.delete(timer);
      fn();
    });
    this.#timers.add(timer);
  }
}
