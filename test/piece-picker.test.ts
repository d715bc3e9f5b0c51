/** The piece picker (src/daemon/download/piece-picker.ts): pure, with the clock and the dice given. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inStripes } from '../src/common/stripes.js';
import {
  AHEAD_PER_PARENT,
  ENDGAME_AFTER_MS,
  ENDGAME_PICKS,
  inflightCap,
  planFetches,
  type PickerParent,
  type PickerState,
  type PieceFlight,
} from '../src/daemon/download/piece-picker.js';

const MIB = 1024 * 1024;
const NOW = 1_000_000;
const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

interface FakeParent extends PickerParent {
  readonly name: string;
  inflight: number;
  busyUntil: number;
  aheadAfter: number;
  rate: number;
  stripes: number;
  mask: number;
}

function parent(name: string, pieces: number[], overrides: Partial<Omit<FakeParent, 'pieces' | 'serves'>> = {}): FakeParent {
  return {
    name,
    pieces: new Set(pieces),
    inflight: 0,
    busyUntil: 0,
    aheadAfter: 0,
    rate: 0,
    stripes: 0,
    mask: 0,
    ...overrides,
    serves(n: number): boolean {
      return inStripes(n, this.stripes, this.mask);
    },
  };
}

/** Dice that must not be thrown: the scan starts at piece 0. */
const noDice = (): number => assert.fail('the picker drew a random start where pieces go in order');

function state(
  parents: FakeParent[],
  overrides: Partial<PickerState<FakeParent>> & { held?: number; heldPieces?: number[]; unknownDigests?: number[] } = {},
): PickerState<FakeParent> {
  const { heldPieces = [], unknownDigests = [], ...rest } = overrides;
  return {
    count: 8,
    held: heldPieces.length,
    fetchable: (n) => !heldPieces.includes(n) && !unknownDigests.includes(n),
    inflight: new Map(),
    parents,
    perParent: 4,
    maxInflight: 16,
    askAhead: false,
    now: NOW,
    random: () => 0,
    ...rest,
  };
}

/** The plan as "piece:parent" strings, "+" marking a piece asked ahead. */
function plan(s: PickerState<FakeParent>): string[] {
  return planFetches(s).map((p) => `${p.n}:${p.parent.name}${p.ahead ? '+' : ''}`);
}

function flight(p: FakeParent, started: number): PieceFlight<FakeParent> {
  return { parent: p, started };
}

describe('inflightCap', () => {
  it('is concurrentPieces, within 256 MiB of pieces, and never under 2', () => {
    assert.equal(inflightCap(16, 4 * MIB), 16);
    assert.equal(inflightCap(16, 64 * MIB), 4);
    assert.equal(inflightCap(16, 256 * MIB), 2);
    assert.equal(inflightCap(1, MIB), 2);
  });
});

describe('planFetches: rarest first', () => {
  it('takes a piece only one parent holds first, then spreads the rest over the least loaded holders', () => {
    const a = parent('A', range(0, 4));
    const b = parent('B', range(0, 3));
    assert.deepEqual(plan(state([a, b], { count: 4 })), ['3:A', '0:B', '1:A', '2:B']);
  });

  it('between holders equally loaded, the faster one', () => {
    const slow = parent('slow', range(0, 4), { rate: 1 });
    const fast = parent('fast', range(0, 4), { rate: 5 });
    assert.deepEqual(plan(state([slow, fast], { count: 1 })), ['0:fast']);
  });

  it('skips pieces held, pieces whose digest is unknown, and pieces in flight', () => {
    const a = parent('A', range(0, 6), { inflight: 1 });
    const b = parent('B', range(0, 6));
    const inflight = new Map([[2, [flight(a, NOW)]]]);
    assert.deepEqual(plan(state([a, b], { count: 6, heldPieces: [0, 1], unknownDigests: [5], inflight })), ['3:B', '4:A']);
  });

  it('starts the scan at a random piece when several parents serve every piece', () => {
    const a = parent('A', range(0, 10));
    const b = parent('B', range(0, 10));
    assert.deepEqual(plan(state([a, b], { count: 10, perParent: 1, random: () => 0.55 })), ['5:A', '6:B']);
    assert.deepEqual(plan(state([a, b], { count: 10, perParent: 1, random: () => 0.95 })), ['9:A', '0:B']);
  });
});

describe('planFetches: in order', () => {
  it('with a single parent, from piece 0, without drawing a random start', () => {
    const a = parent('A', range(0, 8));
    assert.deepEqual(plan(state([a], { random: noDice })), ['0:A', '1:A', '2:A', '3:A']);
  });

  it('when every parent serves stripes (split trees), each stripe from its parent, in order', () => {
    const even = parent('even', range(0, 8), { stripes: 2, mask: 0b01 });
    const odd = parent('odd', range(0, 8), { stripes: 2, mask: 0b10 });
    assert.deepEqual(plan(state([even, odd], { perParent: 2, random: noDice })), ['0:even', '1:odd', '2:even', '3:odd']);
  });
});

