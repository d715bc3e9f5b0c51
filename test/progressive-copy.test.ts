/**
 * The output copied as pieces come (src/cli/progressive-copy.ts, the
 * daemon's `pieces` events in src/daemon/api/piece-events.ts): pieces copied
 * in one generation and then rewritten in the next are copied again (never a
 * mix of the two contents), a content file replaced under the copy or an
 * unaligned piece size makes the caller copy the usual way, and through a
 * real daemon the events name every piece of the done generation and the
 * output's temporary file fills while the download is still running.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { requestDownload, type DownloadEvent } from '../src/cli/daemon-client.js';
import { ProgressiveCopy, checkPieces } from '../src/cli/progressive-copy.js';
import { StoredTask } from '../src/daemon/storage/stored-task.js';
import { Cluster, run } from './fixtures/cluster.js';
import { startOrigin } from './fixtures/origin.js';
import { until } from './fixtures/wait.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const PIECE = 1 * MiB;

describe('ProgressiveCopy', () => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-progressive-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const size = 10 * PIECE + 123;
  const all = Array.from({ length: 11 }, (_, i) => i);
  const notice = (path: string, generation: number, numbers: number[]) => ({ path, pieceSize: PIECE, contentLength: size, generation, numbers });
  const signal = AbortSignal.timeout(20_000);

  test('every piece named is copied, the rest and the tail at the end: byte-exact', async () => {
    const content = randomBytes(size);
    const src = join(dir, 'c1');
    writeFileSync(src, content);
    const copy = new ProgressiveCopy(join(dir, 'o1.tmp'));
    copy.pieces(notice(src, 0, [3, 1, 7, 10, 0, 2]));
    assert.equal(await copy.finish(src, 0, signal), true);
    assert.ok(readFileSync(copy.tmp).equals(content), 'the copy differs from the content');
  });

  /** A copy of every piece of one content, made in `generation`; then the file is rewritten with other bytes (the daemon dropped its pieces). */
  async function copiedThenRewritten(name: string, generation: number): Promise<{ copy: ProgressiveCopy; src: string; now: Buffer }> {
    const old = randomBytes(size);
    const now = randomBytes(size);
    const src = join(dir, `c-${name}`);
    writeFileSync(src, old);
    const copy = new ProgressiveCopy(join(dir, `o-${name}.tmp`));
    copy.pieces(notice(src, generation, all));
    // Let the old generation's copies land first (the fault: the old bytes are in the output).
    await until(() => statSync(copy.tmp, { throwIfNoEntry: false })?.size === 8 * PIECE, 'the old pieces to be copied (two whole 4 MiB spans)', { within: 10_000 });
    assert.ok(readFileSync(copy.tmp).subarray(0, PIECE).equals(old.subarray(0, PIECE)), 'the old generation was copied');
    writeFileSync(src, now);
    return { copy, src, now };
  }

  test('a new generation: what was copied before is copied again, never mixed', async () => {
    const { copy, src, now } = await copiedThenRewritten('named', 4);
    // Only two pieces named in the new generation.
    copy.pieces(notice(src, 5, [2, 9]));
    assert.equal(await copy.finish(src, 5, signal), true);
    assert.ok(readFileSync(copy.tmp).equals(now), 'the output mixes two generations');
  });

  test('done in a generation never named: everything is copied at the end', async () => {
    const { copy, src, now } = await copiedThenRewritten('unnamed', 0);
    assert.equal(await copy.finish(src, 1, signal), true);
    assert.ok(readFileSync(copy.tmp).equals(now), 'the output mixes two generations');
  });

  test('a content file replaced under the copy, or another path at the end: not used', async () => {
    const src = join(dir, 'c4');
    writeFileSync(src, randomBytes(size));
    const copy = new ProgressiveCopy(join(dir, 'o4.tmp'));
    copy.pieces(notice(src, 0, [0, 1, 2, 3]));
    await until(() => statSync(copy.tmp, { throwIfNoEntry: false })?.size === 4 * PIECE, 'the first span to be copied', { within: 10_000 });
    const other = join(dir, 'c4-new');
    writeFileSync(other, randomBytes(size));
    renameSync(other, src);
    assert.equal(await copy.finish(src, 0, signal), false);
    await copy.discard();
    assert.equal(statSync(copy.tmp, { throwIfNoEntry: false }), undefined, 'discard left the temporary file');

    const again = new ProgressiveCopy(join(dir, 'o5.tmp'));
    again.pieces(notice(src, 0, [0]));
    assert.equal(await again.finish(join(dir, 'elsewhere'), 0, signal), false);
    await again.discard();
  });

  test('pieces not a multiple of 4 KiB: not used, nothing created', async () => {
    const src = join(dir, 'c6');
    writeFileSync(src, randomBytes(5000));
    const copy = new ProgressiveCopy(join(dir, 'o6.tmp'));
    copy.pieces({ path: src, pieceSize: 1000, contentLength: 5000, generation: 0, numbers: [0, 1] });
    assert.equal(await copy.finish(src, 0, signal), false);
    assert.equal(statSync(copy.tmp, { throwIfNoEntry: false }), undefined);
  });

  test('events that are not a pieces notice are refused field by field', () => {
    const good = { path: '/x', pieceSize: PIECE, contentLength: size, generation: 0, numbers: [0, 10] };
    assert.deepEqual(checkPieces(good), good);
    for (const bad of [{ numbers: [11] }, { numbers: [-1] }, { numbers: [0.5] }, { numbers: 'all' }, { path: '' }, { pieceSize: 0 }, { generation: -1 }, { contentLength: 'big' }]) {
      assert.equal(checkPieces({ ...good, ...bad }), undefined, JSON.stringify(bad));
    }
  });

  test('a store dropping pieces moves the task to the next generation', () => {
    const task = new StoredTask({ id: 't', url: 'http://x/', digest: null, last_access: 0 }, '/nowhere');
    task.digests.set(0, Buffer.alloc(32));
    task.digests.set(1, Buffer.alloc(32));
    task.dropPieces([1]);
    assert.equal(task.generation, 1);
    assert.deepEqual([...task.digests.keys()], [0]);
    task.dropPieces();
    assert.equal(task.generation, 2);
    assert.equal(task.digests.size, 0);
  });
});

