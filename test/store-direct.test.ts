/**
 * The store's O_DIRECT piece writes and its pieces kept in memory, on the
 * real file system under the temp directory: aligned pieces leave no page in
 * the page cache (fincore, util-linux) where directIo off leaves them all;
 * an unaligned write takes the page cache; uploads are served from memory
 * while the piece is held as it was verified, never once it is dropped.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { directWritable } from '../src/common/aligned-buffers.js';
import { BufferPool } from '../src/common/buffer-pool.js';
import { CacheSection } from '../src/common/config/schema.js';
import { PieceStore, type StoredTask } from '../src/daemon/storage/store.js';

const MiB = 1024 * 1024;
const id = (n: number): string => createHash('sha256').update(`direct ${n}`).digest('hex');
const sha = (b: Buffer): Buffer => createHash('sha256').update(b).digest();
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function openStore(options: { directIo: boolean; recentBytes?: number }): Promise<PieceStore> {
  const dataDir = mkdtempSync(join(tmpdir(), 'shoal-store-direct-'));
  dirs.push(dataDir);
  const store = new PieceStore({ dataDir, cache: CacheSection.parse({}), ...options });
  await store.start();
  return store;
}

/** Bytes of the file in the page cache. */
function cached(path: string): number {
  return Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', path], { encoding: 'utf8' }).trim());
}

const pool = new BufferPool(8, { aligned: true });

/** Writes and commits pieces 0..count-1 (byte value = n + 1) from aligned pool buffers; returns them, still owned by the caller. */
async function writePieces(store: PieceStore, task: StoredTask, count: number): Promise<Buffer[]> {
  await store.setShape(task, { contentLength: count * MiB, pieceSize: MiB });
  const out: Buffer[] = [];
  for (let n = 0; n < count; n++) {
    const buf = pool.acquire(MiB);
    buf.fill(n + 1);
    await store.write(task, n * MiB, buf);
    assert.equal(store.commitPiece(task, n, sha(buf)), true);
    out.push(buf);
  }
  return out;
}

async function readPiece(store: PieceStore, taskId: string, n: number): Promise<Buffer | undefined> {
  const handle = store.openPiece(taskId, n);
  if (handle === undefined) return undefined;
  try {
    // held in memory: lent (what an upload writes from), else read from the file
    const lent = handle.lend();
    if (lent !== undefined) {
      const copy = Buffer.from(lent.data);
      lent.done();
      return copy;
    }
    const buf = Buffer.alloc(handle.length);
    let got = 0;
    while (got < buf.length) got += await handle.read(buf.subarray(got), got, buf.length - got);
    return buf;
  } finally {
    handle.release();
  }
}

