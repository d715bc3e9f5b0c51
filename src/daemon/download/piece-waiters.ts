/**
 * Uploads waiting for a piece this host is fetching right now (a child asked
 * ahead, common/wire.ts FLAG_WAIT): each is released when that fetch ends,
 * the piece stored or not.
 */
export class PieceWaiters {
  readonly #byPiece = new Map<number, Array<() => void>>();

  /** Resolves when `release(n)` or `releaseAll()` is called. */
  wait(n: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const list = this.#byPiece.get(n) ?? [];
      list.push(resolve);
      this.#byPiece.set(n, list);
    });
  }

  release(n: number): void {
    const list = this.#byPiece.get(n);
    if (list === undefined) return;
    this.#byPiece.delete(n);
    for (const resolve of list) resolve();
  }

  releaseAll(): void {
    for (const n of [...this.#byPiece.keys()]) this.release(n);
  }
}
