/**
 * Every count and size a peer sends the scheduler is checked against the
 * limits before any work (docs/LIMITS.md, "scheduler RPC"): a real `shoal
 * scheduler` process and a client that sends what a hostile peer would. The
 * issue's case first: a task of 2^53 − 1 bytes in pieces of 1 byte, then
 * `finished`, blocked the scheduler's event loop for seconds (it marked every
 * piece held, one at a time) and every host was dropped.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { ConnectError } from '@connectrpc/connect';
import { AsyncQueue } from '../src/common/async-queue.js';
import type { ErrorCode } from '../src/common/errors.js';
import { taskId } from '../src/common/ids.js';
import { MAX_PIECES } from '../src/common/pieces.js';
import { fromConnectError } from '../src/common/rpc-errors.js';
import { createSchedulerClient, type SchedulerClient } from '../src/daemon/scheduler-link.js';
import { HeldTaskSchema, HostRequestSchema, PeerRequestSchema, type HeldTask, type HostRequest, type PeerRequest } from '../src/gen/shoal/v1/scheduler_pb.js';
import { Cluster } from './fixtures/cluster.js';

const KIB = 1024;
const MIB = 1024 * KIB;
const MIB_N = 1024n * 1024n;
/** docs/LIMITS.md: the largest content a task may have (the origin's limit). */
const MAX_CONTENT_LENGTH = 2 ** 50;
/** How long any one call may take: a scheduler that loops over a peer's numbers takes far longer, or never answers. */
const CALL_MS = 10_000;

type Metadata = { contentLength?: bigint; pieceSize: number };
type Message = NonNullable<MessageInitShape<typeof PeerRequestSchema>['request']>;

const cluster = new Cluster();
let client: SchedulerClient;
let url = '';
let n = 0;

before(async () => {
  const scheduler = await cluster.scheduler(0, ['--log-level', 'error']);
  url = scheduler.url;
  client = createSchedulerClient(url);
});
after(() => cluster.close());

function host(id: string) {
  return { id, hostname: id, ip: '127.0.0.1', uploadPort: 4000, seed: false, uploadSlots: 64 };
}

/** The error that ended `responses` (undefined when they ended cleanly), bounded in time. */
async function endOf(responses: AsyncIterable<unknown>): Promise<ConnectError | undefined> {
  try {
    for await (const response of responses) void response;
    return undefined;
  } catch (err) {
    return ConnectError.from(err);
  }
}

function assertRefused(err: ConnectError | undefined, code: ErrorCode, what: string): void {
  assert.ok(err !== undefined, `${what}: the scheduler took it (the stream ended without an error)`);
  assert.equal(fromConnectError(err).code, code, `${what}: ${err.message}`);
}

/** A host stream that announced itself (with `held` tasks) and got its ack, or the error that ended it. */
async function announce(id: string, tasks: HeldTask[] = [], extra: { uploadRate?: bigint } = {}): Promise<{ refused?: ConnectError; end(): Promise<void> }> {
  const requests = new AsyncQueue<HostRequest>();
  requests.push(create(HostRequestSchema, { request: { case: 'announce', value: { host: { ...host(id), ...extra }, tasks } } }));
  const commands = client.syncHost(requests, { signal: AbortSignal.timeout(CALL_MS) })[Symbol.asyncIterator]();
  try {
    const first = await commands.next();
    assert.equal(first.done, false, 'the host stream ended without an ack');
  } catch (err) {
    requests.end();
    return { refused: ConnectError.from(err), end: () => Promise.resolve() };
  }
  return {
    async end() {
      requests.end();
      while (!(await commands.next()).done);
    },
  };
}

/** Registers a peer of a fresh task on host `hostId` (with `metadata`, `pieces`), then sends `then`; the error that ended the stream. */
async function peer(hostId: string, register: { metadata?: Metadata; pieces?: number[] }, then: Message[] = []): Promise<ConnectError | undefined> {
  const url = `http://origin/limits/${n++}`;
  const requests = new AsyncQueue<PeerRequest>();
  requests.push(create(PeerRequestSchema, { request: { case: 'register', value: { peerId: `${hostId}/${n}`, hostId, task: { taskId: taskId({ url }), url }, ...register } } }));
  for (const message of then) requests.push(create(PeerRequestSchema, { request: message }));
  requests.end();
  return endOf(client.announcePeer(requests, { signal: AbortSignal.timeout(CALL_MS) }));
}

function heldTask(metadata: Metadata, pieces: number[]): HeldTask {
  const url = `http://origin/limits/held/${n++}`;
  return create(HeldTaskSchema, { taskId: taskId({ url }), peerId: `held/${n}`, metadata, pieces, complete: true });
}

