/**
 * s3:// through real processes: a scheduler and three daemons, each with its
 * own object-store credentials (or none), against s3rver behind the gate that
 * verifies signatures and keeps the bucket "private" private. The daemon
 * holding a private object never hands it to a requester whose daemon cannot
 * read it from the store; one that can gets it from its peer (only the
 * one-byte access check reaches the store).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Cluster } from './fixtures/cluster.js';
import { s3Env, startS3, type S3Server } from './fixtures/s3.js';

describe('s3:// in a swarm of real processes', { timeout: 90_000 }, () => {
  const cluster = new Cluster();
  let s3: S3Server;
  const content = randomBytes(3 * (1 << 20) + 17);
  const daemons: Record<'holder' | 'anonymous' | 'reader', string> = { holder: '', anonymous: '', reader: '' };

  before(async () => {
    s3 = await startS3({ buckets: ['public'], privateBuckets: ['private'] });
    await s3.put('private', 'logs/app.log', content);
    await s3.put('public', 'pub.bin', content);
    const { url: scheduler } = await cluster.scheduler();
    const home = cluster.path('home');
    daemons.holder = (await cluster.daemon({ scheduler, env: s3Env(home) })).api;
    daemons.anonymous = (await cluster.daemon({ scheduler, env: s3Env(home, null) })).api;
    daemons.reader = (await cluster.daemon({ scheduler, env: s3Env(home) })).api;
  });
  after(async () => {
    await cluster.close();
    await s3.close();
  });

  const get = async (via: keyof typeof daemons, url: string, out: string): Promise<{ code: number | string; stderr: string }> => {
    const proc = cluster.get(url, cluster.path(out), ['-e', daemons[via], '--endpoint-url', s3.endpoint]);
    const code = await proc.exited;
    return { code, stderr: proc.stderr() };
  };
  const fullGets = (path: string): number => s3.seen.filter((r) => r.path === path && r.range !== 'bytes=0-0').length;

  test('the daemon with credentials fetches a private object; one without is refused (SOURCE_AUTH, exit 6) though a peer holds it; one with credentials gets it from the peer', async () => {
    const holder = await get('holder', 's3://private/logs/app.log', 'holder.out');
    assert.equal(holder.code, 0, holder.stderr);
    assert.ok(readFileSync(cluster.path('holder.out')).equals(content));
    assert.equal(fullGets('/private/logs/app.log'), 1);

    const refused = await get('anonymous', 's3://private/logs/app.log', 'anonymous.out');
    assert.equal(refused.code, 6, refused.stderr);
    assert.match(refused.stderr, /SOURCE_AUTH.*AccessDenied/);
    assert.equal(existsSync(cluster.path('anonymous.out')), false);

    const reader = await get('reader', 's3://private/logs/app.log', 'reader.out');
    assert.equal(reader.code, 0, reader.stderr);
    assert.ok(readFileSync(cluster.path('reader.out')).equals(content));
    assert.equal(fullGets('/private/logs/app.log'), 1, 'the second reader got the bytes from its peer');
    // The one unsigned request is the anonymous daemon's access check, refused.
    const unsigned = s3.seen.filter((r) => r.path.startsWith('/private/') && !r.signed);
    assert.deepEqual(unsigned.map((r) => r.range), ['bytes=0-0'], JSON.stringify(s3.seen));
  });

  test('a public object: the anonymous daemon reads it unsigned', async () => {
    const anonymous = await get('anonymous', 's3://public/pub.bin', 'pub.out');
    assert.equal(anonymous.code, 0, anonymous.stderr);
    assert.ok(readFileSync(cluster.path('pub.out')).equals(content));
  });

  test('credentials appear in no output or log', () => {
    for (const proc of cluster.procs) assert.doesNotMatch(proc.stderr(), /S3RVER/);
  });
});
