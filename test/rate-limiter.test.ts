/**
 * The token bucket (src/common/rate-limiter.ts) on a manual clock: time moves
 * only when the test advances it, and each case asserts how many bytes were
 * granted by a given virtual time. Nothing here depends on the machine's speed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ShoalError } from '../src/common/errors.js';
import { createRateLimiter, defaultBurst, takeAll } from '../src/common/rate-limiter.js';
import { ManualClock, settle } from './fixtures/manual-clock.js';

const KIB = 1024;
const MIB = 1024 * KIB;
const TIMEOUT = { timeout: 10_000 };

/** Takes `bytes` in `chunk`-sized takes one after another; `granted()` says how many were granted so far. */
function stream(take: (n: number) => Promise<void>, bytes: number, chunk: number): { granted: () => number; done: Promise<void> } {
  let granted = 0;
  const done = (async () => {
    for (let sent = 0; sent < bytes; sent += chunk) {
      await take(Math.min(chunk, bytes - sent));
      granted += Math.min(chunk, bytes - sent);
    }
  })();
  return { granted: () => granted, done };
}

describe('rate limiter (manual clock)', () => {
  it('rate 0 is unlimited: take resolves at once, no timer armed', TIMEOUT, async () => {
    const clock = new ManualClock();
    const limiter = createRateLimiter(0, undefined, clock);
    assert.equal(limiter.rate, 0);
    for (let i = 0; i < 1000; i++) await limiter.take(64 * MIB);
    assert.equal(clock.pending, 0);
    assert.equal(limiter.waits.count, 0);
  });

  it('default burst is 100 ms of traffic, at least 64 KiB', () => {
    assert.equal(defaultBurst(0), 64 * KIB);
    assert.equal(defaultBurst(100 * KIB), 64 * KIB);
    assert.equal(defaultBurst(100 * MIB), 10 * MIB);
  });

  it('holds a stream to the configured rate: the bytes granted follow virtual time', TIMEOUT, async () => {
    const clock = new ManualClock();
    const rate = 2 * MIB;
    const limiter = createRateLimiter(rate, 64 * KIB, clock);
    await limiter.take(64 * KIB); // empty the initial bucket
    const s = stream((n) => limiter.take(n), 2 * MIB, 64 * KIB);
    await settle();
    assert.equal(s.granted(), 0, 'nothing before time moves');
    await clock.advance(500);
    // 500 ms at 2 MiB/s = 1 MiB, give or take one chunk of timer rounding.
    assert.ok(Math.abs(s.granted() - MIB) <= 64 * KIB, `granted ${s.granted()} after 500 ms`);
    await clock.advance(520); // and a little more: each wait is rounded up to the next millisecond
    await s.done;
    assert.equal(s.granted(), 2 * MIB);
    assert.equal(limiter.grantedBytes, 2 * MIB + 64 * KIB);
    assert.ok(limiter.waits.count > 0);
    assert.equal(clock.pending, 0, 'no timer left when idle');
  });

  it('grants a request larger than the burst in parts, over the time the rate needs', TIMEOUT, async () => {
    const clock = new ManualClock();
    const limiter = createRateLimiter(4 * MIB, 64 * KIB, clock);
    let done = false;
    const big = limiter.take(2 * MIB).then(() => (done = true));
    await clock.advance(400);
    assert.equal(done, false, '2 MiB at 4 MiB/s is not done at 400 ms');
    assert.ok(limiter.grantedBytes >= 1.5 * MIB && limiter.grantedBytes < 2 * MIB, `granted ${limiter.grantedBytes}`);
    await clock.advance(200);
    await big;
    assert.equal(done, true);
    assert.equal(limiter.grantedBytes, 2 * MIB);
  });

  it('serves waiters first in, first out, sharing the rate', TIMEOUT, async () => {
    const clock = new ManualClock();
    const limiter = createRateLimiter(2 * MIB, 64 * KIB, clock);
    await limiter.take(64 * KIB);
    const order: number[] = [];
    const all = Promise.all([0, 1, 2, 3].map((i) => limiter.take(256 * KIB).then(() => order.push(i))));
    await clock.advance(130); // 256 KiB at 2 MiB/s is 125 ms: the first only
    assert.deepEqual(order, [0]);
    await clock.advance(400);
    await all;
    assert.deepEqual(order, [0, 1, 2, 3]);
  });

  it('rejects with ABORTED when the signal aborts; its tokens go back and the queue moves on', TIMEOUT, async () => {
    const clock = new ManualClock();
    const limiter = createRateLimiter(256 * KIB, 64 * KIB, clock);
    await limiter.take(64 * KIB);
    const controller = new AbortController();
    const blocked = limiter.take(10 * MIB, controller.signal); // 40 s of tokens
    let nextDone = false;
    const next = limiter.take(32 * KIB).then(() => (nextDone = true));
    await clock.advance(100);
    controller.abort();
    await assert.rejects(blocked, (err: unknown) => err instanceof ShoalError && err.code === 'ABORTED');
    await settle();
    assert.equal(nextDone, false);
    // 25 KiB earned in those 100 ms went back: the next needs 7 KiB more (28 ms), not 32 KiB (125 ms).
    await clock.advance(30);
    assert.equal(nextDone, true, 'the tokens the aborted take held go to the next one');
    await next;
    assert.equal(limiter.grantedBytes, 64 * KIB + 32 * KIB);
    await assert.rejects(limiter.take(1, AbortSignal.abort()), (err: unknown) => err instanceof ShoalError && err.code === 'ABORTED');
  });

  it('arms a timer only while someone waits', TIMEOUT, async () => {
    const clock = new ManualClock();
    const limiter = createRateLimiter(MIB, 64 * KIB, clock);
    await limiter.take(64 * KIB);
    assert.equal(clock.pending, 0);
    const controller = new AbortController();
    const waiting = limiter.take(MIB, controller.signal);
    assert.equal(clock.pending, 1);
    controller.abort();
    await assert.rejects(waiting);
    assert.equal(clock.pending, 0);
  });

  it('setRate(0) releases waiters; a new rate applies to the queue', TIMEOUT, async () => {
    const clock = new ManualClock();
    const limiter = createRateLimiter(64 * KIB, 64 * KIB, clock);
    await limiter.take(64 * KIB);
    const waiting = limiter.take(10 * MIB); // 160 s at this rate
    await clock.advance(10);
    limiter.setRate(0);
    await waiting;
    assert.equal(limiter.rate, 0);
    limiter.setRate(8 * MIB);
    const s = stream((n) => limiter.take(n), MIB, 128 * KIB);
    await clock.advance(150); // a full bucket (800 KiB) plus 150 ms at 8 MiB/s
    await s.done;
    assert.equal(s.granted(), MIB);
  });

  it('takeAll passes a transfer through every limit: the slowest one sets the pace', TIMEOUT, async () => {
    const clock = new ManualClock();
    const fast = createRateLimiter(8 * MIB, 64 * KIB, clock);
    const slow = createRateLimiter(MIB, 64 * KIB, clock);
    await takeAll([fast, slow, undefined], 64 * KIB);
    const s = stream((n) => takeAll([fast, undefined, slow], n), MIB, 64 * KIB);
    await clock.advance(500);
    assert.ok(Math.abs(s.granted() - MIB / 2) <= 64 * KIB, `granted ${s.granted()} after 500 ms at 1 MiB/s`);
    await clock.advance(600);
    await s.done;
    assert.equal(slow.grantedBytes, fast.grantedBytes);
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