describe('store: O_DIRECT writes and recent pieces', () => {
  test('the aligned pool hands out reused, page-aligned buffers that only O_DIRECT-eligible writes accept', () => {
    const p = new BufferPool(2, { aligned: true });
    const a = p.acquire(MiB);
    const b = p.acquire(MiB);
    assert.ok(a.buffer !== b.buffer || a.byteOffset !== b.byteOffset, 'two buffers in use share memory');
    assert.equal(directWritable(a, 0), true);
    assert.equal(directWritable(a, 4096 * 3), true);
    assert.equal(directWritable(a, 100), false, 'an unaligned offset');
    assert.equal(directWritable(a.subarray(0, 1000), 0), false, 'a length that is no whole block');
    assert.equal(directWritable(a.subarray(512), 0), false, 'a view that starts off a page');
    assert.equal(directWritable(Buffer.alloc(MiB), 0), false, 'an ordinary buffer');
    a[0] = 42;
    p.release(a);
    p.release(a); // twice: ignored
    const c = p.acquire(4096, MiB);
    assert.equal(c.buffer, a.buffer);
    assert.equal(c.byteOffset, a.byteOffset);
    assert.equal(c[0], 42, 'the same memory, reused');
    const d = p.acquire(MiB);
    assert.ok(d.buffer !== a.buffer || d.byteOffset !== a.byteOffset, 'a buffer handed out twice');
  });

  test('aligned pieces go past the page cache with directIo; all of them are cached without it', async () => {
    for (const directIo of [true, false]) {
      const store = await openStore({ directIo });
      const task = await store.ensure(id(directIo ? 1 : 2), 'http://o/a', undefined);
      const bufs = await writePieces(store, task, 8);
      for (const b of bufs) pool.release(b);
      await store.markComplete(task);
      // Before anything reads the file back through the page cache:
      const inCache = cached(task.path);
      if (directIo) assert.ok(inCache <= 64 * 1024, `directIo left ${inCache} bytes cached`);
      else assert.ok(inCache >= 7 * MiB, `a buffered store left only ${inCache} bytes cached`);
      const bytes = readFileSync(task.path);
      for (let n = 0; n < 8; n++) assert.ok(bytes.subarray(n * MiB, (n + 1) * MiB).equals(Buffer.alloc(MiB, n + 1)), `piece ${n} on disk`);
      await store.stop();
    }
  });

  test('an unaligned buffer, or a tail that is no whole block, is written through the page cache, correctly', async () => {
    const store = await openStore({ directIo: true });
    const task = await store.ensure(id(3), 'http://o/c', undefined);
    const length = 2 * MiB + 1000;
    await store.setShape(task, { contentLength: length, pieceSize: MiB });
    const first = Buffer.alloc(MiB, 1); // not from the aligned pool
    const second = pool.acquire(MiB);
    second.fill(2);
    const tail = pool.acquire(1000);
    tail.fill(3);
    await store.write(task, 0, first);
    await store.write(task, MiB, second);
    await store.write(task, 2 * MiB, tail);
    const bytes = readFileSync(task.path);
    assert.equal(bytes.length, length);
    assert.ok(bytes.equals(Buffer.concat([first, Buffer.alloc(MiB, 2), Buffer.alloc(1000, 3)])));
    pool.release(second);
    pool.release(tail);
    await store.stop();
  });

  test('uploads are served from the pieces kept in memory while they are held as verified, and from the file after', async () => {
    const store = await openStore({ directIo: true, recentBytes: 2 * MiB });
    const task = await store.ensure(id(4), 'http://o/d', undefined);
    const bufs = await writePieces(store, task, 3);
    const released: number[] = [];
    bufs.forEach((b, n) => store.recent.keep(task, n, task.digests.get(n)!, b, () => released.push(n)));
    // Two fit: piece 0 left first, its buffer given back.
    assert.deepEqual(released, [0]);
    assert.equal(store.recent.bytes, 2 * MiB);
    // Overwrite the file behind the store's back: what memory holds is still served as verified.
    const fd = openSync(task.path, 'r+');
    writeSync(fd, Buffer.alloc(3 * MiB, 0xee), 0, 3 * MiB, 0);
    closeSync(fd);
    assert.ok((await readPiece(store, task.id, 1))!.equals(Buffer.alloc(MiB, 2)), 'piece 1 from memory');
    assert.ok((await readPiece(store, task.id, 2))!.equals(Buffer.alloc(MiB, 3)), 'piece 2 from memory');
    assert.ok((await readPiece(store, task.id, 0))!.equals(Buffer.alloc(MiB, 0xee)), 'piece 0 (not kept) from the file');
    // Dropped pieces are never served from memory, and their buffers go back.
    await store.invalidate(task);
    assert.deepEqual(released.sort(), [0, 1, 2]);
    assert.equal(store.recent.bytes, 0);
    assert.equal(await readPiece(store, task.id, 1), undefined);
    // A piece held again with other bytes (another version) is read from the file, not from a stale copy.
    const again = pool.acquire(MiB);
    again.fill(9);
    await store.write(task, MiB, again);
    store.commitPiece(task, 1, sha(again));
    assert.ok((await readPiece(store, task.id, 1))!.equals(Buffer.alloc(MiB, 9)));
    // Keeping a piece not held (or held with another digest) gives the buffer straight back.
    let back = false;
    store.recent.keep(task, 2, sha(Buffer.alloc(MiB, 3)), pool.acquire(MiB), () => (back = true));
    assert.equal(back, true);
    store.recent.keep(task, 1, sha(again), again, () => released.push(11));
    await store.delete(task.id);
    assert.ok(released.includes(11), 'deleting the task gives its kept pieces back');
    await store.stop();
  });

  test('a piece lent to an upload goes back to the pool only when the upload is done with it, whatever left first', async () => {
    const store = await openStore({ directIo: true, recentBytes: 1 * MiB });
    const task = await store.ensure(id(5), 'http://o/e', undefined);
    const bufs = await writePieces(store, task, 2);
    const released: number[] = [];
    store.recent.keep(task, 0, task.digests.get(0)!, bufs[0]!, () => released.push(0));
    const handle = store.openPiece(task.id, 0)!;
    const lent = handle.lend();
    assert.ok(lent !== undefined && lent.data.equals(Buffer.alloc(MiB, 1)), 'piece 0 is lent from memory');
    assert.deepEqual(store.recent.reads, { memory: 1, file: 0 });
    // Piece 1 pushes piece 0 out while the upload still writes from it: not released yet.
    store.recent.keep(task, 1, task.digests.get(1)!, bufs[1]!, () => released.push(1));
    assert.equal(store.recent.bytes, MiB);
    assert.deepEqual(released, []);
    assert.equal(store.openPiece(task.id, 0)!.lend(), undefined, 'an evicted piece is not lent again');
    lent.done();
    lent.done(); // twice is once
    assert.deepEqual(released, [0]);
    handle.release();
    // Dropped while lent (invalidate): released at done, not before.
    const second = store.openPiece(task.id, 1)!;
    const lent1 = second.lend()!;
    await store.invalidate(task);
    assert.deepEqual(released, [0]);
    lent1.done();
    assert.deepEqual(released, [0, 1]);
    second.release();
    await store.stop();
  });
});
