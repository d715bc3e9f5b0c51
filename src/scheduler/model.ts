/** The scheduler's in-memory picture of hosts, tasks and peers. */
import type { HostCommand, PeerResponse, TaskSpec } from '../gen/shoal/v1/scheduler_pb.js';
import { MAX_PIECES, pieceCount } from '../common/pieces.js';
import { PieceSet } from './piece-set.js';

export interface HostInfo {
  id: string;
  hostname: string;
  ip: string;
  port: number;
  idc: string;
  location: string;
  seed: boolean;
  uploadSlots: number;
  uploadLoad: number;
  uploadRate: number;
  /** The name in the certificate its host stream showed (empty without TLS); children check their parent's. */
  identity: string;
}

export class HostEntry {
  info: HostInfo;
  /** Its peers, one per task (a host registering a task again replaces its peer). */
  readonly #peers = new Map<TaskEntry, PeerEntry>();
  /** Pushes a command down the host's SyncHost stream. */
  command: (command: HostCommand) => void;
  /** Pieces this host served that a child reported as failed or corrupt. */
  uploadFailures = 0;
  /** Pieces children reported receiving from this host (approximate, from parent counts). */
  uploads = 0;
  /** Children one peer of this host may have in one task (the scheduler's cap; 0 = its upload slots). */
  childLimit = 0;
  /**
   * The highest download rate, in bytes/s, that one of this host's peers
   * kept up over RATE_WINDOW_MS (PeerEntry.recentRate): a lower bound on its
   * link. 0 until measured.
   */
  peakRate = 0;
  /**
   * Its best rate when it was measured slow (slow-links.ts: a parent ahead
   * of it took pieces in three times as fast, with upload to spare), in
   * bytes/s; 0 when not. Its link then counts as peakRate, as an announced
   * `upload.rate` would (scoring.ts, linkRate), until it goes twice as fast.
   */
  slowRate = 0;

  get measuredSlow(): boolean {
    return this.slowRate > 0;
  }

  get peers(): IterableIterator<PeerEntry> {
    return this.#peers.values();
  }

  /** Its peer in `task`, if it has one. */
  peerOf(task: TaskEntry): PeerEntry | undefined {
    return this.#peers.get(task);
  }

  addPeer(peer: PeerEntry): void {
    this.#peers.set(peer.task, peer);
  }

  removePeer(peer: PeerEntry): void {
    if (this.#peers.get(peer.task) === peer) this.#peers.delete(peer.task);
  }

  /** Its load or limits changed: each of its peers may have room again (TaskEntry.roomy). */
  roomChanged(): void {
    for (const peer of this.#peers.values()) {
      peer.task.roomy.add(peer);
      peer.task.rootish.add(peer);
    }
  }

  constructor(info: HostInfo, command: (command: HostCommand) => void) {
    this.info = info;
    this.command = command;
  }
}

/** The window over which a peer's download rate is measured (PeerEntry.recentRate). */
export const RATE_WINDOW_MS = 1500;
/** New pieces a peer remembers for it (a window of 1 MiB pieces past 1 Gbit/s; faster, the rate is taken over what they span). */
const RATE_SAMPLES = 256;

export type PeerState = 'waiting' | 'running' | 'source' | 'complete' | 'failed' | 'left';

export interface TaskShape {
  contentLength: number | undefined;
  pieceSize: number;
}

/** The shape a task has once `reported` is learned: one with a content length is kept, else the report replaces it. */
export function learnedShape(known: TaskShape | undefined, reported: TaskShape | undefined): TaskShape | undefined {
  return known?.contentLength !== undefined || reported === undefined ? known : reported;
}

/** How many pieces a task of `shape` can have: its piece count, or MAX_PIECES while its length is unknown. */
export function pieceLimit(shape: TaskShape | undefined): number {
  return shape?.contentLength === undefined ? MAX_PIECES : pieceCount(shape.contentLength, shape.pieceSize);
}

export class TaskEntry {
  readonly id: string;
  spec: TaskSpec | undefined;
  /** Fetched with credentials by someone (../common/credentials.ts): peers check each requester's own with the origin. */
  private = false;
  /** The version of the origin's content its pieces and digests are of (a seed's or source's word); empty: not known. */
  validator = '';
  /** Pieces reported by peers fetching from the origin (over pieceCount: the copies the origin sent). */
  originPieces = 0;
  shape: TaskShape | undefined;
  /** Authoritative piece digests, from seed peers and back-to-source peers. */
  readonly digests = new Map<number, Uint8Array>();
  /** Pieces whose digest came from a seed or back-to-source peer (not a fallback from a normal peer). */
  readonly trusted = new Set<number>();
  readonly peers = new Map<string, PeerEntry>();
  /** Host asked to seed this task, and when. */
  seedHost: string | undefined;
  seedRequestedAt = 0;
  /** A cache task's cache ID (no origin: nobody is ever sent to a source); '' for a task with a URL. */
  cacheId = '';
  /** Back-to-source orders given over the task's life (for status). */
  backToSourceCount = 0;
  scheduled = false;
  /** Stripes this task's pieces are dealt into: 1 (a chain) until it has enough peers for split trees. */
  stripes = 1;
  /** When its peers' links were last measured (slow-links.ts; the scheduler's clock). */
  linksMeasuredAt = 0;
  /** When its chain or trees were last rebuilt (rebuild.ts). */
  rebuiltAt = 0;
  /** A host of its was measured slow since the last rebuild: rebuild when REBUILD_GAP_MS have passed. */
  rebuildForSlow = false;
  /**
   * Peers that may have room for another child: every peer whose room or
   * standing as a parent changed (its state, its parents, a child gone)
   * since it was last found full (stripes.ts, mayHaveRoom). A superset of
   * the peers with room, so that a search for a parent with room looks at
   * these, not at every peer of the task (docs/design.md, "Cost at scale").
   */
  readonly roomy = new Set<PeerEntry>();
  /**
   * Peers that may be roots of the split trees (a seed, a source, the seed's
   * relay, a complete peer): each peer whose state or parents changed since
   * it was last found not to be one (stripes.ts, stripeToTake). A superset.
   */
  readonly rootish = new Set<PeerEntry>();
  /** Peers made for it so far: each peer's `order`, the order they joined the task. */
  joined = 0;

