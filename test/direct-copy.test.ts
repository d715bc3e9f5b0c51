/**
 * The output copy written with O_DIRECT (src/cli/direct-copy.ts): every size
 * around the 4 KiB blocks and 4 MiB chunks comes out byte-exact with the
 * source's permission bits, an existing target is refused, and through a
 * real `shoal get` the default copy leaves no second copy of the file in the
 * page cache (fincore, util-linux) where `--no-direct-io` does.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, constants as fsc, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { directCopy } from '../src/cli/direct-copy.js';
import { Cluster, run } from './fixtures/cluster.js';
import { startOrigin, type Origin } from './fixtures/origin.js';

const KiB = 1024;
const MiB = 1024 * KiB;

describe('directCopy', () => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-direct-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const size of [0, 1, 4 * KiB - 1, 4 * KiB, 4 * KiB + 1, 4 * MiB - 1, 4 * MiB, 4 * MiB + 1, 9 * MiB + 4097]) {
    test(`${size} bytes come out byte-exact`, async () => {
      const from = join(dir, `src-${size}`);
      const to = join(dir, `dst-${size}`);
      const bytes = randomBytes(size);
      writeFileSync(from, bytes);
      chmodSync(from, 0o640);
      await directCopy(from, to);
      assert.equal(statSync(to).size, size);
      assert.ok(readFileSync(to).equals(bytes), 'the copy differs from the source');
      assert.equal(statSync(to).mode & 0o777, 0o640);
    });
  }

  test('an aborted signal stops the copy before the next chunk', async () => {
    const from = join(dir, 'src-abort');
    const to = join(dir, 'dst-abort');
    writeFileSync(from, randomBytes(12 * MiB));
    const stop = new AbortController();
    stop.abort(new Error('cancelled by the test'));
    await assert.rejects(directCopy(from, to, stop.signal), /cancelled by the test/);
    assert.ok(statSync(to).size < 12 * MiB, 'the whole file was copied after the abort');
  });

  test('an existing target is refused, and left as it was', async () => {
    const from = join(dir, 'src-exists');
    const to = join(dir, 'dst-exists');
    writeFileSync(from, randomBytes(8 * KiB));
    writeFileSync(to, 'keep me');
    await assert.rejects(directCopy(from, to), { code: 'EEXIST' });
    assert.equal(readFileSync(to, 'utf8'), 'keep me');
  });
});

/** Bytes of the file in the page cache. */
function cachedBytes(path: string): number {
  return Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', path], { encoding: 'utf8' }).trim());
}

describe('shoal get places its output', { timeout: 120_000 }, () => {
  const content = randomBytes(24 * MiB + 123);
  let origin: Origin;
  let cluster: Cluster;
  let env: NodeJS.ProcessEnv;
  before(async () => {
    origin = await startOrigin({ files: new Map([['/f', content]]) });
    cluster = new Cluster();
    env = { SHOAL_DATA: cluster.path('data'), SHOAL_ENDPOINT: cluster.path('none.sock') };
  });
  after(async () => {
    await cluster.close();
    await origin.close();
  });
  // On tmpfs every byte is page cache whatever the copy: the page-cache check needs a disk.
  const onDisk = (): boolean => execFileSync('stat', ['-f', '-c', '%T', cluster.dir], { encoding: 'utf8' }).trim() !== 'tmpfs';
  /** The file system under the cluster's directory refuses O_DIRECT (then the buffered copy is right). */
  const refusesDirect = (): boolean => {
    const probe = cluster.path('o_direct.probe');
    try {
      closeSync(openSync(probe, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_DIRECT, 0o600));
      return false;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EINVAL') return true;
      throw err;
    } finally {
      rmSync(probe, { force: true });
    }
  };

  test('by default, straight to disk: byte-exact, and not a second time in memory', async () => {
    const out = cluster.path('direct.out');
    const p = run(['get', `${origin.url}/f`, '-O', out], env);
    assert.equal(await p.exited, 0, p.stderr());
    if (refusesDirect()) {
      assert.match(p.stderr(), /saved .*\(buffered copy;/, 'the file system refuses O_DIRECT: the buffered copy is the fallback');
      assert.ok(readFileSync(out).equals(content), 'the output differs from the origin');
      return;
    }
    assert.match(p.stderr(), /saved .*\(copy;/);
    // before anything reads it back
    if (onDisk()) assert.ok(cachedBytes(out) <= 8 * KiB, `${cachedBytes(out)} bytes of the output are in the page cache`);
    assert.ok(readFileSync(out).equals(content), 'the output differs from the origin');
  });

  test('--no-direct-io: the kernel copy, through the page cache', async () => {
    const out = cluster.path('buffered.out');
    const p = run(['get', `${origin.url}/f`, '-O', out, '--no-direct-io'], env);
    assert.equal(await p.exited, 0, p.stderr());
    assert.match(p.stderr(), /saved .*\(buffered copy;/);
    if (onDisk()) assert.ok(cachedBytes(out) > content.length / 2, `only ${cachedBytes(out)} bytes of a buffered copy are in the page cache`);
    assert.ok(readFileSync(out).equals(content), 'the output differs from the origin');
  });
});
