/**
 * A task download's lifecycle (src/daemon/download/task-download.ts), with a
 * real piece store and an origin stub that sends the first piece and then
 * holds the rest until it is cancelled. No scheduler: the download goes to
 * the origin at once.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { TaskSpecSchema } from '../src/gen/shoal/v1/scheduler_pb.js';
import { CacheSection, DownloadSection } from '../src/common/config/schema.js';
import { ShoalError } from '../src/common/errors.js';
import { silentLogger } from '../src/common/log.js';
import { TaskDownload } from '../src/daemon/download/task-download.js';
import type { HttpSource, RangeRequest, SourceBody } from '../src/daemon/source/http-source.js';
import { PieceStore } from '../src/daemon/storage/store.js';

const PIECE = 16 * 1024;
const TASK_ID = 'a'.repeat(64);

/** Sends piece 0 of two, then waits for the request to be cancelled. */
class HoldingOrigin implements HttpSource {
  readonly requests: RangeRequest[] = [];

  async openRange(request: RangeRequest): Promise<SourceBody> {
    this.requests.push(request);
    const signal = request.signal!;
    async function* chunks(): AsyncGenerator<Buffer> {
      yield Buffer.alloc(PIECE, 1);
      await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
      throw new ShoalError('ABORTED', 'origin request cancelled');
    }
    return { contentLength: 2 * PIECE, etag: undefined, lastModified: undefined, validator: '', chunks: chunks() };
  }

  async close(): Promise<void> {}
}

let dataDir: string;
let store: PieceStore;
let origin: HoldingOrigin;

beforeEach(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'shoal-download-'));
  store = new PieceStore({ dataDir, cache: CacheSection.parse({}) });
  await store.start();
  origin = new HoldingOrigin();
});

afterEach(async () => {
  await store.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

function download(): TaskDownload {
  return new TaskDownload({
    spec: create(TaskSpecSchema, { taskId: TASK_ID, url: 'http://origin.test/file', pieceSize: PIECE }),
    store,
    source: origin,
    tls: undefined,
    client: undefined,
    hostId: 'host',
    peerId: 'host/peer',
    seed: false,
    settings: DownloadSection.parse({}),
    logger: silentLogger,
  });
}

/** Resolves when the first piece is stored. */
function firstPiece(d: TaskDownload): Promise<void> {
  return new Promise((resolve) => d.once('progress', () => resolve()));
}

const isError = (code: string, message?: string) => (err: unknown) =>
  err instanceof ShoalError && err.code === code && (message === undefined || err.message === message);

describe('task download lifecycle', () => {
  test('stop() cancels it: done fails with ABORTED, the pieces held are kept, the task is unpinned', async () => {
    const d = download();
    const stored = firstPiece(d);
    await d.start();
    await stored;
    const waiting = d.whenFetched(1);
    assert.ok(waiting !== undefined, 'piece 1 is on its way from the origin');
    const stopping = d.stop();
    assert.equal(d.stop(), stopping, 'stop() is not idempotent');
    await stopping;
    await assert.rejects(d.done, isError('ABORTED', 'download stopped'));
    await waiting; // an upload waiting for piece 1 is released
    assert.equal(origin.requests[0]!.signal!.aborted, true, 'the origin request is still open');
    const task = store.get(TASK_ID)!;
    assert.deepEqual([...task.digests.keys()], [0]);
    assert.equal(task.pins, 0);
    assert.equal(d.stats.state, 'failed');
    // Once stopped, destroy() and start() change nothing.
    await d.destroy(new ShoalError('STORAGE', 'late'));
    await d.start();
    await assert.rejects(d.done, isError('ABORTED'));
  });

  test('destroy(err) fails it with err', async () => {
    const d = download();
    const stored = firstPiece(d);
    await d.start();
    await stored;
    await d.destroy(new ShoalError('ABORTED', 'no caller is waiting for this task'));
    await assert.rejects(d.done, isError('ABORTED', 'no caller is waiting for this task'));
    assert.equal(store.get(TASK_ID)!.pins, 0);
  });

  test('stopped before it started: done fails, start() refuses, the origin is never asked', async () => {
    const d = download();
    await d.stop();
    await assert.rejects(d.done, isError('ABORTED'));
    await assert.rejects(d.start(), isError('USAGE'));
    assert.equal(origin.requests.length, 0);
  });

  test('stopped while starting: it goes no further', async () => {
    const d = download();
    const starting = d.start();
    const stopping = d.stop();
    await Promise.all([starting, stopping]);
    await assert.rejects(d.done, isError('ABORTED'));
    assert.equal(origin.requests.length, 0);
    assert.equal(store.get(TASK_ID)?.pins ?? 0, 0);
  });

  test('await using stops it', async () => {
    let d: TaskDownload;
    {
      await using scoped = download();
      d = scoped;
      const stored = firstPiece(scoped);
      await scoped.start();
      await stored;
    }
    await assert.rejects(d.done, isError('ABORTED'));
  });
});
