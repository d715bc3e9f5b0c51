/**
 * The pieces a peer holds, as the scheduler keeps them: a bitfield, one bit
 * per piece up to the highest held. A peer of a task of MAX_PIECES pieces
 * costs 128 KiB, not a Set entry per piece; marking a finished peer as
 * holding all of them, counting the pieces a parent has that a child lacks,
 * and membership are word operations, so no message makes the scheduler
 * loop over a peer-supplied number of pieces one at a time. Pure.
 */
import { MAX_PIECES } from '../common/pieces.js';

const BITS = 32;

function popcount(word: number): number {
  let v = word - ((word >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

export class PieceSet implements Iterable<number> {
  #words = new Uint32Array(0);
  #size = 0;

  /** Pieces held. */
  get size(): number {
    return this.#size;
  }

  has(n: number): boolean {
    const word = this.#words[n >>> 5];
    return word !== undefined && Number.isInteger(n) && n >= 0 && (word & (1 << (n & 31))) !== 0;
  }

  /** Adds piece `n` (an integer below MAX_PIECES; RangeError otherwise); true when it was not held. */
  add(n: number): boolean {
    if (!Number.isInteger(n) || n < 0 || n >= MAX_PIECES) throw new RangeError(`piece number ${n} is outside 0..${MAX_PIECES - 1}`);
    this.#grow(n + 1);
    const i = n >>> 5;
    const bit = 1 << (n & 31);
    if ((this.#words[i]! & bit) !== 0) return false;
    this.#words[i]! |= bit;
    this.#size++;
    return true;
  }

  /** Holds no piece. */
  clear(): void {
    this.#words = new Uint32Array(0);
    this.#size = 0;
  }

  /** Holds pieces 0 … count − 1 (and any it held beyond them). */
  fill(pieces: number): void {
    const count = Math.min(Math.floor(pieces), MAX_PIECES);
    if (!(count > 0)) return;
    this.#grow(count);
    const full = Math.floor(count / BITS);
    this.#words.fill(0xffffffff, 0, full);
    const rest = count % BITS;
    if (rest > 0) this.#words[full]! |= (1 << rest) - 1;
    this.#size = 0;
    for (const word of this.#words) this.#size += popcount(word);
  }

  /** How many pieces this set holds that `other` lacks. */
  countMissingFrom(other: PieceSet): number {
    let count = 0;
    const theirs = other.#words;
    this.#words.forEach((word, i) => {
      if (word !== 0) count += popcount(word & ~(theirs[i] ?? 0));
    });
    return count;
  }

  /** The pieces this set holds that `other` lacks, in order. */
  *missingFrom(other: PieceSet): Generator<number> {
    const theirs = other.#words;
    for (let i = 0; i < this.#words.length; i++) {
      let word = (this.#words[i]! & ~(theirs[i] ?? 0)) >>> 0;
      while (word !== 0) {
        const low = word & -word;
        yield i * BITS + (31 - Math.clz32(low));
        word = (word ^ low) >>> 0;
      }
    }
  }

  *[Symbol.iterator](): Generator<number> {
    yield* this.missingFrom(EMPTY);
  }

  /** Room for pieces 0 … count − 1, growing by doubling (never past MAX_PIECES). */
  #grow(count: number): void {
    const needed = Math.ceil(count / BITS);
    if (needed <= this.#words.length) return;
    const words = new Uint32Array(Math.min(Math.max(needed, this.#words.length * 2), MAX_PIECES / BITS));
    words.set(this.#words);
    this.#words = words;
  }
}

const EMPTY = new PieceSet();
