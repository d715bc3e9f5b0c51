/**
 * The binary protocol's pipelining limit, on a real `shoal daemon` process:
 * at most MAX_PIPELINE (8) requests wait behind the one being answered, and
 * the limit holds for every byte received at once, the bytes that came with
 * the preface included (the issue: 200 requests in one TCP segment got 200
 * answers, as the limit was checked only on later reads).
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { MAX_PIPELINE, PREFACE, RESPONSE_HEADER_SIZE, Status, encodeRequest } from '../src/common/wire.js';
import { Cluster, run, type Proc } from './fixtures/cluster.js';
import { until } from './fixtures/wait.js';

const cluster = new Cluster();
let daemon: Proc;
let port = 0;
/** A task nobody holds: every request for it is answered NOT_FOUND at once. */
const TASK = Buffer.alloc(32, 0xab);

before(async () => {
  daemon = run(['daemon', '--listen', '127.0.0.1:0', '--data', cluster.path('data'), '--api', cluster.path('api.sock'), '--log-level', 'warn']);
  cluster.procs.push(daemon);
  await until(() => /upload port \d+/.test(daemon.stderr()), 'the daemon to start');
  port = Number(/upload port (\d+)/.exec(daemon.stderr())![1]);
});
after(() => cluster.close());

interface Exchange {
  /** Statuses of the answers received, in order. */
  statuses: number[];
  closed: boolean;
}

/** Writes `payload` in one write and reads answers until the server closes the connection or `ms` pass. */
async function exchange(payload: Buffer, ms = 3_000): Promise<Exchange> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => undefined);
  let data = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => (data = Buffer.concat([data, chunk])));
  const closed = new Promise<boolean>((resolve) => socket.once('close', () => resolve(true)));
  socket.write(payload);
  const wasClosed = await Promise.race([closed, sleep(ms).then(() => false)]);
  socket.destroy();
  const statuses: number[] = [];
  for (let at = 0; at + RESPONSE_HEADER_SIZE <= data.length; ) {
    statuses.push(data[at]!);
    at += RESPONSE_HEADER_SIZE + data.readUInt32BE(at + 4);
  }
  return { statuses, closed: wasClosed };
}

function requests(count: number): Buffer {
  return Buffer.concat(Array.from({ length: count }, (_, n) => encodeRequest(TASK, n)));
}

describe('binary protocol: the pipelining limit holds for the whole buffer', { timeout: 60_000 }, () => {
  it('200 requests in one write with the preface: closed after at most 8 answers, the last BAD_REQUEST', async () => {
    const { statuses, closed } = await exchange(Buffer.concat([PREFACE, requests(200)]));
    assert.equal(closed, true, `the server kept the connection open after ${statuses.length} answers`);
    const answers = statuses.filter((s) => s !== Status.BAD_REQUEST);
    assert.ok(answers.length <= MAX_PIPELINE, `${answers.length} requests answered`);
    assert.equal(statuses.at(-1), Status.BAD_REQUEST);
  });

  it('200 requests in one write after the preface: the same', async () => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    let data = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => (data = Buffer.concat([data, chunk])));
    socket.write(PREFACE);
    await sleep(100);
    const closed = new Promise<boolean>((resolve) => socket.once('close', () => resolve(true)));
    socket.write(requests(200));
    assert.equal(await Promise.race([closed, sleep(3_000).then(() => false)]), true, 'the server closed the connection');
    assert.ok(data.length <= (MAX_PIPELINE + 1) * 1100, `${data.length} bytes of answers`);
  });

  it('one malformed frame behind good ones: refused before any of them is answered', async () => {
    const bad = encodeRequest(TASK, 0);
    bad[0] = 7;
    const { statuses, closed } = await exchange(Buffer.concat([PREFACE, requests(3), bad]));
    assert.deepEqual(statuses, [Status.BAD_REQUEST]);
    assert.equal(closed, true);
  });

  it('8 requests at once are all answered and the connection stays open; the daemon serves as before', async () => {
    const { statuses, closed } = await exchange(Buffer.concat([PREFACE, requests(MAX_PIPELINE)]), 1_000);
    assert.deepEqual(statuses, Array.from({ length: MAX_PIPELINE }, () => Status.NOT_FOUND));
    assert.equal(closed, false, 'a client within the limit keeps its connection');
    const res = await fetch(`http://127.0.0.1:${port}/healthy`);
    assert.equal(res.status, 200);
    assert.equal(daemon.child.exitCode, null, 'the daemon is running');
  });
});
