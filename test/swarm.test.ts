import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { create } from '@bufbuild/protobuf';
import {
  HeldTaskSchema,
  RegisterPeerSchema,
  TaskSpecSchema,
  type HostCommand,
  type PeerResponse,
} from '../src/gen/shoal/v1/scheduler_pb.js';
import { SchedulerConfigSchema, type SchedulerConfig, type SchedulerInit } from '../src/common/config/schema.js';
import { silentLogger } from '../src/common/log.js';
import { packDigests } from '../src/common/pieces.js';
import type { HostInfo, PeerEntry } from '../src/scheduler/model.js';
import { Swarm } from '../src/scheduler/swarm.js';
import { sendParents } from '../src/scheduler/messages.js';
import { stripeDepth } from '../src/scheduler/stripes.js';
import { ParentConn } from '../src/daemon/download/parent.js';

const MIB = 1024 * 1024;
const TASK = 'c0ffee'.repeat(10) + 'c0ff';
const URL = 'https://origin.example/files/blob.tar';

function hostInfo(id: string, seed = false): HostInfo {
  return { id, hostname: id, ip: `10.0.0.${id.length}`, port: 4000, idc: '', location: '', seed, uploadSlots: 64, uploadLoad: 0, uploadRate: 0, identity: '' };
}

function digestFor(n: number, salt = 0): Uint8Array {
  return new Uint8Array(32).fill((n * 7 + salt) & 0xff);
}

function digests(numbers: number[], salt = 0): Uint8Array {
  return packDigests(numbers.map((n) => digestFor(n, salt)));
}

