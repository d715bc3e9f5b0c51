/**
 * Issue 15, item 4: the user's file never shares storage with the cache, and
 * a cache hit never returns bytes that differ from the task's digests. Real
 * `shoal get` processes (the in-process daemon) against a real origin; the
 * attacks are the issue's: append to the output, edit it, and change the
 * cached file while keeping its mtime.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, linkSync, openSync, readFileSync, readdirSync, statSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cluster, run } from './fixtures/cluster.js';
import { sha256hex } from './fixtures/hash.js';
import { startOrigin, type Origin } from './fixtures/origin.js';

const MiB = 1024 * 1024;

/** The content file in DATA/content holding exactly `content`. */
function cacheFileOf(data: string, content: Buffer): string {
  const want = sha256hex(content);
  const root = join(data, 'content');
  for (const dir of readdirSync(root)) {
    for (const name of readdirSync(join(root, dir))) {
      const path = join(root, dir, name);
      if (statSync(path).size === content.length && sha256hex(readFileSync(path)) === want) return path;
    }
  }
  assert.fail(`no content file holds the ${content.length} bytes`);
}

/** Writes `bytes` at `offset` into the file, in place. */
function overwrite(path: string, offset: number, bytes: Buffer): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, bytes, 0, bytes.length, offset);
  closeSync(fd);
}

describe('the output and the cache', { timeout: 180_000 }, () => {
  const files = new Map<string, Buffer>();
  for (const name of ['append', 'edit', 'mtime', 'grow', 'legacy']) files.set(`/${name}`, randomBytes(3 * MiB + 17));
  const content = (name: string): Buffer => files.get(`/${name}`)!;
  let origin: Origin;
  let cluster: Cluster;
  let env: NodeJS.ProcessEnv;
  before(async () => {
    origin = await startOrigin({ files });
    cluster = new Cluster();
    env = { SHOAL_DATA: cluster.path('data'), SHOAL_ENDPOINT: cluster.path('none.sock') };
  });
  after(async () => {
    await cluster.close();
    await origin.close();
  });

  const get = async (name: string, out: string): Promise<void> => {
    const p = run(['get', `${origin.url}/${name}`, '-O', out], env);
    assert.equal(await p.exited, 0, p.stderr());
  };

  test('the output is a file of its own, not a link to the cache', async () => {
    const out = cluster.path('own.out');
    await get('append', out);
    const cached = cacheFileOf(cluster.path('data'), content('append'));
    assert.notEqual(statSync(out).ino, statSync(cached).ino, 'the output is the cached file');
    assert.equal(statSync(out).nlink, 1);
    assert.equal(statSync(cached).nlink, 1);
  });

  test('bytes appended to the output do not come back from the cache', async () => {
    const out = cluster.path('own.out');
    appendFileSync(out, 'nineteen extra byte');
    const served = origin.bytesServed('/append');
    const again = cluster.path('append2.out');
    await get('append', again);
    assert.equal(origin.bytesServed('/append'), served, 'the second get went to the origin: no cache hit tested');
    assert.deepEqual(readFileSync(again), content('append'));
  });

  test('an edit of the output is kept, and the next get is still the origin content', async () => {
    const out = cluster.path('edit.out');
    await get('edit', out);
    overwrite(out, MiB + 5, Buffer.from('EDITED'));
    const again = cluster.path('edit2.out');
    await get('edit', again);
    assert.deepEqual(readFileSync(again), content('edit'));
    assert.equal(readFileSync(out).subarray(MiB + 5, MiB + 11).toString(), 'EDITED', "the user's edit was reverted");
  });

  test('the cached file changed with its mtime put back: the change is found and repaired', async () => {
    const data = cluster.path('data');
    await get('mtime', cluster.path('mtime.out'));
    const cached = cacheFileOf(data, content('mtime'));
    const stamp = cluster.path('mtime.ref');
    execFileSync('touch', ['-r', cached, stamp]); // the times, to the nanosecond
    overwrite(cached, 2 * MiB + 3, Buffer.from('tampered'));
    execFileSync('touch', ['-r', stamp, cached]);
    assert.equal(statSync(cached, { bigint: true }).mtimeNs, statSync(stamp, { bigint: true }).mtimeNs, 'the mtime was not put back');
    const served = origin.bytesServed('/mtime');
    const again = cluster.path('mtime2.out');
    await get('mtime', again);
    assert.deepEqual(readFileSync(again), content('mtime'));
    assert.ok(origin.bytesServed('/mtime') > served, 'the bad piece was not fetched again');
  });

  test('bytes appended to the cached file, mtime put back: they are cut off', async () => {
    const data = cluster.path('data');
    await get('grow', cluster.path('grow.out'));
    const cached = cacheFileOf(data, content('grow'));
    const stamp = cluster.path('grow.ref');
    execFileSync('touch', ['-r', cached, stamp]);
    appendFileSync(cached, 'nineteen extra byte');
    execFileSync('touch', ['-r', stamp, cached]);
    const again = cluster.path('grow2.out');
    await get('grow', again);
    assert.deepEqual(readFileSync(again), content('grow'));
  });

  test('a hard link to the cache made by an older version: editing it is kept, the cache repaired apart', async () => {
    const data = cluster.path('data');
    await get('legacy', cluster.path('legacy0.out'));
    const cached = cacheFileOf(data, content('legacy'));
    const linked = cluster.path('legacy.out');
    linkSync(cached, linked); // what `shoal get` used to leave
    overwrite(linked, 5, Buffer.from('MINE'));
    const again = cluster.path('legacy2.out');
    await get('legacy', again);
    assert.deepEqual(readFileSync(again), content('legacy'));
    assert.equal(readFileSync(linked).subarray(5, 9).toString(), 'MINE', 'the repair wrote into the linked file');
    assert.equal(statSync(linked).nlink, 1, 'the cache still shares its inode');
    assert.ok(existsSync(cacheFileOf(data, content('legacy'))));
  });
});
