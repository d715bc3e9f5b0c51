/**
 * The back-to-source client against the real fixture origin (node:http on 127.0.0.1:0).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test, type TestContext } from 'node:test';
import { Agent } from 'undici';
import { ShoalError, type ErrorCode } from '../src/common/errors.js';
import { SourceSection } from '../src/common/config/schema.js';
import { createHttpSource as createSource, type HttpSource, type RangeRequest, type SourceBody, type SourceExtras } from '../src/daemon/source/http-source.js';
import { isMidBody, startOrigin, type Origin, type OriginOptions } from './fixtures/origin.js';
import { TEST_TLS } from './fixtures/tls.js';
import { until } from './fixtures/wait.js';

const T = { timeout: 5_000 };
const MiB = 1 << 20;
const CONTENT = randomBytes(3 * MiB + 123);
/** Fast retries for tests. */
const FAST: SourceOptions = { backoffMs: 5, maxBackoffMs: 20, retries: 3 };

/** What the tests vary: the settings section and the extras, in one object. */
type SourceOptions = Partial<Record<'retries' | 'idleTimeoutMs', number>> & { insecure?: boolean } & SourceExtras;

function createHttpSource(options: SourceOptions): HttpSource {
  const { retries, idleTimeoutMs, insecure, ...extras } = options;
  const settings = SourceSection.parse({ ...(retries === undefined ? {} : { retries }), ...(idleTimeoutMs === undefined ? {} : { timeout: `${idleTimeoutMs}ms` }), ...(insecure === undefined ? {} : { insecure }) });
  return createSource(settings, extras);
}

async function setup(t: TestContext, options: SourceOptions = FAST, originOptions?: Partial<OriginOptions>): Promise<{ origin: Origin; source: HttpSource; url: string }> {
  const origin = await startOrigin({ files: new Map([['/file', CONTENT]]), ...originOptions });
  const source = createHttpSource(options);
  t.after(async () => {
    await source.close();
    await origin.close();
  });
  return { origin, source, url: `${origin.url}/file` };
}

async function readAll(body: SourceBody): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body.chunks) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function read(source: HttpSource, request: Partial<RangeRequest> & { url: string }): Promise<Buffer> {
  return readAll(await source.openRange({ headers: [], start: 0, ...request }));
}

/** Waits for a call to end either way, so that a test checks its fault landed before it checks the outcome. */
async function settled(promise: Promise<unknown>): Promise<void> {
  await promise.then(
    () => undefined,
    () => undefined,
  );
}