/** Lets the scheduler's setImmediate re-scheduling run. */
async function tick(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

interface Client {
  peer: PeerEntry;
  out: PeerResponse[];
}

type Case = PeerResponse['response']['case'];

type ValueOf<C extends NonNullable<Case>> = Extract<PeerResponse['response'], { case: C }>['value'];

function ofCase<C extends NonNullable<Case>>(client: Client, c: C): Array<ValueOf<C>> {
  const out: Array<ValueOf<C>> = [];
  for (const r of client.out) if (r.response.case === c) out.push(r.response.value as ValueOf<C>);
  return out;
}

function cases(client: Client): Case[] {
  return client.out.map((r) => r.response.case);
}

/** Every parent id ever offered to the client, in order of the `parents` messages. */
function offeredParents(client: Client): string[][] {
  return ofCase(client, 'parents').map((m) => m.parents.map((p) => p.peerId));
}

function lastParents(client: Client): string[] | undefined {
  return offeredParents(client).at(-1);
}

/** The last digest the client was sent for piece `n`. */
function lastDigestSent(client: Client, n: number): Uint8Array | undefined {
  let found: Uint8Array | undefined;
  for (const m of ofCase(client, 'digests')) {
    const i = m.numbers.indexOf(n);
    if (i >= 0) found = m.digests.subarray(i * 32, i * 32 + 32);
  }
  return found;
}

function backToSourceCount(clients: Client[]): number {
  return clients.reduce((n, c) => n + ofCase(c, 'backToSource').length, 0);
}

/** Scheduler settings as the schema makes them (its defaults but for `init`; durations as strings). */
function settings(init: SchedulerInit = {}): SchedulerConfig {
  return SchedulerConfigSchema.parse(init);
}

/** A started swarm with `settings(init)`, on the given clock. */
function newSwarm(init: SchedulerInit, now: () => number = Date.now): Swarm {
  const started = new Swarm(settings(init), { logger: silentLogger, now });
  void started.start();
  return started;
}

let swarm: Swarm;
let hostCommands: Map<string, HostCommand[]>;

function setup(): Swarm {
  // Unlimited children: these tests are about other rules (child limits have their own test).
  swarm = newSwarm({ recoveryWindow: '0ms', seedTimeout: '200ms', seedChildren: 0, peerChildren: 0 });
  hostCommands = new Map();
  return swarm;
}

afterEach(() => swarm.stop());

function announce(id: string, seed = false, held: Parameters<Swarm['announceHost']>[2] = []): void {
  const commands: HostCommand[] = [];
  hostCommands.set(id, commands);
  swarm.announceHost(hostInfo(id, seed), (c) => commands.push(c), held);
}

interface RegisterExtra {
  pieces?: number[];
  digests?: Uint8Array;
  metadata?: { contentLength?: bigint; pieceSize: number };
  backToSource?: boolean;
  reconnect?: boolean;
}

function register(peerId: string, hostId: string, extra: RegisterExtra = {}): Client {
  const out: PeerResponse[] = [];
  const request = create(RegisterPeerSchema, {
    peerId,
    hostId,
    task: create(TaskSpecSchema, { taskId: TASK, url: URL }),
    pieces: extra.pieces ?? [],
    digests: extra.digests ?? new Uint8Array(0),
    backToSource: extra.backToSource ?? false,
    reconnect: extra.reconnect ?? false,
    ...(extra.metadata === undefined ? {} : { metadata: extra.metadata }),
  });
  const peer = swarm.register(request, (r) => out.push(r));
  assert.ok(peer !== undefined, `register ${peerId} on ${hostId} was refused`);
  return { peer, out };
}

/** A task of 4 pieces of 1 MiB. */
const LENGTH = 4 * MIB;
const PIECE = MIB;

/** Source peer A on host ha (no seeds), with `others` waiting peers; returns [source, ...others]. */
async function sourceSwarm(others: string[]): Promise<Client[]> {
  setup();
  announce('ha');
  for (const name of others) announce(`h${name}`);
  const a = register('A', 'ha');
  const rest = others.map((name) => register(name, `h${name}`));
  await tick();
  assert.equal(ofCase(a, 'backToSource').length, 1, 'A goes back to source');
  return [a, ...rest];
}

describe('Swarm: back to source without seeds', () => {
  it('exactly one of three peers goes back to source, and the others learn everything from it', async () => {
    setup();
    announce('h1');
    announce('h2');
    announce('h3');
    const p1 = register('p1', 'h1');
    await tick();
    const p2 = register('p2', 'h2');
    const p3 = register('p3', 'h3');
    await tick();

    assert.deepEqual(cases(p1), ['backToSource']);
    assert.equal(p1.peer.state, 'source');
    assert.equal(backToSourceCount([p2, p3]), 0);
    assert.equal(swarm.tasks.get(TASK)?.backToSourceCount, 1);

    swarm.metadata(p1.peer, LENGTH, PIECE);
    swarm.piecesFinished(p1.peer, [0, 1], digests([0, 1]));
    await tick();

    for (const waiting of [p2, p3]) {
      const meta = ofCase(waiting, 'metadata');
      assert.equal(meta.length, 1, 'one metadata message');
      assert.equal(meta[0]!.contentLength, BigInt(LENGTH));
      assert.equal(meta[0]!.pieceSize, PIECE);

      const ds = ofCase(waiting, 'digests');
      assert.equal(ds.length, 1);
      assert.deepEqual(ds[0]!.numbers, [0, 1]);
      assert.deepEqual(ds[0]!.digests, digests([0, 1]));

      assert.ok(offeredParents(waiting).some((ids) => ids.includes('p1')), 'p1 offered as a parent');
      const fromSource = ofCase(waiting, 'parentPieces').filter((m) => m.peerId === 'p1');
      assert.deepEqual(fromSource.flatMap((m) => m.numbers).sort(), [0, 1]);
    }
    // Nobody else is ever sent to the origin, even after more scheduling rounds.
    swarm.piecesFinished(p1.peer, [2, 3], digests([2, 3]));
    await tick();
    assert.equal(backToSourceCount([p1, p2, p3]), 1);
    // The source itself is not told about its own data.
    assert.deepEqual(cases(p1), ['backToSource']);
  });

  it('a child that blocked the only source waits with limit 1, and goes to source with backToSourceLimit 2', async () => {
    for (const limit of [1, 2]) {
      swarm = newSwarm({ recoveryWindow: '0ms', seedTimeout: '200ms', backToSourceLimit: limit });
      hostCommands = new Map();
      announce('h1');
      announce('h2');
      const p1 = register('p1', 'h1');
      const p2 = register('p2', 'h2');
      await tick();
      assert.deepEqual(lastParents(p2), ['p1'], 'a source can serve at once: no second back-to-source');
      assert.equal(backToSourceCount([p1, p2]), 1);
      swarm.parentFailed(p2.peer, 'p1', false);
      await tick();
      assert.equal(ofCase(p2, 'backToSource').length, limit === 1 ? 0 : 1, `limit ${limit}`);
      await swarm.stop();
    }
  });

  it('pieces reported later reach children as parentPieces, only the new ones', async () => {
    const [a, b] = await sourceSwarm(['B']);
    swarm.metadata(a!.peer, LENGTH, PIECE);
    swarm.piecesFinished(a!.peer, [0], digests([0]));
    swarm.piecesFinished(a!.peer, [0, 1], digests([0, 1]));
    await tick();
    const pieces = ofCase(b!, 'parentPieces').filter((m) => m.peerId === 'A');
    assert.deepEqual(pieces.map((m) => m.numbers), [[0], [1]]);
    const ds = ofCase(b!, 'digests');
    assert.deepEqual(ds.map((m) => m.numbers), [[0], [1]]);
  });
});

describe('Swarm: seed peers', () => {
  it('the first register triggers seedTask on the seed host; nobody but the seed goes to source', async () => {
    setup();
    announce('seed', true);
    announce('h1');
    announce('h2');
    const p1 = register('p1', 'h1');
    const p2 = register('p2', 'h2');
    await tick();

    const commands = hostCommands.get('seed')!;
    assert.equal(commands.length, 1, 'exactly one seedTask');
    const command = commands[0]!.command;
    assert.equal(command.case, 'seedTask');
    assert.equal(command.value?.task?.taskId, TASK);
    assert.equal(command.value?.task?.url, URL);
    assert.equal(hostCommands.get('h1')!.length, 0);
    assert.equal(backToSourceCount([p1, p2]), 0);

    const s = register('s', 'seed');
    await tick();
    assert.equal(ofCase(s, 'backToSource').length, 1, 'the seed goes back to source');
    assert.equal(backToSourceCount([p1, p2]), 0);
    // The waiting peers now have the seed as a parent.
    for (const p of [p1, p2]) {
      assert.ok(offeredParents(p).some((ids) => ids.includes('s')));
      const parent = ofCase(p, 'parents').at(-1)!.parents.find((x) => x.peerId === 's')!;
      assert.equal(parent.seed, true);
      assert.equal(parent.hostId, 'seed');
    }
    // Still exactly one seedTask command.
    assert.equal(hostCommands.get('seed')!.length, 1);
  });

  it('with two seed hosts, only one is asked', async () => {
    setup();
    announce('seed-a', true);
    announce('seed-b', true);
    announce('h1');
    register('p1', 'h1');
    await tick();
    const asked = ['seed-a', 'seed-b'].filter((id) => hostCommands.get(id)!.length > 0);
    assert.equal(asked.length, 1);
  });

  it('the seed asked for a task does not depend on the order seeds were announced', async () => {
    const askedWith = async (order: string[]): Promise<string[]> => {
      setup();
      for (const id of order) announce(id, true);
      announce('h1');
      register('p1', 'h1');
      await tick();
      const asked = order.filter((id) => hostCommands.get(id)!.length > 0);
      await swarm.stop();
      return asked;
    };
    const seeds = ['seed-a', 'seed-b', 'seed-c', 'seed-d'];
    const forward = await askedWith(seeds);
    const backward = await askedWith([...seeds].reverse());
    assert.equal(forward.length, 1);
    assert.deepEqual(backward, forward);
  });
});

describe('Swarm: timeouts (injected clock)', () => {
  it('a seed that does not register within seedTimeout lets a normal peer go to source', async () => {
    let now = 1_000_000;
    swarm = newSwarm({ recoveryWindow: '0ms', seedTimeout: '200ms' }, () => now);
    hostCommands = new Map();
    announce('seed', true);
    announce('h1');
    const p1 = register('p1', 'h1');
    await tick();
    assert.equal(hostCommands.get('seed')!.length, 1);
    now += 100;
    swarm.reschedule(p1.peer);
    await tick();
    assert.equal(ofCase(p1, 'backToSource').length, 0, 'still within the seed timeout');
    now += 200;
    swarm.reschedule(p1.peer);
    await tick();
    assert.equal(ofCase(p1, 'backToSource').length, 1, 'seed timed out');
    assert.equal(ofCase(p1, 'backToSource')[0]!.reason, 'seed peer unavailable');
    assert.equal(hostCommands.get('seed')!.length, 1, 'the seed is not asked twice');
  });

  it('a seed that registered and is fetching is waited for past the timeout', async () => {
    let now = 1_000_000;
    swarm = newSwarm({ recoveryWindow: '0ms', seedTimeout: '200ms' }, () => now);
    hostCommands = new Map();
    announce('seed', true);
    announce('h1');
    announce('h2');
    const p1 = register('p1', 'h1');
    await tick();
    const s = register('s', 'seed');
    await tick();
    assert.equal(ofCase(s, 'backToSource').length, 1);
    now += 10_000;
    const p2 = register('p2', 'h2');
    swarm.reschedule(p1.peer);
    await tick();
    assert.equal(backToSourceCount([p1, p2]), 0);
  });

  it('a reconnecting peer is not sent to source during the recovery window', async () => {
    let now = 1_000_000;
    swarm = newSwarm({ recoveryWindow: '1000ms', seedTimeout: '200ms' }, () => now);
    hostCommands = new Map();
    announce('h1');
    const p = register('p', 'h1', { reconnect: true });
    await tick();
    assert.equal(ofCase(p, 'backToSource').length, 0);
    now += 1500;
    swarm.reschedule(p.peer);
    await tick();
    assert.equal(ofCase(p, 'backToSource').length, 1);
  });

  it('a new (not reconnecting) peer is not held back by the recovery window', async () => {
    swarm = newSwarm({ recoveryWindow: '1000ms', seedTimeout: '200ms' }, () => 1_000_000);
    hostCommands = new Map();
    announce('h1');
    const p = register('p', 'h1');
    await tick();
    assert.equal(ofCase(p, 'backToSource').length, 1);
  });
});

describe('Swarm: lifecycle', () => {
  it('start() and stop() are idempotent; a stopped swarm does not start again', async () => {
    swarm = new Swarm(settings(), { logger: silentLogger, now: Date.now });
    await swarm.start();
    await swarm.start();
    await swarm.stop();
    await swarm.stop();
    await assert.rejects(swarm.start(), (err: Error & { code?: string }) => err.code === 'USAGE');
  });

  it('the recovery window counts from start(), not from construction', async () => {
    let now = 1_000_000;
    swarm = new Swarm(settings({ recoveryWindow: '1000ms', seedTimeout: '200ms' }), { logger: silentLogger, now: () => now });
    hostCommands = new Map();
    now += 5000;
    await swarm.start();
    announce('h1');
    const p = register('p', 'h1', { reconnect: true });
    await tick();
    assert.equal(ofCase(p, 'backToSource').length, 0, 'held back: the window began at start()');
    now += 1500;
    swarm.reschedule(p.peer);
    await tick();
    assert.equal(ofCase(p, 'backToSource').length, 1);
  });

  /** A peer waiting for a seed that never registers, the clock already past the seed timeout. */
  async function waitingForSeed(stopFirst: boolean): Promise<Client> {
    let now = 1_000_000;
    swarm = newSwarm({ recoveryWindow: '0ms', seedTimeout: '20ms' }, () => now);
    hostCommands = new Map();
    announce('seed', true);
    announce('h1');
    const p = register('p', 'h1');
    await tick();
    assert.equal(hostCommands.get('seed')!.length, 1, 'the seed was asked');
    if (stopFirst) await swarm.stop();
    now += 1000;
    return p;
  }

  it("the seed timeout's timer schedules the task again: the waiting peer goes to the origin", async () => {
    const p = await waitingForSeed(false);
    for (let i = 0; i < 500 && ofCase(p, 'backToSource').length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(ofCase(p, 'backToSource').map((m) => m.reason), ['seed peer unavailable']);
  });

  it('stop() clears the timers: after it, the seed timeout schedules nothing', async () => {
    const p = await waitingForSeed(true);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await tick();
    assert.equal(ofCase(p, 'backToSource').length, 0);
  });
});

describe('Swarm: complete peers', () => {
  it('a peer registering with all pieces gets complete', async () => {
    setup();
    announce('h1');
    const p = register('p', 'h1', { metadata: { contentLength: BigInt(LENGTH), pieceSize: PIECE }, pieces: [0, 1, 2, 3], digests: digests([0, 1, 2, 3]) });
    await tick();
    assert.equal(ofCase(p, 'complete').length, 1);
    assert.equal(ofCase(p, 'backToSource').length, 0);
    assert.equal(ofCase(p, 'parents').length, 0);
    assert.equal(p.peer.state, 'complete');
  });

  it('a peer missing a piece does not get complete', async () => {
    setup();
    announce('h1');
    const p = register('p', 'h1', { metadata: { contentLength: BigInt(LENGTH), pieceSize: PIECE }, pieces: [0, 1, 2], digests: digests([0, 1, 2]) });
    await tick();
    assert.equal(ofCase(p, 'complete').length, 0);
  });
});

describe('Swarm: digest trust', () => {
  it('digests from a non-source, non-seed peer are not forwarded once authoritative ones exist', async () => {
    const [a, b, c] = await sourceSwarm(['B', 'C']);
    swarm.metadata(a!.peer, LENGTH, PIECE);
    swarm.piecesFinished(a!.peer, [0], digests([0]));
    await tick();
    const task = swarm.tasks.get(TASK)!;
    assert.deepEqual(new Uint8Array(task.digests.get(0)!), digestFor(0));

    // B lies about piece 0 and reports piece 1 before the source does.
    swarm.piecesFinished(b!.peer, [0, 1], digests([0, 1], 99));
    await tick();
    for (const digestMessage of ofCase(c!, 'digests')) {
      assert.ok(!digestMessage.numbers.includes(1), 'piece 1 digest from B was forwarded');
      assert.deepEqual(digestMessage.digests, digests(digestMessage.numbers), 'forwarded digests are the source ones');
    }
    assert.deepEqual(new Uint8Array(task.digests.get(0)!), digestFor(0), 'the source digest is kept');
    assert.equal(task.digests.has(1), false);

    // The source's digest for piece 1 does get through.
    swarm.piecesFinished(a!.peer, [1], digests([1]));
    await tick();
    const piece1 = ofCase(c!, 'digests').filter((m) => m.numbers.includes(1));
    assert.equal(piece1.length, 1);
    assert.deepEqual(piece1[0]!.digests, digests([1]));
  });

  it(
    'a source digest wins over one reported at register by a resuming non-source peer',
    async () => {
      const [a] = await sourceSwarm(['B']);
      // C resumes with stale/bogus pieces while the source has reported nothing yet.
      announce('hC');
      register('C', 'hC', { metadata: { contentLength: BigInt(LENGTH), pieceSize: PIECE }, pieces: [0], digests: digests([0], 99) });
      swarm.metadata(a!.peer, LENGTH, PIECE);
      swarm.piecesFinished(a!.peer, [0], digests([0]));
      await tick();
      assert.deepEqual(new Uint8Array(swarm.tasks.get(TASK)!.digests.get(0)!), digestFor(0));
      announce('hD');
      const d = register('D', 'hD');
      assert.deepEqual(lastDigestSent(d, 0), digestFor(0));
    },
  );

  it('digests from a seed-host peer are trusted even when it is not the source', async () => {
    setup();
    announce('seed', true);
    announce('h1');
    const p1 = register('p1', 'h1');
    const s = register('s', 'seed');
    await tick();
    // Normally s goes to source; force it to look like a plain running peer.
    s.peer.state = 'running';
    swarm.piecesFinished(s.peer, [0], digests([0]));
    await tick();
    assert.deepEqual(ofCase(p1, 'digests').flatMap((m) => m.numbers), [0]);
  });
});

describe('Swarm: parent failures and cycles', () => {
  it('a parent reported as failed is never offered to that child again', async () => {
    const [a, b, c] = await sourceSwarm(['B', 'C']);
    swarm.metadata(a!.peer, LENGTH, PIECE);
    swarm.piecesFinished(a!.peer, [0, 1], digests([0, 1]));
    await tick();
    assert.ok(b!.peer.parents.has(a!.peer));

    const before = b!.out.length;
    swarm.parentFailed(b!.peer, 'A', false);
    assert.ok(!b!.peer.parents.has(a!.peer));
    assert.ok(!a!.peer.children.has(b!.peer));
    assert.equal(a!.peer.host.uploadFailures, 1);

    // Lots of scheduling opportunities afterwards.
    swarm.piecesFinished(c!.peer, [0], digests([0]));
    swarm.piecesFinished(a!.peer, [2, 3], digests([2, 3]));
    swarm.reschedule(b!.peer);
    await tick();
    swarm.reschedule(b!.peer);
    await tick();

    const after = b!.out.slice(before).filter((r) => r.response.case === 'parents');
    for (const m of after) {
      assert.ok(m.response.case === 'parents');
      assert.ok(!m.response.value.parents.some((p) => p.peerId === 'A'), 'A offered again after it failed');
    }
    assert.ok(!b!.peer.parents.has(a!.peer));
    // B is not stranded: it gets C, which has a piece.
    assert.ok(after.length > 0 && b!.peer.parents.has(c!.peer));
    // And B does not go to source while A (blocked) is still the source.
    assert.equal(ofCase(b!, 'backToSource').length, 0);
  });

  it('a corrupt report counts as ten upload failures', async () => {
    const [a, b] = await sourceSwarm(['B']);
    swarm.parentFailed(b!.peer, 'A', true);
    assert.equal(a!.peer.host.uploadFailures, 10);
  });

  it('A (source) → B → C: C is never a parent of A or B', async () => {
    const [a, b] = await sourceSwarm(['B']);
    swarm.metadata(a!.peer, LENGTH, PIECE);
    swarm.piecesFinished(a!.peer, [0, 1, 2, 3], digests([0, 1, 2, 3]));
    await tick();
    swarm.piecesFinished(b!.peer, [0], digests([0]));
    await tick();
    announce('hC');
    const cc = register('C', 'hC');
    await tick();
    assert.ok(cc.peer.parents.has(b!.peer), 'C has B as a parent');
    assert.ok(b!.peer.parents.has(a!.peer), 'B has A as a parent');

    // C gets pieces B lacks: the only thing stopping B from picking C is the cycle rule.
    swarm.piecesFinished(cc.peer, [1, 2, 3], digests([1, 2, 3]));
    await tick();
    swarm.reschedule(b!.peer);
    await tick();

    for (const ids of offeredParents(b!)) assert.ok(!ids.includes('C'), `C offered to B: ${ids.join(',')}`);
    for (const ids of offeredParents(a!)) assert.ok(!ids.includes('C') && !ids.includes('B'));
    assert.ok(!b!.peer.parents.has(cc.peer));
    assert.equal(a!.peer.parents.size, 0);
  });
});

describe('Swarm: source failure and departures', () => {
  it('the source failing with SOURCE_NOT_FOUND fails the waiting peers with that code', async () => {
    const [a, b, c] = await sourceSwarm(['B', 'C']);
    swarm.failed(a!.peer, 'SOURCE_NOT_FOUND', 'origin answered 404', 404);
    await tick();
    for (const waiting of [b!, c!]) {
      const failures = ofCase(waiting, 'failed');
      assert.equal(failures.length, 1, `${waiting.peer.id} gets one failed`);
      assert.equal(failures[0]!.code, 'SOURCE_NOT_FOUND');
      assert.equal(failures[0]!.status, 404);
      assert.equal(waiting.peer.state, 'failed');
    }
    assert.equal(swarm.tasks.has(TASK), false, 'the task is forgotten once nobody is left');
  });

  it(
    'the source failing with SOURCE_NOT_FOUND sends no other peer to the origin',
    async () => {
      const [a, b, c] = await sourceSwarm(['B', 'C']);
      swarm.failed(a!.peer, 'SOURCE_NOT_FOUND', 'origin answered 404', 404);
      await tick();
      assert.equal(backToSourceCount([b!, c!]), 0);
    },
  );

  it('a waiting peer that has another supply (a complete holder) is not failed with the source', async () => {
    setup();
    const held = create(HeldTaskSchema, {
      taskId: TASK,
      peerId: 'holder-peer',
      metadata: { contentLength: BigInt(LENGTH), pieceSize: PIECE },
      pieces: [0, 1, 2, 3],
      digests: digests([0, 1, 2, 3]),
      complete: true,
    });
    announce('hS');
    announce('hB');
    const src = register('S', 'hS', { backToSource: true });
    announce('holder', false, [held]);
    const b = register('B', 'hB');
    await tick();
    swarm.failed(src.peer, 'SOURCE_NOT_FOUND', 'gone', 404);
    await tick();
    assert.equal(ofCase(b, 'failed').length, 0);
    assert.equal(ofCase(b, 'backToSource').length, 0);
    assert.ok(b.peer.parents.has(swarm.tasks.get(TASK)!.peers.get('holder-peer')!));
  });

  it('a non-source failure does not fail the others', async () => {
    const [a, b, c] = await sourceSwarm(['B', 'C']);
    swarm.failed(b!.peer, 'SOURCE_NOT_FOUND', 'b failed', 404);
    await tick();
    assert.equal(ofCase(c!, 'failed').length, 0);
    assert.equal(a!.peer.state, 'source');
  });

  it('a host leaving removes its peers; their children get parents without them', async () => {
    const [a, b] = await sourceSwarm(['B']);
    swarm.metadata(a!.peer, LENGTH, PIECE);
    swarm.piecesFinished(a!.peer, [0, 1, 2, 3], digests([0, 1, 2, 3]));
    swarm.piecesFinished(b!.peer, [0, 1], digests([0, 1]));
    await tick();
    announce('hC');
    const c = register('C', 'hC');
    await tick();
    assert.ok(c.peer.parents.has(b!.peer) && c.peer.parents.has(a!.peer));
    const before = c.out.length;

    swarm.leaveHost('hB');
    await tick();
    assert.equal(swarm.hosts.has('hB'), false);
    const task = swarm.tasks.get(TASK)!;
    assert.equal(task.peers.has('B'), false);
    assert.equal(b!.peer.state, 'left');
    assert.ok(!c.peer.parents.has(b!.peer));
    assert.ok(!a!.peer.children.has(b!.peer));

    const update = c.out.slice(before).filter((r) => r.response.case === 'parents');
    assert.ok(update.length >= 1, 'C is told its new parent set');
    assert.deepEqual(lastParents(c), ['A']);
  });

  it('a peer disconnecting before finishing is removed; a complete one stays as a holder', async () => {
    const [a, b, c] = await sourceSwarm(['B', 'C']);
    swarm.metadata(a!.peer, LENGTH, PIECE);
    swarm.piecesFinished(a!.peer, [0, 1, 2, 3], digests([0, 1, 2, 3]));
    await tick();
    swarm.finished(b!.peer);
    swarm.disconnected(b!.peer);
    swarm.disconnected(c!.peer);
    await tick();
    const task = swarm.tasks.get(TASK)!;
    assert.equal(task.peers.get('B')?.state, 'complete');
    assert.equal(task.peers.has('C'), false);
  });
});

describe('Swarm: scheduler restart recovery', () => {
  it('a re-announced host with a complete HeldTask becomes a parent; nobody goes to source', async () => {
    setup();
    const held = create(HeldTaskSchema, {
      taskId: TASK,
      peerId: 'old',
      metadata: { contentLength: BigInt(LENGTH), pieceSize: PIECE },
      pieces: [0, 1, 2, 3],
      digests: digests([0, 1, 2, 3]),
      complete: true,
    });
    announce('holder', false, [held]);
    announce('h1');
    await tick();
    const task = swarm.tasks.get(TASK);
    assert.ok(task !== undefined, 'the held task is known');
    assert.equal(task.peers.get('old')?.state, 'complete');

    const p = register('p', 'h1');
    await tick();
    assert.equal(ofCase(p, 'backToSource').length, 0);
    assert.deepEqual(lastParents(p), ['old']);
    const meta = ofCase(p, 'metadata');
    assert.equal(meta.length, 1);
    assert.equal(meta[0]!.contentLength, BigInt(LENGTH));
    assert.deepEqual(ofCase(p, 'digests').flatMap((m) => m.numbers).sort(), [0, 1, 2, 3]);
    assert.deepEqual(ofCase(p, 'parentPieces').find((m) => m.peerId === 'old')?.numbers, [0, 1, 2, 3]);
    assert.equal(task.backToSourceCount, 0);
  });

  it(
    "a seed's held digests win over those of a non-seed holder that re-announced first",
    async () => {
      setup();
      const heldBy = (peerId: string, salt: number) =>
        create(HeldTaskSchema, {
          taskId: TASK,
          peerId,
          metadata: { contentLength: BigInt(LENGTH), pieceSize: PIECE },
          pieces: [0, 1, 2, 3],
          digests: digests([0, 1, 2, 3], salt),
          complete: true,
        });
      announce('plain', false, [heldBy('plain-peer', 99)]);
      announce('seed', true, [heldBy('seed-peer', 0)]);
      announce('h1');
      const p = register('p', 'h1');
      await tick();
      assert.deepEqual(lastDigestSent(p, 0), digestFor(0));
    },
  );

  it('an incomplete HeldTask is not adopted', async () => {
    setup();
    const held = create(HeldTaskSchema, {
      taskId: TASK,
      peerId: 'old',
      metadata: { contentLength: BigInt(LENGTH), pieceSize: PIECE },
      pieces: [0, 1],
      digests: digests([0, 1]),
      complete: false,
    });
    announce('holder', false, [held]);
    await tick();
    assert.equal(swarm.tasks.has(TASK), false);
  });

  it('a peer re-registering as back-to-source after a restart is the source; others do not go to the origin', async () => {
    setup();
    announce('h1');
    announce('h2');
    const src = register('src', 'h1', { backToSource: true, reconnect: true, metadata: { contentLength: BigInt(LENGTH), pieceSize: PIECE }, pieces: [0], digests: digests([0]) });
    const p = register('p', 'h2', { reconnect: true });
    await tick();
    assert.equal(src.peer.state, 'source');
    assert.equal(backToSourceCount([src, p]), 0);
    assert.deepEqual(lastParents(p), ['src']);
  });
});

/** One child per seed and per peer; a complete seed S on host hs; hosts ha, hb, hc announced. */
function limitedSwarm(): Client {
  swarm = newSwarm({ recoveryWindow: '0ms', seedTimeout: '200ms', seedChildren: 1, peerChildren: 1 });
  hostCommands = new Map();
  announce('hs', true);
  for (const name of ['a', 'b', 'c']) announce(`h${name}`);
  const meta = { contentLength: BigInt(LENGTH), pieceSize: PIECE };
  const seed = register('S', 'hs', { pieces: [0, 1, 2, 3], digests: digests([0, 1, 2, 3]), metadata: meta });
  swarm.finished(seed.peer);
  return seed;
}

describe('Swarm: child limits shape a chain', () => {
  it('with one child per seed and per peer, peers line up behind the seed at once, and an orphan reattaches to its grandparent', async () => {
    const seed = limitedSwarm();
    const a = register('A', 'ha');
    const b = register('B', 'hb');
    const c = register('C', 'hc');
    await tick();
    // Each takes the last peer of the chain before it holds a piece: the chain
    // forms as fast as peers register.
    assert.deepEqual(lastParents(a), ['S']);
    assert.deepEqual(lastParents(b), ['A']);
    assert.deepEqual(lastParents(c), ['B']);
    assert.equal(seed.peer.children.size, 1);
    swarm.piecesFinished(a.peer, [0], new Uint8Array(0));
    swarm.piecesFinished(b.peer, [0], new Uint8Array(0));
    await tick();
    assert.deepEqual(lastParents(c), ['B'], 'no second parent: every other peer has its one child');
    // B leaves: C attaches to A, whose one child slot B freed.
    swarm.disconnected(b.peer);
    await tick();
    assert.deepEqual(lastParents(c), ['A']);
    assert.equal(backToSourceCount([a, b, c]), 0);
    // A completes: the seed's one child slot stays spent, C is not handed the seed.
    swarm.finished(a.peer);
    swarm.reschedule(c.peer);
    await tick();
    assert.ok(!(lastParents(c) ?? []).includes('S'), 'the seed took a second child');
  });

  it('a completed child that leaves gives the seed its slot back: a later download is not kept waiting', async () => {
    limitedSwarm();
    const a = register('A', 'ha');
    await tick();
    assert.deepEqual(lastParents(a), ['S']);
    swarm.finished(a.peer);
    const b = register('B', 'hb');
    await tick();
    assert.deepEqual(lastParents(b), ['A'], 'A, complete and still here, feeds B');
    // A's host goes away (its daemon stopped); the next download gets the seed at once.
    swarm.disconnected(b.peer);
    swarm.leaveHost('ha');
    const c = register('C', 'hc');
    await tick();
    assert.ok((lastParents(c) ?? []).includes('S'), `C got ${String(lastParents(c))}, not the seed`);
  });
});

describe('Swarm: a starving peer past the child limits', () => {
  /** Seed → A → B → C with one child each (limitedSwarm), C lined up behind B. */
  async function chainOfThree(): Promise<[Client, Client, Client]> {
    limitedSwarm();
    const chain: [Client, Client, Client] = [register('A', 'ha'), register('B', 'hb'), register('C', 'hc')];
    await tick();
    assert.deepEqual(lastParents(chain[2]), ['B']);
    return chain;
  }

  it('is given a normal peer before the seed, whose upload crosses the origin link', async () => {
    const seed = limitedSwarm();
    const a = register('A', 'ha');
    await tick();
    swarm.piecesFinished(a.peer, [0, 1], new Uint8Array(0));
    const b = register('B', 'hb');
    const c = register('C', 'hc');
    await tick();
    assert.deepEqual(lastParents(b), ['A']);
    assert.deepEqual(lastParents(c), ['B'], 'C is lined up behind B, which holds nothing yet');
    // A got its pieces a minute ago and nothing since: the chain has stalled
    // above C, which starves and asks again.
    a.peer.lastPieceAt = Date.now() - 60_000;
    swarm.reschedule(c.peer);
    await tick();
    assert.deepEqual(lastParents(c), ['B', 'A']);
    assert.equal(seed.peer.children.size, 1);
  });

  it('a peer its parent has served nothing for long, though the parent holds pieces it lacks, takes a parent past the limits', async () => {
    const [a, b, c] = await chainOfThree();
    swarm.piecesFinished(a.peer, [0, 1, 2], new Uint8Array(0));
    swarm.piecesFinished(b.peer, [0, 1], new Uint8Array(0));
    swarm.piecesFinished(c.peer, [0], new Uint8Array(0));
    await tick();
    // B holds piece 1, which C lacks, yet C has had nothing from it for a minute; A still gets pieces.
    const long = Date.now() - 60_000;
    c.peer.lastPieceAt = long;
    c.peer.linkedAt.set(b.peer, long);
    swarm.reschedule(c.peer);
    await tick();
    assert.ok(c.peer.parents.size >= 2, `C kept only ${[...c.peer.parents].map((p) => p.id).join(', ')}`);
    assert.equal(backToSourceCount([a, b, c]), 0);
  });

  it('waits while pieces still flow down its chain: a deep peer takes no parent past the limits', async () => {
    const [a, b, c] = await chainOfThree();
    // A is getting pieces; B and C, further down, hold none yet. C asks again.
    swarm.piecesFinished(a.peer, [0], new Uint8Array(0));
    await tick();
    const before = ofCase(c, 'parents').length;
    swarm.reschedule(c.peer);
    await tick();
    assert.equal(ofCase(c, 'parents').length, before, 'C was given another parent');
    assert.deepEqual([...a.peer.children].map((p) => p.id), ['B'], 'A, the head of the chain, took a second child');
    assert.equal(backToSourceCount([a, b, c]), 0);
  });
});

describe('Swarm: split trees (stripes: 2)', () => {
  function stripedSwarm(peers: string[]): Client {
    swarm = newSwarm({ recoveryWindow: '0ms', seedTimeout: '200ms', stripes: 2, stripesFrom: 1 });
    hostCommands = new Map();
    announce('hs', true);
    for (const name of peers) announce(`h${name}`);
    return register('S', 'hs', { backToSource: true, metadata: { contentLength: BigInt(LENGTH), pieceSize: PIECE } });
  }

  /** A (the relay), then B and C under it: B takes stripe 1 from A and stripe 0 from C. */
  async function relayAndTwo(): Promise<{ a: Client; b: Client; c: Client }> {
    stripedSwarm(['a', 'b', 'c']);
    const a = register('A', 'ha');
    await tick();
    const b = register('B', 'hb');
    const c = register('C', 'hc');
    await tick();
    assert.deepEqual(stripesOf(b), { A: 0b10, C: 0b01 });
    return { a, b, c };
  }

  /** The client's last parent list as parent id → stripe mask (every entry must carry 2 stripes). */
  function stripesOf(client: Client): Record<string, number> {
    const last = ofCase(client, 'parents').at(-1);
    const out: Record<string, number> = {};
    for (const p of last?.parents ?? []) {
      assert.equal(p.stripes, 2, `parent ${p.peerId} of ${client.peer.id} came without stripes`);
      out[p.peerId] = p.stripeMask;
    }
    return out;
  }

  it('a lone peer takes both stripes from the seed and relays them: the next peers take one each from it', async () => {
    const seed = stripedSwarm(['a', 'b', 'c']);
    const a = register('A', 'ha');
    await tick();
    assert.deepEqual(stripesOf(a), { S: 0b11 });
    const b = register('B', 'hb');
    const c = register('C', 'hc');
    await tick();
    // A, the seed's relay, gives each stripe once; B and C each pass on their own stripe to the other.
    assert.deepEqual(stripesOf(b), { A: 0b10, C: 0b01 });
    assert.deepEqual(stripesOf(c), { A: 0b01, B: 0b10 });
    // The seed gives each stripe once, both to its relay: the origin's bytes cross its link once, in one flow.
    assert.deepEqual([...seed.peer.children].map((x) => x.parentMasks.get(seed.peer)), [0b11]);
    assert.equal(backToSourceCount([a, b, c]), 0);
  });

  it('eight peers: one parent per stripe, each peer passes one stripe to at most two children, the trees stay shallow', async () => {
    const names = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
    const seed = stripedSwarm(names);
    const clients = names.map((n) => register(n.toUpperCase(), `h${n}`));
    // Pieces arrive: every peer with a parent holds one more piece each round.
    for (let round = 0; round < 8; round++) {
      await tick();
      for (const c of clients) if (c.peer.parents.size > 0) swarm.piecesFinished(c.peer, [round % 4], new Uint8Array(0));
    }
    await tick();
    for (const c of clients) {
      const masks = stripesOf(c);
      let covered = 0;
      for (const [id, mask] of Object.entries(masks)) {
        assert.equal(covered & mask, 0, `${c.peer.id} gets a stripe from two parents: ${JSON.stringify(masks)}`);
        covered |= mask;
        if (id !== 'S' && id !== 'A') assert.equal(mask, 1 << swarm.tasks.get(TASK)!.peers.get(id)!.stripe, `${id} passes on a stripe other than its own`);
      }
      assert.equal(covered, 0b11, `${c.peer.id} lacks a stripe: ${JSON.stringify(masks)}`);
      let edges = 0;
      for (const child of c.peer.children) edges += child.parentMasks.get(c.peer) === 0b11 ? 2 : 1;
      assert.ok(edges <= 2, `${c.peer.id} feeds ${edges} stripe edges`);
      for (const s of [0, 1]) assert.ok(stripeDepth(c.peer, s, 2) <= 4, `${c.peer.id} is ${stripeDepth(c.peer, s, 2)} hops down stripe ${s}`);
    }
    // A, the first, is the seed's relay: every stripe from the seed, each given once.
    assert.deepEqual([...seed.peer.children].map((c) => c.id + ':' + c.parentMasks.get(seed.peer)), ['A:3']);
    assert.deepEqual([...clients[0]!.peer.children].map((c) => c.parentMasks.get(clients[0]!.peer)).sort(), [0b01, 0b10]);
  });

  it('when the relay leaves, another peer takes every stripe from the seed and the trees heal', async () => {
    const names = ['a', 'b', 'c', 'd', 'e'];
    const seed = stripedSwarm(names);
    const clients = names.map((n) => register(n.toUpperCase(), `h${n}`));
    await tick();
    const relay = clients[0]!;
    assert.deepEqual(stripesOf(relay), { S: 0b11 });
    swarm.disconnected(relay.peer);
    await tick();
    const rest = clients.slice(1);
    for (const c of rest) {
      assert.ok(!c.peer.parents.has(relay.peer));
      const covered = Object.values(stripesOf(c)).reduce((m, v) => m | v, 0);
      assert.equal(covered, 0b11, `${c.peer.id} lacks a stripe after the relay left: ${JSON.stringify(stripesOf(c))}`);
    }
    assert.deepEqual([...seed.peer.children].map((c) => c.parentMasks.get(seed.peer)), [0b11], 'one new relay, fed every stripe once');
    for (const c of rest) for (const s of [0, 1]) assert.ok(stripeDepth(c.peer, s, 2) <= 3, `${c.peer.id} is ${stripeDepth(c.peer, s, 2)} hops down stripe ${s}`);
    assert.equal(backToSourceCount(rest), 0);
  });

  it('a peer holding the whole stripe of its only parent, its other parent blocked as a liar, takes a parent past the limits', async () => {
    // A, the relay, is found corrupt by B after C and B got stripe 0 whole.
    // C still "can serve" B, but nothing B lacks: B must not wait on it forever.
    const { a, b, c } = await relayAndTwo();
    swarm.piecesFinished(a.peer, [0, 1, 2, 3], new Uint8Array(0));
    swarm.piecesFinished(c.peer, [0, 2], new Uint8Array(0));
    swarm.piecesFinished(b.peer, [0, 2], new Uint8Array(0));
    await tick();
    swarm.parentFailed(b.peer, 'A', true);
    swarm.parentFailed(c.peer, 'A', true);
    await tick();
    // Nothing has reached B or C for a minute: the stripe-1 supply is gone.
    for (const x of [a, b, c]) x.peer.lastPieceAt = Date.now() - 60_000;
    swarm.reschedule(b.peer);
    await tick();
    const parents = [...b.peer.parents];
    assert.ok(!b.peer.parents.has(a.peer), 'A was offered again after B found it corrupt');
    const stripe1 = parents.filter((p) => ((b.peer.parentMasks.get(p) ?? 0b11) & 0b10) !== 0 && (p.state === 'complete' || p.state === 'source' || p.pieces.has(1)));
    assert.ok(stripe1.length > 0, `B has no parent for stripe 1: ${parents.map((p) => p.id + ':' + b.peer.parentMasks.get(p)).join(', ')}`);
  });

  it("a child hears only of its parent's pieces in the stripes it takes from it, and of all it holds once given another stripe", async () => {
    const { a, b, c } = await relayAndTwo();
    const heard = (client: Client, from: string): number[][] => ofCase(client, 'parentPieces').filter((m) => m.peerId === from).map((m) => [...m.numbers]);
    const bFromA = heard(b, 'A').length;
    const cFromA = heard(c, 'A').length;
    swarm.piecesFinished(a.peer, [4, 5, 6, 7], new Uint8Array(0));
    assert.deepEqual(heard(b, 'A').slice(bFromA), [[5, 7]], 'B takes stripe 1 from A');
    assert.deepEqual(heard(c, 'A').slice(cFromA), [[4, 6]], 'C takes stripe 0 from A');
    // A piece of the other stripe only is not worth a message.
    swarm.piecesFinished(a.peer, [8], new Uint8Array(0));
    assert.equal(heard(b, 'A').length, bFromA + 1);
    assert.deepEqual(heard(c, 'A').slice(cFromA + 1), [[8]]);
    // C gives B stripe 1 as well: until B is told, C's pieces of either stripe reach it; then C's whole set.
    swarm.piecesFinished(c.peer, [4, 6], new Uint8Array(0));
    b.peer.link(c.peer, Date.now(), 0b10);
    swarm.piecesFinished(c.peer, [5], new Uint8Array(0));
    assert.deepEqual(heard(b, 'C').at(-1), [5]);
    sendParents(b.peer, []);
    assert.deepEqual(stripesOf(b), { A: 0b10, C: 0b11 });
    assert.deepEqual(heard(b, 'C').at(-1), [4, 5, 6]);
    // Told again with nothing new: no repeat of the whole set.
    const told = heard(b, 'C').length;
    sendParents(b.peer, []);
    assert.equal(heard(b, 'C').length, told);
  });

  it('with stripesFrom, a task is a chain until that many peers download it, then split trees', async () => {
    const names = ['a', 'b', 'c', 'd', 'e'];
    swarm = newSwarm({ recoveryWindow: '0ms', seedTimeout: '200ms', stripes: 2, stripesFrom: 4, seedChildren: 1, peerChildren: 1 });
    hostCommands = new Map();
    announce('hs', true);
    for (const name of names) announce(`h${name}`);
    const seed = register('S', 'hs', { backToSource: true, metadata: { contentLength: BigInt(LENGTH), pieceSize: PIECE } });
    const [a, b, c, d, e] = names.map((n) => register(n.toUpperCase(), `h${n}`)) as [Client, Client, Client, Client, Client];
    await tick();
    // Three peers: a chain, whose edges carry every piece (no stripes on the wire).
    const chained = [a, b, c].map((x) => ofCase(x, 'parents').find((m) => m.parents.length > 0));
    for (const m of chained) assert.ok(m !== undefined && m.parents.every((p) => p.stripes === 0), 'the first three peers were chained');
    const task = swarm.tasks.get(TASK)!;
    assert.equal(task.stripes, 2, 'the fourth peer split the task');
    for (const x of [a, b, c, d, e]) {
      const masks = stripesOf(x);
      assert.equal(Object.values(masks).reduce((m, v) => m | v, 0), 0b11, `${x.peer.id} lacks a stripe: ${JSON.stringify(masks)}`);
    }
    assert.deepEqual([...seed.peer.children].map((x) => x.parentMasks.get(seed.peer)), [0b11], 'the seed gives every stripe, once, to one relay');
    assert.equal(backToSourceCount([a, b, c, d, e]), 0);
  });

  it('hosts that announce slow links end up below the fast ones when the trees are built: never the relay, never a fast peer\'s parent', async () => {
    swarm = newSwarm({ recoveryWindow: '0ms', seedTimeout: '200ms', stripes: 2, stripesFrom: 5, seedChildren: 1, peerChildren: 1 });
    hostCommands = new Map();
    const SLOW = 2_500_000;
    const FAST = 12_500_000;
    const rated = (id: string, rate: number): void => void swarm.announceHost({ ...hostInfo(id), uploadRate: rate }, () => undefined, []);
    announce('hs', true);
    const slowNames = ['s1', 's2'];
    const fastNames = ['f1', 'f2', 'f3'];
    for (const n of slowNames) rated(`h${n}`, SLOW);
    for (const n of fastNames) rated(`h${n}`, FAST);
    const seed = register('S', 'hs', { backToSource: true, metadata: { contentLength: BigInt(LENGTH), pieceSize: PIECE } });
    // The slow hosts come first, as in the lab run where one of them became the relay.
    const slow = slowNames.map((n) => register(n.toUpperCase(), `h${n}`));
    const fast = fastNames.map((n) => register(n.toUpperCase(), `h${n}`));
    await tick();
    assert.equal(swarm.tasks.get(TASK)!.stripes, 2, 'the fifth peer split the task');
    const relays = [...seed.peer.children];
    assert.equal(relays.length, 1);
    assert.ok(fast.some((f) => f.peer === relays[0]), `the relay is a fast host, not ${relays[0]!.id}`);
    const slowPeers = new Set(slow.map((x) => x.peer));
    for (const f of fast) {
      for (const parent of f.peer.parents) assert.ok(!slowPeers.has(parent), `${f.peer.id} is fed by slow ${parent.id}`);
    }
    for (const x of [...slow, ...fast]) {
      const masks = stripesOf(x);
      assert.equal(Object.values(masks).reduce((m, v) => m | v, 0), 0b11, `${x.peer.id} lacks a stripe: ${JSON.stringify(masks)}`);
    }
    assert.equal(backToSourceCount([...slow, ...fast]), 0);
  });

  it('in a chain, a fast peer takes the place of the first slow host, which goes one hop down', async () => {
    swarm = newSwarm({ recoveryWindow: '0ms', seedTimeout: '200ms', stripes: 1, seedChildren: 1, peerChildren: 1 });
    hostCommands = new Map();
    const rated = (id: string, rate: number): void => void swarm.announceHost({ ...hostInfo(id), uploadRate: rate }, () => undefined, []);
    announce('hs', true);
    for (const n of ['s1', 's2']) rated(`h${n}`, 2_500_000);
    for (const n of ['f1', 'f2']) rated(`h${n}`, 12_500_000);
    const seed = register('S', 'hs', { backToSource: true, metadata: { contentLength: BigInt(LENGTH), pieceSize: PIECE } });
    const [s1, s2] = ['s1', 's2'].map((n) => register(n.toUpperCase(), `h${n}`)) as [Client, Client];
    await tick();
    const [f1, f2] = ['f1', 'f2'].map((n) => register(n.toUpperCase(), `h${n}`)) as [Client, Client];
    await tick();
    const parentOf = (c: Client): PeerEntry | undefined => [...c.peer.parents][0];
    assert.equal(parentOf(f1), seed.peer, 'the first fast peer took the seed from the first slow one');
    assert.equal(parentOf(f2), f1.peer, 'the second fast peer went under the first');
    assert.equal(parentOf(s1), f2.peer, 'the first slow host went down, under the fast peers');
    assert.equal(parentOf(s2), s1.peer, 'the second slow host kept its parent');
    assert.deepEqual(lastParents(s1), ['F2'], 'the slow host heard of its new parent');
    assert.equal(backToSourceCount([s1, s2, f1, f2]), 0);
  });

  it('a child takes from a striped parent only the pieces of its stripes', () => {
    const info = { peerId: 'P', hostId: 'h', ip: '127.0.0.1', port: 1, seed: false };
    const odd = new ParentConn({ ...info, stripes: 2, stripeMask: 0b10 }, 4);
    assert.deepEqual([0, 1, 2, 3, 5].map((n) => odd.serves(n)), [false, true, false, true, true]);
    odd.setStripes(0, 0);
    assert.ok(odd.serves(2), 'no stripes: every piece');
    odd.setStripes(40, 1);
    assert.ok(odd.serves(3), 'a stripe count past 32 is ignored');
  });
});

describe('Swarm: slow links measured, none announced (injected clock)', () => {
  const PIECES = 200;
  let clock = 0;

  function measuredSwarm(options: { stripes: number; stripesFrom?: number }, names: string[], seedRate = 0): Client {
    clock = 1_000_000;
    swarm = newSwarm({ recoveryWindow: '0ms', seedTimeout: '60s', seedChildren: 1, peerChildren: 1, ...options }, () => clock);
    hostCommands = new Map();
    swarm.announceHost({ ...hostInfo('hs', true), uploadRate: seedRate }, () => undefined, []);
    for (const name of names) announce(`h${name}`);
    const seed = register('S', 'hs', { backToSource: true, metadata: { contentLength: BigInt(PIECES * PIECE), pieceSize: PIECE } });
    swarm.piecesFinished(seed.peer, Array.from({ length: PIECES }, (_, n) => n), new Uint8Array(0));
    return seed;
  }

  /**
   * A fluid model of the links, in steps of 100 ms: each peer downloads at
   * most `rate` pieces a second, and uploads as much (the seed without
   * limit), each piece from a parent that holds it and serves it to this
   * child (its stripe mask), lowest piece first.
   */
  async function run(clients: Client[], rate: (c: Client) => number, seconds: number): Promise<void> {
    const down = new Map<PeerEntry, number>();
    const up = new Map<PeerEntry, number>();
    const task = swarm.tasks.get(TASK)!;
    for (let step = 0; step < seconds * 10; step++) {
      clock += 100;
      for (const c of clients) {
        down.set(c.peer, Math.min(2, (down.get(c.peer) ?? 0) + rate(c) / 10));
        up.set(c.peer, Math.min(2, (up.get(c.peer) ?? 0) + rate(c) / 10));
      }
      for (const c of clients) {
        const got: number[] = [];
        while ((down.get(c.peer) ?? 0) >= 1) {
          let taken = false;
          for (const parent of c.peer.parents) {
            const seedParent = parent.host.info.seed;
            if (!seedParent && (up.get(parent) ?? 0) < 1) continue;
            const mask = c.peer.parentMasks.get(parent);
            let n = 0;
            while (n < PIECES && (!parent.pieces.has(n) || c.peer.pieces.has(n) || got.includes(n) || (mask !== undefined && (mask & (1 << n % task.stripes)) === 0))) n++;
            if (n >= PIECES) continue;
            got.push(n);
            down.set(c.peer, down.get(c.peer)! - 1);
            if (!seedParent) up.set(parent, up.get(parent)! - 1);
            taken = true;
            break;
          }
          if (!taken) break;
        }
        if (got.length > 0) swarm.piecesFinished(c.peer, got, new Uint8Array(0));
      }
      await tick();
    }
  }

  const FAST = 12;
  const SLOW = 2.5;

  it('in a chain, a slow host behind a fast parent is found and goes to the tail; the fast peer it held back moves up', async () => {
    measuredSwarm({ stripes: 1 }, ['f1', 's1', 'f2']);
    const [f1, s1, f2] = ['f1', 's1', 'f2'].map((n) => register(n.toUpperCase(), `h${n}`)) as [Client, Client, Client];
    await tick();
    const parentOf = (c: Client): PeerEntry | undefined => [...c.peer.parents][0];
    assert.equal(parentOf(s1), f1.peer);
    assert.equal(parentOf(f2), s1.peer, 'registered in this order, the slow host sits between the fast ones');
    await run([f1, s1, f2], (c) => (c === s1 ? SLOW : FAST), 6);
    assert.ok(s1.peer.host.measuredSlow, 'the slow host was found');
    assert.ok(!f1.peer.host.measuredSlow && !f2.peer.host.measuredSlow, 'no fast host was taken for slow (F2 only ran at its slow parent\'s pace)');
    const measured = s1.peer.host.peakRate / PIECE;
    assert.ok(measured > SLOW * 0.5 && measured < SLOW * 2, `measured ${measured} pieces/s for a ${SLOW}/s link`);
    assert.equal(parentOf(f2), f1.peer, 'the fast peer moved up, under the fast one');
    assert.equal(parentOf(s1), f2.peer, 'the slow host went to the tail');
    assert.deepEqual(lastParents(f2), ['F1'], 'the fast peer heard of its new parent');
  });

  it('split trees: slow hosts registered early are found and rebuilt below the fast ones, no fast host is taken for slow, and the slow ones finish from the fast ones once those are done', async () => {
    const names = ['f1', 's1', 's2', 'f2', 's3', 'f3', 'f4', 'f5', 'f6'];
    measuredSwarm({ stripes: 2, stripesFrom: 9 }, names);
    const clients = names.map((n) => register(n.toUpperCase(), `h${n}`));
    await tick();
    assert.equal(swarm.tasks.get(TASK)!.stripes, 2, 'the ninth peer split the task');
    const slow = new Set(clients.filter((c) => c.peer.id.startsWith('S')).map((c) => c.peer));
    const fedBySlow = (): string[] => clients.filter((c) => !slow.has(c.peer) && [...c.peer.parents].some((p) => slow.has(p))).map((c) => c.peer.id);
    assert.ok(fedBySlow().length > 0, 'built blind, the trees put slow hosts above fast ones');
    await run(clients, (c) => (slow.has(c.peer) ? SLOW : FAST), 8);
    for (const c of clients) assert.equal(c.peer.host.measuredSlow, slow.has(c.peer), `${c.peer.id}: measured slow ${String(c.peer.host.measuredSlow)}`);
    assert.deepEqual(fedBySlow(), [], 'after the rebuild no fast peer takes a stripe from a slow host');
    for (const c of clients) {
      const covered = [...c.peer.parentMasks.values()].reduce((m, v) => m | v, 0);
      // The fast peers fill every place in the trees, so a slow host may wait
      // for its second stripe until one finishes; its link stays busy meanwhile.
      if (slow.has(c.peer)) assert.ok(covered !== 0, `${c.peer.id} has no parent`);
      else assert.equal(covered, 0b11, `${c.peer.id} lacks a stripe`);
    }
    for (const x of slow) assert.deepEqual([...x.children].filter((c) => !slow.has(c)).map((c) => c.id), [], `${x.id} feeds fast peers`);
    const slowUnderSlow = [...slow].filter((x) => [...x.parents].some((p) => slow.has(p))).map((x) => x.id);
    assert.ok(slowUnderSlow.length > 0, 'a slow host feeds another');
    // The fast peers finish and stay: the slow ones move to them for the tail.
    for (const c of clients) if (!slow.has(c.peer)) swarm.finished(c.peer);
    await tick();
    for (const x of slow) {
      const parents = [...x.parents];
      assert.ok(parents.length > 0 && parents.every((p) => p.state === 'complete' && !slow.has(p)), `${x.id} is fed by ${parents.map((p) => p.id).join(', ')}`);
      assert.equal([...x.parentMasks.values()].reduce((m, v) => m | v, 0), 0b11, `${x.id} lacks a stripe`);
    }
    assert.equal(backToSourceCount(clients), 0);
  });

  it('right under the seed, a slow host is found only when the seed announces its rate; then a fast peer takes its place; a fast host fed only by the slow one is never taken for slow', async () => {
    for (const seedRate of [0, 25 * PIECE]) {
      measuredSwarm({ stripes: 1 }, ['s1', 'f1'], seedRate);
      const [s1, f1] = ['s1', 'f1'].map((n) => register(n.toUpperCase(), `h${n}`)) as [Client, Client];
      await tick();
      await run([s1, f1], (c) => (c === s1 ? SLOW : FAST), 6);
      // Without the seed's rate, its slow child proves nothing: both stay unknown.
      assert.equal(s1.peer.host.measuredSlow, seedRate > 0, `seed rate ${seedRate}`);
      assert.ok(!f1.peer.host.measuredSlow);
      const head = [...swarm.tasks.get(TASK)!.peers.values()].find((p) => [...p.parents].some((x) => x.host.info.seed));
      assert.equal(head?.id, seedRate > 0 ? 'F1' : 'S1', 'the seed\'s child');
      await swarm.stop();
    }
  });

  it('a fast host that a busy machine slows later is not taken for slow: its best rate was its parent\'s', async () => {
    measuredSwarm({ stripes: 1 }, ['f1', 'f2']);
    const [f1, f2] = ['f1', 'f2'].map((n) => register(n.toUpperCase(), `h${n}`)) as [Client, Client];
    await tick();
    await run([f1, f2], () => FAST, 3);
    await run([f1, f2], (c) => (c === f2 ? SLOW : FAST), 5);
    assert.ok(!f2.peer.host.measuredSlow);
  });

  it('a host found slow that later downloads twice as fast counts as unknown again', async () => {
    measuredSwarm({ stripes: 1 }, ['f1', 's1', 'f2']);
    const [f1, s1, f2] = ['f1', 's1', 'f2'].map((n) => register(n.toUpperCase(), `h${n}`)) as [Client, Client, Client];
    await tick();
    await run([f1, s1, f2], (c) => (c === s1 ? SLOW : FAST), 6);
    assert.ok(s1.peer.host.measuredSlow);
    await run([f1, s1, f2], () => FAST, 4);
    assert.ok(!s1.peer.host.measuredSlow, 'its link was not what held it back');
  });
});
