/**
 * The scheduler's decisions, independent of transport: which parents a peer
 * gets, who goes back to source, when a seed peer is asked to fetch. Streams
 * are plain callbacks, so tests drive it directly.
 */
import { create } from '@bufbuild/protobuf';
import {
  HostCommandSchema,
  PeerResponseSchema,
  type HeldTask,
  type PeerResponse,
  type RegisterPeer,
  type TaskSpec,
} from '../gen/shoal/v1/scheduler_pb.js';
import { silentLogger, type Logger } from '../common/log.js';
import { packDigests, unpackDigests } from '../common/pieces.js';
import { HostEntry, PeerEntry, RATE_WINDOW_MS, TaskEntry, type HostInfo, type PeerState } from './model.js';
import { MAX_STRIPES, allStripes, inStripes } from '../common/stripes.js';
import { pickParents, rankRate, slowerParent, wouldCycle } from './scoring.js';
import { coveredStripes, edgeMask, isRelay, pickStripeParent, stripeDepth, stripeFor, stripeToTake } from './stripes.js';

export interface SwarmOptions {
  /** Parents a downloading peer is given at most. Default 4. */
  candidateParentLimit?: number;
  /** Peers of one task fetching from the origin at once. Default 1. */
  backToSourceLimit?: number;
  /**
   * Children a seed peer may have in one task (0 = its upload slots). 1: the
   * seed sends each byte about once and the rest flows peer to peer.
   * Default 1 (docs/benchmarks.md, lab).
   */
  seedChildren?: number;
  /**
   * Children a normal peer may have in one task (0 = its upload slots). 1
   * lines peers up in a pipeline that keeps every uploader busy. Default 1.
   */
  peerChildren?: number;
  /**
   * Split trees: pieces are dealt into this many stripes, each flowing down a
   * tree of its own (./stripes.ts); the child limits above then do not apply.
   * 1 (the default): one chain of peers behind the seed.
   */
  stripes?: number;
  /**
   * With `stripes` > 1: a task is a chain until this many peers are
   * downloading it, then its peers are dealt into split trees (a chain is
   * faster for a few peers, split trees for many). Default 1: split trees
   * from the first peer.
   */
  stripesFrom?: number;
  /** How long a triggered seed peer may take to register before a normal peer goes to source instead. Default 10 s. */
  seedTimeoutMs?: number;
  /**
   * After the scheduler starts, peers that re-register after losing their
   * stream are not sent to the origin for this long, so the peer that was
   * fetching from it can re-announce first. Default 3 s.
   */
  recoveryWindowMs?: number;
  logger?: Logger;
  now?: () => number;
}

/** How far up its parents a starving peer's supply is looked for (#upstreamFlows). */
const UPSTREAM_HOPS = 256;
/** A holder that got no piece for this long has stalled: the peers below it may go past the child limits. */
const UPSTREAM_STALL_MS = 10_000;

/** How often a task's peers' links are measured (#measureLinks), at most. */
const MEASURE_EVERY_MS = 500;
/** Pieces a parent must hold ahead of a child before the child's pace is held against its link. */
const LAG_PIECES = 4;
/** Rebuilds of one task's chain or trees for slow hosts found, at most one per this long. */
const REBUILD_GAP_MS = 2000;

/** Whether piece n is one `parent` serves `peer` (edgeMask; every piece in a chain). */
function stripesOf(peer: PeerEntry, parent: PeerEntry, k: number): (n: number) => boolean {
  const mask = edgeMask(peer, parent, k);
  return (n) => inStripes(n, k, mask);
}

/** Pieces `parent` holds that `peer` lacks, of those `serves` admits. */
function piecesBehind(peer: PeerEntry, parent: PeerEntry, serves: (n: number) => boolean): number {
  let behind = 0;
  for (const n of parent.pieces) if (serves(n) && !peer.pieces.has(n)) behind++;
  return behind;
}

/** Rendezvous hashing: the same task lands on the same seed while the set of seeds is stable. */
export function rendezvous(taskId: string, hostId: string): number {
  let h = 2166136261;
  const s = taskId + '/' + hostId;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h;
}

export class Swarm {
  readonly hosts = new Map<string, HostEntry>();
  readonly tasks = new Map<string, TaskEntry>();
  readonly #parentLimit: number;
  readonly #seedChildren: number;
  readonly #peerChildren: number;
  readonly #sourceLimit: number;
  readonly #stripes: number;
  readonly #stripesFrom: number;
  readonly #seedTimeout: number;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #recoveryWindow: number;
  readonly #startedAt: number;