/** Asserts the origin's cuts of `path`: each one in the middle of a body, as many as `count`. */
function assertMidBody(origin: Origin, path: string, count: number): void {
  const cuts = origin.cuts(path);
  assert.equal(cuts.length, count, `the origin cut ${cuts.length} responses, not ${count}: ${JSON.stringify(cuts)}`);
  assert.ok(cuts.every(isMidBody), `a cut was not mid-body: ${JSON.stringify(cuts)}`);
}

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, check?: (err: ShoalError) => void): Promise<ShoalError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ShoalError, `expected a ShoalError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    check?.(err);
    return err;
  }
  assert.fail(`expected ${code}, but it succeeded`);
}

describe('http source: reads', () => {
  test('whole read sends no Range and returns the content with its validators', T, async (t) => {
    const { origin, source, url } = await setup(t);
    const body = await source.openRange({ url, headers: [], start: 0 });
    assert.equal(body.contentLength, CONTENT.length);
    assert.match(body.etag ?? '', /^"[0-9a-f]{32}"$/);
    assert.ok(body.lastModified !== undefined);
    assert.ok((await readAll(body)).equals(CONTENT));
    const [req] = origin.received('/file');
    assert.equal(req?.headers.range, undefined);
    assert.equal(origin.bytesServed('/file'), CONTENT.length);
  });

  test('range read asks for start-(end-1) and returns exactly those bytes', T, async (t) => {
    const { origin, source, url } = await setup(t);
    const body = await source.openRange({ url, headers: [], start: 1000, end: 2 * MiB + 7 });
    assert.equal(body.contentLength, CONTENT.length);
    assert.ok((await readAll(body)).equals(CONTENT.subarray(1000, 2 * MiB + 7)));
    assert.equal(origin.received('/file')[0]?.headers.range, `bytes=1000-${2 * MiB + 6}`);
  });

  test('resume from an offset asks for start- and reads to the end', T, async (t) => {
    const { origin, source, url } = await setup(t);
    assert.ok((await read(source, { url, start: MiB + 5 })).equals(CONTENT.subarray(MiB + 5)));
    assert.equal(origin.received('/file')[0]?.headers.range, `bytes=${MiB + 5}-`);
    assert.equal(origin.bytesServed(), CONTENT.length - MiB - 5);
  });

  test('an empty range and a range ending at the content end work', T, async (t) => {
    const { source, url } = await setup(t);
    assert.equal((await read(source, { url, start: 10, end: 10 })).length, 0);
    assert.ok((await read(source, { url, start: 10, end: CONTENT.length })).equals(CONTENT.subarray(10)));
  });

  test('a 200 answered to a Range is skipped and cut to the range', T, async (t) => {
    const { origin, source, url } = await setup(t);
    origin.fault('/file', { kind: 'no-range' });
    const middle = await read(source, { url, start: 1_500_000, end: 2_000_000 });
    const tail = await read(source, { url, start: 3 * MiB });
    const head = await read(source, { url, start: 0, end: 17 });
    // Each answer was a 200 to a request that asked for a range.
    assert.deepEqual(origin.received('/file').map((r) => r.headers.range), ['bytes=1500000-1999999', `bytes=${3 * MiB}-`, 'bytes=0-16']);
    assert.ok(middle.equals(CONTENT.subarray(1_500_000, 2_000_000)));
    assert.ok(tail.equals(CONTENT.subarray(3 * MiB)));
    assert.ok(head.equals(CONTENT.subarray(0, 17)));
  });

  test('a chunked response has no contentLength and the right bytes', T, async (t) => {
    const { origin, source, url } = await setup(t);
    origin.fault('/file', { kind: 'chunked' });
    const body = await source.openRange({ url, headers: [], start: 0 });
    assert.equal(body.contentLength, undefined);
    assert.ok((await readAll(body)).equals(CONTENT));
    origin.clearFaults();
    origin.fault('/file', { kind: 'chunked' });
    origin.fault('/file', { kind: 'no-range' });
    assert.ok((await read(source, { url, start: 99, end: 1000 })).equals(CONTENT.subarray(99, 1000)));
  });

  test('user headers pass through; hop-by-hop, Host and Range do not', T, async (t) => {
    const { origin, source, url } = await setup(t);
    const headers: Array<[string, string]> = [
      ['X-Custom', 'one'],
      ['x-custom', 'two'],
      ['Accept', 'application/octet-stream'],
      ['User-Agent', 'shoal-test'],
      ['Authorization', 'Bearer secret'],
      ['Connection', 'x-hop'],
      ['X-Hop', 'hidden'],
      ['TE', 'trailers'],
      ['Host', 'evil.example'],
      ['Range', 'bytes=0-0'],
      ['Upgrade', 'websocket'],
    ];
    await read(source, { url, headers, start: 5, end: 10 });
    const got = origin.received('/file')[0]?.headers;
    assert.equal(got?.['x-custom'], 'one, two');
    assert.equal(got?.accept, 'application/octet-stream');
    assert.equal(got?.['user-agent'], 'shoal-test');
    assert.equal(got?.authorization, 'Bearer secret');
    assert.equal(got?.host, new URL(url).host);
    assert.equal(got?.range, 'bytes=5-9');
    assert.equal(got?.['x-hop'], undefined);
    assert.equal(got?.te, undefined);
    assert.equal(got?.upgrade, undefined);
  });

  test('breaking out early releases the response; the body is iterable once', T, async (t) => {
    const { origin, source, url } = await setup(t);
    const body = await source.openRange({ url, headers: [], start: 0 });
    for await (const chunk of body.chunks) {
      assert.ok(chunk.equals(CONTENT.subarray(0, chunk.length)));
      break;
    }
    assert.throws(() => body.chunks[Symbol.asyncIterator](), ShoalError);
    assert.ok((await read(source, { url, start: 1, end: 5 })).equals(CONTENT.subarray(1, 5)));
    assert.equal(origin.requests('/file'), 2);
  });

  test('a slow consumer applies backpressure (the origin does not run ahead)', T, async (t) => {
    const big = randomBytes(32 * MiB);
    const origin = await startOrigin({ files: new Map([['/big', big]]) });
    const source = createHttpSource(FAST);
    t.after(async () => {
      await source.close();
      await origin.close();
    });
    const body = await source.openRange({ url: `${origin.url}/big`, headers: [], start: 0 });
    const iterator = body.chunks[Symbol.asyncIterator]();
    const first = await iterator.next();
    await sleep(300);
    const ahead = origin.bytesServed();
    assert.ok(ahead < 16 * MiB, `origin sent ${ahead} bytes ahead of a stalled reader`);
    const chunks: Buffer[] = first.done === true ? [] : [first.value];
    for (let next = await iterator.next(); next.done !== true; next = await iterator.next()) chunks.push(next.value);
    assert.ok(Buffer.concat(chunks).equals(big));
  });
});

describe('http source: status mapping and retries', () => {
  test('404 is SOURCE_NOT_FOUND at once, naming the URL without its query', T, async (t) => {
    const { origin, source, url } = await setup(t);
    await rejectsWith(source.openRange({ url: `${origin.url}/missing?X-Signature=s3cr3t`, headers: [], start: 0 }), 'SOURCE_NOT_FOUND', (err) => {
      assert.equal(err.sourceStatus, 404);
      assert.match(err.message, /\/missing/);
      assert.match(err.message, /404/);
      assert.doesNotMatch(err.message, /s3cr3t/);
    });
    assert.equal(origin.requests('/missing'), 1);
    origin.fault('/file', { kind: 'status', status: 410 });
    await rejectsWith(read(source, { url }), 'SOURCE_NOT_FOUND', (err) => assert.equal(err.sourceStatus, 410));
  });

  test('401/403 are SOURCE_AUTH, other 4xx SOURCE_STATUS, 416 to a range SOURCE_CHANGED (the content is not the length known), none retried', T, async (t) => {
    const { origin, source, url } = await setup(t);
    for (const [status, code] of [
      [401, 'SOURCE_AUTH'],
      [403, 'SOURCE_AUTH'],
      [400, 'SOURCE_STATUS'],
      [418, 'SOURCE_STATUS'],
    ] as const) {
      origin.fault('/file', { kind: 'status', status }, 1);
      await rejectsWith(read(source, { url }), code, (err) => assert.equal(err.sourceStatus, status));
    }
    await rejectsWith(read(source, { url, start: CONTENT.length + 10 }), 'SOURCE_CHANGED', (err) => assert.equal(err.sourceStatus, 416));
    assert.equal(origin.requests('/file'), 5);
  });

  test('500 once, then success: the retry recovers', T, async (t) => {
    const { origin, source, url } = await setup(t);
    origin.fault('/file', { kind: 'status', status: 500 }, 1);
    const got = await read(source, { url, start: 7 });
    assert.equal(origin.requests('/file'), 2, 'the 500 was not answered, or not retried');
    assert.ok(got.equals(CONTENT.subarray(7)));
  });

  test('500 always: SOURCE_STATUS after the retries', T, async (t) => {
    const { origin, source, url } = await setup(t);
    origin.fault('/file', { kind: 'status', status: 500 });
    await rejectsWith(read(source, { url }), 'SOURCE_STATUS', (err) => {
      assert.equal(err.sourceStatus, 500);
      assert.match(err.message, /500/);
    });
    assert.equal(origin.requests('/file'), 4); // 1 + retries: 3
  });

  test('429 with Retry-After is honoured, then succeeds', T, async (t) => {
    const { origin, source, url } = await setup(t, { backoffMs: 1, maxBackoffMs: 3_000 });
    origin.fault('/file', { kind: 'status', status: 429, retryAfter: 1 }, 1);
    const began = performance.now();
    const got = await read(source, { url, end: 100 });
    const waited = performance.now() - began;
    assert.equal(origin.requests('/file'), 2, 'the 429 was not answered, or not retried');
    assert.ok(got.equals(CONTENT.subarray(0, 100)));
    assert.ok(waited >= 950, 'waited for Retry-After');
  });

  test('Retry-After is capped at maxBackoffMs, and a last 503 carries retryAfter', T, async (t) => {
    const { origin, source, url } = await setup(t, { backoffMs: 1, maxBackoffMs: 50, retries: 2 });
    origin.fault('/file', { kind: 'status', status: 503, retryAfter: 120 });
    const began = performance.now();
    await rejectsWith(read(source, { url }), 'SOURCE_STATUS', (err) => {
      assert.equal(err.sourceStatus, 503);
      assert.equal(err.retryAfter, 120);
    });
    assert.ok(performance.now() - began < 1_000);
    assert.equal(origin.requests('/file'), 3);
  });

  test('connection refused is SOURCE_NETWORK after the retries', T, async (t) => {
    const server = createServer().listen(0, '127.0.0.1');
    await once(server, 'listening');
    const address = server.address();
    assert.ok(address !== null && typeof address === 'object');
    await new Promise((resolve) => server.close(resolve));
    const source = createHttpSource(FAST);
    t.after(() => source.close());
    await rejectsWith(read(source, { url: `http://127.0.0.1:${address.port}/file?token=x` }), 'SOURCE_NETWORK', (err) => {
      assert.match(err.message, /ECONNREFUSED/);
      assert.doesNotMatch(err.message, /token/);
    });
  });

  // undici checks these timeouts on a ~1 s clock, so each costs up to ~1.2 s here.
  test('an idle origin (body or headers) times out and is retried', T, async (t) => {
    const { origin, source, url } = await setup(t, { ...FAST, idleTimeoutMs: 200 });
    origin.fault('/file', { kind: 'stall', afterBytes: 5000 }, 1);
    origin.fault('/file', { kind: 'stall' }, 1); // queued: the second request gets no headers
    const got = await read(source, { url });
    assert.deepEqual(
      origin.cuts('/file').map((c) => ({ headers: c.headers, sent: c.sent })),
      [{ headers: true, sent: 5000 }, { headers: false, sent: 0 }],
      'the origin did not go idle mid-body, then before the headers',
    );
    assert.ok(got.equals(CONTENT));
    assert.equal(origin.requests('/file'), 3);
  });

  test('an origin idle on every attempt is SOURCE_NETWORK (idle timeout)', T, async (t) => {
    const { origin, source, url } = await setup(t, { ...FAST, retries: 1, idleTimeoutMs: 200 });
    origin.fault('/file', { kind: 'stall', afterBytes: 10 });
    const reading = read(source, { url });
    await settled(reading);
    assertMidBody(origin, '/file', 2);
    await rejectsWith(reading, 'SOURCE_NETWORK', (err) => assert.match(err.message, /idle timeout/));
    assert.equal(origin.requests('/file'), 2);
  });
});

