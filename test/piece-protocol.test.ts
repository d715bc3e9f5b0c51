/**
 * The binary piece protocol end to end: a real upload server on 127.0.0.1,
 * the real client channel, and raw sockets for what a broken or hostile peer
 * might send.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { ShoalError } from '../src/common/errors.js';
import { PieceChannel, PieceLengthError } from '../src/daemon/download/piece-channel.js';
import { createUploadServer, type UploadServer, type UploadServerOptions } from '../src/daemon/upload/server.js';
import { encodeRequest, PREFACE, REQUEST_SIZE, RESPONSE_HEADER_SIZE, Status } from '../src/common/wire.js';
import { gate, MemoryProvider } from './fixtures/memory-provider.js';
import { until } from './fixtures/wait.js';

const HOST = '127.0.0.1';
const TIMEOUT = { timeout: 15_000 };
const taskA = 'a'.repeat(64);
const rawA = Buffer.from(taskA, 'hex');

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function start(provider: MemoryProvider, options: Partial<UploadServerOptions> = {}): Promise<{ server: UploadServer; uploaded: number[] }> {
  const uploaded: number[] = [];
  const server = createUploadServer({ host: HOST, port: 0, provider, onUploaded: (_t, _p, bytes) => uploaded.push(bytes), ...options });
  await server.start();
  cleanups.push(() => server.destroy());
  return { server, uploaded };
}

function channel(port: number, stallMs = 5_000, depth = 1): PieceChannel {
  const ch = new PieceChannel(HOST, port, 'test parent', stallMs, depth);
  cleanups.push(() => ch.close());
  return ch;
}

/** Everything a raw socket receives until the server closes it (bounded). */
async function rawExchange(port: number, payload: Buffer, ms = 5_000): Promise<{ data: Buffer; closed: boolean }> {
  const socket: Socket = connect({ host: HOST, port });
  cleanups.push(() => void socket.destroy());
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.write(payload);
  const closed = await Promise.race([new Promise<boolean>((r) => socket.once('close', () => r(true))), sleep(ms).then(() => false)]);
  return { data: Buffer.concat(chunks), closed };
}

