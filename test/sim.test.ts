/**
 * `npm run sim -- --quick` (bench/sim): its last line has the documented
 * form, and the quick run (500 peers) meets loose sanity bounds. No timing
 * is asserted: the figures are in docs/benchmarks.md.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

const LINE = /^sim: (\d+) peers, last ([\d.]+) s, median ([\d.]+) s, T_min ([\d.]+) s, ratio ([\d.]+), origin ([\d.]+) copies, p99 decision ([\d.]+) ms$/;

test('npm run sim -- --quick: one final line of the documented form, within loose bounds', { timeout: 300_000 }, async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', resolve(import.meta.dirname, '../bench/sim/run.ts'), '--quick'], { timeout: 280_000 });
  const lines = stdout.trim().split('\n');
  const m = LINE.exec(lines[lines.length - 1]!);
  assert.ok(m !== null, `the last line is not of the documented form: ${lines[lines.length - 1]}`);
  const [peers, last, median, tMin, ratio, origin] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  assert.equal(peers, 500);
  assert.ok(median <= last && last > 0 && tMin > 0, `last ${last}, median ${median}, T_min ${tMin}`);
  // Nobody beats the bound, and the quick run is far from a broken schedule.
  assert.ok(ratio >= 1 && ratio <= 2, `ratio ${ratio}`);
  assert.ok(origin >= 1 && origin <= 1.2, `origin ${origin} copies`);
  assert.equal(lines.filter((l) => l.startsWith('sim: ')).length, 1, 'one final line only');
});