describe('http source: dropped bodies', () => {
  test('a drop mid-body is resumed with Range + If-Range; bytes are identical', T, async (t) => {
    const { origin, source, url } = await setup(t);
    origin.fault('/file', { kind: 'drop', afterBytes: 1_000_000 }, 1);
    const body = await source.openRange({ url, headers: [], start: 0 });
    const whole = await readAll(body);
    assertMidBody(origin, '/file', 1);
    assert.ok(whole.equals(CONTENT));
    const [, second] = origin.received('/file');
    assert.equal(second?.headers.range, 'bytes=1000000-');
    assert.equal(second?.headers['if-range'], body.etag);
    origin.fault('/file', { kind: 'drop', afterBytes: 300_000 }, 2);
    const part = await read(source, { url, start: 100, end: 2 * MiB });
    assertMidBody(origin, '/file', 3);
    assert.ok(part.equals(CONTENT.subarray(100, 2 * MiB)));
  });

  test('a drop is resumed without ETag via Last-Modified, and from a 200 by skipping', T, async (t) => {
    const { origin, source, url } = await setup(t);
    origin.fault('/file', { kind: 'headers', headers: { etag: null } }, 2);
    origin.fault('/file', { kind: 'drop', afterBytes: 10_000 }, 1);
    const body = await source.openRange({ url, headers: [], start: 0 });
    const whole = await readAll(body);
    assertMidBody(origin, '/file', 1);
    assert.ok(whole.equals(CONTENT));
    assert.equal(origin.received('/file')[1]?.headers['if-range'], body.lastModified);
    origin.fault('/file', { kind: 'no-range' });
    origin.fault('/file', { kind: 'drop', afterBytes: 2 * MiB }, 1);
    const rest = await read(source, { url, start: MiB });
    assertMidBody(origin, '/file', 2);
    assert.ok(rest.equals(CONTENT.subarray(MiB)), 'same ETag on the 200: skip, not "changed"');
    assert.equal(origin.requests('/file'), 4);
  });

  test('a drop in a chunked body is resumed', T, async (t) => {
    const { origin, source, url } = await setup(t);
    origin.fault('/file', { kind: 'chunked' });
    origin.fault('/file', { kind: 'drop', afterBytes: 777_777 }, 1);
    const got = await read(source, { url });
    assertMidBody(origin, '/file', 1);
    assert.ok(got.equals(CONTENT));
  });

  test('drops always: SOURCE_NETWORK after the retries, never a short read', T, async (t) => {
    const { origin, source, url } = await setup(t);
    origin.fault('/file', { kind: 'drop', afterBytes: 1000 });
    const chunks: Buffer[] = [];
    const reading = (async () => {
      for await (const chunk of (await source.openRange({ url, headers: [], start: 0 })).chunks) chunks.push(chunk);
    })();
    await settled(reading);
    assertMidBody(origin, '/file', 4);
    await rejectsWith(reading, 'SOURCE_NETWORK');
    assert.equal(origin.requests('/file'), 4);
    assert.ok(Buffer.concat(chunks).equals(CONTENT.subarray(0, 4000)), 'each attempt added its 1000 bytes');
  });

  test('with no retries left an early end is SOURCE_NETWORK', T, async (t) => {
    const { origin, source, url } = await setup(t, { retries: 0 });
    origin.fault('/file', { kind: 'drop', afterBytes: 0 });
    const reading = read(source, { url, start: 5 });
    await settled(reading);
    assert.deepEqual(
      origin.cuts('/file').map((c) => ({ headers: c.headers, sent: c.sent, length: c.length })),
      [{ headers: true, sent: 0, length: CONTENT.length - 5 }],
      'the body did not end before its first byte',
    );
    await rejectsWith(reading, 'SOURCE_NETWORK');
  });

  test('content changed between requests (ETag differs): SOURCE_CHANGED', T, async (t) => {
    const files = new Map([['/file', CONTENT]]);
    const { origin, source, url } = await setup(t, FAST, { files });
    origin.fault('/file', { kind: 'drop', afterBytes: 100_000 }, 1);
    const body = await source.openRange({ url, headers: [], start: 0 });
    let got = 0;
    const reading = (async () => {
      for await (const chunk of body.chunks) {
        got += chunk.length;
        files.set('/file', randomBytes(CONTENT.length)); // same length, new version
      }
    })();
    await settled(reading);
    assertMidBody(origin, '/file', 1);
    await rejectsWith(reading, 'SOURCE_CHANGED', (err) => assert.match(err.message, /changed/));
    assert.equal(got, 100_000);
  });

  test('content changed with no validators (length differs): SOURCE_CHANGED', T, async (t) => {
    const files = new Map([['/file', CONTENT]]);
    const { origin, source, url } = await setup(t, FAST, { files });
    origin.fault('/file', { kind: 'headers', headers: { etag: null, 'last-modified': null } });
    origin.fault('/file', { kind: 'drop', afterBytes: 100_000 }, 1);
    const body = await source.openRange({ url, headers: [], start: 0 });
    files.set('/file', CONTENT.subarray(0, CONTENT.length - 1));
    const reading = readAll(body);
    await settled(reading);
    assertMidBody(origin, '/file', 1);
    await rejectsWith(reading, 'SOURCE_CHANGED', (err) => assert.match(err.message, /length/));
    assert.equal(origin.received('/file')[1]?.headers['if-range'], undefined);
  });
});

