/**
 * The web console's pure parts: the ten-minute window and the "is P2P
 * working" line, the snapshot read from a hand-built swarm (progress, origin
 * copies, the graph with its live and completed edges and stripe masks), the
 * graph's layout, the preheat form's lines and tasks, the token file (made
 * once, mode 0600, reused, a weak one refused) and the cookie.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { layoutGraph } from '../console/graph-layout.js';
import { parsePreheatLines } from '../console/preheat-lines.js';
import { recentView } from '../src/scheduler/console/answer.js';
import { SwarmJournal } from '../src/scheduler/console/journal.js';
import { preheatSpec } from '../src/scheduler/console/preheats.js';
import { RecentCounts } from '../src/scheduler/console/recent.js';
import { graphView, hostView, taskView } from '../src/scheduler/console/snapshot.js';
import { loadToken, sessionValue, tokensEqual } from '../src/scheduler/console/token.js';
import { silentLogger } from '../src/common/log.js';
import { taskId } from '../src/common/ids.js';
import { HostEntry, PeerEntry, TaskEntry, type HostInfo } from '../src/scheduler/model.js';

const MiB = 1024 * 1024;

function host(id: string, seed = false): HostEntry {
  const info: HostInfo = { id, hostname: `${id}.local`, ip: '127.0.0.1', port: 4000, idc: '', location: '', seed, uploadSlots: 64, uploadLoad: 3, uploadRate: 0, identity: '' };
  return new HostEntry(info, () => undefined);
}

function peer(task: TaskEntry, h: HostEntry, state: PeerEntry['state'], pieces: number[] = []): PeerEntry {
  const p = new PeerEntry(`${h.info.id}/p`, h, task, state);
  for (const n of pieces) p.pieces.add(n);
  task.peers.set(p.id, p);
  h.addPeer(p);
  return p;
}

describe('the ten-minute window', () => {
  it('counts what was added within the window, and forgets older buckets', () => {
    const c = new RecentCounts<'a' | 'b'>({ windowMs: 600_000, bucketMs: 10_000 });
    c.add('a', 5, 1_000);
    c.add('a', 2, 15_000);
    c.add('b', 1, 15_000);
    assert.deepEqual(c.totals(['a', 'b'], 20_000), { a: 7, b: 1 });
    // The first bucket (0–10 s) has left a window that begins after 10 s.
    assert.deepEqual(c.totals(['a', 'b'], 610_001), { a: 2, b: 1 });
    assert.deepEqual(c.totals(['a', 'b'], 700_000), { a: 0, b: 0 });
  });

  it('answers "is P2P working": idle, working (a seed fetching first is the plan), degraded (a normal peer went to the origin)', () => {
    assert.equal(recentView({ peerPieces: 0, originPieces: 0, backToSource: 0, fallbacks: 0 }, 600_000).line, 'Idle: last 10 minutes, no piece moved; no back-to-source event');
    const ok = recentView({ peerPieces: 300, originPieces: 100, backToSource: 1, fallbacks: 0 }, 600_000);
    assert.equal(ok.verdict, 'working');
    assert.equal(ok.line, 'P2P is working: last 10 minutes, 400 pieces: 75% from peers, 25% from the origin; 1 back-to-source event (seeds fetching first)');
    const bad = recentView({ peerPieces: 10, originPieces: 390, backToSource: 3, fallbacks: 2 }, 600_000);
    assert.equal(bad.verdict, 'degraded');
    assert.match(bad.line, /^P2P is degraded: .* 3 back-to-source events \(2 by normal peers\)$/);
  });

  it('the journal keeps the last back-to-source events, newest first, and feeds the window', () => {
    let now = 1_000_000;
    const journal = new SwarmJournal(() => now);
    journal.sentToSource('seed peer fetches first', { taskId: 't1', peerId: 's/p', hostId: 's', seed: true });
    now += 1000;
    journal.sentToSource('no seed peer', { taskId: 't1', peerId: 'a/p', hostId: 'a', seed: false });
    journal.piecesReported(4, true);
    journal.piecesReported(12, false);
    assert.deepEqual(
      journal.events(10).map((e) => [e.hostId, e.reason]),
      [
        ['a', 'no seed peer'],
        ['s', 'seed peer fetches first'],
      ],
    );
    const recent = journal.recent();
    assert.deepEqual([recent.peerPieces, recent.originPieces, recent.backToSource, recent.fallbacks, recent.verdict], [12, 4, 2, 1, 'degraded']);
    for (let i = 0; i < 600; i++) journal.sentToSource('again', { taskId: 't', peerId: 'x', hostId: 'x', seed: false });
    assert.equal(journal.events(1000).length, 500, 'bounded');
  });
});

describe('the snapshot of a swarm', () => {
  it('a task: size, progress (pieces held over pieces of its peers), peers by state, origin copies', () => {
    const task = new TaskEntry('t'.repeat(64));
    task.shape = { contentLength: 10 * MiB, pieceSize: MiB };
    task.originPieces = 10;
    peer(task, host('seed', true), 'complete', [...Array(10).keys()]);
    peer(task, host('a'), 'running', [0, 1, 2, 3, 4]);
    const view = taskView(task, Date.now());
    assert.equal(view.size, 10 * MiB);
    assert.equal(view.pieceCount, 10);
    assert.equal(view.peers, 2);
    assert.deepEqual(view.states, { complete: 1, running: 1 });
    assert.equal(view.progress, 15 / 20);
    assert.equal(view.originCopies, 1);
  });

  it('a host: load, announced and measured rates, slow or not', () => {
    const h = host('a');
    h.peakRate = 5 * MiB;
    h.slowRate = 5 * MiB;
    const view = hostView(h);
    assert.deepEqual([view.uploadLoad, view.uploadSlots, view.measuredRate, view.slow, view.announcedRate], [3, 64, 5 * MiB, true, 0]);
  });

  it('the graph: who feeds whom, live edges with their stripe masks, and the edges of peers that completed', () => {
    const task = new TaskEntry('g'.repeat(64));
    task.shape = { contentLength: 8 * MiB, pieceSize: MiB };
    task.stripes = 2;
    const seed = peer(task, host('seed', true), 'complete', [...Array(8).keys()]);
    const a = peer(task, host('a'), 'running', [0, 2]);
    const b = peer(task, host('b'), 'running', [1]);
    const done = peer(task, host('c'), 'complete', [...Array(8).keys()]);
    a.link(seed, 0, 0b01);
    b.link(seed, 0, 0b10);
    a.link(b, 0, 0b10);
    b.link(a, 0, 0b01);
    seed.retiredChildren.set(done, undefined);
    const g = graphView(task, Date.now());
    assert.equal(g.nodes.length, 4);
    assert.equal(g.nodes[0]!.seed, true, 'sources first');
    const edges = g.edges.map((e) => `${e.from.split('/')[0]!}>${e.to.split('/')[0]!}:${String(e.mask)}:${e.done}`).sort();
    assert.deepEqual(edges, ['a>b:1:false', 'b>a:2:false', 'seed>a:1:false', 'seed>b:2:false', 'seed>c:undefined:true']);
  });

  it('the layout puts sources in the first column and a chain in one column per hop', () => {
    const nodes = ['s', 'a', 'b', 'c', 'w'].map((id) => ({ id, source: id === 's' }));
    const edges = [
      { from: 's', to: 'a' },
      { from: 'a', to: 'b' },
      { from: 'b', to: 'c' },
    ];
    const layout = layoutGraph(nodes, edges);
    assert.deepEqual(
      ['s', 'a', 'b', 'c', 'w'].map((id) => layout.points.get(id)!.column),
      [0, 1, 2, 3, 4],
      'a waiting peer without a parent comes after the rest',
    );
    assert.ok(layout.width > layout.points.get('w')!.x);
  });

  it('a peer also fed from further up stays in its place down the chain; two peers feeding each other (split trees) do not loop', () => {
    const columns = (nodes: string[], edges: Array<[string, string]>): number[] => {
      const layout = layoutGraph(
        nodes.map((id) => ({ id, source: id === 's' })),
        edges.map(([from, to]) => ({ from, to })),
      );
      return nodes.map((id) => layout.points.get(id)!.column);
    };
    assert.deepEqual(columns(['s', 'a', 'b', 'c'], [['s', 'a'], ['a', 'b'], ['a', 'c'], ['b', 'c']]), [0, 1, 2, 3]);
    assert.deepEqual(columns(['s', 'a', 'b'], [['s', 'a'], ['s', 'b'], ['a', 'b'], ['b', 'a']]), [0, 1, 2]);
  });
});

describe('the preheat form', () => {
  it('reads "URL [digest]" lines, skipping blank ones', () => {
    const d = `sha256:${'ab'.repeat(32)}`;
    assert.deepEqual(parsePreheatLines(`http://o/a\n\n  http://o/b ${d}  \n`), [{ url: 'http://o/a' }, { url: 'http://o/b', digest: d }]);
  });

  it('makes the task shoal preheat URL would: a blob URL is its digest; a bad URL or digest is refused', () => {
    const hex = 'cd'.repeat(32);
    assert.equal(preheatSpec({ url: 'http://o/file.bin' }).taskId, taskId({ url: 'http://o/file.bin' }));
    assert.equal(preheatSpec({ url: `http://r/v2/x/blobs/sha256:${hex}` }).taskId, hex);
    assert.equal(preheatSpec({ url: 'http://o/f', digest: `sha256:${hex}` }).digest, `sha256:${hex}`);
    assert.throws(() => preheatSpec({ url: 'ftp://o/f' }), { code: 'URL_INVALID' });
    assert.throws(() => preheatSpec({ url: 'http://o/f', digest: 'md5:x' }), { code: 'DIGEST_INVALID' });
  });
});

describe('the console token', () => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-console-token-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('is made at first start in a 0600 file (its folder made 0700), and reused after', () => {
    const file = join(dir, 'state', 'shoal', 'console-token');
    const token = loadToken(file, silentLogger);
    assert.ok(token.length >= 40, 'at least 256 bits in base64url');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'state', 'shoal')).mode & 0o777, 0o700);
    assert.equal(loadToken(file, silentLogger), token, 'the same token after a restart');
    assert.equal(readFileSync(file, 'utf8').trim(), token);
    assert.notEqual(loadToken(join(dir, 'other'), silentLogger), token, 'another file, another token');
  });

  it('a file holding something short is refused, not trusted', () => {
    const file = join(dir, 'weak');
    writeFileSync(file, 'admin\n', { mode: 0o600 });
    assert.throws(() => loadToken(file, silentLogger), { code: 'CONFIG_INVALID' });
  });

  it('compares tokens whatever their lengths; the session cookie is derived from the token, not the token', () => {
    assert.equal(tokensEqual('abc', 'abc'), true);
    assert.equal(tokensEqual('abc', 'abd'), false);
    assert.equal(tokensEqual('', 'abc'), false);
    assert.notEqual(sessionValue('t'.repeat(43)), 't'.repeat(43));
    assert.notEqual(sessionValue('t'.repeat(43)), sessionValue('u'.repeat(43)));
  });
});
