/**
 * Which pieces a download asks of which parents next: a pure policy (no
 * sockets; the clock and the dice are given), applied by PeerFetches each
 * time a fetch ends or the parents change. One call plans every fetch that
 * may start now, in the order they are to start:
 *
 * 1. **Rarest first.** Each pick is the missing piece (digest known, not in
 *    flight) held by the fewest parents that serve it, from a holder with a
 *    free slot: fewest pieces in flight, then fastest. A piece only one
 *    parent holds is taken at once.
 * 2. **Where the scan starts.** At a random piece, so that peers spread over
 *    the pieces; but at piece 0 (pieces in order) when there is a single
 *    parent or every parent serves stripes (split trees: each piece has one
 *    parent): a chain then runs as a pipeline, and a child can guess which
 *    pieces its parent is fetching (step 4).
 * 3. **Endgame.** When every missing piece is in flight, a piece whose only
 *    fetch has run for ENDGAME_AFTER_MS is asked of a second holder (never
 *    the same parent), ENDGAME_PICKS at a time; the first copy to arrive wins.
 * 4. **Asking ahead** (`askAhead`, off by default): a parent still fetching
 *    is asked for the lowest pieces it lacks (at most AHEAD_PER_PARENT),
 *    which it answers the moment it holds them (common/wire.ts FLAG_WAIT).
 *    Not of a parent that lately answered NOT_FOUND to one (`aheadAfter`).
 *
 * A parent is asked nothing while it is full (`perParent` in flight), busy
 * (`busyUntil`), or for a piece outside its stripes; nothing starts beyond
 * `maxInflight` pieces in flight (the endgame's second copies excepted).
 */

/** What the picker reads of a parent (download/parent.ts ParentConn). */
export interface PickerParent {
  /** The pieces it announced. */
  readonly pieces: ReadonlySet<number>;
  /** Pieces in flight from it. */
  readonly inflight: number;
  /** Asked nothing before this time (it answered BUSY). */
  readonly busyUntil: number;
  /** Not asked ahead before this time. */
  readonly aheadAfter: number;
  /** Smoothed throughput, bytes/ms. */
  readonly rate: number;
  /** Its stripe count, 0 without stripes. */
  readonly stripes: number;
  /** Whether piece n is to be taken from it (its stripes). */
  serves(n: number): boolean;
}

/** One fetch of a piece in flight. */
export interface PieceFlight<P> {
  readonly parent: P;
  /** When it started (the `now` of the plan that picked it). */
  readonly started: number;
}

export interface PickerState<P extends PickerParent> {
  /** Pieces in the task. */
  count: number;
  /** Pieces held. */
  held: number;
  /** Whether piece n may be fetched: not held, and its digest is known. */
  fetchable(n: number): boolean;
  /** Fetches in flight, by piece. */
  inflight: ReadonlyMap<number, readonly PieceFlight<P>[]>;
  parents: readonly P[];
  /** Pieces in flight from one parent at most. */
  perParent: number;
  /** Pieces in flight at most (inflightCap). */
  maxInflight: number;
  askAhead: boolean;
  now: number;
  /** Uniform in [0, 1): where a scan starts. */
  random: () => number;
}

export interface PiecePick<P> {
  n: number;
  parent: P;
  /** Asked ahead: the parent does not hold the piece yet. */
  ahead: boolean;
}

/** A single fetch of a piece must have run this long before the endgame asks a second holder. */
export const ENDGAME_AFTER_MS = 500;
/** Second copies started per plan in the endgame. */
export const ENDGAME_PICKS = 4;
/** Pieces asked of one parent before it holds them. */
export const AHEAD_PER_PARENT = 4;
/** Bytes of pieces in flight for one task at most (memory), whatever `concurrentPieces` says. */
export const INFLIGHT_BYTES = 256 * 1024 * 1024;

/** Pieces in flight at most for one task: `concurrentPieces`, within INFLIGHT_BYTES, and never under 2. */
export function inflightCap(concurrentPieces: number, pieceSize: number): number {
  return Math.max(2, Math.min(concurrentPieces, Math.floor(INFLIGHT_BYTES / pieceSize)));
}

