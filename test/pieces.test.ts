import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  MAX_PIECE_SIZE,
  MIB,
  MIN_PIECE_SIZE,
  TARGET_PIECES,
  UNKNOWN_LENGTH_PIECE_SIZE,
  packDigests,
  pieceCount,
  pieceRange,
  pieceSizeFor,
  unpackDigests,
} from '../src/common/pieces.js';

const GIB = 1024 * MIB;

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

function digest(fill: number): Uint8Array {
  return new Uint8Array(32).fill(fill);
}

describe('pieceSizeFor', () => {
  it('has the documented bounds', () => {
    assert.equal(MIN_PIECE_SIZE, 1 * MIB);
    assert.equal(MAX_PIECE_SIZE, 64 * MIB);
    assert.equal(UNKNOWN_LENGTH_PIECE_SIZE, 4 * MIB);
  });

  it('is 4 MiB while the length is unknown', () => {
    assert.equal(pieceSizeFor(undefined), 4 * MIB);
  });

  it('is a power of two within [1 MiB, 64 MiB] for every length', () => {
    for (const len of [0, 1, 1000, MIB - 1, MIB, MIB + 1, 100 * MIB, 256 * MIB, 256 * MIB + 1, 1 * GIB, 3 * GIB + 7, 16 * GIB, 100 * GIB, 2 ** 50]) {
      const size = pieceSizeFor(len);
      assert.ok(isPowerOfTwo(size), `${len} → ${size} is not a power of two`);
      assert.ok(size >= MIN_PIECE_SIZE && size <= MAX_PIECE_SIZE, `${len} → ${size} out of bounds`);
    }
  });

  it('small files get the 1 MiB minimum', () => {
    assert.equal(pieceSizeFor(0), MIB);
    assert.equal(pieceSizeFor(1), MIB);
    assert.equal(pieceSizeFor(10 * MIB), MIB);
    assert.equal(pieceSizeFor(256 * MIB), MIB); // exactly 256 pieces of 1 MiB
  });

  it('targets about 256 pieces: never more than the target while under the max, and at least half of it', () => {
    assert.equal(TARGET_PIECES, 256);
    assert.equal(pieceSizeFor(256 * MIB + 1), 2 * MIB);
    assert.equal(pieceSizeFor(1 * GIB), 4 * MIB);
    assert.equal(pieceSizeFor(4 * GIB), 16 * MIB);
    assert.equal(pieceSizeFor(16 * GIB), 64 * MIB);
    for (const len of [300 * MIB, 1 * GIB, 1.5 * GIB, 5 * GIB + 123, 10 * GIB]) {
      const count = pieceCount(len, pieceSizeFor(len));
      assert.ok(count <= TARGET_PIECES, `${len}: ${count} pieces`);
      assert.ok(count > TARGET_PIECES / 2, `${len}: only ${count} pieces`);
    }
  });

  it('huge files are clamped to 64 MiB (more pieces than the target)', () => {
    assert.equal(pieceSizeFor(100 * GIB), 64 * MIB);
    assert.ok(pieceCount(100 * GIB, pieceSizeFor(100 * GIB)) > TARGET_PIECES);
  });

  it('grows monotonically with the length', () => {
    let previous = 0;
    for (let len = 0; len <= 32 * GIB; len += 97 * MIB) {
      const size = pieceSizeFor(len);
      assert.ok(size >= previous, `${len}: ${size} < ${previous}`);
      previous = size;
    }
  });
});

describe('pieceCount and pieceRange', () => {
  it('counts a partial last piece', () => {
    assert.equal(pieceCount(10, 4), 3);
    assert.equal(pieceCount(MIB + 1, MIB), 2);
  });

  it('exact multiples have no extra piece', () => {
    assert.equal(pieceCount(12, 4), 3);
    assert.equal(pieceCount(8 * MIB, MIB), 8);
  });

  it('zero length has zero pieces', () => {
    assert.equal(pieceCount(0, MIB), 0);
  });

  it('ranges tile the content; the last piece is shorter', () => {
    const len = 10;
    const size = 4;
    assert.deepEqual(pieceRange(0, len, size), { number: 0, offset: 0, length: 4 });
    assert.deepEqual(pieceRange(1, len, size), { number: 1, offset: 4, length: 4 });
    assert.deepEqual(pieceRange(2, len, size), { number: 2, offset: 8, length: 2 });
    let total = 0;
    for (let n = 0; n < pieceCount(len, size); n++) {
      const r = pieceRange(n, len, size);
      assert.equal(r.offset, total);
      total += r.length;
    }
    assert.equal(total, len);
  });

  it('exact multiple: the last piece is full size', () => {
    assert.deepEqual(pieceRange(2, 12, 4), { number: 2, offset: 8, length: 4 });
    assert.deepEqual(pieceRange(7, 8 * MIB, MIB), { number: 7, offset: 7 * MIB, length: MIB });
  });

  it('a piece past the end (or of empty content) has length 0, never negative', () => {
    assert.equal(pieceRange(3, 12, 4).length, 0);
    assert.equal(pieceRange(10, 12, 4).length, 0);
    assert.equal(pieceRange(0, 0, MIB).length, 0);
  });
});

describe('packDigests / unpackDigests', () => {
  it('round-trips digests by piece number', () => {
    const numbers = [4, 0, 9];
    const digests = [digest(4), digest(0), digest(9)];
    const packed = packDigests(digests);
    assert.equal(packed.length, 96);
    const map = unpackDigests(numbers, packed);
    assert.ok(map !== undefined);
    assert.equal(map.size, 3);
    for (const [i, n] of numbers.entries()) assert.deepEqual(new Uint8Array(map.get(n)!), digests[i]);
  });

  it('packs in order', () => {
    const packed = packDigests([digest(1), digest(2)]);
    assert.deepEqual(packed.subarray(0, 32), digest(1));
    assert.deepEqual(packed.subarray(32), digest(2));
  });

  it('empty lists round-trip', () => {
    assert.equal(packDigests([]).length, 0);
    assert.equal(unpackDigests([], new Uint8Array(0))?.size, 0);
  });

  it('a length that does not match the numbers gives undefined', () => {
    assert.equal(unpackDigests([1, 2], new Uint8Array(32)), undefined);
    assert.equal(unpackDigests([1], new Uint8Array(33)), undefined);
    assert.equal(unpackDigests([1], new Uint8Array(31)), undefined);
    assert.equal(unpackDigests([], new Uint8Array(32)), undefined);
  });

  it('unpacked digests do not alias the packed buffer', () => {
    const packed = packDigests([digest(7)]);
    const map = unpackDigests([0], packed)!;
    packed.fill(0);
    assert.deepEqual(new Uint8Array(map.get(0)!), digest(7));
  });
});
