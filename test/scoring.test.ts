import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HostEntry, PeerEntry, TaskEntry, type HostInfo, type PeerState } from '../src/scheduler/model.js';
import { eligible, freeSlotFraction, locationAffinity, pickParents, score, wouldCycle } from '../src/scheduler/scoring.js';

const MIB = 1024 * 1024;
let hostCounter = 0;

function host(overrides: Partial<HostInfo> = {}): HostEntry {
  const n = ++hostCounter;
  const info: HostInfo = {
    id: `host-${n}`,
    hostname: `h${n}`,
    ip: `10.0.0.${n}`,
    port: 4000,
    idc: '',
    location: '',
    seed: false,
    uploadSlots: 64,
    uploadLoad: 0,
    uploadRate: 0,
    identity: '',
    ...overrides,
  };
  return new HostEntry(info, () => {});
}

/** A task of `pieces` pieces of 1 MiB. */
function task(pieces = 10): TaskEntry {
  const t = new TaskEntry('t'.repeat(64));
  t.shape = { contentLength: pieces * MIB, pieceSize: MIB };
  return t;
}

function peer(id: string, t: TaskEntry, state: PeerState = 'running', pieces: number[] = [], h: HostEntry = host()): PeerEntry {
  const p = new PeerEntry(id, h, t, state);
  for (const n of pieces) p.pieces.add(n);
  t.peers.set(id, p);
  h.addPeer(p);
  return p;
}

