/** Cache IDs (common/cache-id.ts) and where a cache task's missing copies go (scheduler/cache-replicas.ts): pure. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cacheTaskId, checkCacheId, importId } from '../src/common/cache-id.js';
import { ShoalError } from '../src/common/errors.js';
import { replicaTargets } from '../src/scheduler/cache-replicas.js';
import { HostEntry, type HostInfo } from '../src/scheduler/model.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const code = (c: string) => (err: unknown) => err instanceof ShoalError && err.code === c;

function host(id: string, seed = false): HostEntry {
  const info: HostInfo = { id, hostname: id, ip: '127.0.0.1', port: 1, idc: '', location: '', seed, uploadSlots: 1, uploadLoad: 0, uploadRate: 0, identity: '' };
  return new HostEntry(info, () => undefined);
}

describe('cache IDs', () => {
  it('accepts a stable charset of 1-128, refuses the rest with CACHE_ID_INVALID', () => {
    for (const ok of ['build-42', 'a', 'v1.2_rc:3', 'X'.repeat(128), DIGEST]) assert.equal(checkCacheId(ok), ok);
    for (const bad of ['', '../etc/passwd', '-x', '.hidden', 'a/b', 'a b', 'é', 'x'.repeat(129), 'a\0b']) assert.throws(() => checkCacheId(bad), code('CACHE_ID_INVALID'), bad);
  });

  it('without --id the content digest is the ID; a digest-shaped ID must be the content\'s', () => {
    assert.equal(importId(undefined, DIGEST), DIGEST);
    assert.equal(importId('build-42', DIGEST), 'build-42');
    assert.throws(() => importId(`sha256:${'b'.repeat(64)}`, DIGEST), code('CACHE_ID_INVALID'));
  });

  it('the task ID comes from the cache ID alone and is no URL task\'s', () => {
    assert.equal(cacheTaskId('build-42'), cacheTaskId('build-42'));
    assert.notEqual(cacheTaskId('build-42'), cacheTaskId('build-43'));
    assert.match(cacheTaskId('build-42'), /^[a-f0-9]{64}$/);
  });
});

describe('replica targets', () => {
  const hosts = [host('p1'), host('s1', true), host('p2'), host('s2', true), host('p3')];

  it('asks for the missing copies on hosts holding none, seeds first', () => {
    const targets = replicaTargets({ taskId: 't', replicas: 3, holders: new Set(['p1']), restoring: new Set(), hosts });
    assert.equal(targets.length, 2);
    assert.deepEqual(new Set(targets.map((h) => h.info.id)), new Set(['s1', 's2']));
  });

  it('copies being made count; nothing is asked with enough copies or none to copy from', () => {
    assert.equal(replicaTargets({ taskId: 't', replicas: 3, holders: new Set(['p1']), restoring: new Set(['s1']), hosts }).length, 1);
    assert.equal(replicaTargets({ taskId: 't', replicas: 2, holders: new Set(['p1', 'p2']), restoring: new Set(), hosts }).length, 0);
    assert.equal(replicaTargets({ taskId: 't', replicas: 2, holders: new Set(), restoring: new Set(), hosts }).length, 0);
  });

  it('never more hosts than exist', () => {
    const targets = replicaTargets({ taskId: 't', replicas: 16, holders: new Set(['p1']), restoring: new Set(), hosts });
    assert.equal(targets.length, 4);
    assert.ok(!targets.some((h) => h.info.id === 'p1'));
  });
});
