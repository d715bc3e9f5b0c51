/** The cache GC's choice of what to evict (src/daemon/storage/eviction.ts): pure, no files. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { chooseEvictions, chooseReclaim, type EvictionCandidate } from '../src/daemon/storage/eviction.js';

const MiB = 1024 * 1024;
const task = (id: string, lastAccess: number, extra: Partial<EvictionCandidate> = {}): EvictionCandidate => ({
  id,
  lastAccess,
  complete: true,
  pins: 0,
  heldBytes: MiB,
  ...extra,
});

describe('cache eviction', () => {
  test('no quota and no TTL: nothing is evicted', () => {
    assert.deepEqual(chooseEvictions([task('a', 0), task('b', 1)], { quota: 0, ttl: 0 }, 1e12), []);
  });

  test('the TTL evicts every task unused for longer, and only those', () => {
    const tasks = [task('old', 1000), task('edge', 40_000), task('fresh', 90_000)];
    assert.deepEqual(chooseEvictions(tasks, { quota: 0, ttl: 60_000 }, 100_000), ['old']);
  });

  test('over the quota, the least recently used go until the rest fits', () => {
    const tasks = [task('c', 30), task('a', 10), task('d', 40), task('b', 20)];
    assert.deepEqual(chooseEvictions(tasks, { quota: 2 * MiB, ttl: 0 }, 100), ['a', 'b']);
    assert.deepEqual(chooseEvictions(tasks, { quota: 4 * MiB, ttl: 0 }, 100), []);
    assert.deepEqual(chooseEvictions(tasks, { quota: 3.5 * MiB, ttl: 0 }, 100), ['a']);
  });

  test('complete tasks go before partial ones, however old the partial ones are', () => {
    const tasks = [task('partial', 0, { complete: false }), task('complete', 50)];
    assert.deepEqual(chooseEvictions(tasks, { quota: MiB, ttl: 0 }, 100), ['complete']);
    assert.deepEqual(chooseEvictions(tasks, { quota: 1, ttl: 0 }, 100), ['complete', 'partial']);
  });

  test('a pinned task is never evicted, but its bytes count against the quota', () => {
    const tasks = [task('pinned', 0, { pins: 1, heldBytes: 3 * MiB }), task('a', 10), task('b', 20)];
    assert.deepEqual(chooseEvictions(tasks, { quota: 2 * MiB, ttl: 1 }, 1000), ['a', 'b']);
    assert.deepEqual(chooseEvictions([task('pinned', 0, { pins: 2 })], { quota: 1, ttl: 1 }, 1000), []);
  });

  test('TTL evictions come first and count as freed before the quota is applied', () => {
    const tasks = [task('new', 900, { heldBytes: 2 * MiB }), task('expired', 10, { heldBytes: 2 * MiB }), task('mid', 500, { heldBytes: 2 * MiB })];
    // 6 MiB held; the expired one frees 2; the quota (4 MiB) is then met.
    assert.deepEqual(chooseEvictions(tasks, { quota: 4 * MiB, ttl: 600 }, 1000), ['expired']);
    // A quota of 2 MiB takes the least recently used of the rest too.
    assert.deepEqual(chooseEvictions(tasks, { quota: 2 * MiB, ttl: 600 }, 1000), ['expired', 'mid']);
  });

  test('storage full: every unpinned partial task goes; complete ones only as far as that makes room', () => {
    const tasks = [
      task('partial', 50, { complete: false, heldBytes: 2 * MiB }),
      task('downloading', 60, { complete: false, pins: 1 }),
      task('old', 10, { heldBytes: 3 * MiB }),
      task('recent', 90, { heldBytes: 3 * MiB }),
      task('served', 0, { pins: 1 }),
    ];
    // The partial one alone makes room.
    assert.deepEqual(chooseReclaim(tasks, { free: 0, wanted: 2 * MiB }), ['partial']);
    // Then the least recently used complete ones, until there is room.
    assert.deepEqual(chooseReclaim(tasks, { free: MiB, wanted: 5 * MiB }), ['partial', 'old']);
    assert.deepEqual(chooseReclaim(tasks, { free: MiB, wanted: 9 * MiB }), ['partial', 'old', 'recent']);
    // Even all of them would not make room: the cache is kept.
    assert.deepEqual(chooseReclaim(tasks, { free: MiB, wanted: 10 * MiB }), ['partial']);
  });
});
