/** The scheduler's bitfield of a peer's pieces (src/scheduler/piece-set.ts): pure. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_PIECES } from '../src/common/pieces.js';
import { PieceSet } from '../src/scheduler/piece-set.js';

function of(...numbers: number[]): PieceSet {
  const set = new PieceSet();
  for (const n of numbers) set.add(n);
  return set;
}

describe('PieceSet', () => {
  it('adds, counts, answers membership and iterates in order, across word boundaries', () => {
    const set = new PieceSet();
    assert.equal(set.add(33), true);
    assert.equal(set.add(0), true);
    assert.equal(set.add(31), true);
    assert.equal(set.add(33), false, 'a piece held already is not new');
    assert.equal(set.size, 3);
    assert.deepEqual([...set], [0, 31, 33]);
    for (const n of [0, 31, 33]) assert.equal(set.has(n), true);
    for (const n of [1, 32, 34, 1000, -1, 0.5, MAX_PIECES]) assert.equal(set.has(n), false);
  });

  it('refuses piece numbers outside 0 … MAX_PIECES − 1', () => {
    const set = new PieceSet();
    for (const n of [-1, 1.5, MAX_PIECES, 2 ** 32, Number.NaN]) assert.throws(() => set.add(n), RangeError);
    assert.equal(set.add(MAX_PIECES - 1), true);
    assert.equal(set.size, 1);
  });

  it('fill(count) holds 0 … count − 1, keeps what it held beyond, and is capped at MAX_PIECES', () => {
    const set = of(70);
    set.fill(33);
    assert.equal(set.size, 34);
    assert.deepEqual([...set].slice(-3), [31, 32, 70]);
    set.fill(64);
    assert.equal(set.size, 65);
    const all = new PieceSet();
    all.fill(2 ** 53 - 1);
    assert.equal(all.size, MAX_PIECES);
    all.fill(0);
    all.fill(-5);
    assert.equal(all.size, MAX_PIECES);
  });

  it('counts and lists the pieces one set holds that another lacks', () => {
    const parent = of(0, 1, 2, 40, 41, 100);
    const child = of(1, 41, 500);
    assert.equal(parent.countMissingFrom(child), 4);
    assert.deepEqual([...parent.missingFrom(child)], [0, 2, 40, 100]);
    assert.equal(child.countMissingFrom(parent), 1);
    assert.deepEqual([...child.missingFrom(parent)], [500]);
    const full = new PieceSet();
    full.fill(MAX_PIECES);
    assert.equal(full.countMissingFrom(new PieceSet()), MAX_PIECES);
    assert.equal(full.countMissingFrom(full), 0);
  });
});