  constructor(id: string) {
    this.id = id;
  }

  get pieceCount(): number | undefined {
    if (this.shape?.contentLength === undefined) return undefined;
    return pieceCount(this.shape.contentLength, this.shape.pieceSize);
  }

  sources(): PeerEntry[] {
    return [...this.peers.values()].filter((p) => p.state === 'source');
  }

  /** Peers fetching it from peers, in the order they came: not seeds, not the origin's fetcher, not complete. */
  downloaders(): PeerEntry[] {
    return [...this.peers.values()].filter((p) => p.fetching && !p.host.info.seed);
  }

  /** Takes the shape a peer reports, unless one with a content length is known. */
  learnShape(shape: TaskShape): void {
    this.shape = learnedShape(this.shape, shape);
  }
}

export class PeerEntry {
  readonly id: string;
  readonly host: HostEntry;
  readonly task: TaskEntry;
  #state: PeerState;
  /** This scheduler sent it to the origin (toSource): its digests are first-hand by the scheduler's own choice. */
  sentToSource = false;
  readonly pieces = new PieceSet();
  readonly parents = new Set<PeerEntry>();
  readonly children = new Set<PeerEntry>();
  /** Parents this peer reported as failing: never offered again for this task. */
  readonly blocked = new Set<string>();
  /** Pushes a response down the peer's AnnouncePeer stream; undefined when no stream is open. */
  send: ((response: PeerResponse) => void) | undefined;
  /** Registered again after losing its stream (scheduler restart). */
  reconnected = false;
  /**
   * Children that completed while this peer was their parent and are still in
   * the swarm: a seed's child budget stays spent while they can serve others,
   * and is given back when they leave (else a later wave waits for nothing).
   */
  readonly retiredChildren = new Map<PeerEntry, number | undefined>();
  /**
   * Split trees (docs/design.md, "Split trees"): the stripe mask of each parent
   * edge, bit s for the pieces n with n % stripes === s. A parent absent here
   * serves this peer every piece.
   */
  readonly parentMasks = new Map<PeerEntry, number>();
  /** Each parent's stripe mask as this peer was last told it (a parents message); EVERY_PIECE for a parent that serves every piece. */
  readonly toldMasks = new Map<PeerEntry, number>();
  /** When each parent edge was made or last given more stripes (the scheduler's clock). */
  readonly linkedAt = new Map<PeerEntry, number>();
  /** Split trees: the one stripe this peer passes on to children (a seed or source passes on every stripe). */
  stripe = 0;
  /** When this peer last reported a new piece (the scheduler's clock); undefined before its first. */
  lastPieceAt: number | undefined;
  /** When this peer reported its first new piece (the scheduler's clock). */
  firstPieceAt: number | undefined;
  /** The last RATE_SAMPLES new pieces it reported, oldest first: when (the scheduler's clock) and which. */
  readonly arrivals: Array<{ at: number; n: number }> = [];

  constructor(id: string, host: HostEntry, task: TaskEntry, state: PeerState) {
    this.id = id;
    this.host = host;
    this.task = task;
    this.#state = state;
    this.order = task.joined++;
    task.roomy.add(this);
    task.rootish.add(this);
  }

  /** Its place in the order the task's peers joined (ties between equal places go to the earliest). */
  readonly order: number;

  get state(): PeerState {
    return this.#state;
  }