describe('binary piece protocol', () => {
  it('fetches pieces over one kept connection, with the task-complete flag', TIMEOUT, async () => {
    const provider = new MemoryProvider();
    const pieces = [randomBytes(3 * 1024 * 1024 + 17), randomBytes(1000), randomBytes(1)];
    provider.add(taskA, pieces, true);
    const { server, uploaded } = await start(provider);
    const ch = channel(server.port);
    for (const [n, piece] of pieces.entries()) {
      const target = Buffer.alloc(piece.length);
      const answer = await ch.fetch(rawA, n, target, AbortSignal.timeout(5_000));
      assert.ok(target.equals(piece), `piece ${n} bytes`);
      assert.equal(answer.taskComplete, true);
      assert.ok(ch.ready);
    }
    assert.deepEqual(uploaded, pieces.map((p) => p.length));
    assert.ok(provider.balanced);
  });

  it('sends a piece held in memory from there, and gives it back once', TIMEOUT, async () => {
    const provider = new MemoryProvider();
    const pieces = [randomBytes(3 * 1024 * 1024 + 17), randomBytes(1000)];
    provider.add(taskA, pieces, false, { lend: true });
    const { server } = await start(provider);
    const ch = channel(server.port, 5_000, 2);
    for (const [n, piece] of pieces.entries()) {
      const target = Buffer.alloc(piece.length);
      await ch.fetch(rawA, n, target, AbortSignal.timeout(5_000));
      assert.ok(target.equals(piece), `piece ${n} bytes`);
    }
    await until(() => provider.released === 2, 'both answers released', { within: 5_000, every: 10 });
    assert.equal(provider.lent, 2, 'no byte was read: both answers were lent');
    assert.ok(provider.balanced, `lent ${provider.lent}, given back ${provider.returned}, twice ${provider.doubleReturns}`);
  });

  it('answers NOT_FOUND and BUSY without closing the connection', TIMEOUT, async () => {
    const provider = new MemoryProvider();
    const slow = gate();
    provider.add(taskA, [randomBytes(4096), randomBytes(4096)], false, { gate: slow.promise });
    const { server } = await start(provider, { maxConcurrentUploads: 1 });
    const ch = channel(server.port);
    await assert.rejects(ch.fetch(rawA, 7, Buffer.alloc(4096), AbortSignal.timeout(5_000)), (e: unknown) => e instanceof ShoalError && e.code === 'PIECE_NOT_FOUND');
    assert.ok(ch.ready);
    const first = channel(server.port).fetch(rawA, 0, Buffer.alloc(4096), AbortSignal.timeout(5_000));
    await sleep(100);
    await assert.rejects(ch.fetch(rawA, 1, Buffer.alloc(4096), AbortSignal.timeout(5_000)), (e: unknown) => e instanceof ShoalError && e.code === 'BUSY');
    assert.ok(ch.ready);
    slow.open();
    const answer = await first;
    assert.equal(answer.taskComplete, false);
    const target = Buffer.alloc(4096);
    await ch.fetch(rawA, 1, target, AbortSignal.timeout(5_000));
    assert.ok(target.equals(provider.tasks.get(taskA)!.pieces[1]!));
  });

  it('a declared length other than the piece size is a PieceLengthError', TIMEOUT, async () => {
    const provider = new MemoryProvider();
    provider.add(taskA, [randomBytes(5000)]);
    const { server } = await start(provider);
    const ch = channel(server.port);
    await assert.rejects(ch.fetch(rawA, 0, Buffer.alloc(4096), AbortSignal.timeout(5_000)), PieceLengthError);
    assert.equal(ch.alive, false);
  });

  it('an abort mid-body rejects with the reason and the server keeps serving', TIMEOUT, async () => {
    const provider = new MemoryProvider();
    const slow = gate();
    const piece = randomBytes(2 * 1024 * 1024);
    provider.add(taskA, [piece], false, { gate: slow.promise });
    const { server } = await start(provider);
    const controller = new AbortController();
    const fetching = channel(server.port).fetch(rawA, 0, Buffer.alloc(piece.length), controller.signal);
    await sleep(50);
    controller.abort(new ShoalError('ABORTED', 'test abort'));
    await assert.rejects(fetching, /test abort/);
    slow.open();
    const target = Buffer.alloc(piece.length);
    await channel(server.port).fetch(rawA, 0, target, AbortSignal.timeout(5_000));
    assert.ok(target.equals(piece));
    await sleep(50);
    assert.ok(provider.balanced);
  });

  it('pipelines requests on one connection; an aborted one is read into nothing and the others arrive', TIMEOUT, async () => {
    const provider = new MemoryProvider();
    const pieces = [randomBytes(700_000), randomBytes(900_000), randomBytes(500_000)];
    provider.add(taskA, pieces);
    const { server, uploaded } = await start(provider);
    const ch = new PieceChannel(HOST, server.port, 'test parent', 5_000, 3);
    cleanups.push(() => ch.close());
    const targets = pieces.map((p) => Buffer.alloc(p.length));
    const aborter = new AbortController();
    const fetches = targets.map((t, n) => ch.fetch(rawA, n, t, n === 1 ? aborter.signal : AbortSignal.timeout(5_000)));
    assert.equal(ch.inflight, 3);
    assert.equal(ch.ready, false);
    aborter.abort(new ShoalError('ABORTED', 'endgame'));
    const settled = await Promise.allSettled(fetches);
    assert.deepEqual(settled.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
    assert.ok(targets[0]!.equals(pieces[0]!) && targets[2]!.equals(pieces[2]!));
    assert.ok(targets[1]!.equals(Buffer.alloc(pieces[1]!.length)), 'an aborted request never writes into its buffer');
    assert.ok(ch.alive && ch.ready);
    const again = Buffer.alloc(pieces[1]!.length);
    await ch.fetch(rawA, 1, again, AbortSignal.timeout(5_000));
    assert.ok(again.equals(pieces[1]!));
    assert.equal(uploaded.length, 4);
  });

  it('a parent that never answers fails the piece after the stall time', TIMEOUT, async () => {
    const silent: Server = createServer((s) => void s.on('error', () => undefined).resume());
    await new Promise<void>((r) => silent.listen(0, HOST, r));
    cleanups.push(() => void silent.close());
    const port = (silent.address() as { port: number }).port;
    // The stall timer's own error, not the 5 s abort.
    await assert.rejects(channel(port, 300).fetch(rawA, 0, Buffer.alloc(10), AbortSignal.timeout(5_000)), /sent nothing for 300 ms/);
  });

  it('a parent that sends bytes nobody asked for, or a bad status, is a protocol error', TIMEOUT, async () => {
    for (const reply of [Buffer.from([9, 0, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4]), Buffer.from([Status.ERROR, 0, 0, 0, 0, 0, 40, 0])]) {
      const liar: Server = createServer((s) => {
        s.on('error', () => undefined);
        s.once('data', () => s.write(reply));
      });
      await new Promise<void>((r) => liar.listen(0, HOST, r));
      cleanups.push(() => void liar.close());
      const ch = channel((liar.address() as { port: number }).port);
      await assert.rejects(ch.fetch(rawA, 0, Buffer.alloc(10), AbortSignal.timeout(5_000)), (e: unknown) => e instanceof ShoalError && e.code === 'PEER_FAILED');
    }
  });

  it('answers pipelined requests in order on a raw socket', TIMEOUT, async () => {
    const provider = new MemoryProvider();
    const pieces = [randomBytes(300), randomBytes(200), randomBytes(100)];
    provider.add(taskA, pieces);
    const { server } = await start(provider);
    const requests = [2, 0, 1].map((n) => encodeRequest(rawA, n));
    const expected: Buffer[] = [];
    for (const n of [2, 0, 1]) expected.push(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]), pieces[n]!);
    for (const [i, n] of [2, 0, 1].entries()) expected[i * 2]!.writeUInt32BE(pieces[n]!.length, 4);
    const socket = connect({ host: HOST, port: server.port });
    cleanups.push(() => void socket.destroy());
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.write(Buffer.concat([PREFACE, ...requests]));
    const want = Buffer.concat(expected);
    const deadline = Date.now() + 5_000;
    while (Buffer.concat(chunks).length < want.length && Date.now() < deadline) await sleep(10);
    assert.ok(Buffer.concat(chunks).equals(want));
  });

  it('WAIT: a piece on its way is sent when it lands, in order with what is pipelined behind it; one not on its way is NOT_FOUND at once', TIMEOUT, async () => {
    const provider = new MemoryProvider();
    const held = randomBytes(5000);
    const coming = randomBytes(70_000);
    provider.add(taskA, [held]);
    provider.expect(taskA, 1);
    provider.expect(taskA, 2);
    const { server } = await start(provider);
    const ch = channel(server.port, 5_000, 2);
    const settled: string[] = [];
    const target1 = Buffer.alloc(coming.length);
    const target0 = Buffer.alloc(held.length);
    const waited = ch.fetch(rawA, 1, target1, AbortSignal.timeout(5_000), true).then(() => settled.push('1'));
    const behind = ch.fetch(rawA, 0, target0, AbortSignal.timeout(5_000)).then(() => settled.push('0'));
    await sleep(300);
    assert.deepEqual(settled, [], 'nothing is answered before piece 1 lands');
    provider.arrive(taskA, 1, coming);
    await Promise.all([waited, behind]);
    assert.deepEqual(settled, ['1', '0']);
    assert.ok(target1.equals(coming) && target0.equals(held));
    // Not on its way: NOT_FOUND without waiting (a wait would last UPLOAD_LIMITS.aheadWaitMs, 4 s,
    // past this request's 2 s bound, and the rejection would be the bound's, not NOT_FOUND).
    await assert.rejects(ch.fetch(rawA, 9, Buffer.alloc(10), AbortSignal.timeout(2_000), true), (e: unknown) => e instanceof ShoalError && e.code === 'PIECE_NOT_FOUND');
    // On its way, but its fetch fails: NOT_FOUND when it ends.
    const lost = ch.fetch(rawA, 2, Buffer.alloc(10), AbortSignal.timeout(5_000), true);
    await sleep(100);
    provider.lose(taskA, 2);
    await assert.rejects(lost, (e: unknown) => e instanceof ShoalError && e.code === 'PIECE_NOT_FOUND');
    // Without WAIT a piece not held is NOT_FOUND even while it is on its way.
    provider.expect(taskA, 3);
    await assert.rejects(ch.fetch(rawA, 3, Buffer.alloc(10), AbortSignal.timeout(5_000)), (e: unknown) => e instanceof ShoalError && e.code === 'PIECE_NOT_FOUND');
    assert.ok(ch.ready);
    assert.ok(provider.balanced);
  });

  it('refuses malformed frames with BAD_REQUEST and closes; a wrong preface is closed; no crash', TIMEOUT, async () => {
    const provider = new MemoryProvider();
    provider.add(taskA, [randomBytes(100)]);
    const { server } = await start(provider);
    const badOp = encodeRequest(rawA, 0);
    badOp[0] = 7;
    const reserved = encodeRequest(rawA, 0);
    reserved[2] = 1;
    const unknownFlag = encodeRequest(rawA, 0);
    unknownFlag[1] = 2;
    const hugePiece = encodeRequest(rawA, 0);
    hugePiece.writeUInt32BE(0xffffffff, 4);
    for (const frame of [badOp, reserved, unknownFlag, hugePiece, Buffer.concat(Array.from({ length: 9 }, () => Buffer.alloc(REQUEST_SIZE, 0xee)))]) {
      const { data, closed } = await rawExchange(server.port, Buffer.concat([PREFACE, frame]));
      assert.equal(closed, true);
      assert.equal(data[0], Status.BAD_REQUEST, data.subarray(RESPONSE_HEADER_SIZE).toString());
    }
    const wrongPreface = await rawExchange(server.port, Buffer.from('\0SHOALP9' + 'x'.repeat(40)));
    assert.deepEqual(wrongPreface, { data: Buffer.alloc(0), closed: true });
    // Still serving both protocols.
    const target = Buffer.alloc(100);
    await channel(server.port).fetch(rawA, 0, target, AbortSignal.timeout(5_000));
    const http = new Pool(`http://${HOST}:${server.port}`);
    cleanups.push(() => http.destroy());
    const res = await http.request({ path: `/pieces/${taskA}/0`, method: 'GET' });
    assert.equal(res.statusCode, 200);
    assert.ok(Buffer.from(await res.body.arrayBuffer()).equals(target));
  });
});
