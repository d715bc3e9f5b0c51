/** The piece store on a real file system: pieces, restart, GC, locking. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { CacheSection, type CacheSettings } from '../src/common/config/schema.js';
import { ShoalError } from '../src/common/errors.js';
import { MAX_OPEN_FILES } from '../src/daemon/storage/open-files.js';
import { PieceStore, type StoredTask } from '../src/daemon/storage/store.js';

const MiB = 1024 * 1024;
const id = (n: number): string => createHash('sha256').update(String(n)).digest('hex');
const dirs: string[] = [];
const tempDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-store-'));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** No quota, no TTL: the schema's defaults. */
const noLimits: CacheSettings = CacheSection.parse({});

async function openStore(dataDir: string, cache = noLimits, now?: () => number): Promise<PieceStore> {
  const store = new PieceStore({ dataDir, cache, ...(now === undefined ? {} : { now }) });
  await store.start();
  return store;
}

async function fill(store: PieceStore, task: StoredTask, pieces: number): Promise<void> {
  await store.setShape(task, { contentLength: pieces * MiB, pieceSize: MiB });
  for (let n = 0; n < pieces; n++) {
    const data = Buffer.alloc(MiB, n);
    await store.write(task, n * MiB, data);
    store.commitPiece(task, n, createHash('sha256').update(data).digest());
  }
  await store.markComplete(task);
}

