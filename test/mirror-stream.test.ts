/**
 * Blobs streamed as they arrive, against a real registry (Debian's
 * docker-registry) behind a gate (fixtures/gate-proxy.ts) that holds the
 * registry's bytes back: the runtime gets the first bytes of a layer while the
 * rest is still held at the registry, a layer whose bytes do not match its
 * digest is cut short (never a clean end) and not kept, a short Range of a
 * blob not held costs the registry about its length, If-None-Match is 304,
 * HEAD downloads nothing, and a frozen registry fails a pull within
 * mirror.stallTimeout / upstreamTimeout. Events are ordered, never timed.
 */
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Agent, request } from 'undici';
import { createDaemon, type Daemon } from '../src/daemon/daemon.js';
import { startGateProxy, type GateProxy } from './fixtures/gate-proxy.js';
import { sha256digest } from './fixtures/hash.js';
import { until } from './fixtures/wait.js';
import { buildImage, missingTools, pushImage, startRegistry, type BuiltImage, type Registry } from './fixtures/registry.js';

const MiB = 1024 * 1024;
const SKIP = missingTools(['docker-registry', 'skopeo']);

describe('registry mirror: layers streamed, ranges, conditionals, a frozen registry', { skip: SKIP, timeout: 240_000 }, () => {
  let dir: string;
  let registry: Registry;
  let gate: GateProxy;
  let image: BuiltImage;
  let daemon: Daemon;
  let mirror: string;
  const agent = new Agent({ headersTimeout: 60_000, bodyTimeout: 60_000 });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shoal-mirror-stream-'));
    registry = await startRegistry();
    image = buildImage(join(dir, 'oci'), [12 * MiB, 3 * MiB, 10 * MiB, 6 * MiB, 2 * MiB]);
    pushImage(image, registry, 'test/stream:1');
    gate = await startGateProxy(registry, { holdAfter: 0 });
    gate.open();
    daemon = createDaemon({
      data: join(dir, 'data'),
      listen: '127.0.0.1:0',
      mirror: { listen: '127.0.0.1:0', upstream: `http://${gate.host}`, upstreams: [{ host: gate.host, insecure: true }], prefetch: false, stallTimeout: '2s', upstreamTimeout: '3s' },
    });
    await daemon.start();
    mirror = `http://127.0.0.1:${daemon.mirrorPort}`;
  });

  after(async () => {
    await agent.close();
    await daemon?.stop();
    await gate?.stop();
    await registry?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  const blobUrl = (digest: string, repo = 'test/stream'): string => `${mirror}/v2/${repo}/blobs/${digest}`;

  test('the first bytes of a layer reach the runtime while the rest is still held at the registry', async () => {
    const layer = image.layers[0]!;
    const bytes = image.blobs.get(layer.digest)!;
    gate.close(4 * MiB);
    const res = await request(blobUrl(layer.digest), { dispatcher: agent });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-length'], String(layer.size));
    assert.equal(res.headers['docker-content-digest'], layer.digest);
    const chunks: Buffer[] = [];
    let received = 0;
    const it = (res.body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    // Read until a whole piece arrived, with the registry holding the rest of the layer.
    while (received < 1 * MiB) {
      const next = await it.next();
      assert.ok(next.done !== true, 'the body ended early');
      chunks.push(next.value);
      received += next.value.length;
    }
    await gate.whenHolding();
    assert.ok(gate.holding > 0, 'the registry is not holding anything back: the test proves nothing');
    assert.ok(gate.forwarded < layer.size, `the registry had sent the whole layer (${gate.forwarded} bytes) before the client's first bytes`);
    const task = daemon.store.get(layer.digest.slice(7));
    assert.ok(task !== undefined && !task.complete, 'the task was complete before the first bytes were sent');
    gate.open();
    for (;;) {
      const next = await it.next();
      if (next.done === true) break;
      chunks.push(next.value);
    }
    const body = Buffer.concat(chunks);
    assert.equal(body.length, layer.size);
    assert.ok(body.equals(bytes));
    // The response ends once the bytes sent match the digest; the download's own whole check follows.
    await until(() => daemon.store.get(layer.digest.slice(7))?.complete === true, 'the layer held complete after its pull');
  });

  test('a layer that does not match its digest is cut short, never ended cleanly, and nothing of it is kept', async () => {
    const bad = buildImage(join(dir, 'oci-bad'), [9 * MiB]);
    pushImage(bad, registry, 'test/bad:1');
    const layer = bad.layers[0]!;
    // Corrupt a byte in the last piece: every piece before it has gone out when the mismatch shows.
    const fd = openSync(registry.blobPath(layer.digest), 'r+');
    writeSync(fd, Buffer.from('X'), 0, 1, layer.size - 100);
    closeSync(fd);
    assert.notEqual(sha256digest(readFileSync(registry.blobPath(layer.digest))), layer.digest, 'the blob is intact: the test proves nothing');
    const res = await request(blobUrl(layer.digest, 'test/bad'), { dispatcher: agent });
    assert.equal(res.statusCode, 200);
    let received = 0;
    const read = (async () => {
      for await (const chunk of res.body as AsyncIterable<Buffer>) received += chunk.length;
    })();
    await assert.rejects(read, 'the transfer of a corrupt layer ended cleanly');
    assert.ok(received > 0 && received < layer.size, `received ${received} of ${layer.size} bytes`);
    const held = daemon.store.get(layer.digest.slice(7));
    assert.ok(held === undefined || (!held.complete && held.digests.size === 0), 'pieces of a corrupt layer were kept');
    // The next request fetches it again and fails again: nothing wrong was kept to serve.
    const again = await request(blobUrl(layer.digest, 'test/bad'), { dispatcher: agent });
    await assert.rejects(again.body.arrayBuffer());
  });

  test('a 1000-byte Range of a large blob not held costs the registry about 1000 bytes; an open-ended one is streamed as 206', async () => {
    const layer = image.layers[2]!;
    const bytes = image.blobs.get(layer.digest)!;
    const before = gate.forwarded;
    const res = await request(blobUrl(layer.digest), { dispatcher: agent, headers: { Range: 'bytes=5000000-5000999' } });
    const body = Buffer.from(await res.body.arrayBuffer());
    assert.equal(res.statusCode, 206);
    assert.equal(res.headers['content-range'], `bytes 5000000-5000999/${layer.size}`);
    assert.ok(body.equals(bytes.subarray(5_000_000, 5_001_000)));
    const egress = gate.forwarded - before;
    assert.ok(egress < 64 * 1024, `the registry sent ${egress} bytes for a 1000-byte range of a ${layer.size}-byte blob`);
    assert.equal(daemon.store.get(layer.digest.slice(7)), undefined, 'a short range started a download of the whole blob');
    const tail = await request(blobUrl(layer.digest), { dispatcher: agent, headers: { Range: `bytes=${layer.size - 3 * MiB}-` } });
    const tailBody = Buffer.from(await tail.body.arrayBuffer());
    assert.equal(tail.statusCode, 206);
    assert.equal(tail.headers['content-range'], `bytes ${layer.size - 3 * MiB}-${layer.size - 1}/${layer.size}`);
    assert.ok(tailBody.equals(bytes.subarray(layer.size - 3 * MiB)));
    // Held now: a range is served from the verified file, with nothing asked of the registry but the access check.
    const held = gate.forwarded;
    const part = await request(blobUrl(layer.digest), { dispatcher: agent, headers: { Range: 'bytes=10-19' } });
    assert.equal(part.statusCode, 206);
    assert.ok(Buffer.from(await part.body.arrayBuffer()).equals(bytes.subarray(10, 20)));
    assert.ok(gate.forwarded - held < 4096);
  });

  test('If-None-Match with the ETag is 304 and HEAD stays cheap: neither downloads the blob', async () => {
    const layer = image.layers[3]!;
    const before = gate.forwarded;
    const head = await request(blobUrl(layer.digest), { dispatcher: agent, method: 'HEAD' });
    await head.body.dump();
    assert.equal(head.statusCode, 200);
    assert.equal(head.headers['content-length'], String(layer.size));
    assert.equal(head.headers['etag'], `"${layer.digest}"`);
    const cond = await request(blobUrl(layer.digest), { dispatcher: agent, headers: { 'If-None-Match': `"${layer.digest}"` } });
    assert.equal(cond.statusCode, 304);
    assert.equal((await cond.body.arrayBuffer()).byteLength, 0);
    assert.ok(gate.forwarded - before < 8192, `the registry sent ${gate.forwarded - before} bytes for a HEAD and a 304`);
    assert.equal(daemon.store.get(layer.digest.slice(7)), undefined);
    const other = await request(blobUrl(layer.digest), { dispatcher: agent, headers: { 'If-None-Match': '"sha256:0000"' } });
    assert.equal(other.statusCode, 200);
    assert.ok(Buffer.from(await other.body.arrayBuffer()).equals(image.blobs.get(layer.digest)!));
  });

  test('a registry that goes silent: the mirror fails within its stall bound, before or after the first byte', async () => {
    const quiet = buildImage(join(dir, 'oci-quiet'), [4 * MiB, 4 * MiB]);
    pushImage(quiet, registry, 'test/quiet:1');
    const url = (n: number): string => blobUrl(quiet.layers[n]!.digest, 'test/quiet');
    // Silent after two pieces: the first went out, so the connection is cut (the runtime retries, or falls back).
    gate.close(2 * MiB + 64 * 1024);
    const cut = await request(url(0), { dispatcher: agent });
    assert.equal(cut.statusCode, 200);
    await assert.rejects(cut.body.arrayBuffer(), 'a stalled layer ended cleanly');
    // Silent after one piece: nothing went out yet (the last chunk is held back), so a 504 the runtime falls back on.
    gate.close(1 * MiB + 64 * 1024);
    const early = await request(url(1), { dispatcher: agent });
    await early.body.dump();
    assert.equal(early.statusCode, 504);
    // Frozen from the first byte: the access check's HEAD gets no answer within upstreamTimeout.
    gate.close(0);
    const frozen = await request(blobUrl(image.layers[1]!.digest), { dispatcher: agent });
    await frozen.body.dump();
    assert.ok(frozen.statusCode >= 500, `status ${frozen.statusCode}`);
    gate.open();
    // The registry back: the pull goes through.
    const ok = await request(url(1), { dispatcher: agent });
    assert.ok(Buffer.from(await ok.body.arrayBuffer()).equals(quiet.blobs.get(quiet.layers[1]!.digest)!));
  });
});