describe('http source: the version asked for', () => {
  test('a resume given the task\'s validator sends If-Range; another version is SOURCE_CHANGED, the same one resumes', T, async (t) => {
    const files = new Map([['/file', CONTENT]]);
    const { origin, source, url } = await setup(t, FAST, { files });
    const first = await source.openRange({ url, headers: [], start: 0, end: 10 });
    await readAll(first);
    assert.notEqual(first.validator, '');
    const same = await source.openRange({ url, headers: [], start: 1000, end: 2000, validator: first.validator });
    assert.ok((await readAll(same)).equals(CONTENT.subarray(1000, 2000)));
    assert.equal(origin.received('/file').at(-1)?.headers['if-range'], first.validator.slice('etag:'.length));
    files.set('/file', randomBytes(CONTENT.length)); // same length, new version
    await rejectsWith(source.openRange({ url, headers: [], start: 1000, end: 2000, validator: first.validator }).then(readAll), 'SOURCE_CHANGED');
    // From the first byte with no Range, the version is checked all the same.
    await rejectsWith(source.openRange({ url, headers: [], start: 0, validator: first.validator }).then(readAll), 'SOURCE_CHANGED');
  });

  test('without an ETag, Last-Modified is the validator', T, async (t) => {
    const files = new Map([['/file', CONTENT]]);
    const { origin, source, url } = await setup(t, FAST, { files });
    origin.fault('/file', { kind: 'headers', headers: { etag: null, 'last-modified': 'Tue, 01 Dec 2026 10:00:00 GMT' } }, 1);
    const first = await source.openRange({ url, headers: [], start: 0, end: 10 });
    await readAll(first);
    assert.equal(first.validator, 'last-modified:Tue, 01 Dec 2026 10:00:00 GMT');
    origin.fault('/file', { kind: 'headers', headers: { etag: null, 'last-modified': 'Wed, 02 Dec 2026 10:00:00 GMT' } });
    await rejectsWith(source.openRange({ url, headers: [], start: 100, end: 200, validator: first.validator }).then(readAll), 'SOURCE_CHANGED');
    assert.equal(origin.received('/file').at(-1)?.headers['if-range'], 'Tue, 01 Dec 2026 10:00:00 GMT');
  });
});