  constructor(options: SwarmOptions = {}) {
    this.#parentLimit = options.candidateParentLimit ?? 4;
    this.#seedChildren = options.seedChildren ?? 1;
    this.#peerChildren = options.peerChildren ?? 1;
    this.#sourceLimit = options.backToSourceLimit ?? 1;
    this.#stripes = Math.max(1, Math.min(MAX_STRIPES, Math.floor(options.stripes ?? 1)));
    this.#stripesFrom = Math.max(1, Math.floor(options.stripesFrom ?? 1));
    this.#seedTimeout = options.seedTimeoutMs ?? 10_000;
    this.#log = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
    this.#recoveryWindow = options.recoveryWindowMs ?? 3000;
    this.#startedAt = this.#now();
    if (this.#recoveryWindow > 0) {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        for (const task of this.tasks.values()) this.#scheduleTask(task);
      }, this.#recoveryWindow + 10);
      timer.unref();
      this.#timers.add(timer);
    }
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
    }
    host.childLimit = info.seed ? this.#seedChildren : this.#peerChildren;
    for (const item of held) this.#adoptHeld(host, item);
    this.#log.info({ host: info.id, seed: info.seed, held: held.length }, 'host announced');
    return host;
  }

  updateLoad(hostId: string, load: number): void {
    const host = this.hosts.get(hostId);
    if (host !== undefined) host.info.uploadLoad = load;
  }

  leaveHost(hostId: string): void {
    const host = this.hosts.get(hostId);
    if (host === undefined) return;
    this.hosts.delete(hostId);
    for (const peer of [...host.peers]) this.#removePeer(peer, 'left');
    this.#log.info({ host: hostId }, 'host left');
  }

  evict(hostId: string, taskIds: readonly string[]): void {
    const host = this.hosts.get(hostId);
    if (host === undefined) return;
    for (const peer of [...host.peers]) if (taskIds.includes(peer.task.id)) this.#removePeer(peer, 'left');
  }

  #adoptHeld(host: HostEntry, item: HeldTask): void {
    if (!item.complete || item.metadata === undefined) return;
    const task = this.#task(item.taskId);
    this.#learnShape(task, { contentLength: item.metadata.contentLength === undefined ? undefined : Number(item.metadata.contentLength), pieceSize: item.metadata.pieceSize });
    const existing = [...host.peers].find((p) => p.task === task);
    if (existing !== undefined) this.#removePeer(existing, 'left');
    const peer = new PeerEntry(item.peerId, host, task, 'complete');
    for (const n of item.pieces) peer.pieces.add(n);
    // A complete normal peer's digests stand in until a seed or source vouches for the piece.
    const learned = this.#learnDigests(task, item.pieces, item.digests, host.info.seed ? 'trusted' : 'fallback');
    this.#broadcastDigests(task, learned, undefined);
    task.peers.set(peer.id, peer);
    host.peers.add(peer);
    this.#scheduleTask(task);
  }

  // ---- peers ----

  /** A peer opened its AnnouncePeer stream and registered. */
  register(request: RegisterPeer, send: (response: PeerResponse) => void): PeerEntry | undefined {
    const host = this.hosts.get(request.hostId);
    const spec = request.task;
    // The caller ends the stream; the peer retries once its host stream is up.
    if (host === undefined || spec === undefined) return undefined;
    const task = this.#task(spec.taskId);
    task.spec ??= spec;
    const old = task.peers.get(request.peerId);
    if (old !== undefined) this.#removePeer(old, 'left');
    // One peer per host and task: a re-registration replaces the old one.
    for (const p of host.peers) if (p.task === task && p.id !== request.peerId) this.#removePeer(p, 'left');

    const peer = new PeerEntry(request.peerId, host, task, 'waiting');
    if (task.stripes > 1) peer.stripe = stripeFor(task.peers.values(), task.stripes);
    peer.send = send;
    peer.reconnected = request.reconnect;
    task.peers.set(peer.id, peer);
    host.peers.add(peer);
    if (request.metadata !== undefined && request.metadata.pieceSize > 0) {
      this.#learnShape(task, {
        contentLength: request.metadata.contentLength === undefined ? undefined : Number(request.metadata.contentLength),
        pieceSize: request.metadata.pieceSize,
      });
    }
    for (const n of request.pieces) peer.pieces.add(n);
    // Only a seed or a peer fetching from the origin vouches for digests.
    this.#broadcastDigests(task, this.#learnDigests(task, request.pieces, request.digests, host.info.seed || request.backToSource ? 'trusted' : 'none'), peer);

    if (task.shape !== undefined) send(create(PeerResponseSchema, { response: { case: 'metadata', value: shapeMessage(task) } }));
    this.#sendDigests(peer, [...task.digests.keys()]);

    const count = task.pieceCount;
    if (count !== undefined && peer.pieces.size >= count) {
      peer.state = 'complete';
      send(create(PeerResponseSchema, { response: { case: 'complete', value: {} } }));
      return peer;
    }
    if (request.backToSource) {
      peer.state = 'source';
    } else if (host.info.seed && task.sources().length === 0 && !this.#hasCompletePeer(task, peer)) {
      this.#toSource(peer, 'seed peer fetches first');
    } else {
      this.#schedulePeer(peer);
    }
    if (this.#stripes > task.stripes && this.#downloaders(task).length >= this.#stripesFrom) this.#split(task);
    this.#scheduleTask(task);
    return peer;
  }

  /** The back-to-source peer learned the content's shape from the origin. */
  metadata(peer: PeerEntry, contentLength: number | undefined, pieceSize: number): void {
    const task = peer.task;
    if (peer.state !== 'source' && task.shape !== undefined) return;
    const before = task.shape;
    this.#learnShape(task, { contentLength, pieceSize });
    if (before?.contentLength === task.shape?.contentLength && before?.pieceSize === task.shape?.pieceSize) return;
    const message = create(PeerResponseSchema, { response: { case: 'metadata', value: shapeMessage(task) } });
    for (const p of task.peers.values()) if (p !== peer && p.active) p.send?.(message);
  }

  /** A peer verified and stored pieces. */
  piecesFinished(peer: PeerEntry, numbers: readonly number[], digests: Uint8Array): void {
    const task = peer.task;
    const wasServing = peer.canServe;
    const fresh = numbers.filter((n) => !peer.pieces.has(n));
    for (const n of fresh) peer.pieces.add(n);
    if (peer.state === 'waiting' && fresh.length > 0) peer.state = 'running';
    const trusted = peer.seedLike;
    this.#broadcastDigests(task, this.#learnDigests(task, numbers, digests, trusted ? 'trusted' : 'none'), peer);
    const now = this.#now();
    if (fresh.length > 0) {
      peer.recordArrivals(fresh, now);
      for (const child of peer.children) {
        child.send?.(create(PeerResponseSchema, { response: { case: 'parentPieces', value: { peerId: peer.id, numbers: fresh } } }));
      }
      for (const parent of peer.parents) parent.host.uploads += fresh.length / Math.max(1, peer.parents.size);
    }
    if (!wasServing && peer.canServe) this.#scheduleTask(task);
    if (fresh.length > 0 && now - task.linksMeasuredAt >= MEASURE_EVERY_MS) {
      task.linksMeasuredAt = now;
      this.#measureLinks(task, now);
    }
  }

  finished(peer: PeerEntry): void {
    const task = peer.task;
    peer.state = 'complete';
    for (const parent of [...peer.parents]) {
      parent.retiredChildren.set(peer, peer.parentMasks.get(parent));
      peer.unlink(parent);
    }
    if (task.pieceCount !== undefined) for (let n = 0; n < task.pieceCount; n++) peer.pieces.add(n);
    this.#log.info({ task: task.id, peer: peer.id }, 'peer finished');
    this.#scheduleTask(task);
  }

  failed(peer: PeerEntry, code: string, message: string, status: number): void {
    const task = peer.task;
    const wasSource = peer.state === 'source';
    this.#log.warn({ task: task.id, peer: peer.id, code, message }, 'peer failed');
    if (wasSource && code.startsWith('SOURCE_')) {
      // The origin said no: everyone who has no other supply would hear the same.
      // Decided before the source is removed, so its orphans are not sent to the origin instead.
      peer.state = 'failed';
      const response = failed(code, message, status);
      const doomed = [...task.peers.values()].filter((p) => p !== peer && p.active && !this.#hasSupply(p));
      for (const p of doomed) {
        p.send?.(response);
        p.send = undefined;
        p.state = 'failed';
      }
      for (const p of doomed) this.#removePeer(p, 'failed');
      task.seedHost = undefined;
    }
    this.#removePeer(peer, 'failed');
    this.#scheduleTask(task);
  }

  parentFailed(peer: PeerEntry, parentId: string, corrupt: boolean): void {
    peer.blocked.add(parentId);
    const parent = peer.task.peers.get(parentId);
    if (parent !== undefined) {
      parent.host.uploadFailures += corrupt ? 10 : 1;
      peer.unlink(parent);
    }
    this.#log.warn({ task: peer.task.id, peer: peer.id, parent: parentId, corrupt }, 'parent failed');
    this.#schedulePeer(peer, true);
  }

  reschedule(peer: PeerEntry): void {
    this.#schedulePeer(peer, true);
  }

  /** The peer's stream closed. A complete peer stays as a holder; others leave. */
  disconnected(peer: PeerEntry): void {
    peer.send = undefined;
    if (peer.state === 'complete') return;
    if (peer.task.peers.get(peer.id) !== peer) return;
    this.#removePeer(peer, 'left');
    this.#scheduleTask(peer.task);
  }

  close(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }

  // ---- decisions ----

  #task(id: string): TaskEntry {
    let task = this.tasks.get(id);
    if (task === undefined) {
      task = new TaskEntry(id);
      this.tasks.set(id, task);
    }
    return task;
  }

  #learnShape(task: TaskEntry, shape: { contentLength: number | undefined; pieceSize: number }): void {
    if (task.shape === undefined || task.shape.contentLength === undefined) task.shape = shape;
  }

  /**
   * Records reported digests; returns the piece numbers whose digest is new or
   * changed. A trusted digest (seed, back-to-source peer) replaces a fallback
   * one and is never replaced; a fallback digest only fills a gap.
   */
  #learnDigests(task: TaskEntry, numbers: readonly number[], packed: Uint8Array, trust: 'trusted' | 'fallback' | 'none'): number[] {
    const reported = trust === 'none' ? undefined : unpackDigests(numbers, packed);
    const fresh: number[] = [];
    for (const [n, digest] of reported ?? []) {
      const known = task.digests.get(n);
      if (known !== undefined && (task.trusted.has(n) || trust === 'fallback')) continue;
      if (known !== undefined && digest.equals(known)) {
        task.trusted.add(n);
        continue;
      }
      task.digests.set(n, digest);
      if (trust === 'trusted') task.trusted.add(n);
      fresh.push(n);
    }
    return fresh;
  }

  #broadcastDigests(task: TaskEntry, numbers: number[], except: PeerEntry | undefined): void {
    if (numbers.length === 0) return;
    for (const p of task.peers.values()) if (p !== except && p.active) this.#sendDigests(p, numbers);
  }

  #sendDigests(peer: PeerEntry, numbers: number[]): void {
    if (numbers.length === 0 || peer.send === undefined) return;
    const digests = numbers.map((n) => peer.task.digests.get(n)!);
    peer.send(create(PeerResponseSchema, { response: { case: 'digests', value: { numbers, digests: packDigests(digests) } } }));
  }

  #hasCompletePeer(task: TaskEntry, except: PeerEntry): boolean {
    for (const p of task.peers.values()) if (p !== except && p.state === 'complete' && p.host !== except.host) return true;
    return false;
  }

  #toSource(peer: PeerEntry, reason: string): void {
    peer.state = 'source';
    peer.task.backToSourceCount++;
    this.#log.info({ task: peer.task.id, peer: peer.id, reason }, 'back to source');
    peer.send?.(create(PeerResponseSchema, { response: { case: 'backToSource', value: { reason } } }));
  }

  /** Gives `peer` parents up to the limit, or decides who goes to the origin. */
  #schedulePeer(peer: PeerEntry, force = false): void {
    if (!peer.active || peer.state === 'source' || peer.send === undefined) return;
    const task = peer.task;
    let picked: PeerEntry[];
    if (task.stripes > 1) {
      picked = this.#linkStripes(peer, force);
    } else {
      const room = this.#parentLimit - peer.parents.size;
      if (room <= 0 && !force) return;
      picked = pickParents(peer, task.peers.values(), Math.max(room, force ? 1 : 0));
      const place = peer.parents.size === 0 && picked.length > 0 && picked.every((p) => slowerParent(peer, p)) ? this.#chainPlaceToTake(peer) : undefined;
      if (place !== undefined) picked = [place.parent];
      for (const parent of picked) peer.link(parent, this.#now());
      if (place !== undefined) {
        // The slow host goes one hop down, under this peer; its own children stay with it.
        place.from.unlink(place.parent);
        place.from.link(peer, this.#now());
        this.#sendParents(place.from, [peer]);
      }
    }
    // Starving (it asked again) with no parent able to serve it, and no pieces
    // coming down to those parents either: past the child limits, a normal
    // peer first; a seed (whose upload crosses the origin's link) only when no
    // one else can serve. Such a parent serves every piece.
    if (picked.length === 0 && force && ![...peer.parents].some((p) => p.canServe) && !this.#upstreamFlows(peer)) {
      const others = [...task.peers.values()].filter((p) => !p.host.info.seed);
      picked = pickParents(peer, others, 1, true);
      if (picked.length === 0) picked = pickParents(peer, task.peers.values(), 1, true);
      for (const parent of picked) peer.link(parent, this.#now());
    }
    if (picked.length > 0) {
      this.#sendParents(peer, picked);
      return;
    }
    // Pieces will keep coming while a source or a complete peer this peer may use exists.
    if (this.#hasSupply(peer)) return;
    // Right after a restart, peers re-register one by one: give the old source time to come back.
    if (peer.reconnected && this.#now() - this.#startedAt < this.#recoveryWindow) return;
    if (task.sources().length >= this.#sourceLimit) return;
    if (this.#seedFor(task) !== undefined) return;
    this.#toSource(peer, this.#seedHosts().length === 0 ? 'no seed peer' : 'seed peer unavailable');
  }

  /**
   * In a chain, the place a peer about to go under a much slower host
   * (slowerParent) takes instead: that of the first slow host in the chain
   * whose own parent is not slow, nearest the seed first. The slow host then
   * takes this peer as its parent, so fast peers gather at the chain's head
   * and slow ones at its tail (docs/design.md, "Slow links").
   */
  #chainPlaceToTake(peer: PeerEntry): { parent: PeerEntry; from: PeerEntry } | undefined {
    let best: { parent: PeerEntry; from: PeerEntry } | undefined;
    for (const from of this.#downloaders(peer.task)) {
      if (from === peer || from.host === peer.host || from.parents.size !== 1 || !slowerParent(peer, from)) continue;
      const parent = [...from.parents][0]!;
      if (parent.host === peer.host || peer.blocked.has(parent.id) || slowerParent(peer, parent) || wouldCycle(peer, parent)) continue;
      if (parent.seedLike) return { parent, from };
      best ??= { parent, from };
    }
    return best;
  }

  /** Split trees: links a parent for each stripe `peer` lacks one for, where one can serve it; returns the parents added to. */
  #linkStripes(peer: PeerEntry, starving: boolean): PeerEntry[] {
    const k = peer.task.stripes;
    const covered = coveredStripes(peer, k);
    const picked = new Set<PeerEntry>();
    const moved: PeerEntry[] = [];
    for (let s = 0; s < k; s++) {
      const bit = 1 << s;
      if ((covered & bit) !== 0) continue;
      const parent = pickStripeParent(peer, peer.task.peers.values(), s, k, starving);
      // A peer that passes stripe s on takes a leaf's place when that is
      // higher up the tree than the free one: peers that arrive after the
      // leaves still get the places near the top. Under a much slower host
      // (slowerParent) only when nothing else is left.
      const taken = stripeToTake(peer, peer.task.peers.values(), s, k);
      if (parent !== undefined && (taken === undefined || slowerParent(peer, taken.root) || stripeDepth(taken.root, s, k) >= stripeDepth(parent, s, k))) {
        peer.link(parent, this.#now(), bit);
        picked.add(parent);
        continue;
      }
      if (taken === undefined) {
        const slow = pickStripeParent(peer, peer.task.peers.values(), s, k, starving, true);
        if (slow !== undefined) {
          peer.link(slow, this.#now(), bit);
          picked.add(slow);
        }
        continue;
      }
      taken.from.dropStripes(taken.root, bit);
      moved.push(taken.from);
      peer.link(taken.root, this.#now(), bit);
      picked.add(taken.root);
    }
    // A peer that gave up a stripe hears so, and looks for it elsewhere (this peer, usually).
    for (const from of moved) {
      this.#sendParents(from, []);
      this.#schedulePeer(from);
    }
    // The parents gained a stripe to pass on: peers still lacking one may now find it.
    if (picked.size > 0) this.#scheduleTask(peer.task);
    return [...picked];
  }

  /** Peers fetching the task from peers, in the order they came (not seeds, not the origin's fetcher, not complete). */
  #downloaders(task: TaskEntry): PeerEntry[] {
    return [...task.peers.values()].filter((p) => p.fetching && !p.host.info.seed);
  }

  /**
   * The task has grown past `stripesFrom`: its chain becomes split trees. The
   * downloading peers are dealt stripes in the order they came (the chain's
   * order, so those near its head pass on a stripe near the trees' tops;
   * announced slow links last), lose their chain parents and are linked
   * again, one parent per stripe; the first becomes the seed's relay. Pieces in flight at the switch may
   * be fetched twice (the seed sent 2 of 191 again at N = 40 in the lab).
   */
  #split(task: TaskEntry): void {
    task.stripes = this.#stripes;
    this.#log.info({ task: task.id, stripes: task.stripes, peers: task.peers.size }, 'split trees');
    this.#rebuildTrees(task, true);
  }

  /**
   * Unlinks every downloading peer of the task and links them again, the
   * fastest links first (rankRate: announced or measured slow; unknown counts as fast),
   * then in the order they came: the first takes every stripe from the seed
   * (the relay), and slow hosts end up at the trees' bottoms.
   * `deal`: deal the stripes they pass on afresh, round-robin. Pieces held
   * stay held; only the trees change.
   */
  #rebuildTrees(task: TaskEntry, deal: boolean): void {
    const k = task.stripes;
    task.rebuiltAt = this.#now();
    task.rebuildForSlow = false;
    // Fastest links first (unknown counts as fast): the relay and the trees' tops, or the chain's head.
    const moving = this.#downloaders(task).sort((a, b) => (rankRate(a) === rankRate(b) ? 0 : rankRate(a) > rankRate(b) ? -1 : 1));
    // An edge made again as it was (same parent, same stripes) keeps its age (#measureLinks).
    const before = new Map(moving.map((p) => [p, new Map([...p.linkedAt].map(([parent, at]) => [parent, { at, mask: p.parentMasks.get(parent) }]))]));
    moving.forEach((p, i) => {
      if (deal) p.stripe = i % k;
      for (const parent of [...p.parents]) p.unlink(parent);
    });
    for (const p of moving) {
      if (k > 1) {
        this.#schedulePeer(p);
        continue;
      }
      // A chain: one parent each, in this order, so that the first do not take
      // the later ones as extra parents (the task's next round adds any room).
      const picked = pickParents(p, task.peers.values(), 1);
      for (const parent of picked) p.link(parent, this.#now());
      if (picked.length > 0) this.#sendParents(p, picked);
    }
    // Peers not linked again at once hear that their chain parent is gone (and get one when it frees).
    for (const p of moving) if (p.parents.size === 0) this.#sendParents(p, []);
    for (const [p, edges] of before) {
      for (const [parent, was] of edges) if (p.parents.has(parent) && p.parentMasks.get(parent) === was.mask) p.linkedAt.set(parent, was.at);
    }
  }

  /**
   * Finds hosts with slow links where none announced its rate, from the
   * piece reports. A downloading peer is slow when one of its parents (linked
   * for a window at least) holds LAG_PIECES pieces or more that it is to
   * serve the peer and the peer lacks, and
   *  - the peer downloaded, from everyone, at under a third of the parent's
   *    own download rate, and never (HostEntry.peakRate) at half of it, and
   *  - the parent's children together took from it under three quarters of
   *    that rate: it had upload to spare (a link's upload is taken to match
   *    its download), so the peer's pace is its own link's.
   * A fast peer under a slow parent is not slow: the parent's rate is as low
   * as its; nor is one that a busy parent's other children outpace. A seed's
   * upload is not measured: a slow host right under the seed (the chain's
   * head, the trees' relay) is found only if the seed announces its rate
   * (`upload.rate` on the seed hosts) or the host its own.
   * The chain or the trees are then rebuilt, fastest first (rankRate), at most
   * once every REBUILD_GAP_MS.
   */
  #measureLinks(task: TaskEntry, now: number): void {
    const pieceSize = task.shape?.pieceSize;
    if (pieceSize === undefined) return;
    const k = task.stripes;
    for (const peer of this.#downloaders(task)) {
      const rate = peer.recentRate(now, pieceSize);
      if (rate === undefined) continue;
      const host = peer.host;
      host.peakRate = Math.max(host.peakRate, rate);
      if (host.measuredSlow && host.peakRate > 2 * host.slowRate) {
        // Twice as fast as when it was found slow: it was not its link (a busy machine, a cold start).
        host.slowRate = 0;
        this.#log.info({ task: task.id, peer: peer.id, rate: Math.round(rate) }, 'slow link no longer');
      }
      if (host.measuredSlow || host.info.uploadRate > 0) continue;
      for (const parent of peer.parents) {
        // An edge younger than a window is judged on the pace of whatever fed the peer before.
        if (now - (peer.linkedAt.get(parent) ?? now) < RATE_WINDOW_MS) continue;
        // A seed is measured by the rate it announces, if any: it downloads from the origin, not from peers.
        const fed = parent.fetching ? parent.recentRate(now, pieceSize) : parent.seedLike && parent.host.info.uploadRate > 0 ? parent.host.info.uploadRate : undefined;
        // Its pace now, and its best so far: a fast host slowed for a while (a busy machine) is not slow.
        if (fed === undefined || rate * 3 >= fed || host.peakRate * 2 >= fed) continue;
        if (piecesBehind(peer, parent, stripesOf(peer, parent, k)) < LAG_PIECES) continue;
        // The parent had upload to spare: its children together took well under what it took in.
        // (A child too new to have a rate leaves that unknown.)
        let sent: number | undefined = 0;
        for (const child of parent.children) {
          const took = child.recentRate(now, pieceSize, stripesOf(child, parent, k));
          sent = took === undefined || sent === undefined ? undefined : sent + took;
        }
        if (sent === undefined || sent >= 0.75 * fed) continue;
        host.slowRate = host.peakRate;
        task.rebuildForSlow = true;
        this.#log.info({ task: task.id, peer: peer.id, rate: Math.round(rate), parent: parent.id, parentRate: Math.round(fed), parentSent: Math.round(sent) }, 'slow link measured');
        break;
      }
    }
    if (task.rebuildForSlow && now - task.rebuiltAt >= REBUILD_GAP_MS) this.#rebuildTrees(task, k > 1);
  }

  /** Whether `peer` could use another parent (a stripe without one, or room under the parent limit). */
  #wantsParents(peer: PeerEntry): boolean {
    const k = peer.task.stripes;
    if (k > 1) return coveredStripes(peer, k) !== allStripes(k);
    return peer.parents.size < this.#parentLimit;
  }

  /**
   * Whether pieces are on their way down to `peer`: up its parents, the first
   * peer that holds any is a root (seed, source, complete) or got a piece
   * lately. A peer deep in a chain that is still filling waits for its turn
   * instead of taking a parent past the limits, whose upload would then be
   * split between the chain and it (the whole chain slowed to that share).
   */
  #upstreamFlows(peer: PeerEntry): boolean {
    const now = this.#now();
    let current = peer;
    for (let hops = 0; hops < UPSTREAM_HOPS; hops++) {
      const up = [...current.parents].find((p) => p.active || p.state === 'complete');
      if (up === undefined) return false;
      if (up.state === 'complete' || up.seedLike) return true;
      if (up.lastPieceAt !== undefined) return now - up.lastPieceAt < UPSTREAM_STALL_MS;
      current = up;
    }
    return false;
  }

  #hasSupply(peer: PeerEntry): boolean {
    for (const p of peer.task.peers.values()) {
      if ((p.state === 'source' || p.state === 'complete') && p.host !== peer.host && !peer.blocked.has(p.id)) return true;
    }
    return false;
  }

  /** The seed host asked for this task, asking one now if needed; undefined when no seed can help. */
  #seedFor(task: TaskEntry): HostEntry | undefined {
    const now = this.#now();
    if (task.seedHost !== undefined) {
      const host = this.hosts.get(task.seedHost);
      if (host !== undefined && now - task.seedRequestedAt < this.#seedTimeout) return host;
      if (host !== undefined && [...host.peers].some((p) => p.task === task && p.active)) return host;
      return undefined;
    }
    const seeds = this.#seedHosts();
    if (seeds.length === 0 || task.spec === undefined) return undefined;
    seeds.sort((a, b) => rendezvous(task.id, b.info.id) - rendezvous(task.id, a.info.id));
    const seed = seeds[0]!;
    task.seedHost = seed.info.id;
    task.seedRequestedAt = now;
    this.#log.info({ task: task.id, seed: seed.info.id }, 'seed peer asked to fetch');
    seed.command(create(HostCommandSchema, { command: { case: 'seedTask', value: { task: task.spec as TaskSpec } } }));
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.#scheduleTask(task);
    }, this.#seedTimeout + 10);
    timer.unref();
    this.#timers.add(timer);
    return seed;
  }

  #seedHosts(): HostEntry[] {
    return [...this.hosts.values()].filter((h) => h.info.seed);
  }

  #sendParents(peer: PeerEntry, added: PeerEntry[]): void {
    const send = peer.send;
    if (send === undefined) return;
    if (this.#log.isLevelEnabled('debug')) {
      const parents = [...peer.parents].map((p) => `${p.host.info.ip}${peer.parentMasks.has(p) ? `/${peer.parentMasks.get(p)}` : ''}`);
      this.#log.debug({ task: peer.task.id, peer: peer.host.info.ip, parents, added: added.map((p) => p.host.info.ip) }, 'parents');
    }
    send(
      create(PeerResponseSchema, {
        response: {
          case: 'parents',
          value: {
            parents: [...peer.parents].map((p) => {
              const mask = peer.parentMasks.get(p);
              return {
                peerId: p.id,
                hostId: p.host.info.id,
                ip: p.host.info.ip,
                port: p.host.info.port,
                seed: p.host.info.seed,
                ...(mask === undefined ? {} : { stripes: peer.task.stripes, stripeMask: mask }),
              };
            }),
          },
        },
      }),
    );
    for (const parent of added) {
      if (parent.pieces.size === 0) continue;
      send(create(PeerResponseSchema, { response: { case: 'parentPieces', value: { peerId: parent.id, numbers: [...parent.pieces] } } }));
    }
  }

  /** Re-runs scheduling for every peer of the task that could use more parents (once per tick). */
  #scheduleTask(task: TaskEntry): void {
    if (task.scheduled) return;
    task.scheduled = true;
    setImmediate(() => {
      task.scheduled = false;
      for (const peer of task.peers.values()) {
        if (peer.active && peer.state !== 'source' && this.#wantsParents(peer)) this.#schedulePeer(peer);
      }
      if (task.stripes > 1) this.#leaveSlowParents(task);
      this.#forgetIfEmpty(task);
    });
  }

  /**
   * A peer that took a stripe from a much slower host (slowerParent: the last
   * resort when nothing else was free) moves to a faster parent for it as
   * soon as one has room, as peers arrive or leave. A slow peer under a slow
   * host moves to a complete peer much faster than that host: once the fast
   * peers are done, their upload serves the slow ones' tail.
   */
  #leaveSlowParents(task: TaskEntry): void {
    const k = task.stripes;
    const complete = [...task.peers.values()].filter((p) => p.state === 'complete' && !p.host.info.seed);
    for (const peer of this.#downloaders(task)) {
      if (peer.send === undefined) continue;
      const added: PeerEntry[] = [];
      for (const [parent, mask] of [...peer.parentMasks]) {
        // A slow host's child, itself slow, moves to a complete peer much faster than that parent.
        const faster = slowerParent(peer, parent) ? [...task.peers.values()] : parent.state === 'complete' ? [] : complete.filter((c) => slowerParent(c, parent));
        if (faster.length === 0) continue;
        for (let s = 0; s < k; s++) {
          const bit = 1 << s;
          if ((mask & bit) === 0) continue;
          const better = pickStripeParent(peer, faster, s, k);
          if (better === undefined) continue;
          peer.dropStripes(parent, bit);
          peer.link(better, this.#now(), bit);
          added.push(better);
        }
      }
      if (added.length > 0) this.#sendParents(peer, added);
    }
  }

  #removePeer(peer: PeerEntry, state: PeerState): void {
    // Every stripe ran through the seed's relay: rebuild the trees, so that one peer again takes them all from the seed.
    const relay = peer.task.stripes > 1 && isRelay(peer);
    peer.state = state;
    peer.send = undefined;
    peer.host.peers.delete(peer);
    if (peer.task.peers.get(peer.id) === peer) peer.task.peers.delete(peer.id);
    for (const other of peer.task.peers.values()) other.retiredChildren.delete(peer);
    for (const parent of [...peer.parents]) peer.unlink(parent);
    const orphans = [...peer.children];
    for (const child of orphans) child.unlink(peer);
    if (relay) {
      this.#rebuildTrees(peer.task, false);
    } else {
      for (const child of orphans) {
        if (child.send === undefined) continue;
        this.#sendParents(child, []);
        this.#schedulePeer(child);
      }
    }
    this.#scheduleTask(peer.task);
  }

  #forgetIfEmpty(task: TaskEntry): void {
    if (task.peers.size === 0) this.tasks.delete(task.id);
  }
}

function shapeMessage(task: TaskEntry): { contentLength?: bigint; pieceSize: number } {
  const shape = task.shape!;
  return shape.contentLength === undefined ? { pieceSize: shape.pieceSize } : { contentLength: BigInt(shape.contentLength), pieceSize: shape.pieceSize };
}

function failed(code: string, message: string, status = 0): PeerResponse {
  return create(PeerResponseSchema, { response: { case: 'failed', value: { code, message, status } } });
}
