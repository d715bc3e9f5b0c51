/** The one lifecycle (src/common/lifecycle.ts) and the one listen helper (src/common/listen.ts). */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import { ShoalError } from '../src/common/errors.js';
import { Service, drainWithin } from '../src/common/lifecycle.js';
import { boundPort, closeServer, listen } from '../src/common/listen.js';

/** A component whose start and stop are recorded, whose start may fail, and whose stop drains until released or destroyed. */
class Probe extends Service {
  protected readonly serviceName = 'probe';
  readonly calls: string[] = [];
  failStart = false;
  #release: (() => void) | undefined;
  readonly drained = new Promise<void>((resolve) => (this.#release = resolve));

  release(): void {
    this.#release?.();
  }

  protected async onStart(): Promise<void> {
    this.calls.push('start');
    await Promise.resolve();
    if (this.failStart) throw new ShoalError('LISTEN_FAILED', 'no');
  }

  protected async onStop(): Promise<void> {
    this.calls.push('stop');
    const finished = await drainWithin(this.drained, 10_000, this.destroyed);
    this.calls.push(finished ? 'drained' : 'cut');
  }
}

describe('lifecycle', () => {
  it('start is idempotent; stop drains once and every call gets the same promise', async () => {
    const p = new Probe();
    assert.equal(p.state, 'idle');
    await Promise.all([p.start(), p.start()]);
    assert.equal(p.state, 'running');
    const stops = [p.stop(), p.stop()];
    assert.equal(stops[0], stops[1]);
    assert.equal(p.state, 'running', 'stop waits for nothing before it begins');
    p.release();
    await Promise.all(stops);
    assert.equal(p.state, 'stopped');
    assert.deepEqual(p.calls, ['start', 'stop', 'drained']);
  });

  it('a start after stop rejects with USAGE; a stop before start releases nothing', async () => {
    const p = new Probe();
    await p.stop();
    await assert.rejects(p.start(), (err: unknown) => err instanceof ShoalError && err.code === 'USAGE');
    assert.deepEqual(p.calls, []);
    const q = new Probe();
    await q.start();
    q.release();
    await q.stop();
    await assert.rejects(q.start(), (err: unknown) => err instanceof ShoalError && err.code === 'USAGE');
  });

  it('a failed start releases what it began and rejects with its error', async () => {
    const p = new Probe();
    p.failStart = true;
    p.release();
    await assert.rejects(p.start(), (err: unknown) => err instanceof ShoalError && err.code === 'LISTEN_FAILED');
    assert.deepEqual(p.calls, ['start', 'stop', 'drained']);
    assert.equal(p.state, 'stopped');
    await p.stop();
    assert.deepEqual(p.calls, ['start', 'stop', 'drained'], 'released once');
  });

  it('destroy cuts a drain short, also when called during stop', async () => {
    const p = new Probe();
    await p.start();
    const stopping = p.stop();
    await new Promise((r) => setImmediate(r));
    await p.destroy(new ShoalError('ABORTED', 'now'));
    await stopping;
    assert.deepEqual(p.calls, ['start', 'stop', 'cut']);
  });

  it('await using stops it', async () => {
    let probe: Probe | undefined;
    {
      await using p = new Probe();
      probe = p;
      await p.start();
      p.release();
    }
    assert.equal(probe.state, 'stopped');
  });
});

describe('listen', () => {
  it('binds, reports the port, and fails with LISTEN_FAILED naming the listener and the address', async () => {
    const a = createServer();
    const port = await listen(a, { host: '127.0.0.1', port: 0 }, 'test listener', { tls: false, insecure: false });
    assert.ok(port > 0);
    assert.equal(boundPort(a), port);
    const b = createServer();
    await assert.rejects(listen(b, { host: '127.0.0.1', port }, 'second listener', { tls: false, insecure: false }), (err: unknown) => {
      assert.ok(err instanceof ShoalError);
      assert.equal(err.code, 'LISTEN_FAILED');
      assert.match(err.message, new RegExp(`second listener cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
      return true;
    });
    await assert.rejects(listen(b, { host: '127.0.0.1', port: 70_000 }, 'bad port', { tls: false, insecure: false }), /LISTEN_FAILED|port must be/);
    await closeServer(a);
    await closeServer(b);
    assert.equal(a.listening, false);
  });
});
