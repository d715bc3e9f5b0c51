/**
 * A positional write of every byte of `data` at `position`, continued after
 * a short write (pwrite may take less than asked; with O_DIRECT the rest
 * stays aligned when what was taken is whole blocks). A write that takes
 * nothing is an error, not a loop.
 */
import type { FileHandle } from 'node:fs/promises';

export async function writeFully(file: FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await file.write(data, done, data.length - done, position + done);
    if (bytesWritten <= 0) throw new Error(`a write at ${position + done} took ${bytesWritten} bytes`);
    done += bytesWritten;
  }
}
