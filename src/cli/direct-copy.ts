/**
 * Copies a cached content file to a new file written with O_DIRECT, read
 * with O_DIRECT too where the file system allows (the daemon writes pieces
 * past the page cache): the bytes go from the disk to a reused buffer and
 * back, without a copy of them in the page cache. A plain copy allocates and fills
 * one new page-cache page per 4 KiB, and that is most of what a copy costs:
 * on the lab's 2-core VM, twenty 100 MB outputs copied at once were a fifth
 * of the machine's CPU and 4 s at the end of every host's download
 * (docs/benchmarks.md, "CPU per delivered GB", "The change"). Written this way the copy costs
 * one read into a reused buffer per 4 MiB and leaves memory to the cache.
 * The price: the get waits until the disk has taken the file (a buffered
 * copy returns first and the kernel writes it later, the same bytes), so on
 * a disk slower than the copy `--no-direct-io` is faster to return.
 *
 * O_DIRECT wants the buffer, the file offset and the length aligned to the
 * device's logical block: the buffers are WebAssembly memories (V8 maps them
 * page-aligned), every offset and length but the last is a multiple of
 * 4 MiB, and the tail (size mod 4096) goes through a second, ordinary file
 * descriptor. Reading the next chunk overlaps writing the one before.
 *
 * Throws DirectIoUnsupported when the file system refuses O_DIRECT (EINVAL
 * at open or at the first write: tmpfs before Linux 6.6, some FUSE), before
 * anything but an empty `to` exists; the caller then copies the usual way.
 */
import { constants as fsc } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

import { DIRECT_ALIGN as BLOCK, alignedBuffer, directRefused as refused } from '../common/aligned-buffers.js';
import { writeFully } from '../common/write-fully.js';

const CHUNK = 4 * 1024 * 1024;

export class DirectIoUnsupported extends Error {}

/** Reads `length` bytes at `position` into `buf`, continuing after short reads; an early end of file is an error. */
export async function readFully(file: FileHandle, buf: Buffer, length: number, position: number): Promise<void> {
  let got = 0;
  while (got < length) {
    const { bytesRead } = await file.read(buf, got, length - got, position + got);
    if (bytesRead === 0) throw new Error(`the cached file ended at ${position + got}, before its size`);
    got += bytesRead;
  }
}


/** Copies `from` to the new file `to` (which must not exist), with the source's permission bits; stops between chunks once `signal` aborts (throwing its reason). */
export async function directCopy(from: string, to: string, signal?: AbortSignal): Promise<void> {
  // The source is read with O_DIRECT too where it can be: the daemon writes
  // pieces with O_DIRECT (cache.directIo), and a buffered read would fill a
  // page cache with them just to copy them out again.
  const src = await open(from, fsc.O_RDONLY | fsc.O_DIRECT).catch((err: unknown) => (refused(err) ? open(from, 'r') : Promise.reject(err)));
  try {
    const info = await src.stat();
    const size = info.size;
    const aligned = size - (size % BLOCK);
    let dst: FileHandle;
    try {
      dst = await open(to, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_DIRECT, 0o600);
    } catch (err) {
      if (refused(err)) throw new DirectIoUnsupported(`O_DIRECT refused: ${(err as Error).message}`, { cause: err });
      throw err;
    }
    let writing: Promise<void> | undefined;
    try {
      await dst.chmod(info.mode & 0o777);
      const buffers = [alignedBuffer(CHUNK), alignedBuffer(CHUNK)];
      for (let pos = 0, k = 0; pos < aligned; pos += CHUNK, k ^= 1) {
        const n = Math.min(CHUNK, aligned - pos);
        const buf = buffers[k]!;
        signal?.throwIfAborted();
        await readFully(src, buf, n, pos); // while the other buffer is being written
        if (writing !== undefined) await writing;
        const first = pos === 0;
        writing = writeFully(dst, buf.subarray(0, n), pos).catch((err: unknown) => {
          if (first && refused(err)) throw new DirectIoUnsupported(`O_DIRECT write refused: ${(err as Error).message}`, { cause: err });
          throw err;
        });
        writing.catch(() => undefined); // handled where it is awaited
      }
      if (writing !== undefined) await writing;
    } finally {
      await writing?.catch(() => undefined);
      await dst.close();
    }
    if (aligned < size) await copyTail(from, to, aligned, size);
  } finally {
    await src.close();
  }
}

/** Copies bytes [aligned, size) of `from` into the existing file `to`: no whole block, so both ends through ordinary descriptors. */
export async function copyTail(from: string, to: string, aligned: number, size: number): Promise<void> {
  const tailIn = await open(from, 'r');
  try {
    const tail = await open(to, 'r+');
    try {
      const buf = Buffer.allocUnsafe(size - aligned);
      await readFully(tailIn, buf, buf.length, aligned);
      await writeFully(tail, buf, aligned);
    } finally {
      await tail.close();
    }
  } finally {
    await tailIn.close();
  }
}
