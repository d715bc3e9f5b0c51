import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { ShoalError } from '../src/common/errors.js';
import { createRateLimiter } from '../src/common/rate-limiter.js';
import { createUploadServer, type PieceProvider, type UploadServer, type UploadServerOptions } from '../src/daemon/upload/server.js';
import { gate, MemoryProvider } from './fixtures/memory-provider.js';
import { until } from './fixtures/wait.js';

const MIB = 1024 * 1024;
const HOST = '127.0.0.1';
const TIMEOUT = { timeout: 15_000 };

const taskA = 'a'.repeat(64);
const taskB = 'b'.repeat(64);
const unknownTask = 'c'.repeat(64);

// ---------------------------------------------------------------- harness

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Started {
  server: UploadServer;
  provider: MemoryProvider;
  origin: string;
  uploaded: { taskId: string; piece: number; bytes: number }[];
}

async function start(options: Partial<UploadServerOptions> = {}, provider = new MemoryProvider()): Promise<Started> {
  const uploaded: Started['uploaded'] = [];
  const server = createUploadServer({
    host: HOST,
    port: 0,
    provider,
    onUploaded: (taskId, piece, bytes) => uploaded.push({ taskId, piece, bytes }),
    ...options,
  });
  await server.start();
  cleanups.push(() => server.destroy());
  return { server, provider, origin: `http://${HOST}:${server.port}`, uploaded };
}

function pool(origin: string, options: Pool.Options = {}): Pool {
  const p = new Pool(origin, { connections: 1, ...options });
  cleanups.push(() => p.destroy());
  return p;
}

/** How long the waits below wait, and how often they look. */
const SOON = { within: 5_000, every: 10 };

interface Exchange {
  text: string;
  statuses: number[];
  closed: boolean;
}

/**
 * Writes raw bytes and collects the answer until the server closes the
 * connection, or nothing arrives for `idleMs` (a kept-alive connection).
 */
function exchange(port: number, payload: string | Buffer, idleMs = 300): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, HOST);
    const chunks: Buffer[] = [];
    let idle: NodeJS.Timeout | undefined;
    const finish = (closed: boolean): void => {
      clearTimeout(idle);
      clearTimeout(cap);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
      resolve({ text, statuses, closed });
    };
    const arm = (): void => {
      clearTimeout(idle);
      idle = setTimeout(() => finish(false), idleMs);
    };
    const cap = setTimeout(() => finish(false), 5_000);
    socket.on('connect', () => {
      socket.write(payload);
      arm();
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      arm();
    });
    socket.on('error', (err) => {
      if (chunks.length > 0) return; // reset after an answer: still an answer
      clearTimeout(idle);
      clearTimeout(cap);
      reject(err);
    });
    socket.on('close', () => finish(true));
  });
}

function get(path: string, extra = '', close = true): string {
  return `GET ${path} HTTP/1.1\r\nHost: ${HOST}\r\n${close ? 'Connection: close\r\n' : ''}${extra}\r\n`;
}

// ---------------------------------------------------------------- tests