  /** A new state may make it a parent with room (TaskEntry.roomy). */
  set state(state: PeerState) {
    this.#state = state;
    this.task.roomy.add(this);
    // It may be a root now, and its children the seed's relay (a child of a source).
    this.task.rootish.add(this);
    for (const child of this.children) this.task.rootish.add(child);
  }

  /** Records pieces this peer just reported as new. */
  recordArrivals(numbers: readonly number[], now: number): void {
    this.firstPieceAt ??= now;
    this.lastPieceAt = now;
    for (const n of numbers) this.arrivals.push({ at: now, n });
    if (this.arrivals.length > RATE_SAMPLES) this.arrivals.splice(0, this.arrivals.length - RATE_SAMPLES);
  }

  /**
   * Bytes per second this peer downloaded over the last RATE_WINDOW_MS, of the
   * pieces `counts` admits (default: all); undefined until it has been
   * downloading for most of a window. Reports arrive in batches a few tens of
   * ms apart, so this is a rate over seconds, not a precise one.
   */
  recentRate(now: number, pieceSize: number, counts: (n: number) => boolean = () => true): number | undefined {
    if (this.firstPieceAt === undefined || now - this.firstPieceAt < RATE_WINDOW_MS) return undefined;
    const since = now - RATE_WINDOW_MS;
    let pieces = 0;
    let i = this.arrivals.length - 1;
    for (; i >= 0 && this.arrivals[i]!.at > since; i--) if (counts(this.arrivals[i]!.n)) pieces++;
    // Every remembered piece is in the window: the rate over what they span.
    const span = i < 0 && this.arrivals.length === RATE_SAMPLES ? Math.max(1, now - this.arrivals[0]!.at) : RATE_WINDOW_MS;
    return (pieces * pieceSize * 1000) / span;
  }

  get active(): boolean {
    return this.state === 'waiting' || this.state === 'running' || this.state === 'source';
  }

  /** It holds every piece of the task (false while the task's length is unknown). */
  get holdsEveryPiece(): boolean {
    const count = this.task.pieceCount;
    return count !== undefined && this.pieces.size >= count;
  }

  /** Adds `parent` as a parent of this peer, for the stripes in `mask` (undefined: every piece), at `at` (the scheduler's clock). */
  link(parent: PeerEntry, at: number, mask?: number): void {
    this.parents.add(parent);
    parent.children.add(this);
    this.task.roomy.add(this);
    this.task.rootish.add(this);
    this.linkedAt.set(parent, at);
    if (mask !== undefined) this.parentMasks.set(parent, (this.parentMasks.get(parent) ?? 0) | mask);
  }

  unlink(parent: PeerEntry): void {
    this.parents.delete(parent);
    parent.children.delete(this);
    this.task.roomy.add(this);
    this.task.roomy.add(parent);
    this.parentMasks.delete(parent);
    this.toldMasks.delete(parent);
    this.linkedAt.delete(parent);
  }

  /**
   * Takes this peer out of the swarm in `state` ('left', 'failed'): off its
   * host and task, out of every parent's record of retired children, and
   * unlinked from its parents and children. Returns the children it had.
   */
  detach(state: PeerState): PeerEntry[] {
    this.state = state;
    this.send = undefined;
    this.host.removePeer(this);
    if (this.task.peers.get(this.id) === this) this.task.peers.delete(this.id);
    for (const other of this.task.peers.values()) if (other.retiredChildren.delete(this)) this.task.roomy.add(other);
    for (const parent of [...this.parents]) this.unlink(parent);
    const orphans = [...this.children];
    for (const child of orphans) child.unlink(this);
    this.task.roomy.delete(this);
    this.task.rootish.delete(this);
    return orphans;
  }

  /** Split trees: `parent` stops serving this peer the stripes in `mask`; the edge goes when none is left. */
  dropStripes(parent: PeerEntry, mask: number): void {
    const left = (this.parentMasks.get(parent) ?? 0) & ~mask;
    if (left === 0) this.unlink(parent);
    else this.parentMasks.set(parent, left);
    this.task.roomy.add(parent);
  }

  /**
   * Holds pieces or is about to: it can serve, or it is still fetching and has
   * a parent (linked, by induction, to a peer that can serve). A child may be
   * linked to it at once, and takes each piece as it is announced, so a chain
   * forms as fast as peers register instead of one hop per first piece.
   */
  get fed(): boolean {
    return this.canServe || (this.fetching && this.parents.size > 0);
  }

  /** A seed peer or the peer fetching from the origin: its pieces and digests come first-hand. */
  get seedLike(): boolean {
    return this.host.info.seed || this.state === 'source';
  }

  /** Fetching from peers (waiting for its first piece or running), not from the origin. */
  get fetching(): boolean {
    return this.state === 'waiting' || this.state === 'running';
  }

  get canServe(): boolean {
    return (this.state === 'running' || this.state === 'source' || this.state === 'complete') && (this.pieces.size > 0 || this.state === 'source');
  }
}