describe('http source: protocol checks', () => {
  test('a Content-Range that starts elsewhere is SOURCE_PROTOCOL', T, async (t) => {
    const { origin, source, url } = await setup(t);
    origin.fault('/file', { kind: 'headers', headers: { 'content-range': `bytes 0-99/${CONTENT.length}` } });
    await rejectsWith(read(source, { url, start: 100, end: 200 }), 'SOURCE_PROTOCOL', (err) => assert.equal(err.sourceStatus, 206));
  });

  test('a Content-Length above 2^50 is SOURCE_PROTOCOL', T, async (t) => {
    const { origin, source, url } = await setup(t);
    origin.fault('/file', { kind: 'headers', headers: { 'content-length': String(2 ** 50 + 1) } });
    await rejectsWith(read(source, { url }), 'SOURCE_PROTOCOL');
  });

  test('a range beyond the content is SOURCE_CHANGED (not the length it came from), bad arguments USAGE / URL_INVALID', T, async (t) => {
    const { source, url } = await setup(t);
    await rejectsWith(read(source, { url, start: 10, end: CONTENT.length + 1 }), 'SOURCE_CHANGED');
    await rejectsWith(read(source, { url, start: 10, end: 9 }), 'USAGE');
    await rejectsWith(read(source, { url, start: -1 }), 'USAGE');
    await rejectsWith(read(source, { url: 'ftp://127.0.0.1/x' }), 'URL_INVALID');
    await rejectsWith(read(source, { url: 'not a url' }), 'URL_INVALID');
    await rejectsWith(read(source, { url, headers: [['X-Bad', 'a\r\nInjected: 1']] }), 'USAGE');
  });
});