describe('the scheduler checks every count and size a peer sends before any work', { timeout: 120_000 }, () => {
  it('a task of 2^53 − 1 bytes in pieces of 1 byte, then finished: refused at once, and the scheduler keeps answering', async () => {
    const h = await announce('h-issue');
    const ended = await peer('h-issue', { metadata: { contentLength: BigInt(2 ** 53 - 1), pieceSize: 1 } }, [{ case: 'finished', value: { contentLength: BigInt(2 ** 53 - 1) } }]);
    assertRefused(ended, 'LIMIT_EXCEEDED', 'a piece size of 1 byte');
    // Still answering, and still holding the first host's stream.
    const other = await announce('h-after-issue');
    assert.equal(other.refused, undefined, 'another host is served');
    await other.end();
    await h.end();
  });

  it('a task shape outside the limits, when registering or reported later', async () => {
    const h = await announce('h-shape');
    const shapes: Array<[string, Metadata]> = [
      ['a piece size of 0', { pieceSize: 0 }],
      ['a piece size under 16 KiB', { contentLength: 10n * MIB_N, pieceSize: 16 * KIB - 1 }],
      ['a piece size over 64 MiB', { contentLength: 10n * MIB_N, pieceSize: 64 * MIB + 1 }],
      ['content over 2^50 bytes', { contentLength: BigInt(MAX_CONTENT_LENGTH) + 1n, pieceSize: 64 * MIB }],
      ['content of 2^64 − 1 bytes', { contentLength: 2n ** 64n - 1n, pieceSize: 64 * MIB }],
      ['more than 2^20 pieces', { contentLength: BigInt(MAX_PIECES + 1) * 16n * 1024n, pieceSize: 16 * KIB }],
    ];
    for (const [what, metadata] of shapes) {
      assertRefused(await peer('h-shape', { metadata }), 'LIMIT_EXCEEDED', `registering ${what}`);
      // A metadata report: the one that used to make the task's piece count infinite (piece size 0), then finished.
      assertRefused(await peer('h-shape', {}, [{ case: 'metadata', value: { metadata } }, { case: 'finished', value: {} }]), 'LIMIT_EXCEEDED', `reporting ${what}`);
    }
    // Within the limits: taken (the stream ends cleanly when the peer ends it).
    assert.equal(await peer('h-shape', { metadata: { contentLength: BigInt(MAX_PIECES) * 16n * 1024n, pieceSize: 16 * KIB } }, [{ case: 'finished', value: {} }]), undefined, 'a task of 2^20 pieces of 16 KiB');
    await h.end();
  });

  it('piece numbers the task cannot have, when registering, reported, or held', async () => {
    const h = await announce('h-numbers');
    const four = { contentLength: 4n * MIB_N, pieceSize: MIB };
    assertRefused(await peer('h-numbers', { metadata: four, pieces: [0, 4] }), 'USAGE', 'registering piece 4 of a 4-piece task');
    assertRefused(await peer('h-numbers', { metadata: four }, [{ case: 'pieces', value: { numbers: [3, 4] } }]), 'USAGE', 'reporting piece 4 of a 4-piece task');
    assertRefused(await peer('h-numbers', {}, [{ case: 'pieces', value: { numbers: [2 ** 32 - 1] } }]), 'USAGE', 'reporting piece 2^32 − 1 of a task of unknown length');
    assertRefused(await peer('h-numbers', { pieces: [MAX_PIECES] }), 'USAGE', 'registering piece 2^20 of a task of unknown length');
    assert.equal(await peer('h-numbers', { metadata: four, pieces: [0, 3] }, [{ case: 'pieces', value: { numbers: [1, 2] } }]), undefined, 'pieces 0 … 3 of a 4-piece task');
    await h.end();

    const heldTooFar = await announce('h-held-numbers', [heldTask(four, [0, 1, 2, 3, 4])]);
    assertRefused(heldTooFar.refused, 'USAGE', 'holding piece 4 of a 4-piece task');
    const heldBadShape = await announce('h-held-shape', [heldTask({ contentLength: BigInt(2 ** 53 - 1), pieceSize: 1 }, [0])]);
    assertRefused(heldBadShape.refused, 'LIMIT_EXCEEDED', 'holding a task in pieces of 1 byte');
    const fine = await announce('h-held-fine', [heldTask(four, [0, 1, 2, 3])]);
    assert.equal(fine.refused, undefined, 'a held task within the limits');
    await fine.end();
  });

  it('a message announced as over 256 MiB is refused on its length, before its bytes are read', async () => {
    const session = http2.connect(url);
    session.on('error', () => undefined);
    try {
      const stream = session.request({ ':method': 'POST', ':path': '/shoal.v1.Scheduler/AnnouncePeer', 'content-type': 'application/grpc', te: 'trailers' });
      stream.on('error', () => undefined);
      const head = Buffer.alloc(5);
      head.writeUInt32BE(300 * MIB, 1);
      stream.write(Buffer.concat([head, Buffer.alloc(1000)]));
      const status = await Promise.race([
        new Promise<string>((resolve) => stream.once('trailers', (t: http2.IncomingHttpHeaders) => resolve(String(t['grpc-status'])))),
        new Promise<string>((resolve) => setTimeout(() => resolve('no answer'), 5_000)),
      ]);
      assert.equal(status, '8', 'resource_exhausted');
    } finally {
      session.destroy();
    }
  });

  it('a uint64 past 2^53 (an upload rate of 2^64 − 1) is refused, and Stat still answers', async () => {
    const h = await announce('h-rate', [], { uploadRate: 2n ** 64n - 1n });
    assertRefused(h.refused, 'LIMIT_EXCEEDED', 'an upload rate of 2^64 − 1');
    const stat = await client.stat({}, { signal: AbortSignal.timeout(CALL_MS) });
    assert.ok(!stat.hosts.some((x) => x.id === 'h-rate'), 'the refused host is not kept');
  });

  it('the scheduler process is alive and serves a host after all of it', async () => {
    const h = await announce('h-last');
    assert.equal(h.refused, undefined);
    await h.end();
    assert.ok(cluster.procs.every((p) => p.child.exitCode === null && p.child.signalCode === null), 'the scheduler is running');
  });
});
