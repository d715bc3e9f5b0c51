/**
 * Writing bytes into a content file at an offset. The bytes go in
 * WRITE_CHUNK synchronous writes on the calling thread: the piece was just
 * received into that thread's CPU cache, and copying it into the page cache
 * from there in small chunks cost a quarter of what 1 MiB writes from
 * libuv's thread pool cost (docs/benchmarks.md; lab, 10 peers: pwrite 22 % →
 * 5 % of the machine). A page-cache write takes microseconds, unless the
 * kernel is throttling writers because too much is dirty (a disk slower than
 * the network): then, and whenever that is near (./dirty-pages.ts), writes
 * go to the thread pool so the event loop never sleeps on the disk.
 */
import { writeSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { DirtyPages } from './dirty-pages.js';

/** Bytes per synchronous write. */
const WRITE_CHUNK = 64 * 1024;
const dirtyPages = new DirtyPages();

export async function writeAt(file: FileHandle, offset: number, data: Buffer): Promise<void> {
  let done = 0;
  if (!dirtyPages.near()) {
    while (done < data.length) done += writeSync(file.fd, data, done, Math.min(WRITE_CHUNK, data.length - done), offset + done);
    return;
  }
  while (done < data.length) {
    const { bytesWritten } = await file.write(data, done, data.length - done, offset + done);
    done += bytesWritten;
  }
}

/**
 * Writes an aligned piece (common/aligned-buffers.ts directWritable) through
 * a descriptor opened with O_DIRECT, on libuv's thread pool: the device
 * reads the bytes from the piece's buffer, so no page-cache page is
 * allocated or filled for them and the CPU copies nothing (on the lab's VM
 * a page-cache write was a fifth of the machine, docs/benchmarks.md
 * "Pieces written with O_DIRECT"). The call returns once the device has the
 * bytes, which is why it is not made on the event loop.
 */
export async function writeDirect(file: FileHandle, offset: number, data: Buffer): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await file.write(data, done, data.length - done, offset + done);
    if (bytesWritten <= 0) throw new Error(`a direct write at ${offset + done} wrote ${bytesWritten} bytes`);
    done += bytesWritten;
  }
}

/** The file system refuses O_DIRECT (tmpfs before Linux 6.6, some FUSE and network file systems). */
export function directRefused(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'EINVAL';
}
