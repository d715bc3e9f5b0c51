/**
 * The scheduler's RPC boundary over real sockets: createScheduler on
 * 127.0.0.1:0 and a Connect gRPC client, as a daemon talks to it. Every
 * error that ends a call carries its Shoal code (src/common/rpc-errors.ts):
 * LIMIT_EXCEEDED past the RPC limits, USAGE for protocol misuse.
 */
import { taskId } from '../src/common/ids.js';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient, type Client } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import {
  HeldTaskSchema,
  HostRequestSchema,
  PeerRequestSchema,
  Scheduler,
  TaskSpecSchema,
  type HostRequest,
  type PeerRequest,
} from '../src/gen/shoal/v1/scheduler_pb.js';
import { AsyncQueue } from '../src/common/async-queue.js';
import { ShoalError, type ErrorCode } from '../src/common/errors.js';
import { SHOAL_CODE_KEY, fromConnectError, toConnectError } from '../src/common/rpc-errors.js';
import { RPC_LIMITS } from '../src/scheduler/rpc-limits.js';
import { createScheduler, type SchedulerService } from '../src/scheduler/server.js';

/** The ID the scheduler derives for http://origin/file itself (a mismatched one is refused). */
const TASK = taskId({ url: 'http://origin/file' });
const host = (id: string) => ({ id, hostname: id, ip: '127.0.0.1', uploadPort: 4000, idc: '', location: '', seed: false, uploadSlots: 64, uploadLoad: 0, uploadRate: 0n });
const announce = (id: string, tasks = 0): HostRequest =>
  create(HostRequestSchema, { request: { case: 'announce', value: { host: host(id), tasks: Array.from({ length: tasks }, () => create(HeldTaskSchema, {})) } } });
const register = (peerId: string, hostId: string): PeerRequest =>
  create(PeerRequestSchema, { request: { case: 'register', value: { peerId, hostId, task: create(TaskSpecSchema, { taskId: TASK, url: 'http://origin/file' }) } } });

/** Reads `responses` to their end; the error that ended them (undefined if none), as the client sees it. */
async function endOf(responses: AsyncIterable<unknown>): Promise<ConnectError | undefined> {
  try {
    for await (const response of responses) void response;
    return undefined;
  } catch (err) {
    return ConnectError.from(err);
  }
}

function assertCoded(err: ConnectError | undefined, shoal: ErrorCode, connect: Code): void {
  assert.ok(err !== undefined, 'the call ended without an error');
  assert.equal(fromConnectError(err).code, shoal, `${err.message}`);
  assert.equal(err.code, connect, `${err.message}`);
}

describe('scheduler RPC errors', { timeout: 60_000 }, () => {
  let scheduler: SchedulerService;
  let client: Client<typeof Scheduler>;

  before(async () => {
    scheduler = createScheduler({ listen: '127.0.0.1:0', recoveryWindow: '0ms' });
    await scheduler.start();
    client = createClient(Scheduler, createGrpcTransport({ baseUrl: scheduler.url }));
  });

  after(() => scheduler.stop());

  /** A host stream that announced `id` and got its ack; end() closes it. */
  async function hostStream(id: string): Promise<{ end(): Promise<void> }> {
    const requests = new AsyncQueue<HostRequest>();
    requests.push(announce(id));
    const commands = client.syncHost(requests)[Symbol.asyncIterator]();
    const first = await commands.next();
    assert.equal(first.done, false);
    return {
      async end() {
        requests.end();
        while (!(await commands.next()).done);
      },
    };
  }

  it('a piece report over the limit ends the peer stream with LIMIT_EXCEEDED', async () => {
    const h = await hostStream('h-pieces');
    const requests = new AsyncQueue<PeerRequest>();
    requests.push(register('p-pieces', 'h-pieces'));
    const numbers = Array.from({ length: RPC_LIMITS.piecesPerReport + 1 }, (_, n) => n);
    requests.push(create(PeerRequestSchema, { request: { case: 'pieces', value: { numbers } } }));
    assertCoded(await endOf(client.announcePeer(requests)), 'LIMIT_EXCEEDED', Code.ResourceExhausted);
    requests.end();
    await h.end();
  });

  it('an announce with too many held tasks ends the host stream with LIMIT_EXCEEDED', async () => {
    const requests = new AsyncQueue<HostRequest>();
    requests.push(announce('h-held', RPC_LIMITS.heldTasksPerHost + 1));
    assertCoded(await endOf(client.syncHost(requests)), 'LIMIT_EXCEEDED', Code.ResourceExhausted);
    requests.end();
    assert.equal(scheduler.swarm.hosts.has('h-held'), false, 'the host was not announced');
  });

  it('a message before register, and a second register, end the peer stream with USAGE', async () => {
    const h = await hostStream('h-usage');
    const early = new AsyncQueue<PeerRequest>();
    early.push(create(PeerRequestSchema, { request: { case: 'reschedule', value: {} } }));
    assertCoded(await endOf(client.announcePeer(early)), 'USAGE', Code.InvalidArgument);
    early.end();
    const twice = new AsyncQueue<PeerRequest>();
    twice.push(register('p-usage', 'h-usage'));
    twice.push(register('p-usage', 'h-usage'));
    assertCoded(await endOf(client.announcePeer(twice)), 'USAGE', Code.InvalidArgument);
    twice.end();
    await h.end();
  });

  it('a register before the host announced itself is USAGE, retryable (failed_precondition)', async () => {
    const requests = new AsyncQueue<PeerRequest>();
    requests.push(register('p-early', 'h-unknown'));
    assertCoded(await endOf(client.announcePeer(requests)), 'USAGE', Code.FailedPrecondition);
    requests.end();
  });

  it('a preheat of too many tasks fails with LIMIT_EXCEEDED', async () => {
    const tasks = Array.from({ length: 1025 }, (_, i) => create(TaskSpecSchema, { taskId: String(i), url: `http://origin/${i}` }));
    assertCoded(await endOf(client.preheat({ tasks })), 'LIMIT_EXCEEDED', Code.ResourceExhausted);
  });
});

describe('rpc-errors', () => {
  it('a ShoalError crosses with its code; anything else as INTERNAL; a ConnectError as it is', () => {
    const limit = toConnectError(new ShoalError('LIMIT_EXCEEDED', 'too many'));
    assert.deepEqual([limit.code, limit.rawMessage, limit.metadata.get(SHOAL_CODE_KEY)], [Code.ResourceExhausted, 'too many', 'LIMIT_EXCEEDED']);
    assert.equal(toConnectError(new ShoalError('SEED_UNAVAILABLE', 'none')).code, Code.Unavailable);
    assert.equal(toConnectError(new ShoalError('USAGE', 'later'), Code.FailedPrecondition).code, Code.FailedPrecondition);
    const bare = toConnectError(new Error('boom'));
    assert.deepEqual([bare.code, bare.metadata.get(SHOAL_CODE_KEY)], [Code.Internal, 'INTERNAL']);
    const cancelled = new ConnectError('gone', Code.Canceled);
    assert.equal(toConnectError(cancelled), cancelled);
  });

  it('a client reads the code back; without one it takes the fallback', () => {
    assert.equal(fromConnectError(toConnectError(new ShoalError('USAGE', 'x'))).code, 'USAGE');
    assert.equal(fromConnectError(new ConnectError('down', Code.Unavailable), 'SCHEDULER_UNREACHABLE').code, 'SCHEDULER_UNREACHABLE');
    assert.equal(fromConnectError(new ConnectError('odd', Code.Unknown, { [SHOAL_CODE_KEY]: 'NOT_A_CODE' })).code, 'INTERNAL');
  });
});
