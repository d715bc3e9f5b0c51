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