describe('http source: redirects', () => {
  test('a redirect to another origin drops Authorization and Cookie', T, async (t) => {
    const { origin, source, url } = await setup(t);
    const other = await startOrigin({ files: new Map([['/copy', CONTENT]]) });
    t.after(() => other.close());
    origin.fault('/file', { kind: 'redirect', location: `${other.url}/copy`, status: 307 });
    const headers: Array<[string, string]> = [
      ['Authorization', 'Bearer secret'],
      ['Cookie', 'session=1'],
      ['X-Trace', 'abc'],
    ];
    assert.ok((await read(source, { url, headers, start: 10, end: 20 })).equals(CONTENT.subarray(10, 20)));
    const first = origin.received('/file')[0]?.headers;
    assert.equal(first?.authorization, 'Bearer secret');
    assert.equal(first?.cookie, 'session=1');
    const second = other.received('/copy')[0]?.headers;
    assert.equal(second?.authorization, undefined);
    assert.equal(second?.cookie, undefined);
    assert.equal(second?.['x-trace'], 'abc');
    assert.equal(second?.range, 'bytes=10-19');
  });

  test('a same-origin redirect keeps credentials; too many redirects is SOURCE_PROTOCOL', T, async (t) => {
    const { origin, source, url } = await setup(t, { ...FAST, maxRedirects: 2 });
    origin.fault('/old', { kind: 'redirect', location: '/file' });
    const headers: Array<[string, string]> = [['Authorization', 'Bearer secret']];
    assert.ok((await read(source, { url: `${origin.url}/old`, headers })).equals(CONTENT));
    assert.equal(origin.received('/file')[0]?.headers.authorization, 'Bearer secret');
    origin.fault('/loop', { kind: 'redirect', location: '/loop', status: 301 });
    await rejectsWith(read(source, { url: `${origin.url}/loop` }), 'SOURCE_PROTOCOL', (err) => assert.match(err.message, /redirects/));
    assert.equal(origin.requests('/loop'), 3);
    void url;
  });
});

