/** A task's scheduler stream (src/daemon/download/peer-session.ts) against a stub of the scheduler's AnnouncePeer. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { PeerResponseSchema, RegisterPeerSchema, type PeerRequest, type PeerResponse } from '../src/gen/shoal/v1/scheduler_pb.js';
import { silentLogger } from '../src/common/log.js';
import { PeerSession } from '../src/daemon/download/peer-session.js';
import type { SchedulerClient } from '../src/daemon/scheduler-link.js';

type Announce = (requests: AsyncIterable<PeerRequest>, options: { signal: AbortSignal }) => AsyncIterable<PeerResponse>;

const stub = (announcePeer: Announce): SchedulerClient => ({ announcePeer }) as unknown as SchedulerClient;

const complete = create(PeerResponseSchema, { response: { case: 'complete', value: {} } });

function session(client: SchedulerClient, events: string[]): PeerSession {
  return new PeerSession({
    client,
    register: (reconnect) => create(RegisterPeerSchema, { peerId: 'p', reconnect }),
    onResponse: (r) => events.push(`response ${r.response.case}`),
    onConnection: (up) => events.push(up ? 'up' : 'down'),
    logger: silentLogger,
  });
}

describe('peer session', () => {
  test('stop() ends the stream after the messages queued are sent', async () => {
    const sent: string[] = [];
    const events: string[] = [];
    const s = session(
      stub(async function* (requests) {
        for await (const request of requests) {
          sent.push(String(request.request.case));
          if (request.request.case === 'register') yield complete;
        }
      }),
      events,
    );
    await s.start();
    await new Promise((resolve) => setImmediate(resolve));
    s.send({ case: 'finished', value: { contentLength: 1n } });
    const stopping = s.stop();
    assert.equal(s.stop(), stopping);
    await stopping;
    assert.deepEqual(sent, ['register', 'finished']);
    assert.deepEqual(events, ['up', 'response complete', 'down']);
    assert.equal(s.state, 'stopped');
  });

  test('destroy() ends a stream that does not end by itself, without waiting', async () => {
    let signal: AbortSignal | undefined;
    const s = session(
      stub(async function* (_requests, options) {
        signal = options.signal;
        yield complete;
        await new Promise((resolve) => options.signal.addEventListener('abort', resolve, { once: true }));
        throw new Error('aborted');
      }),
      [],
    );
    await s.start();
    await new Promise((resolve) => setImmediate(resolve));
    await s.destroy();
    assert.equal(signal?.aborted, true);
  });

  test('a stream that breaks is opened again with a register marked reconnect', async () => {
    const registers: boolean[] = [];
    let opened = 0;
    let again!: () => void;
    const reopened = new Promise<void>((resolve) => (again = resolve));
    const s = session(
      stub(async function* (requests) {
        opened++;
        for await (const request of requests) {
          if (request.request.case === 'register') registers.push(request.request.value.reconnect);
          if (opened === 1) throw new Error('stream reset');
          again();
          yield complete;
        }
      }),
      [],
    );
    await s.start();
    await reopened;
    await s.stop();
    assert.deepEqual(registers, [false, true]);
  });
});