/** The fetches to start now, in order (see the file's comment). */
export function planFetches<P extends PickerParent>(state: PickerState<P>): PiecePick<P>[] {
  const plan = new Plan(state);
  while (plan.inflightCount < state.maxInflight) {
    const pick = plan.choose(false);
    if (pick === undefined) break;
    plan.add(pick, false);
  }
  if (plan.inflightCount > 0 && state.held + plan.inflightCount >= state.count) {
    for (let i = 0; i < ENDGAME_PICKS; i++) {
      const pick = plan.choose(true);
      if (pick === undefined) break;
      plan.add(pick, false);
    }
  }
  if (state.askAhead) plan.askAhead();
  return plan.picks;
}

/** The state as the picks planned so far leave it. */
class Plan<P extends PickerParent> {
  readonly picks: PiecePick<P>[] = [];
  readonly #state: PickerState<P>;
  readonly #flights: Map<number, readonly PieceFlight<P>[]>;
  readonly #load = new Map<P, number>();

  constructor(state: PickerState<P>) {
    this.#state = state;
    this.#flights = new Map(state.inflight);
  }

  get inflightCount(): number {
    return this.#flights.size;
  }

  add(pick: { n: number; parent: P }, ahead: boolean): void {
    this.picks.push({ n: pick.n, parent: pick.parent, ahead });
    this.#flights.set(pick.n, [...(this.#flights.get(pick.n) ?? []), { parent: pick.parent, started: this.#state.now }]);
    this.#load.set(pick.parent, this.load(pick.parent) + 1);
  }

  /** Pieces in flight from `parent`, those planned included. */
  load(parent: P): number {
    return this.#load.get(parent) ?? parent.inflight;
  }

  #free(parent: P): boolean {
    return this.load(parent) < this.#state.perParent && parent.busyUntil <= this.#state.now;
  }

  /** Steps 1 to 3: the rarest fetchable piece with a free holder; in the endgame, a second copy. */
  choose(endgame: boolean): { n: number; parent: P } | undefined {
    const { count, parents, now } = this.#state;
    const free = parents.filter((p) => this.#free(p));
    if (free.length === 0) return undefined;
    const inOrder = parents.length === 1 || parents.every((p) => p.stripes > 1);
    const start = inOrder ? 0 : Math.floor(this.#state.random() * count);
    let best: { n: number; parent: P; rarity: number } | undefined;
    for (let i = 0; i < count; i++) {
      const n = (start + i) % count;
      if (!this.#state.fetchable(n)) continue;
      const flights = this.#flights.get(n);
      if (endgame ? !dueForSecondCopy(flights, now) : flights !== undefined) continue;
      let rarity = 0;
      let holder: P | undefined;
      for (const p of parents) {
        if (!p.pieces.has(n) || !p.serves(n)) continue;
        rarity++;
        if (!free.includes(p) || flights?.some((f) => f.parent === p)) continue;
        if (holder === undefined || this.#better(p, holder)) holder = p;
      }
      if (holder === undefined) continue;
      if (best === undefined || rarity < best.rarity) best = { n, parent: holder, rarity };
      if (rarity === 1 && !endgame) break;
    }
    return best;
  }

  /** Between two holders: fewer pieces in flight, then faster. */
  #better(p: P, than: P): boolean {
    const load = this.load(p);
    const other = this.load(than);
    return load < other || (load === other && p.rate > than.rate);
  }

  /** Step 4: each parent still fetching is asked for the lowest fetchable pieces it lacks. */
  askAhead(): void {
    const { count, parents, now, maxInflight, perParent } = this.#state;
    for (const parent of parents) {
      if (parent.aheadAfter > now || parent.busyUntil > now || parent.pieces.size >= count) continue;
      let n = 0;
      for (let asked = 0; asked < AHEAD_PER_PARENT && this.inflightCount < maxInflight && this.load(parent) < perParent; asked++) {
        while (n < count && (!this.#state.fetchable(n) || this.#flights.has(n) || parent.pieces.has(n) || !parent.serves(n))) n++;
        if (n >= count) break;
        this.add({ n, parent }, true);
        n++;
      }
    }
  }
}

/** Endgame: a piece with one fetch in flight, running for ENDGAME_AFTER_MS. */
function dueForSecondCopy(flights: readonly PieceFlight<unknown>[] | undefined, now: number): boolean {
  return flights !== undefined && flights.length === 1 && now - flights[0]!.started >= ENDGAME_AFTER_MS;
}