describe('http source: abort and close', () => {
  test('abort mid-body stops promptly with ABORTED', T, async (t) => {
    const { origin, source, url } = await setup(t);
    origin.fault('/file', { kind: 'stall', afterBytes: 50_000 });
    const controller = new AbortController();
    const body = await source.openRange({ url, headers: [], start: 0, signal: controller.signal });
    const reading = readAll(body);
    await until(() => origin.cuts('/file').length === 1, 'the origin to stall mid-body', { within: 2_000, every: 5 });
    assertMidBody(origin, '/file', 1);
    const began = performance.now();
    controller.abort();
    await rejectsWith(reading, 'ABORTED');
    assert.ok(performance.now() - began < 2_000, 'the abort ended the stalled read');
  });

  test('abort before the headers, during a backoff, or before the call rejects with ABORTED', T, async (t) => {
    const { origin, source, url } = await setup(t, { backoffMs: 10_000, maxBackoffMs: 10_000 });
    origin.fault('/file', { kind: 'stall' }, 1);
    const first = new AbortController();
    const stalled = source.openRange({ url, headers: [], start: 0, signal: first.signal });
    await until(() => origin.cuts('/file').length === 1, 'the origin to stall before the headers', { within: 5_000, every: 5 });
    assert.deepEqual(origin.cuts('/file').map((c) => c.headers), [false], 'the origin did not stall before the headers');
    first.abort();
    await rejectsWith(stalled, 'ABORTED');
    origin.fault('/file', { kind: 'status', status: 500 });
    const second = new AbortController();
    const backingOff = read(source, { url, signal: second.signal });
    await until(() => origin.requests('/file') === 2, 'the 500 to be answered (then a 10 s backoff)', { within: 5_000, every: 5 });
    const began = performance.now();
    second.abort();
    await rejectsWith(backingOff, 'ABORTED');
    assert.ok(performance.now() - began < 5_000, 'the abort cut the 10 s backoff short');
    await rejectsWith(read(source, { url, signal: AbortSignal.abort() }), 'ABORTED');
  });

  test('a ShoalError abort reason surfaces as is', T, async (t) => {
    const { source, url } = await setup(t);
    const reason = new ShoalError('TIMEOUT', 'deadline');
    const err = await rejectsWith(read(source, { url, signal: AbortSignal.abort(reason) }), 'TIMEOUT');
    assert.equal(err, reason);
  });

  test('close() aborts reads in flight, is idempotent and leaves no sockets', T, async (t) => {
    const handles = (): number => process.getActiveResourcesInfo().filter((r) => r.startsWith('TCP')).length;
    const origin = await startOrigin({ files: new Map([['/file', CONTENT]]) });
    const source = createHttpSource(FAST);
    t.after(() => origin.close());
    await read(source, { url: `${origin.url}/file`, end: 10 });
    origin.fault('/file', { kind: 'stall', afterBytes: 1000 });
    const body = await source.openRange({ url: `${origin.url}/file`, headers: [], start: 0 });
    const reading = rejectsWith(readAll(body), 'ABORTED');
    await until(() => origin.cuts('/file').length === 1, 'the read to stall mid-body', { within: 2_000, every: 5 });
    assertMidBody(origin, '/file', 1);
    await Promise.all([source.close(), source.close()]);
    await reading;
    await rejectsWith(read(source, { url: `${origin.url}/file` }), 'ABORTED');
    await origin.close();
    for (let i = 0; i < 100 && handles() > 0; i += 1) await sleep(10); // closing handles linger a tick or two
    assert.equal(handles(), 0);
  });
});