describe('piece store', () => {
  test('pieces written and committed survive a restart; uncommitted ones do not count', async () => {
    const dataDir = tempDir();
    let store = await openStore(dataDir);
    const task = await store.ensure(id(1), 'http://o/x', undefined);
    await store.setShape(task, { contentLength: 3 * MiB, pieceSize: MiB });
    await store.write(task, 0, Buffer.alloc(MiB, 7));
    store.commitPiece(task, 0, createHash('sha256').update(Buffer.alloc(MiB, 7)).digest());
    await store.write(task, MiB, Buffer.alloc(MiB, 8)); // written, never verified
    await store.stop();

    store = await openStore(dataDir);
    const again = store.get(id(1))!;
    assert.deepEqual([...again.digests.keys()], [0]);
    assert.equal(again.complete, false);
    const handle = store.openPiece(id(1), 0)!;
    const buf = Buffer.alloc(MiB);
    assert.equal(await handle.read(buf, 0, MiB), MiB);
    handle.release();
    assert.deepEqual(buf, Buffer.alloc(MiB, 7));
    assert.equal(store.openPiece(id(1), 1), undefined, 'an unverified piece is served');
    await store.stop();
  });

  test('lifecycle: start and stop are idempotent, a stopped store refuses work, its lock is released', async () => {
    const dataDir = tempDir();
    const store = new PieceStore({ dataDir, cache: noLimits });
    await assert.rejects(store.ensure(id(9), 'http://o/9', undefined), (err: unknown) => err instanceof ShoalError && err.code === 'STORAGE');
    await Promise.all([store.start(), store.start()]);
    const task = await store.ensure(id(9), 'http://o/9', undefined);
    assert.equal(store.get(id(9)), task);
    const stopping = store.stop();
    assert.equal(store.stop(), stopping);
    await stopping;
    assert.equal(store.state, 'stopped');
    await assert.rejects(store.ensure(id(10), 'http://o/10', undefined), (err: unknown) => err instanceof ShoalError && err.code === 'STORAGE');
    {
      await using again = await openStore(dataDir);
      assert.ok(again.get(id(9)) !== undefined, 'the task was not kept');
    }
    // Disposed: the lock is free again.
    await (await openStore(dataDir)).destroy();
  });

  test('a second process cannot open the same data directory', async () => {
    const dataDir = tempDir();
    const store = await openStore(dataDir);
    // The lock holds our own PID, so fake another live owner: PID 1.
    await store.stop();
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(dataDir, 'lock'), '1');
    await assert.rejects(openStore(dataDir), (err: unknown) => err instanceof ShoalError && err.code === 'DATA_DIR_LOCKED');
  });

  test('GC evicts by TTL, then least recently used past the quota, never a pinned task', async () => {
    let now = 1_000_000;
    const dataDir = tempDir();
    const store = await openStore(dataDir, CacheSection.parse({ quota: 5 * MiB, ttl: '60s' }), () => now);
    const old = await store.ensure(id(1), 'http://o/1', undefined);
    await fill(store, old, 2);
    now += 10_000;
    const lru = await store.ensure(id(2), 'http://o/2', undefined);
    await fill(store, lru, 2);
    now += 10_000;
    const pinned = await store.ensure(id(3), 'http://o/3', undefined);
    await fill(store, pinned, 2);
    now += 10_000;
    const fresh = await store.ensure(id(4), 'http://o/4', undefined);
    await fill(store, fresh, 2);
    const unpin = store.pin(pinned);
    store.touch(fresh);

    // 8 MiB held, quota 5 MiB: the two least recently used unpinned tasks go.
    assert.deepEqual(await store.gc(), [id(1), id(2)]);
    assert.equal(existsSync(old.path), false);
    assert.ok(store.get(id(3)) !== undefined && store.get(id(4)) !== undefined);

    now += 120_000; // past the TTL for both; the pinned one stays
    assert.deepEqual(await store.gc(), [id(4)]);
    unpin();
    assert.deepEqual(await store.gc(), [id(3)]);
    await store.stop();
  });

  test('GC also drops a partial task no one uses, after the complete ones', async () => {
    let now = 1_000_000;
    const store = await openStore(tempDir(), CacheSection.parse({ quota: 2 * MiB, ttl: '60s' }), () => now);
    const partial = await store.ensure(id(7), 'http://o/7', undefined);
    await store.setShape(partial, { contentLength: 4 * MiB, pieceSize: MiB });
    await store.write(partial, 0, Buffer.alloc(MiB, 1));
    store.commitPiece(partial, 0, Buffer.alloc(32));
    now += 1000;
    const complete = await store.ensure(id(8), 'http://o/8', undefined);
    await fill(store, complete, 2);
    // 3 MiB held, quota 2 MiB: the complete task goes first although the partial one is older.
    assert.deepEqual(await store.gc(), [id(8)]);
    now += 120_000;
    assert.deepEqual(await store.gc(), [id(7)]);
    await store.stop();
  });

  test('content written after completion (a hard-linked output edited in place) is detected and refetched', async () => {
    const store = await openStore(tempDir());
    const task = await store.ensure(id(6), 'http://o/6', undefined);
    await fill(store, task, 3);
    assert.equal(await store.checkIntact(task), 0);
    const { open } = await import('node:fs/promises');
    await new Promise((r) => setTimeout(r, 20));
    const fh = await open(task.path, 'r+');
    await fh.write(Buffer.from('tampered'), 0, 8, MiB + 100);
    await fh.close();
    assert.equal(await store.checkIntact(task), 1);
    assert.equal(task.complete, false);
    assert.deepEqual([...task.digests.keys()].sort(), [0, 2]);
    await store.stop();
  });

  test('a changed shape drops the pieces held; a learned length keeps them', async () => {
    const store = await openStore(tempDir());
    const task = await store.ensure(id(5), 'http://o/5', undefined);
    await store.setShape(task, { contentLength: undefined, pieceSize: MiB });
    await store.write(task, 0, Buffer.alloc(MiB, 1));
    store.commitPiece(task, 0, Buffer.alloc(32));
    await store.setShape(task, { contentLength: 2 * MiB, pieceSize: MiB });
    assert.equal(task.digests.size, 1);
    await store.setShape(task, { contentLength: 3 * MiB, pieceSize: MiB });
    assert.equal(task.digests.size, 0);
    await assert.rejects(store.setShape(task, { contentLength: 10, pieceSize: 3 }), ShoalError);
    await store.stop();
  });

  test('a stale lock is taken over: a reused PID (another start time), an empty file; a live owner is not', async () => {
    const dataDir = tempDir();
    await (await openStore(dataDir)).stop();
    writeFileSync(join(dataDir, 'lock'), '1 999999999999\n'); // PID 1 lives, but did not start then
    await (await openStore(dataDir)).stop();
    writeFileSync(join(dataDir, 'lock'), ''); // an older Shoal killed between creating and writing it
    await (await openStore(dataDir)).stop();
    writeFileSync(join(dataDir, 'lock'), '1\n');
    await assert.rejects(openStore(dataDir), (err: unknown) => err instanceof ShoalError && err.code === 'DATA_DIR_LOCKED');
  });

  test(`content files are opened on use: at most ${MAX_OPEN_FILES} stay open, and a complete task nobody holds keeps none`, async () => {
    const dataDir = tempDir();
    const store = await openStore(dataDir);
    const openHere = (): number =>
      readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`).startsWith(join(dataDir, 'content'));
        } catch {
          return false;
        }
      }).length;
    const tasks: StoredTask[] = [];
    for (let i = 0; i < MAX_OPEN_FILES + 36; i++) {
      const task = await store.ensure(id(100 + i), `http://o/${i}`, undefined);
      await store.setShape(task, { contentLength: MiB, pieceSize: MiB });
      tasks.push(task);
    }
    assert.equal(store.openFiles, MAX_OPEN_FILES);
    assert.equal(openHere(), MAX_OPEN_FILES);
    // The least recently used were closed; writing to one opens it again.
    await store.write(tasks[0]!, 0, Buffer.alloc(MiB, 1));
    store.commitPiece(tasks[0]!, 0, createHash('sha256').update(Buffer.alloc(MiB, 1)).digest());
    await store.markComplete(tasks[0]!);
    assert.equal(store.openFiles, MAX_OPEN_FILES - 1, 'a complete task nobody holds keeps its file open');
    const unpin = store.pin(tasks[1]!);
    await fill(store, tasks[1]!, 1);
    assert.equal(store.openFiles, MAX_OPEN_FILES, 'a held task lost its file on completion');
    unpin();
    assert.equal(store.openFiles, MAX_OPEN_FILES - 1);
    await store.stop();
    assert.equal(openHere(), 0);
  });

  test('a cached file changed with its mtime put back, or grown, is caught by its stamp', async () => {
    const store = await openStore(tempDir());
    const task = await store.ensure(id(11), 'http://o/11', undefined);
    await fill(store, task, 3);
    const ref = `${task.path}.ref`;
    execFileSync('touch', ['-r', task.path, ref]);
    const { open } = await import('node:fs/promises');
    const fh = await open(task.path, 'r+');
    await fh.write(Buffer.from('tampered'), 0, 8, 2 * MiB + 1);
    await fh.close();
    execFileSync('touch', ['-r', ref, task.path]);
    assert.equal(await store.checkIntact(task), 1);
    assert.deepEqual([...task.digests.keys()].sort(), [0, 1]);

    const grown = await store.ensure(id(12), 'http://o/12', undefined);
    await fill(store, grown, 2);
    execFileSync('touch', ['-r', grown.path, ref]);
    appendFileSync(grown.path, 'extra');
    execFileSync('touch', ['-r', ref, grown.path]);
    assert.equal(await store.checkIntact(grown), 0, 'the pieces themselves are intact');
    const { statSync } = await import('node:fs');
    assert.equal(statSync(grown.path).size, 2 * MiB, 'the appended bytes were not cut off');
    assert.equal(await store.checkIntact(grown), 0);
    await store.stop();
  });
});
