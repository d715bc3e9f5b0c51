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
import { directRefused, directWritable } from '../../common/aligned-buffers.js';
import { writeFully } from '../../common/write-fully.js';
import type { Logger } from '../../common/log.js';

/** Bytes per synchronous write. */
const WRITE_CHUNK = 64 * 1024;
const dirtyPages = new DirtyPages();

export async function writeAt(file: FileHandle, offset: number, data: Buffer): Promise<void> {
  if (!dirtyPages.near()) {
    for (let done = 0; done < data.length; ) done += writeSync(file.fd, data, done, Math.min(WRITE_CHUNK, data.length - done), offset + done);
    return;
  }
  await writeFully(file, data, offset);
}

type Use = (work: (file: FileHandle) => Promise<void>, direct: boolean) => Promise<void>;

/**
 * A store's writes: aligned pieces (common/aligned-buffers.ts
 * directWritable) through a descriptor opened with O_DIRECT while `direct`
 * holds, everything else with writeAt. A direct write runs on libuv's thread
 * pool (it returns once the device has the bytes): the device reads them from
 * the piece's buffer, so no page-cache page is allocated or filled and the CPU
 * copies nothing (on the lab's VM a page-cache write was a fifth of the
 * machine, docs/benchmarks.md "Pieces written with O_DIRECT"). The first
 * EINVAL from O_DIRECT (open or write) turns direct writes off for good (and
 * is logged), and that write is made again through the page cache.
 */
export class ContentWriter {
  #direct: boolean;
  readonly #log: Logger;
  readonly #dir: string;

  constructor(direct: boolean, log: Logger, dir: string) {
    this.#direct = direct;
    this.#log = log;
    this.#dir = dir;
  }

  async write(use: Use, offset: number, data: Buffer): Promise<void> {
    if (this.#direct && directWritable(data, offset)) {
      try {
        return await use((fh) => writeFully(fh, data, offset), true);
      } catch (err) {
        if (!directRefused(err)) throw err;
        this.#direct = false;
        this.#log.info({ dir: this.#dir, err: (err as Error).message }, 'the file system refuses O_DIRECT; pieces are written through the page cache');
      }
    }
    await use((fh) => writeAt(fh, offset, data), false);
  }
}
