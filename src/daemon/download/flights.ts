/**
 * The piece fetches in flight for one download: by piece, who is fetching
 * it, since when, and how to cancel it. A piece has one fetch, or two in the
 * endgame (./piece-picker.ts). Keeps each parent's `inflight` count.
 */
import type { ParentConn } from './parent.js';

export class Flight {
  readonly parent: ParentConn;
  /** When the fetch started (Date.now()), for the parent's rate and the endgame. */
  readonly started: number;
  readonly #controller = new AbortController();
  readonly #onEnd: () => void;

  constructor(parent: ParentConn, started: number, until: AbortSignal) {
    this.parent = parent;
    this.started = started;
    const abort = (): void => this.abort();
    until.addEventListener('abort', abort, { once: true });
    this.#onEnd = () => until.removeEventListener('abort', abort);
  }

  /** Aborted when the fetch is cancelled (another copy arrived, the parent was dropped, the download ended). */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  abort(): void {
    this.#controller.abort();
  }

  /** Stops following the download's signal. */
  end(): void {
    this.#onEnd();
  }
}

export class Flights {
  readonly #byPiece = new Map<number, Flight[]>();

  /** Pieces in flight. */
  get size(): number {
    return this.#byPiece.size;
  }

  get byPiece(): ReadonlyMap<number, readonly Flight[]> {
    return this.#byPiece;
  }

  has(n: number): boolean {
    return this.#byPiece.has(n);
  }

  /** A fetch of piece `n` from `parent` starts; it is cancelled when `until` aborts. */
  add(n: number, parent: ParentConn, until: AbortSignal): Flight {
    const flight = new Flight(parent, Date.now(), until);
    const list = this.#byPiece.get(n) ?? [];
    list.push(flight);
    this.#byPiece.set(n, list);
    parent.inflight++;
    return flight;
  }

  /** A fetch ended, whatever its outcome. True when no other fetch of the piece is left. */
  end(n: number, flight: Flight): boolean {
    flight.end();
    flight.parent.inflight--;
    const left = (this.#byPiece.get(n) ?? []).filter((f) => f !== flight);
    if (left.length > 0) {
      this.#byPiece.set(n, left);
      return false;
    }
    this.#byPiece.delete(n);
    return true;
  }

  /** One copy of piece `n` arrived: the others are cancelled. */
  abortOthers(n: number, flight: Flight): void {
    for (const other of this.#byPiece.get(n) ?? []) if (other !== flight) other.abort();
  }

  /** Every fetch from `parent` is cancelled (it was dropped). */
  abortFrom(parent: ParentConn): void {
    for (const list of this.#byPiece.values()) for (const f of list) if (f.parent === parent) f.abort();
  }
}
