import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ShoalError } from '../src/common/errors.js';
import { createRateLimiter, defaultBurst } from '../src/daemon/upload/rate-limiter.js';

const KIB = 1024;
const MIB = 1024 * KIB;
const TIMEOUT = { timeout: 10_000 };

function timers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

describe('rate limiter', () => {
  it('rate 0 is unlimited: take resolves at once', TIMEOUT, async () => {
    const limiter = createRateLimiter(0);
    assert.equal(limiter.rate, 0);
    const start = performance.now();
    for (let i = 0; i < 1000; i++) await limiter.take(64 * MIB);
    assert.ok(performance.now() - start < 500);
  });

  it('default burst is 100 ms of traffic, at least 64 KiB', () => {
    assert.equal(defaultBurst(0), 64 * KIB);
    assert.equal(defaultBurst(100 * KIB), 64 * KIB);
    assert.equal(defaultBurst(100 * MIB), 10 * MIB);
  });

  it('holds a stream to roughly the configured rate (~0.5 s)', TIMEOUT, async () => {
    const rate = 2 * MIB;
    const limiter = createRateLimiter(rate);
    await limiter.take(defaultBurst(rate)); // empty the initial bucket
    const start = performance.now();
    for (let sent = 0; sent < MIB; sent += 64 * KIB) await limiter.take(64 * KIB);
    const seconds = (performance.now() - start) / 1000;
    assert.ok(seconds > 0.4 && seconds < 1.0, `1 MiB at 2 MiB/s took ${seconds.toFixed(3)} s`);
  });

  it('grants a request larger than the burst in parts', TIMEOUT, async () => {
    const limiter = createRateLimiter(4 * MIB, 64 * KIB);
    const start = performance.now();
    await limiter.take(2 * MIB);
    const seconds = (performance.now() - start) / 1000;
    assert.ok(seconds > 0.35 && seconds < 1.2, `2 MiB at 4 MiB/s took ${seconds.toFixed(3)} s`);
  });

  it('serves waiters first in, first out, sharing the rate', TIMEOUT, async () => {
    const limiter = createRateLimiter(2 * MIB, 64 * KIB);
    await limiter.take(64 * KIB);
    const order: number[] = [];
    const start = performance.now();
    await Promise.all([0, 1, 2, 3].map((i) => limiter.take(256 * KIB).then(() => order.push(i))));
    const seconds = (performance.now() - start) / 1000;
    assert.deepEqual(order, [0, 1, 2, 3]);
    assert.ok(seconds > 0.4 && seconds < 1.0, `4 × 256 KiB at 2 MiB/s took ${seconds.toFixed(3)} s`);
  });

  it('rejects with ABORTED when the signal aborts, and the queue moves on', TIMEOUT, async () => {
    const limiter = createRateLimiter(256 * KIB, 64 * KIB);
    await limiter.take(64 * KIB);
    const controller = new AbortController();
    const blocked = limiter.take(10 * MIB, controller.signal); // would take 40 s
    const next = limiter.take(32 * KIB);
    setTimeout(() => controller.abort(), 50);
    await assert.rejects(blocked, (err: unknown) => err instanceof ShoalError && err.code === 'ABORTED');
    const start = performance.now();
    await next;
    assert.ok(performance.now() - start < 1000);
    await assert.rejects(limiter.take(1, AbortSignal.abort()), (err: unknown) => err instanceof ShoalError && err.code === 'ABORTED');
  });

  it('leaves no timer running when idle', TIMEOUT, async () => {
    const before = timers();
    const limiter = createRateLimiter(MIB, 64 * KIB);
    await limiter.take(64 * KIB);
    const controller = new AbortController();
    const waiting = limiter.take(MIB, controller.signal);
    await sleep(20);
    assert.equal(timers(), before + 1);
    controller.abort();
    await assert.rejects(waiting);
    assert.equal(timers(), before);
    await limiter.take(16 * KIB);
    assert.equal(timers(), before);
  });

  it('setRate(0) releases waiters; a new rate applies to the queue', TIMEOUT, async () => {
    const limiter = createRateLimiter(64 * KIB, 64 * KIB);
    await limiter.take(64 * KIB);
    const waiting = limiter.take(10 * MIB); // 160 s at this rate
    await sleep(20);
    limiter.setRate(0);
    await waiting;
    assert.equal(limiter.rate, 0);
    limiter.setRate(8 * MIB);
    const start = performance.now();
    await limiter.take(MIB);
    assert.ok(performance.now() - start < 1000);
  });

  it('rejects bad arguments with USAGE', () => {
    assert.throws(() => createRateLimiter(-1), (err: unknown) => err instanceof ShoalError && err.code === 'USAGE');
    assert.throws(() => createRateLimiter(Number.NaN), ShoalError);
    assert.throws(() => createRateLimiter(1, 0), ShoalError);
    const limiter = createRateLimiter(MIB);
    assert.throws(() => limiter.setRate(Infinity), ShoalError);
    return assert.rejects(limiter.take(-5), ShoalError);
  });
});
