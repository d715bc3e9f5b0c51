/**
 * Piece math and digest packing. Pure code: no I/O.
 *
 * Piece size rule (DESIGN.md "Pieces"): aim for about TARGET_PIECES pieces so
 * a file pipelines through a large swarm, rounded up to a power of two and
 * clamped to [1 MiB, 64 MiB]. docs/benchmarks.md records why.
 */
export const MIB = 1024 * 1024;
export const MIN_PIECE_SIZE = 1 * MIB;
export const MAX_PIECE_SIZE = 64 * MIB;
export const TARGET_PIECES = 256;
/** Piece size while the content length is unknown (chunked origin responses). */
export const UNKNOWN_LENGTH_PIECE_SIZE = 4 * MIB;
/** Upper bound on pieces per task (docs/LIMITS.md): 64 MiB × 1 M = 64 TiB. */
export const MAX_PIECES = 1 << 20;
/** The smallest piece size a task may have (`--piece-length`; the rule never goes below MIN_PIECE_SIZE). */
export const MIN_CHOSEN_PIECE_SIZE = 16 * 1024;
/** Upper bound on a task's content length (docs/LIMITS.md, the origin's limit): 1 PiB. */
export const MAX_CONTENT_LENGTH = 2 ** 50;

export function pieceSizeFor(contentLength: number | undefined): number {
  if (contentLength === undefined) return UNKNOWN_LENGTH_PIECE_SIZE;
  const wanted = Math.ceil(contentLength / TARGET_PIECES);
  let size = MIN_PIECE_SIZE;
  while (size < wanted && size < MAX_PIECE_SIZE) size *= 2;
  return size;
}

export function isValidPieceSize(size: number): boolean {
  return Number.isInteger(size) && size >= MIN_CHOSEN_PIECE_SIZE && size <= MAX_PIECE_SIZE;
}

/**
 * What is wrong with a task's shape that someone else reported (a peer, the
 * scheduler), or undefined when it is within the limits: a valid piece size,
 * a content length (when known) an integer of at most MAX_CONTENT_LENGTH, and
 * at most MAX_PIECES pieces. Checked before anything is sized by it.
 */
export function shapeProblem(contentLength: number | undefined, pieceSize: number): string | undefined {
  if (!isValidPieceSize(pieceSize)) return `a piece size of ${pieceSize} bytes: it must be ${MIN_CHOSEN_PIECE_SIZE} – ${MAX_PIECE_SIZE}`;
  if (contentLength === undefined) return undefined;
  if (!Number.isSafeInteger(contentLength) || contentLength < 0 || contentLength > MAX_CONTENT_LENGTH) return `a content length of ${contentLength} bytes: at most ${MAX_CONTENT_LENGTH}`;
  const count = pieceCount(contentLength, pieceSize);
  return count > MAX_PIECES ? `${count} pieces (${contentLength} bytes in pieces of ${pieceSize}): at most ${MAX_PIECES}` : undefined;
}

export function pieceCount(contentLength: number, pieceSize: number): number {
  return Math.ceil(contentLength / pieceSize);
}

export interface PieceRange {
  readonly number: number;
  readonly offset: number;
  readonly length: number;
}

export function pieceRange(number: number, contentLength: number, pieceSize: number): PieceRange {
  const offset = number * pieceSize;
  return { number, offset, length: Math.max(0, Math.min(pieceSize, contentLength - offset)) };
}

/** Packs 32-byte digests into one buffer, in the order of `numbers`. */
export function packDigests(digests: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(digests.length * 32);
  digests.forEach((d, i) => out.set(d, i * 32));
  return out;
}

export function unpackDigests(numbers: readonly number[], packed: Uint8Array): Map<number, Buffer> | undefined {
  if (packed.length !== numbers.length * 32) return undefined;
  const out = new Map<number, Buffer>();
  numbers.forEach((n, i) => out.set(n, Buffer.from(packed.subarray(i * 32, i * 32 + 32))));
  return out;
}
