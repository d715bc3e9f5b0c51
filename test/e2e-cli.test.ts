/** `shoal get` as a user runs it (no daemon: the in-process one), against a real origin with faults. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Cluster, run } from './fixtures/cluster.js';
import { sha256digest } from './fixtures/hash.js';
import { isMidBody, startOrigin, type Origin } from './fixtures/origin.js';

describe('shoal get', { timeout: 180_000 }, () => {
  const content = randomBytes(3 * 1024 * 1024 + 17);
  const digest = sha256digest(content);
  let origin: Origin;
  let cluster: Cluster;
  let env: NodeJS.ProcessEnv;
  before(async () => {
    origin = await startOrigin({ files: new Map([['/f', content], ['/g', content], ['/h', content]]) });
    cluster = new Cluster();
    env = { SHOAL_DATA: cluster.path('data'), SHOAL_ENDPOINT: cluster.path('none.sock') };
  });
  after(async () => {
    await cluster.close();
    await origin.close();
  });

  const get = async (args: string[]): Promise<{ code: number | string; stderr: string }> => {
    const p = run(['get', ...args], env);
    return { code: await p.exited, stderr: p.stderr() };
  };

  test('downloads, verifies the digest, and a second get is served from the cache', async () => {
    const out = cluster.path('f.out');
    assert.equal((await get([`${origin.url}/f`, '-O', out, '--digest', digest])).code, 0);
    assert.deepEqual(readFileSync(out), content);
    const before = origin.bytesServed();
    const again = await get([`${origin.url}/f`, '-O', cluster.path('f2.out'), '--digest', digest]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(origin.bytesServed(), before, 'second get went to the origin');
  });

  test('origin errors: a clear error, a non-zero exit and no file at FILE', async () => {
    // Each fault is checked at the origin before the outcome: the get asked it, and it was cut where meant.
    let asked = origin.requests('/g');
    origin.fault('/g', { kind: 'status', status: 404 });
    let r = await get([`${origin.url}/g`, '-O', cluster.path('g404')]);
    assert.ok(origin.requests('/g') > asked, 'the get never asked the origin');
    assert.equal(r.code, 8);
    assert.match(r.stderr, /SOURCE_NOT_FOUND/);
    assert.equal(existsSync(cluster.path('g404')), false);
    origin.clearFaults();
    asked = origin.requests('/g');
    origin.fault('/g', { kind: 'status', status: 500 });
    r = await get([`${origin.url}/g`, '-O', cluster.path('g500')]);
    assert.ok(origin.requests('/g') > asked, 'the get never asked the origin');
    assert.equal(r.code, 8, r.stderr);
    assert.equal(existsSync(cluster.path('g500')), false);
    origin.clearFaults();
    // Every attempt dies before a byte arrives: retries cannot recover.
    asked = origin.requests('/g');
    origin.fault('/g', { kind: 'drop', afterBytes: 0 });
    r = await get([`${origin.url}/g`, '-O', cluster.path('gdrop')]);
    const drops = origin.cuts('/g');
    assert.ok(drops.length > 0 && drops.every((c) => c.headers && c.sent === 0 && c.length > 0), `not every attempt died before its first byte: ${JSON.stringify(drops)}`);
    assert.equal(origin.requests('/g') - asked, drops.length, 'an attempt was not cut');
    assert.notEqual(r.code, 0);
    assert.equal(existsSync(cluster.path('gdrop')), false);
    assert.deepEqual(readdirSync(cluster.dir).filter((f) => f.includes('.shoal-')), [], 'temporary file left behind');
    origin.clearFaults();
    // A drop that a retry recovers from.
    origin.fault('/h', { kind: 'drop', afterBytes: 1024 * 1024 }, 1);
    r = await get([`${origin.url}/h`, '-O', cluster.path('hdrop')]);
    const cuts = origin.cuts('/h');
    assert.ok(cuts.length === 1 && isMidBody(cuts[0]!), `the origin did not cut the body once, mid-body: ${JSON.stringify(cuts)}`);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readFileSync(cluster.path('hdrop')), content);
  });

  test('-o FILE is -O FILE (curl style); without either, exit 2 and a message naming both', async () => {
    const out = cluster.path('o.out');
    const curlStyle = await get([`${origin.url}/f`, '-o', out, '--digest', digest]);
    assert.equal(curlStyle.code, 0, curlStyle.stderr);
    assert.deepEqual(readFileSync(out), content);
    const none = await get([`${origin.url}/f`, '--digest', digest]);
    assert.equal(none.code, 2, none.stderr);
    assert.match(none.stderr, /USAGE: an output file is required: -O FILE \(or -o FILE/);
    const both = await get([`${origin.url}/f`, '-O', cluster.path('o1'), '-o', cluster.path('o2')]);
    assert.equal(both.code, 2, both.stderr);
    assert.match(both.stderr, /USAGE: -O and -o name different files/);
    assert.equal(existsSync(cluster.path('o1')) || existsSync(cluster.path('o2')), false);
  });

  test('bad input: clear errors and exit codes', async () => {
    assert.equal((await get(['ftp://x/y', '-O', cluster.path('x')])).code, 2);
    assert.equal((await get([`${origin.url}/f`, '-O', cluster.path('x'), '--digest', 'sha256:abc'])).code, 2);
    const wrong = 'sha256:' + '0'.repeat(64);
    const mismatch = await get([`${origin.url}/f?v=2`, '-O', cluster.path('mm'), '--digest', wrong]);
    assert.equal(mismatch.code, 9, mismatch.stderr);
    assert.equal(existsSync(cluster.path('mm')), false);
    const ro = cluster.path('ro');
    mkdirSync(ro);
    chmodSync(ro, 0o500);
    const unwritable = await get([`${origin.url}/f`, '-O', `${cluster.path('missing-dir')}/x`]);
    assert.equal(unwritable.code, 3);
    assert.match(unwritable.stderr, /OUTPUT_UNWRITABLE/);
    const badConfig = cluster.path('bad.yaml');
    writeFileSync(badConfig, 'upload:\n  slotz: 3\n');
    const daemon = run(['daemon', '--config', badConfig, '--data', cluster.path('cfgdata')]);
    assert.equal(await daemon.exited, 2);
    assert.match(daemon.stderr(), /upload/);
    writeFileSync(badConfig, 'listen: [\n');
    const daemon2 = run(['daemon', '--config', badConfig, '--data', cluster.path('cfgdata')]);
    assert.equal(await daemon2.exited, 2);
    assert.match(daemon2.stderr(), /CONFIG_INVALID/);
  });
});
