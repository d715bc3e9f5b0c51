/**
 * The multi-host lab (bench/lab, docs/lab.md), small: 4 peer hosts in network
 * namespaces with tbf-shaped 200 Mbit/s links, a 32 MiB file, the Shoal
 * scenario only. Every output must match the origin's SHA-256, and the origin
 * host's link must send at most 1.05 copies of the file (its veth tx byte
 * counter, nothing subtracted: headers and Shoal's control traffic count).
 * Skipped unless running as root with working `ip netns`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { labProblem, runPoint } from '../bench/lab/lab.js';
import { gsoCap, isSlowPeer, parseRate } from '../bench/lab/netns.js';

const MiB = 1024 * 1024;

test('lab: slow peers first, or spread evenly with the last one slow (--slow-spread)', () => {
  const slow = (n: number, k: number, spread: boolean): number[] => [...Array(n).keys()].filter((i) => isSlowPeer(i, n, k, spread)).map((i) => i + 1);
  assert.deepEqual(slow(20, 5, false), [1, 2, 3, 4, 5]);
  assert.deepEqual(slow(20, 5, true), [4, 8, 12, 16, 20]);
  assert.deepEqual(slow(10, 3, true), [3, 7, 10]);
  assert.deepEqual(slow(4, 0, true), []);
  assert.deepEqual(slow(3, 3, true), [1, 2, 3]);
});

test('lab: the GSO cap fits the smallest tbf bucket, which --tbf-burst sets', () => {
  // 4 ms at 100 Mbit/s is a 50 000 B bucket; 1448 B of payload per 1514 B frame, less 1 KiB
  assert.equal(gsoCap([parseRate('100mbit'), parseRate('1gbit')]), 46_796);
  // the slowest link decides: 4 ms at 50 Mbit/s is 25 000 B
  assert.equal(gsoCap([parseRate('50mbit'), parseRate('200mbit')]), 22_886);
  // an 8 ms bucket at 50 Mbit/s is as large as 4 ms at 100 Mbit/s
  assert.equal(gsoCap([parseRate('50mbit')], 8), 46_796);
  // and never past 64 KiB, the kernel's IPv4 GSO limit
  assert.equal(gsoCap([parseRate('100mbit')], 8), 65_536);
  // never under 10 full frames
  assert.equal(gsoCap([parseRate('1mbit')]), 13_456);
});

test('lab: 4 shaped peer hosts get 32 MiB through Shoal; outputs verified, origin link sends ≤ 1.05 copies', { timeout: 110_000 }, async (t) => {
  const problem = labProblem();
  if (problem !== undefined) {
    t.skip(problem);
    return;
  }
  const logs: string[] = [];
  const point = await runPoint({
    peers: 4,
    sizeBytes: 32 * MiB,
    peerRate: parseRate('200mbit'),
    originUp: parseRate('200mbit'),
    originDown: parseRate('1gbit'),
    slowPeers: 0,
    slowRate: parseRate('20mbit'),
    capGso: true,
    scenarios: ['shoal'],
    timeoutFactor: 4,
    minTimeoutS: 60,
    log: (s) => logs.push(s),
  });
  assert.equal(point.error, undefined, logs.join('\n'));
  const shoal = point.results.find((r) => r.scenario === 'shoal');
  assert.ok(shoal !== undefined, 'no shoal result');
  const context = JSON.stringify({ error: shoal.error, hosts: shoal.hosts, details: shoal.details }, null, 1);
  assert.equal(shoal.mismatched.length, 0, `outputs differ from the origin: ${shoal.mismatched.join('; ')}`);
  assert.equal(shoal.verified, 4, `verified ${shoal.verified}/4 outputs: ${context}`);
  assert.ok(shoal.ok, `shoal scenario failed: ${context}`);
  t.diagnostic(
    `last ${shoal.lastS} s (T_min ${point.bound.adjusted} s at tbf goodput), origin link ${shoal.originTxBytes} B = ${shoal.originCopies} copies in ${shoal.originTxPackets} packets`,
  );
  assert.ok(
    shoal.originCopies <= 1.05,
    `origin host's link sent ${shoal.originCopies} copies (${shoal.originTxBytes} B for a ${32 * MiB} B file): ${JSON.stringify((shoal.details as Record<string, unknown>)['seed'])} ${JSON.stringify((shoal.details as Record<string, unknown>)['peers'])}`,
  );
});
