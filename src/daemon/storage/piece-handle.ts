/** A verified piece of a stored task, opened for reading (what the upload server's PieceProvider port asks for). */
import type { FileHandle } from 'node:fs/promises';
import { pieceRange } from '../../common/pieces.js';
import type { LentPiece } from './recent-pieces.js';
import type { StoredTask } from './stored-task.js';

export interface PieceHandle {
  readonly length: number;
  readonly taskComplete: boolean;
  read(buf: Buffer, offset: number, length: number): Promise<number>;
  lend(): LentPiece | undefined;
  release(): void;
}

/**
 * Piece `n` of `task` (held and verified: the caller checked), lent from
 * `recent` (the pieces kept in memory) when it is there, read through `use`
 * (the store's open-file cache) otherwise, until `release` (its unpin).
 */
export function pieceHandle(
  task: StoredTask,
  n: number,
  use: <T>(work: (file: FileHandle) => Promise<T>) => Promise<T>,
  release: () => void,
  recent: () => LentPiece | undefined = () => undefined,
): PieceHandle {
  const { contentLength, pieceSize } = task.shape!;
  const range = contentLength === undefined ? { offset: n * pieceSize, length: pieceSize } : pieceRange(n, contentLength, pieceSize);
  return {
    length: range.length,
    taskComplete: task.complete,
    read: async (buf, offset, length) => {
      const want = Math.min(length, range.length - offset);
      const { bytesRead } = await use((fh) => fh.read(buf, 0, want, range.offset + offset));
      return bytesRead;
    },
    lend: recent,
    release,
  };
}