describe('planFetches: parents that may not be asked', () => {
  it('a parent is asked only for the pieces of its stripes', () => {
    const even = parent('even', range(0, 4), { stripes: 2, mask: 0b01 });
    const other = parent('other', []);
    assert.deepEqual(plan(state([even, other], { count: 4 })), ['0:even', '2:even']);
  });

  it('busy and full parents are skipped; with none free, nothing starts', () => {
    const busy = parent('busy', range(0, 3), { busyUntil: NOW + 1 });
    const full = parent('full', range(0, 3), { inflight: 4 });
    const free = parent('free', range(0, 3), { busyUntil: NOW });
    assert.deepEqual(plan(state([busy, full, free], { count: 3 })), ['0:free', '1:free', '2:free']);
    assert.deepEqual(plan(state([busy, full], { count: 3 })), []);
  });

  it('no more than maxInflight pieces are in flight', () => {
    const a = parent('A', range(0, 8));
    const inflight = new Map([[7, [flight(a, NOW)]]]);
    assert.deepEqual(plan(state([a], { perParent: 8, maxInflight: 3, inflight })), ['0:A', '1:A']);
  });
});

describe('planFetches: endgame', () => {
  const a = parent('A', [0, 1]);
  const b = parent('B', [0, 1]);

  it(`asks a second holder for a piece whose only fetch has run ${ENDGAME_AFTER_MS} ms, never the same parent`, () => {
    const due = new Map([[0, [flight(a, NOW - ENDGAME_AFTER_MS)]]]);
    assert.deepEqual(plan(state([a, b], { count: 2, heldPieces: [1], inflight: due })), ['0:B']);
    assert.deepEqual(plan(state([a], { count: 2, heldPieces: [1], inflight: due })), []);
  });

  it('not before, nor a third copy', () => {
    const early = new Map([[0, [flight(a, NOW - ENDGAME_AFTER_MS + 1)]]]);
    assert.deepEqual(plan(state([a, b], { count: 2, heldPieces: [1], inflight: early })), []);
    const c = parent('C', [0, 1]);
    const twice = new Map([[0, [flight(a, NOW - 5000), flight(b, NOW - 5000)]]]);
    assert.deepEqual(plan(state([a, b, c], { count: 2, heldPieces: [1], inflight: twice })), []);
  });

  it('only once every missing piece is in flight', () => {
    const due = new Map([[0, [flight(a, NOW - 5000)]]]);
    // Piece 1 is missing and not in flight (its digest is unknown): no endgame yet.
    assert.deepEqual(plan(state([a, b], { count: 2, unknownDigests: [1], inflight: due })), []);
  });

  it(`starts ${ENDGAME_PICKS} second copies at most per plan, the rarest first`, () => {
    const pieces = range(0, 10);
    const x = parent('X', pieces);
    const y = parent('Y', pieces);
    const inflight = new Map(pieces.map((n) => [n, [flight(x, NOW - 5000)]] as const));
    const picks = planFetches(state([x, y], { count: 10, perParent: 20, inflight }));
    assert.equal(picks.length, ENDGAME_PICKS);
    assert.ok(picks.every((p) => p.parent === y && !p.ahead));
    assert.equal(new Set(picks.map((p) => p.n)).size, ENDGAME_PICKS, 'a piece got two second copies');
  });
});

describe('planFetches: asking ahead', () => {
  it(`asks a parent still fetching for the lowest pieces it lacks, ${AHEAD_PER_PARENT} at most`, () => {
    const a = parent('A', [0, 1]);
    assert.deepEqual(plan(state([a], { askAhead: true, heldPieces: [0, 1], perParent: 8 })), ['2:A+', '3:A+', '4:A+', '5:A+']);
    assert.deepEqual(plan(state([a], { askAhead: false, heldPieces: [0, 1], perParent: 8 })), []);
  });

  it('within the parent limit, after what it holds, one parent per piece', () => {
    const a = parent('A', [0, 1, 2]);
    const b = parent('B', [0, 1]);
    assert.deepEqual(plan(state([a, b], { askAhead: true, heldPieces: [0, 1], perParent: 2 })), ['2:A', '3:A+', '4:B+', '5:B+']);
  });

  it('not of a complete parent, a busy one, one that lately was not fetching, nor for pieces outside its stripes', () => {
    const complete = parent('complete', range(0, 8), { inflight: 4 });
    const busy = parent('busy', [0], { busyUntil: NOW + 1 });
    const resting = parent('resting', [0], { aheadAfter: NOW + 1 });
    const odd = parent('odd', [], { stripes: 2, mask: 0b10 });
    const s = state([complete, busy, resting, odd], { askAhead: true, heldPieces: [0], perParent: 4 });
    assert.deepEqual(plan(s), ['1:odd+', '3:odd+', '5:odd+', '7:odd+']);
  });
});
