/**
 * A simulated daemon's download of one task: what it holds, the parents the
 * scheduler gave it (one edge each, with the stripes it takes from it), and
 * the piece each edge is carrying. It takes from an edge the lowest piece of
 * the edge's stripes that the parent held at the start of the step and
 * nobody else is bringing (pieces in order, as the daemon's picker does in
 * split trees), one at a time, and from the origin in order when sent there.
 */
import type { PeerResponse } from '../../src/gen/shoal/v1/scheduler_pb.js';
import type { PeerEntry } from '../../src/scheduler/model.js';
import type { End, Flow } from './links.js';
import type { SimHost } from './fleet.js';

/** Pieces a parent lacks that a pick looks past before it gives up on that parent for the step. */
const SCAN_MISSES = 64;

export type SimState = 'waiting' | 'down' | 'source' | 'done' | 'gone' | 'failed';

export class Edge implements Flow {
  readonly child: SimPeer;
  readonly parent: SimPeer;
  /** Stripes it carries (bit s: pieces n with n % k === s); undefined: every piece. */
  mask: number | undefined;
  piece = -1;
  remaining = 0;
  rate = 0;
  cap = 0;

  constructor(child: SimPeer, parent: SimPeer, mask: number | undefined) {
    this.child = child;
    this.parent = parent;
    this.mask = mask;
  }

  carries(n: number, k: number): boolean {
    return this.mask === undefined || (this.mask & (1 << n % k)) !== 0;
  }
}

export class SimPeer {
  readonly id: string;
  readonly host: SimHost | undefined;
  readonly taskId: string;
  readonly pieceCount: number;
  readonly pieceSize: number;
  readonly down: number;
  readonly up: number;
  state: SimState = 'waiting';
  /** The step at which each piece came (-1: not held). */
  readonly heldAt: Int32Array;
  held = 0;
  readonly inflight: Uint8Array;
  /** The lowest piece it may lack (pieces below are held or in flight). */
  low = 0;
  readonly edges = new Map<SimPeer, Edge>();
  readonly uploads = new Set<Edge>();
  /** Pieces stored in this step, reported at its end. */
  fresh: number[] = [];
  /** From the origin: the piece in flight and bytes left of it. */
  originPiece = -1;
  originLeft = 0;
  originPieces = 0;
  joinedAt = 0;
  doneAt: number | undefined;
  lastProgressAt = 0;
  /** The scheduler's record of it, and which scheduler holds it. */
  entry: PeerEntry | undefined;
  scheduler = -1;
  /** Stripes of the task (from the parents' list). */
  stripes = 1;
  /** Told to fetch from the origin by a scheduler (not a seed's own first fetch). */
  sentToSource = false;
  readonly sender: End<Edge>;
  readonly receiver: End<Edge>;
  readonly #upFlows: Edge[] = [];
  readonly #downFlows: Edge[] = [];

  constructor(id: string, host: SimHost | undefined, taskId: string, shape: { pieceCount: number; pieceSize: number }, rates: { down: number; up: number }) {
    this.id = id;
    this.host = host;
    this.taskId = taskId;
    this.pieceCount = shape.pieceCount;
    this.pieceSize = shape.pieceSize;
    this.down = rates.down;
    this.up = rates.up;
    this.heldAt = new Int32Array(shape.pieceCount).fill(-1);
    this.inflight = new Uint8Array(shape.pieceCount);
    this.sender = { capacity: this.up, flows: this.#upFlows };
    this.receiver = { capacity: this.down, flows: this.#downFlows };
  }

  get downloading(): boolean {
    return this.state === 'waiting' || this.state === 'down' || this.state === 'source';
  }

  holds(n: number, before: number): boolean {
    const at = this.heldAt[n]!;
    return at >= 0 && at < before;
  }

  /** The parents' list the scheduler sent: edges kept, changed, made and dropped. */
  setParents(parents: ReadonlyArray<{ peer: SimPeer; mask: number | undefined }>, stripes: number): void {
    if (stripes > 1) this.stripes = stripes;
    const keep = new Set<SimPeer>();
    for (const { peer, mask } of parents) {
      keep.add(peer);
      const edge = this.edges.get(peer);
      if (edge === undefined) {
        const made = new Edge(this, peer, mask);
        this.edges.set(peer, made);
        peer.uploads.add(made);
      } else if (edge.mask !== mask) {
        edge.mask = mask;
        if (edge.piece >= 0 && !edge.carries(edge.piece, this.stripes)) this.#drop(edge);
      }
    }
    for (const [peer, edge] of [...this.edges]) if (!keep.has(peer)) this.dropEdge(edge);
  }

  dropEdge(edge: Edge): void {
    this.#drop(edge);
    this.edges.delete(edge.parent);
    edge.parent.uploads.delete(edge);
  }

  /** Every edge to and from it goes (it left). */
  cutAll(): void {
    for (const edge of [...this.edges.values()]) this.dropEdge(edge);
    for (const edge of [...this.uploads]) edge.child.dropEdge(edge);
  }

  #drop(edge: Edge): void {
    if (edge.piece < 0) return;
    this.inflight[edge.piece] = 0;
    this.low = Math.min(this.low, edge.piece);
    edge.piece = -1;
  }

  /** Gives `edge` its next piece: the lowest in its stripes the parent held before step `step`; false when none. */
  pick(edge: Edge, step: number): boolean {
    const k = this.stripes;
    const parent = edge.parent;
    while (this.low < this.pieceCount && (this.heldAt[this.low]! >= 0 || this.inflight[this.low] === 1)) this.low++;
    let misses = 0;
    for (let n = this.low; n < this.pieceCount; n++) {
      if (this.heldAt[n]! >= 0 || this.inflight[n] === 1 || !edge.carries(n, k)) continue;
      if (!parent.holds(n, step)) {
        // Parents fill in order: past a few gaps, the parent holds nothing more for it.
        if (++misses > SCAN_MISSES) break;
        continue;
      }
      edge.piece = n;
      edge.remaining = this.pieceSize;
      this.inflight[n] = 1;
      return true;
    }
    return false;
  }

  /** Stores piece `n` at step `step`. */
  store(n: number, step: number): void {
    if (this.heldAt[n]! >= 0) return;
    this.heldAt[n] = step;
    this.inflight[n] = 0;
    this.held++;
    this.fresh.push(n);
  }

  /** The flows of this step: edges carrying a piece, at each end. */
  collectFlows(): void {
    this.#upFlows.length = 0;
    for (const e of this.uploads) if (e.piece >= 0) this.#upFlows.push(e);
    this.#downFlows.length = 0;
    for (const e of this.edges.values()) if (e.piece >= 0) this.#downFlows.push(e);
  }

  /** What the scheduler said, for the run to act on. */
  onResponse: (response: PeerResponse) => void = () => undefined;
}