describe('upload server', () => {
  it('serves many pieces over one kept-alive connection, bytes intact', TIMEOUT, async () => {
    const sizes = [1, 1000, MIB - 1, MIB, MIB + 1, 3 * MIB + 17, 4096, 2 * MIB, 7, 65_536, 5 * MIB, 123_457];
    const pieces = sizes.map((size) => randomBytes(size));
    const { provider, origin, uploaded } = await start();
    provider.add(taskA, pieces, false);
    provider.add(taskB, [Buffer.from('hello')], true);
    const p = pool(origin);
    let connects = 0;
    p.on('connect', () => connects++);

    for (let round = 0; round < 2; round++) {
      for (const [i, piece] of pieces.entries()) {
        const res = await p.request({ path: `/pieces/${taskA}/${i}`, method: 'GET' });
        const body = Buffer.from(await res.body.arrayBuffer());
        assert.equal(res.statusCode, 200);
        assert.equal(res.headers['content-length'], String(piece.length));
        assert.equal(res.headers['content-type'], 'application/octet-stream');
        assert.equal(res.headers['x-shoal-task-complete'], '0');
        assert.ok(body.equals(piece), `piece ${i} body differs`);
      }
    }
    const res = await p.request({ path: `/pieces/${taskB}/0`, method: 'GET' });
    assert.equal(await res.body.text(), 'hello');
    assert.equal(res.headers['x-shoal-task-complete'], '1');

    assert.equal(connects, 1, 'every piece over one connection');
    await until(() => uploaded.length === 2 * pieces.length + 1, 'onUploaded calls', SOON);
    assert.deepEqual(
      uploaded.slice(0, pieces.length).map((u) => u.bytes),
      sizes,
    );
    assert.ok(uploaded.every((u) => u.taskId === taskA || u.taskId === taskB));
    assert.ok(provider.balanced);
    assert.equal(provider.opened, 2 * pieces.length + 1);
  });

  it('HEAD answers the piece headers without a body', TIMEOUT, async () => {
    const { provider, origin, uploaded } = await start();
    provider.add(taskA, [randomBytes(2 * MIB)], true);
    const p = pool(origin);
    const res = await p.request({ path: `/pieces/${taskA}/0`, method: 'HEAD' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-length'], String(2 * MIB));
    assert.equal(res.headers['x-shoal-task-complete'], '1');
    assert.equal((await res.body.arrayBuffer()).byteLength, 0);
    const missing = await p.request({ path: `/pieces/${taskA}/1`, method: 'HEAD' });
    await missing.body.dump();
    assert.equal(missing.statusCode, 404);
    assert.ok(provider.balanced);
    assert.equal(provider.opened, 1);
    assert.equal(uploaded.length, 0);
  });

  it('GET /healthy answers {"ok":true}', TIMEOUT, async () => {
    const { origin } = await start();
    const res = await pool(origin).request({ path: '/healthy', method: 'GET' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(await res.body.json(), { ok: true });
  });

  it('answers JSON errors: 404 PIECE_NOT_FOUND, 400 USAGE, 404 unknown path, 405', TIMEOUT, async () => {
    const { provider, origin } = await start();
    provider.add(taskA, [Buffer.from('x')]);
    const p = pool(origin);
    const cases: [string, string, number, string][] = [
      ['GET', `/pieces/${unknownTask}/0`, 404, 'PIECE_NOT_FOUND'],
      ['GET', `/pieces/${taskA}/1`, 404, 'PIECE_NOT_FOUND'],
      ['GET', `/pieces/${taskA}/1048575`, 404, 'PIECE_NOT_FOUND'],
      ['GET', `/pieces/${taskA.toUpperCase()}/0`, 400, 'USAGE'],
      ['GET', `/pieces/xyz/0`, 400, 'USAGE'],
      ['GET', `/pieces/${taskA}/007`, 400, 'USAGE'],
      ['GET', `/pieces/${taskA}/-1`, 400, 'USAGE'],
      ['GET', `/pieces/${taskA}/1e3`, 400, 'USAGE'],
      ['GET', `/pieces/${taskA}/1048576`, 400, 'USAGE'],
      ['GET', '/nothing-here', 404, 'USAGE'],
      ['PUT', `/pieces/${taskA}/0`, 405, 'USAGE'],
    ];
    for (const [method, path, status, code] of cases) {
      const res = await p.request({ path, method });
      const body = (await res.body.json()) as { code: string; message: string };
      assert.equal(res.statusCode, status, `${method} ${path}`);
      assert.equal(res.headers['content-type'], 'application/json');
      assert.equal(body.code, code, `${method} ${path}`);
      assert.equal(typeof body.message, 'string');
      if (status === 405) assert.equal(res.headers['allow'], 'GET, HEAD');
    }
    assert.ok(provider.balanced);
  });

  it('survives garbage over raw sockets and keeps serving', TIMEOUT, async () => {
    const { server, provider } = await start();
    provider.add(taskA, [Buffer.from('piece-zero'), Buffer.from('piece-one')]);
    const port = server.port;
    const id = taskA;
    const cases: [string, string | Buffer, number[]][] = [
      ['malformed request line', 'GARBAGE\r\n\r\n', [400]],
      ['binary junk', Buffer.concat([randomBytes(512), Buffer.from('\r\n\r\n')]), [400]],
      ['huge header', `GET /healthy HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, [431]],
      ['no Host header', 'GET /healthy HTTP/1.1\r\n\r\n', [400]],
      ['NUL in path', get('/pieces/\0/0'), [400]],
      ['unknown HTTP version', `GET /pieces/${id}/0 HTTP/9.9\r\nHost: x\r\n\r\n`, [400, 505]],
      ['bad task id', get('/pieces/not-a-task/0'), [400]],
      ['short task id', get(`/pieces/${id.slice(1)}/0`), [400]],
      ['uppercase task id', get(`/pieces/${id.toUpperCase()}/0`), [400]],
      ['negative piece', get(`/pieces/${id}/-1`), [400]],
      ['exponent piece', get(`/pieces/${id}/1e3`), [400]],
      ['leading zeros', get(`/pieces/${id}/007`), [400]],
      ['double zero', get(`/pieces/${id}/00`), [400]],
      ['plus sign', get(`/pieces/${id}/+1`), [400]],
      ['hex piece', get(`/pieces/${id}/0x10`), [400]],
      ['fraction', get(`/pieces/${id}/1.0`), [400]],
      ['piece out of range', get(`/pieces/${id}/1048576`), [400]],
      ['huge piece', get(`/pieces/${id}/99999999999999999999`), [400]],
      ['empty piece', get(`/pieces/${id}/`), [400]],
      ['no piece', get(`/pieces/${id}`), [400]],
      ['bare prefix', get('/pieces'), [400]],
      ['traversal', get('/pieces/../../etc/passwd'), [400, 404]],
      ['encoded traversal', get('/pieces/%2e%2e/%2e%2e/etc/passwd'), [400, 404]],
      ['encoded slash', get(`/pieces/${id}%2f0`), [400, 404]],
      ['traversal before prefix', get(`/../pieces/${id}/0`), [400, 404]],
      ['double slash inside', get(`/pieces//${id}/0`), [400, 404]],
      ['double slash before piece', get(`/pieces/${id}//0`), [400, 404]],
      ['double slash first', get(`//pieces/${id}/0`), [400, 404]],
      ['trailing slash', get(`/pieces/${id}/0/`), [400, 404]],
      ['extra segment', get(`/pieces/${id}/0/etc/passwd`), [400, 404]],
      ['query junk', get(`/pieces/${id}/0?path=../../etc/passwd&x=%00`), [400, 404]],
      ['encoded NUL', get(`/pieces/${id}/0%00`), [400, 404]],
      ['absolute form', get(`http://${HOST}:${port}/pieces/${id}/0`), [400, 404]],
      ['asterisk', `OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, [404, 405]],
      ['unknown path', get('/etc/passwd'), [404]],
      ['root', get('/'), [404]],
      ['POST with body', `POST /pieces/${id}/0 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc`, [405]],
      ['DELETE', `DELETE /healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, [405]],
      ['GET with a body', `GET /pieces/${id}/0 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello`, [400]],
      ['GET chunked', `GET /pieces/${id}/0 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, [400]],
      ['smuggling', `GET /healthy HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, [400]],
    ];
    for (const [name, payload, allowed] of cases) {
      const answer = await exchange(port, payload);
      const first = answer.statuses[0];
      assert.ok(
        (first !== undefined && allowed.includes(first)) || (first === undefined && answer.closed),
        `${name}: got ${answer.text.slice(0, 80) || '(nothing)'}`,
      );
      if (first === 405) assert.match(answer.text, /\r\nAllow: GET, HEAD\r\n/i);
      if (name.includes('body') || name.includes('chunked') || name === 'POST with body') {
        assert.ok(answer.closed, `${name}: connection should be closed`);
      }
    }

    // After a bad request on a kept-alive connection, the next one is served.
    const pipelined = await exchange(port, get(`/pieces/${id}/007`, '', false) + get(`/pieces/${id}/1`));
    assert.deepEqual(pipelined.statuses, [400, 200]);
    assert.ok(pipelined.text.endsWith('piece-one'));
    assert.ok(pipelined.closed);

    // And a fresh connection still works.
    const normal = await exchange(port, get(`/pieces/${id}/0`));
    assert.deepEqual(normal.statuses, [200]);
    assert.ok(normal.text.endsWith('\r\n\r\npiece-zero'));
    assert.match(normal.text, /\r\nX-Shoal-Task-Complete: 0\r\n/i);
    assert.ok(provider.balanced);
    assert.equal(server.activeUploads, 0);
  });

  it('releases the handle exactly once when the client aborts mid-body', TIMEOUT, async () => {
    const { server, provider, uploaded } = await start({ rateLimiter: createRateLimiter(4 * MIB) });
    const piece = randomBytes(16 * MIB); // 4 s at the limit: the client leaves long before
    provider.add(taskA, [piece]);
    const socket = connect(server.port, HOST);
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.write(get(`/pieces/${taskA}/0`, '', false));
    let received = 0;
    await new Promise<void>((resolve) => {
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > MIB) resolve();
      });
    });
    assert.ok(received < piece.length && server.activeUploads === 1, `the client left after ${received} B of ${piece.length}: not mid-body`);
    socket.destroy();
    await until(() => provider.released === 1, 'release after abort', SOON);
    assert.equal(server.activeUploads, 0);
    assert.ok(provider.balanced);
    await until(() => uploaded.length === 1, 'onUploaded after abort', SOON);
    assert.ok(uploaded[0]!.bytes < piece.length);
  });

  it('a piece held in memory is written from there and given back once', TIMEOUT, async () => {
    const pieces = [randomBytes(3 * MIB + 17), randomBytes(1000)];
    const { provider, origin } = await start();
    provider.add(taskA, pieces, false, { lend: true });
    const p = pool(origin);
    for (const [i, piece] of pieces.entries()) {
      const res = await p.request({ path: `/pieces/${taskA}/${i}`, method: 'GET' });
      assert.equal(res.statusCode, 200);
      assert.ok(Buffer.from(await res.body.arrayBuffer()).equals(piece), `piece ${i} over HTTP`);
    }
    await until(() => provider.released === 2, 'every response released', SOON);
    assert.equal(provider.lent, 2, 'no byte was read: every answer was lent');
    assert.ok(provider.balanced, `lent ${provider.lent}, given back ${provider.returned}, twice ${provider.doubleReturns}`);
  });

  it('a lent piece is given back once when the client leaves mid-body', TIMEOUT, async () => {
    const { server, provider } = await start({ rateLimiter: createRateLimiter(4 * MIB) });
    const piece = randomBytes(16 * MIB);
    provider.add(taskA, [piece], false, { lend: true });
    const socket = connect(server.port, HOST);
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.write(get(`/pieces/${taskA}/0`, '', false));
    let received = 0;
    await new Promise<void>((resolve) => {
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > MIB) resolve();
      });
    });
    assert.ok(received < piece.length && provider.lent === 1 && provider.returned === 0, `the client left after ${received} B of ${piece.length}, while lent: mid-body`);
    socket.destroy();
    await until(() => provider.released === 1 && provider.returned === 1, 'handle released and bytes given back', SOON);
    assert.ok(provider.balanced);
  });

  it('releases once when the client leaves during a slow read, through undici', TIMEOUT, async () => {
    const reads = gate();
    const { server, provider, origin } = await start();
    provider.add(taskA, [randomBytes(3 * MIB)], false, { gate: reads.promise });
    const controller = new AbortController();
    // Headers go out with the first chunk, so the request is still pending.
    const pending = pool(origin).request({ path: `/pieces/${taskA}/0`, method: 'GET', signal: controller.signal });
    await until(() => server.activeUploads === 1, 'the upload to start', SOON);
    controller.abort();
    await assert.rejects(pending);
    await sleep(50);
    assert.equal(provider.released, 0, 'a handle is not released under a pending read');
    reads.open();
    await until(() => provider.released === 1 && server.activeUploads === 0, 'release after the read', SOON);
    assert.ok(provider.balanced);
  });

  it('a failing or short read closes the connection; the server keeps serving', TIMEOUT, async () => {
    const { server, provider, origin, uploaded } = await start();
    const piece = randomBytes(3 * MIB);
    provider.add(taskA, [piece], false, { failAt: MIB + MIB / 2 });
    provider.add(taskB, [piece], false, { truncateAt: 2 * MIB });
    provider.add(unknownTask, [piece], false, { maxRead: 1000 });
    const p = pool(origin);
    for (const [task, cutAt] of [
      [taskA, MIB + MIB / 2],
      [taskB, 2 * MIB],
    ] as const) {
      const res = await p.request({ path: `/pieces/${task}/0`, method: 'GET' });
      const body = res.body.arrayBuffer();
      await body.catch(() => undefined);
      // The fault came mid-body: after the headers and some bytes, no later than where it was set.
      assert.equal(res.statusCode, 200, `${task}: the fault came before the headers`);
      await until(() => uploaded.some((u) => u.taskId === task), `onUploaded for ${task}`, SOON);
      const sent = uploaded.find((u) => u.taskId === task)!.bytes;
      assert.ok(sent > 0 && sent <= cutAt, `${task}: the fault was set at ${cutAt} B, the server sent ${sent} B`);
      await assert.rejects(body, `${task}: the body must be cut short`);
    }
    // Short positional reads are continued: the body is whole.
    const res = await p.request({ path: `/pieces/${unknownTask}/0`, method: 'GET' });
    assert.ok(Buffer.from(await res.body.arrayBuffer()).equals(piece));
    assert.equal((await exchange(server.port, get('/healthy'))).statuses[0], 200);
    assert.ok(provider.balanced);
    assert.equal(provider.opened, 3);
    assert.equal(server.activeUploads, 0);
    await until(() => uploaded.length === 3, 'onUploaded calls', SOON);
  });

  it('the rate limiter holds a 4 MiB piece to roughly the configured rate', TIMEOUT, async () => {
    const rate = 4 * MIB;
    const { provider, origin } = await start({ rateLimiter: createRateLimiter(rate) });
    const piece = randomBytes(4 * MIB);
    provider.add(taskA, [piece]);
    const p = pool(origin);
    const started = performance.now();
    const res = await p.request({ path: `/pieces/${taskA}/0`, method: 'GET' });
    const body = Buffer.from(await res.body.arrayBuffer());
    const seconds = (performance.now() - started) / 1000;
    assert.ok(body.equals(piece));
    // 4 MiB less the 0.4 MiB initial burst at 4 MiB/s ≈ 0.9 s.
    assert.ok(seconds > 0.6 && seconds < 3, `4 MiB at 4 MiB/s took ${seconds.toFixed(3)} s`);
  });

  it('answers 503 BUSY at the concurrency cap; activeUploads is accurate', TIMEOUT, async () => {
    const reads = gate();
    const { server, provider, origin } = await start({ maxConcurrentUploads: 2 });
    const piece = randomBytes(MIB + 5);
    provider.add(taskA, [piece, piece], false, { gate: reads.promise });
    provider.add(taskB, [Buffer.from('b')]);
    const p = pool(origin, { connections: 4 });
    assert.equal(server.activeUploads, 0);
    const first = p.request({ path: `/pieces/${taskA}/0`, method: 'GET' });
    await until(() => server.activeUploads === 1, 'one upload', SOON);
    const second = p.request({ path: `/pieces/${taskA}/1`, method: 'GET' });
    await until(() => server.activeUploads === 2, 'two uploads', SOON);
    const busy = await p.request({ path: `/pieces/${taskB}/0`, method: 'GET' });
    assert.equal(busy.statusCode, 503);
    assert.equal(((await busy.body.json()) as { code: string }).code, 'BUSY');
    const head = await p.request({ path: `/pieces/${taskB}/0`, method: 'HEAD' });
    await head.body.dump();
    assert.equal(head.statusCode, 200, 'HEAD takes no upload slot');
    reads.open();
    assert.ok(Buffer.from(await (await first).body.arrayBuffer()).equals(piece));
    assert.ok(Buffer.from(await (await second).body.arrayBuffer()).equals(piece));
    await until(() => server.activeUploads === 0, 'slots freed', SOON);
    const after = await p.request({ path: `/pieces/${taskB}/0`, method: 'GET' });
    assert.equal(await after.body.text(), 'b');
    assert.ok(provider.balanced);
  });

  it('stop() lets an in-flight response finish, refuses new connections and closes idle ones', TIMEOUT, async () => {
    const reads = gate();
    const { server, provider, origin } = await start();
    const piece = randomBytes(2 * MIB);
    provider.add(taskA, [piece], false, { gate: reads.promise });
    provider.add(taskB, [Buffer.from('idle')]);
    const idle = pool(origin); // one kept-alive idle connection
    assert.equal(await (await idle.request({ path: `/pieces/${taskB}/0`, method: 'GET' })).body.text(), 'idle');
    const pending = pool(origin).request({ path: `/pieces/${taskA}/0`, method: 'GET' });
    await until(() => server.activeUploads === 1, 'the upload to start', SOON);
    const stopped = server.stop();
    await sleep(50);
    await assert.rejects(exchange(server.port, get('/healthy')), /ECONNREFUSED/);
    reads.open();
    const res = await pending;
    assert.ok(Buffer.from(await res.body.arrayBuffer()).equals(piece));
    const started = performance.now();
    await stopped;
    assert.ok(performance.now() - started < 2_000);
    assert.ok(provider.balanced);
    assert.equal(server.activeUploads, 0);
    await server.stop(); // idempotent
    await server.destroy();
  });

  it('destroy() cuts in-flight responses at once and leaves nothing open', TIMEOUT, async () => {
    const { server, provider, origin } = await start({ rateLimiter: createRateLimiter(4 * MIB) });
    provider.add(taskA, [randomBytes(16 * MIB)]); // 4 s at the limit
    const res = await pool(origin).request({ path: `/pieces/${taskA}/0`, method: 'GET' });
    let received = 0;
    res.body.on('data', (chunk: Buffer) => (received += chunk.length));
    const body = new Promise<void>((resolve, reject) => res.body.once('end', resolve).once('error', reject));
    body.catch(() => undefined);
    await until(() => received > 0, 'the first body bytes', SOON);
    assert.ok(received < 16 * MIB && server.activeUploads === 1, `destroy() came after ${received} B of ${16 * MIB}: not mid-body`);
    const started = performance.now();
    await server.destroy();
    assert.ok(performance.now() - started < 1_000);
    await assert.rejects(body);
    assert.ok(provider.balanced);
    assert.equal(provider.released, 1);
    assert.equal(server.activeUploads, 0);
    // The listener's handle is freed a loop turn after destroy() resolves.
    await until(() => !process.getActiveResourcesInfo().includes('TCPServerWrap'), 'the listener to close', { within: 1_000, every: 10 });
  });

  it('stop() destroys a response that does not finish within 5 s', { timeout: 20_000 }, async () => {
    const { server, provider } = await start();
    provider.add(taskA, [randomBytes(64 * MIB)]);
    const socket: Socket = connect(server.port, HOST);
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.on('error', () => undefined);
    socket.write(get(`/pieces/${taskA}/0`, '', false));
    await new Promise<void>((resolve) => socket.once('data', () => resolve()));
    socket.pause(); // a peer that stops reading: 64 MiB cannot fit the socket buffers, the server ends up waiting on 'drain'
    assert.equal(server.activeUploads, 1, 'the response is not in flight');
    const started = performance.now();
    await server.stop();
    const seconds = (performance.now() - started) / 1000;
    assert.ok(seconds > 4.5 && seconds < 7, `stop took ${seconds.toFixed(2)} s`);
    assert.ok(provider.balanced);
    assert.equal(server.activeUploads, 0);
    socket.destroy();
  });

  it('lifecycle: idempotent start, stop before start, start after stop, bad options', TIMEOUT, async () => {
    const provider = new MemoryProvider();
    const unused = createUploadServer({ host: HOST, port: 0, provider });
    await unused.stop();
    await assert.rejects(unused.start(), (err: unknown) => err instanceof ShoalError && err.code === 'USAGE');

    const server = createUploadServer({ host: HOST, port: 0, provider });
    assert.equal(server.port, 0);
    await Promise.all([server.start(), server.start()]);
    assert.ok(server.port > 0);
    const clash = createUploadServer({ host: HOST, port: server.port, provider });
    await assert.rejects(clash.start(), (err: unknown) => err instanceof ShoalError && err.code === 'LISTEN_FAILED');
    await clash.stop();
    await Promise.all([server.stop(), server.destroy()]);
    await assert.rejects(server.start(), ShoalError);

    assert.throws(() => createUploadServer({ host: HOST, port: 0, provider, maxConcurrentUploads: 0 }), ShoalError);
    assert.throws(() => createUploadServer({ host: HOST, port: 70_000, provider }), ShoalError);
  });

  it('does not crash when the provider throws', TIMEOUT, async () => {
    const provider: PieceProvider = {
      openPiece: () => {
        throw new Error('store exploded');
      },
    };
    const server = createUploadServer({ host: HOST, port: 0, provider });
    await server.start();
    cleanups.push(() => server.destroy());
    const res = await pool(`http://${HOST}:${server.port}`).request({ path: `/pieces/${taskA}/0`, method: 'GET' });
    assert.equal(res.statusCode, 500);
    assert.equal(((await res.body.json()) as { code: string }).code, 'STORAGE');
  });
});