describe('through a daemon', { timeout: 120_000 }, () => {
  const cluster = new Cluster();
  const a = randomBytes(12 * MiB + 77);
  const b = randomBytes(12 * MiB + 77);
  let origin: Awaited<ReturnType<typeof startOrigin>>;
  after(async () => {
    await cluster.close();
    await origin?.close();
  });

  test('pieces events name every piece of the done generation; the output fills before the get ends', async () => {
    origin = await startOrigin({ files: new Map([['/a.bin', a], ['/b.bin', b]]), rateLimit: 4 * MiB });
    const proc = run(['daemon', '--listen', '127.0.0.1:0', '--data', cluster.path('data'), '--api', cluster.path('api.sock'), '--log-level', 'warn']);
    cluster.procs.push(proc);
    await until(() => proc.stderr().includes('upload port'), 'the daemon to start', { within: 10_000 });

    const events: DownloadEvent[] = [];
    for await (const e of requestDownload(cluster.path('api.sock'), { url: `${origin.url}/a.bin`, pieces: true }, AbortSignal.timeout(60_000))) events.push(e);
    const done = events.at(-1);
    assert.equal(done?.event, 'done');
    const notices = events.filter((e) => e.event === 'pieces').map((e) => checkPieces(e as unknown as Record<string, unknown>));
    assert.ok(notices.length > 1, 'a 3 s download names its pieces in more than one event');
    const named = new Set<number>();
    for (const n of notices) {
      assert.ok(n !== undefined, 'a pieces event the get would refuse');
      assert.equal(n.path, done.path);
      assert.equal(n.generation, done.generation);
      for (const k of n.numbers) named.add(k);
    }
    const pieceSize = notices[0]!.pieceSize;
    assert.equal(named.size, Math.ceil(a.length / pieceSize), 'some piece was never named');

    const out = cluster.path('b.out');
    const get = run(['get', `${origin.url}/b.bin`, '-O', out], { SHOAL_ENDPOINT: cluster.path('api.sock') });
    // While it downloads, the output's temporary file already holds bytes (and FILE itself does not exist).
    const partial = (): number => {
      const name = readdirSync(cluster.dir).find((f) => f.startsWith('.b.out.shoal-'));
      return name === undefined ? 0 : statSync(join(cluster.dir, name), { throwIfNoEntry: false })?.size ?? 0;
    };
    await until(() => partial() >= 4 * MiB, 'the temporary output to fill during the download', { within: 20_000 });
    assert.equal(statSync(out, { throwIfNoEntry: false }), undefined, 'the output exists before the download is done');
    assert.equal(await get.exited, 0, get.stderr());
    assert.match(get.stderr(), /saved .*\(copy;/);
    assert.ok(readFileSync(out).equals(b), 'the output differs from the origin');
    assert.deepEqual(readdirSync(cluster.dir).filter((f) => f.includes('.shoal-')), [], 'a temporary file was left');
  });
});