function link(parent: PeerEntry, child: PeerEntry): void {
  parent.children.add(child);
  child.parents.add(parent);
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

describe('wouldCycle', () => {
  it('detects the child itself, a direct child and a transitive descendant', () => {
    const t = task();
    const a = peer('a', t);
    const b = peer('b', t);
    const c = peer('c', t);
    const d = peer('d', t);
    link(a, b);
    link(b, c);
    assert.equal(wouldCycle(a, a), true);
    assert.equal(wouldCycle(a, b), true);
    assert.equal(wouldCycle(a, c), true);
    assert.equal(wouldCycle(b, c), true);
    // ancestors and strangers are fine
    assert.equal(wouldCycle(c, a), false);
    assert.equal(wouldCycle(c, b), false);
    assert.equal(wouldCycle(a, d), false);
  });

  it('terminates on a graph that already has a cycle', () => {
    const t = task();
    const a = peer('a', t);
    const b = peer('b', t);
    const x = peer('x', t);
    link(a, b);
    link(b, a);
    assert.equal(wouldCycle(a, x), false);
    assert.equal(wouldCycle(a, b), true);
  });
});

describe('eligible', () => {
  it('accepts a running peer with pieces on another host with free slots', () => {
    const t = task();
    const child = peer('child', t, 'running');
    const parent = peer('parent', t, 'running', [1]);
    assert.equal(eligible(child, parent), true);
  });

  it('excludes the peer itself', () => {
    const t = task();
    const p = peer('p', t, 'running', [1]);
    assert.equal(eligible(p, p), false);
  });

  it('excludes a peer on the same host', () => {
    const t = task();
    const h = host();
    const child = peer('child', t, 'running', [], h);
    const other = peer('other', t, 'complete', range(0, 10), h);
    assert.equal(eligible(child, other), false);
  });

  it('excludes a blocked parent', () => {
    const t = task();
    const child = peer('child', t);
    const parent = peer('parent', t, 'running', [1]);
    child.blocked.add('parent');
    assert.equal(eligible(child, parent), false);
  });

  it('excludes a peer that is already a parent', () => {
    const t = task();
    const child = peer('child', t);
    const parent = peer('parent', t, 'running', [1]);
    link(parent, child);
    assert.equal(eligible(child, parent), false);
  });

  it('excludes descendants (cycle)', () => {
    const t = task();
    const a = peer('a', t, 'running', [0]);
    const b = peer('b', t, 'running', [1]);
    const c = peer('c', t, 'running', [2]);
    link(a, b);
    link(b, c);
    assert.equal(eligible(a, b), false);
    assert.equal(eligible(a, c), false);
    assert.equal(eligible(c, a), true);
  });

  it('excludes peers with no pieces unless they fetch from the source', () => {
    const t = task();
    const child = peer('child', t);
    assert.equal(eligible(child, peer('empty-running', t, 'running')), false);
    assert.equal(eligible(child, peer('empty-waiting', t, 'waiting')), false);
    assert.equal(eligible(child, peer('waiting-with-pieces', t, 'waiting', [1])), false);
    assert.equal(eligible(child, peer('source', t, 'source')), true);
    assert.equal(eligible(child, peer('complete', t, 'complete', range(0, 10))), true);
  });

  it('excludes failed and left peers even if they hold pieces', () => {
    const t = task();
    const child = peer('child', t);
    assert.equal(eligible(child, peer('failed', t, 'failed', range(0, 10))), false);
    assert.equal(eligible(child, peer('left', t, 'left', range(0, 10))), false);
  });

  it('excludes a parent whose upload slots are all taken by children', () => {
    const t = task();
    const parent = peer('parent', t, 'complete', range(0, 10), host({ uploadSlots: 2 }));
    const c1 = peer('c1', t);
    const c2 = peer('c2', t);
    const c3 = peer('c3', t);
    link(parent, c1);
    assert.equal(eligible(c3, parent), true);
    link(parent, c2);
    assert.equal(freeSlotFraction(parent), 0);
    assert.equal(eligible(c3, parent), false);
  });

  it('excludes a parent whose host reports a full upload load', () => {
    const t = task();
    const h = host({ uploadSlots: 4, uploadLoad: 4 });
    const parent = peer('parent', t, 'complete', range(0, 10), h);
    const child = peer('child', t);
    assert.equal(eligible(child, parent), false);
    h.info.uploadLoad = 3;
    assert.equal(eligible(child, parent), true);
  });

  it('with a per-task child limit, uploads for the host\'s other tasks do not make it full for this one', () => {
    const t = task();
    const h = host({ uploadSlots: 64, uploadLoad: 5 });
    h.childLimit = 1;
    const parent = peer('parent', t, 'running', range(0, 5), h);
    const c1 = peer('c1', t);
    const c2 = peer('c2', t);
    assert.equal(eligible(c1, parent), true, 'five uploads elsewhere: still room for this task\'s one child');
    link(parent, c1);
    assert.equal(eligible(c2, parent), false, 'the task\'s one child slot is taken');
    assert.equal(eligible(c2, parent, true), true, 'past the limits the host\'s 64 slots count');
  });
});

describe('pickParents ordering', () => {
  it('a parent holding more pieces the child lacks beats one holding fewer', () => {
    const t = task(10);
    const child = peer('child', t, 'running', [0, 1]);
    // "few" holds many pieces, but mostly ones the child already has.
    const few = peer('a-few', t, 'running', [0, 1, 2]);
    const many = peer('z-many', t, 'running', [2, 3, 4, 5, 6]);
    assert.ok(score(child, many) > score(child, few));
    assert.deepEqual(pickParents(child, [few, many], 2).map((p) => p.id), ['z-many', 'a-few']);
  });

  it('same idc beats different idc, all else equal', () => {
    const t = task();
    const child = peer('child', t, 'running', [], host({ idc: 'eu-1' }));
    const far = peer('a-far', t, 'running', [5], host({ idc: 'us-2' }));
    const near = peer('z-near', t, 'running', [5], host({ idc: 'EU-1' }));
    assert.ok(score(child, near) > score(child, far));
    assert.deepEqual(pickParents(child, [far, near], 2).map((p) => p.id), ['z-near', 'a-far']);
  });

  it('an empty idc matches nothing (no bonus for two unlabelled hosts)', () => {
    const t = task();
    const child = peer('child', t, 'running', [], host({ idc: '' }));
    const a = peer('a', t, 'running', [5], host({ idc: '' }));
    const b = peer('b', t, 'running', [5], host({ idc: 'x' }));
    assert.equal(score(child, a), score(child, b));
  });

  it('closer location wins, all else equal', () => {
    const t = task();
    const child = peer('child', t, 'running', [], host({ location: 'eu|de|fra|r1' }));
    const far = peer('a-far', t, 'running', [5], host({ location: 'eu|fr|par|r1' }));
    const near = peer('z-near', t, 'running', [5], host({ location: 'eu|de|fra|r2' }));
    assert.deepEqual(pickParents(child, [far, near], 2).map((p) => p.id), ['z-near', 'a-far']);
  });

  it('a seed host gets a bonus while the child has fewer than half the pieces, not after', () => {
    const t = task(10);
    // Same pieces, same slots; only the seed flag differs.
    const normal = peer('a-normal', t, 'running', range(0, 10), host());
    const seed = peer('z-seed', t, 'running', range(0, 10), host({ seed: true }));
    const early = peer('early', t, 'running', [0, 1, 2, 3]);
    assert.ok(score(early, seed) > score(early, normal));
    assert.deepEqual(pickParents(early, [normal, seed], 1).map((p) => p.id), ['z-seed']);
    const late = peer('late', t, 'running', [0, 1, 2, 3, 4]);
    assert.equal(score(late, seed), score(late, normal));
    assert.deepEqual(pickParents(late, [normal, seed], 1).map((p) => p.id), ['a-normal']);
  });

  it('a back-to-source parent gets the early bonus too', () => {
    const t = task(10);
    const child = peer('child', t, 'running', []);
    const source = peer('z-source', t, 'source', range(0, 10));
    const complete = peer('a-complete', t, 'complete', range(0, 10));
    assert.ok(score(child, source) > score(child, complete));
    assert.deepEqual(pickParents(child, [complete, source], 1).map((p) => p.id), ['z-source']);
  });

  it('a host with upload failures scores lower, and more failures lower still', () => {
    const t = task();
    const child = peer('child', t);
    const good = peer('z-good', t, 'running', [5]);
    const bad = peer('a-bad', t, 'running', [5]);
    const worse = peer('b-worse', t, 'running', [5]);
    bad.host.uploadFailures = 1;
    worse.host.uploadFailures = 10;
    assert.ok(score(child, good) > score(child, bad));
    assert.ok(score(child, bad) > score(child, worse));
    assert.deepEqual(pickParents(child, [bad, worse, good], 3).map((p) => p.id), ['z-good', 'a-bad', 'b-worse']);
  });

  it('a busier host scores lower', () => {
    const t = task();
    const child = peer('child', t);
    const idle = peer('z-idle', t, 'running', [5], host({ uploadSlots: 8, uploadLoad: 0 }));
    const busy = peer('a-busy', t, 'running', [5], host({ uploadSlots: 8, uploadLoad: 6 }));
    assert.deepEqual(pickParents(child, [busy, idle], 2).map((p) => p.id), ['z-idle', 'a-busy']);
  });

  it('ties are broken by peer id, so the order is deterministic', () => {
    const t = task();
    const child = peer('child', t);
    const b = peer('b', t, 'running', [5]);
    const a = peer('a', t, 'running', [5]);
    assert.deepEqual(pickParents(child, [b, a], 2).map((p) => p.id), ['a', 'b']);
    assert.deepEqual(pickParents(child, [a, b], 2).map((p) => p.id), ['a', 'b']);
  });
});

describe('pickParents limits and filtering', () => {
  it('respects the limit and returns the best ones', () => {
    const t = task(20);
    const child = peer('child', t);
    const candidates = range(1, 9).map((k) => peer(`p${k}`, t, 'running', range(0, k)));
    assert.deepEqual(pickParents(child, candidates, 3).map((p) => p.id), ['p8', 'p7', 'p6']);
    assert.equal(pickParents(child, candidates, 100).length, 8);
    assert.deepEqual(pickParents(child, candidates, 0), []);
    assert.deepEqual(pickParents(child, candidates, -1), []);
  });

  it('leaves out ineligible candidates (self, same host, blocked, descendants, empty)', () => {
    const t = task();
    const h = host();
    const child = peer('child', t, 'running', [], h);
    const sameHost = peer('same-host', t, 'complete', range(0, 10), h);
    const blocked = peer('blocked', t, 'complete', range(0, 10));
    child.blocked.add('blocked');
    const descendant = peer('descendant', t, 'running', [3]);
    link(child, descendant);
    const empty = peer('empty', t, 'running');
    const ok = peer('ok', t, 'running', [4]);
    assert.deepEqual(
      pickParents(child, [child, sameHost, blocked, descendant, empty, ok], 10).map((p) => p.id),
      ['ok'],
    );
  });

  it('accepts any iterable, e.g. the task peer map', () => {
    const t = task();
    const child = peer('child', t);
    peer('x', t, 'complete', range(0, 10));
    assert.deepEqual(pickParents(child, t.peers.values(), 4).map((p) => p.id), ['x']);
  });
});

describe('locationAffinity', () => {
  it('is the shared prefix length over 5', () => {
    assert.equal(locationAffinity('a|b|c', 'a|b|d'), 2 / 5);
    assert.equal(locationAffinity('a|b|c', 'a|b|c'), 3 / 5);
    assert.equal(locationAffinity('a', 'b'), 0);
    assert.equal(locationAffinity('x|b|c', 'y|b|c'), 0);
  });

  it('caps at 1 for five or more shared parts', () => {
    assert.equal(locationAffinity('a|b|c|d|e', 'a|b|c|d|e'), 1);
    assert.equal(locationAffinity('a|b|c|d|e|f|g', 'a|b|c|d|e|f|g'), 1);
  });

  it('an empty location has no affinity', () => {
    assert.equal(locationAffinity('', 'a|b'), 0);
    assert.equal(locationAffinity('a|b', ''), 0);
    assert.equal(locationAffinity('', ''), 0);
  });
});

describe('child limits', () => {
  it('a parent whose host has reached its child limit is not eligible, below its upload slots', () => {
    const task = new TaskEntry('t'.repeat(64));
    task.shape = { contentLength: 4 * 1024 * 1024, pieceSize: 1024 * 1024 };
    const info = (id: string, seed = false) => ({ id, hostname: id, ip: '10.0.0.1', port: 1, idc: '', location: '', seed, uploadSlots: 64, uploadLoad: 0, uploadRate: 0, identity: '' });
    const seedHost = new HostEntry(info('s', true), () => {});
    seedHost.childLimit = 1;
    const seed = new PeerEntry('seed', seedHost, task, 'complete');
    for (let n = 0; n < 4; n++) seed.pieces.add(n);
    const a = new PeerEntry('a', new HostEntry(info('ha'), () => {}), task, 'waiting');
    const b = new PeerEntry('b', new HostEntry(info('hb'), () => {}), task, 'waiting');
    assert.equal(eligible(a, seed), true);
    seed.children.add(a);
    a.parents.add(seed);
    assert.equal(eligible(b, seed), false, 'the seed already has its one child');
  });
});