describe('http source: TLS', () => {
  const { key, cert } = TEST_TLS;

  test('an untrusted certificate is SOURCE_NETWORK; ca or insecure makes it work', T, async (t) => {
    const { source, url } = await setup(t, { retries: 0 }, { tls: { key, cert } });
    assert.ok(url.startsWith('https://'));
    await rejectsWith(read(source, { url }), 'SOURCE_NETWORK');
    for (const options of [{ ca: cert }, { insecure: true }]) {
      const trusting = createHttpSource({ retries: 0, ...options });
      t.after(() => trusting.close());
      assert.ok((await read(trusting, { url, start: 3, end: 300 })).equals(CONTENT.subarray(3, 300)));
    }
  });
});

describe('fixture origin', () => {
  test('HEAD, suffix ranges, 416, corruption, the log of cuts and the rate limit', T, async (t) => {
    const origin = await startOrigin({ files: new Map([['/f', CONTENT]]), rateLimit: 4 * MiB });
    t.after(() => origin.close());
    const head = await fetchRaw(`${origin.url}/f`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(CONTENT.length));
    assert.equal(head.headers['accept-ranges'], 'bytes');
    const suffix = await fetchRaw(`${origin.url}/f`, { headers: { range: 'bytes=-10' } });
    assert.equal(suffix.status, 206);
    assert.ok(suffix.body.equals(CONTENT.subarray(-10)));
    const bad = await fetchRaw(`${origin.url}/f`, { headers: { range: `bytes=${CONTENT.length}-` } });
    assert.equal(bad.status, 416);
    assert.equal(bad.headers['content-range'], `bytes */${CONTENT.length}`);
    origin.fault('/f', { kind: 'corrupt', offset: 5 }, 1);
    const corrupt = await fetchRaw(`${origin.url}/f`, { headers: { range: 'bytes=0-9' } });
    assert.equal(corrupt.body[5], (CONTENT[5] ?? 0) ^ 0xff);
    assert.ok(corrupt.body.subarray(0, 5).equals(CONTENT.subarray(0, 5)));
    origin.fault('/f', { kind: 'drop', afterBytes: 100 }, 1);
    await assert.rejects(fetchRaw(`${origin.url}/f`, { headers: { range: 'bytes=10-' } }));
    assert.deepEqual(origin.cuts('/f'), [{ path: '/f', kind: 'drop', headers: true, sent: 100, length: CONTENT.length - 10 }]);
    const began = performance.now();
    const whole = await fetchRaw(`${origin.url}/f`, {});
    assert.ok(whole.body.equals(CONTENT));
    const seconds = (performance.now() - began) / 1000;
    assert.ok(seconds > 0.5 && seconds < 2, `3 MiB at 4 MiB/s took ${seconds}s`);
    assert.equal(origin.requests('/f'), 5);
  });
});

/** A plain request through undici (the fixture's own checks, outside the source client). */
async function fetchRaw(url: string, init: { method?: 'GET' | 'HEAD'; headers?: Record<string, string> }): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  const agent = new Agent();
  try {
    const res = await agent.request({ origin: new URL(url).origin, path: new URL(url).pathname, method: init.method ?? 'GET', headers: init.headers ?? {} });
    return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
  } finally {
    await agent.close();
  }
}
