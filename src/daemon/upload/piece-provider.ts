/**
 * What the upload server needs from storage: a verified piece, opened for
 * reading. The server never turns a request path into a file path; it asks
 * the provider for (task ID, piece number).
 */

/** A verified piece, opened for reading. */
export interface PieceHandle {
  readonly length: number;
  /** The task is complete on this host (all pieces held). */
  readonly taskComplete: boolean;
  /** Reads up to `length` bytes at `offset` within the piece into buf; returns bytes read (positional read, no shared file offset). */
  read(buf: Buffer, offset: number, length: number): Promise<number>;
  /**
   * The piece's bytes where they are in memory (the pieces received last), to
   * write from without a copy; they stay valid until `done()`, which the
   * caller calls once every write from them has completed. Undefined: read.
   */
  lend?(): { readonly data: Buffer; done(): void } | undefined;
  /** Called exactly once when the response is done or failed. */
  release(): void;
}

export interface PieceProvider {
  /** Returns undefined when the task is unknown or the piece is not held and verified. Must not throw for unknown tasks. */
  openPiece(taskId: string, piece: number): PieceHandle | undefined;
  /**
   * When the piece is being fetched here right now: a promise that settles
   * (never rejects) when that fetch ends, stored or not. Undefined otherwise.
   */
  whenFetched?(taskId: string, piece: number): Promise<void> | undefined;
}
