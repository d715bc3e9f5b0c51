/**
 * The registry mirror against a real registry (Debian's docker-registry) and
 * real clients (skopeo, podman), plus a fake registry for what a real one never
 * does (oversized or lying manifests, 429). The daemon runs in this process, as
 * the CLI starts it; clients run as child processes.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Agent, request } from 'undici';
import { createDaemon, type Daemon } from '../src/daemon/daemon.js';
import { MirrorSection } from '../src/common/config/schema.js';
import { createMirror } from '../src/daemon/mirror/server.js';
import { sha256digest } from './fixtures/hash.js';
import { startOrigin, type Origin } from './fixtures/origin.js';
import { authFile, buildImage, missingTools, pushImage, registriesConf, runTool, skopeoCopy, startRegistry, TEST_TLS, type BuiltImage, type Registry } from './fixtures/registry.js';
import { tasksOf } from './fixtures/stats.js';

const MiB = 1024 * 1024;
const SKIP = missingTools(['docker-registry', 'skopeo']);
const SKIP_AUTH = missingTools(['docker-registry', 'skopeo', 'htpasswd']);

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function client(): { agent: Agent; get: (url: string, init?: { method?: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'; headers?: Record<string, string> }) => Promise<Reply> } {
  const agent = new Agent({ headersTimeout: 60_000, bodyTimeout: 60_000 });
  return {
    agent,
    async get(url, init = {}) {
      const res = await request(url, { dispatcher: agent, method: init.method ?? 'GET', headers: init.headers ?? {} });
      const body = Buffer.from(await res.body.arrayBuffer());
      return { status: res.statusCode, headers: res.headers, body };
    },
  };
}

function specError(reply: Reply): { code: string; message: string } {
  const parsed = JSON.parse(reply.body.toString()) as { errors: Array<{ code: string; message: string }> };
  assert.equal(parsed.errors.length, 1);
  return parsed.errors[0]!;
}

function verifyDir(dir: string, image: BuiltImage): void {
  const files = readdirSync(dir);
  for (const blob of [image.config, ...image.layers]) {
    const hex = blob.digest.slice(7);
    assert.ok(files.includes(hex), `blob ${hex} missing from ${dir}`);
    const bytes = readFileSync(join(dir, hex));
    assert.equal(sha256digest(bytes), blob.digest);
    assert.ok(bytes.equals(image.blobs.get(blob.digest)!));
  }
  assert.ok(readFileSync(join(dir, 'manifest.json')).equals(image.manifest), 'manifest bytes differ from the origin');
}

/** A registry that misbehaves on purpose. */
interface FakeRegistry {
  server: Server;
  host: string;
  lies: { blob: Buffer; digest: string; manifestDigest: string };
  /** A blob the registry redirects to `storage` (another origin), as S3-backed registries and Docker Hub do. */
  redirected: { blob: Buffer; digest: string };
  /** Authorization headers received, by path. */
  seen: Array<{ method: string; path: string; authorization: string | undefined }>;
}

async function startFakeRegistry(storage: Origin, redirectedBlob: Buffer): Promise<FakeRegistry> {
  const redirected = { blob: redirectedBlob, digest: sha256digest(redirectedBlob) };
  const seen: FakeRegistry['seen'] = [];
  const blob = randomBytes(300_000);
  const digest = sha256digest(randomBytes(300_000));
  const manifestDigest = sha256digest(Buffer.from('something else'));
  const big = Buffer.alloc(5 * MiB, 0x20);
  const server = createServer((req, res) => {
    const path = req.url ?? '';
    seen.push({ method: req.method ?? '', path, authorization: req.headers.authorization });
    if (path === `/v2/redir/blobs/${redirected.digest}`) {
      res.writeHead(307, { Location: `${storage.url}/storage/blob?X-Amz-Signature=abc`, 'Content-Length': 0 });
      return res.end();
    }
    const json = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      const data = Buffer.from(JSON.stringify(body));
      res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': data.length, ...headers });
      res.end(req.method === 'HEAD' ? undefined : data);
    };
    if (path === '/v2/') return json(200, {});
    if (path === '/v2/big/manifests/1') {
      res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json', 'Content-Length': big.length });
      return res.end(req.method === 'HEAD' ? undefined : big);
    }
    if (path === '/v2/bigchunked/manifests/1') {
      res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' });
      if (req.method === 'HEAD') return res.end();
      res.write(big.subarray(0, 3 * MiB));
      return res.end(big.subarray(3 * MiB));
    }
    if (path === `/v2/liar/manifests/${manifestDigest}`) {
      res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' });
      return res.end(req.method === 'HEAD' ? undefined : '{"schemaVersion":2}');
    }
    if (path.startsWith('/v2/paged/tags/list')) return json(200, { name: 'paged', tags: ['a'] }, { Link: '</v2/paged/tags/list?last=a&n=1>; rel="next"' });
    if (path === '/v2/busy/manifests/1') return json(429, { errors: [{ code: 'TOOMANYREQUESTS', message: 'slow down' }] }, { 'Retry-After': '7' });
    if (path.startsWith('/v2/private/')) {
      return json(401, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }, { 'WWW-Authenticate': 'Bearer realm="http://127.0.0.1:1/token",service="fake",scope="repository:private:pull"' });
    }
    if (path === `/v2/badblob/blobs/${digest}`) {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': blob.length });
      return res.end(req.method === 'HEAD' ? undefined : blob);
    }
    return json(404, { errors: [{ code: 'NAME_UNKNOWN', message: 'no such thing' }] });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return { server, host: `127.0.0.1:${port}`, lies: { blob, digest, manifestDigest }, redirected, seen };
}

describe('registry mirror: real registry, skopeo, podman', { skip: SKIP, timeout: 300_000 }, () => {
  let dir: string;
  let registry: Registry;
  let image: BuiltImage;
  let daemon: Daemon;
  let mirror: string;
  let fake: FakeRegistry;
  let storage: Origin;
  const http = client();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shoal-mirror-'));
    registry = await startRegistry();
    const redirectedBlob = randomBytes(2 * MiB + 3);
    storage = await startOrigin({ files: new Map([['/storage/blob', redirectedBlob]]) });
    fake = await startFakeRegistry(storage, redirectedBlob);
    image = buildImage(join(dir, 'oci'), [1 * MiB + 123, 2 * MiB + 7, 4 * MiB - 5]);
    pushImage(image, registry, 'test/app:1');
    pushImage(image, registry, 'test/app:2');
    daemon = createDaemon({
      data: join(dir, 'data'),
      listen: '127.0.0.1:0',
      mirror: {
        listen: '127.0.0.1:0',
        upstream: registry.url,
        upstreams: [
          { host: registry.host, insecure: true },
          { host: fake.host, insecure: true },
        ],
      },
    });
    await daemon.start();
    mirror = `http://127.0.0.1:${daemon.mirrorPort}`;
    writeFileSync(join(dir, 'registries.conf'), registriesConf(registry.host, `127.0.0.1:${daemon.mirrorPort}`));
  });

  after(async () => {
    await http.agent.close();
    await daemon?.stop();
    await registry?.close();
    await new Promise<void>((resolve) => (fake === undefined ? resolve() : fake.server.close(() => resolve())));
    fake?.server.closeAllConnections();
    await storage?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  test('skopeo copy through the mirror: every blob equals the origin and its digest, and came through Shoal', { timeout: 120_000 }, async () => {
    const out = join(dir, 'skopeo-out');
    const r = await skopeoCopy(`${registry.host}/test/app:1`, out, { registriesConf: join(dir, 'registries.conf') });
    assert.equal(r.code, 0, r.stderr);
    verifyDir(out, image);
    const stats = daemon.stats();
    for (const blob of [image.config, ...image.layers]) {
      assert.equal(registry.blobGets(blob.digest, 'skopeo'), 0, 'skopeo fetched a blob from the registry directly');
      assert.equal(registry.blobGets(blob.digest, 'shoal-mirror'), 1, `blob ${blob.digest} left the registry ${registry.blobGets(blob.digest)} times`);
      const task = tasksOf(stats).find((t) => t.taskId === blob.digest.slice(7));
      assert.ok(task !== undefined, `no daemon task for ${blob.digest}`);
    }
    assert.equal(stats.totals.source, image.layers.reduce((n, l) => n + l.size, image.config.size));
    assert.equal(stats.mirror?.blobs, 4);
    // A second pull is served from the cache: no blob leaves the registry again.
    const again = await skopeoCopy(`${registry.host}/test/app:2`, join(dir, 'skopeo-out2'), { registriesConf: join(dir, 'registries.conf') });
    assert.equal(again.code, 0, again.stderr);
    verifyDir(join(dir, 'skopeo-out2'), image);
    for (const blob of image.layers) assert.equal(registry.blobGets(blob.digest), 1);
  });

  test('serving an image manifest starts its blobs\' downloads before the client asks (prefetch)', { timeout: 60_000 }, async () => {
    const pre = buildImage(join(dir, 'oci-pre'), [1 * MiB + 1, 3 * MiB + 3]);
    pushImage(pre, registry, 'test/pre:1');
    const reply = await http.get(`${mirror}/v2/test/pre/manifests/1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(reply.status, 200);
    const blobs = [pre.config, ...pre.layers];
    const deadline = Date.now() + 30_000;
    const held = (): boolean => blobs.every((b) => daemon.store.get(b.digest.slice(7))?.complete === true);
    while (!held() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(held(), 'the blobs were not downloaded after the manifest was served');
    for (const b of blobs) assert.equal(registry.blobGets(b.digest, 'shoal-mirror'), 1);
    // The client's own request joins what is held: nothing leaves the registry again.
    const layer = await http.get(`${mirror}/v2/test/pre/blobs/${pre.layers[1]!.digest}`);
    assert.equal(layer.status, 200);
    assert.ok(layer.body.equals(pre.blobs.get(pre.layers[1]!.digest)!));
    assert.equal(registry.blobGets(pre.layers[1]!.digest), 1);
  });

  test('blobs: HEAD from the registry, Range 206 and 416, multi-range as 200', async () => {
    const layer = image.layers[1]!;
    const bytes = image.blobs.get(layer.digest)!;
    const url = `${mirror}/v2/test/app/blobs/${layer.digest}`;
    const head = await http.get(url, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(layer.size));
    assert.equal(head.headers['docker-content-digest'], layer.digest);
    assert.equal(head.headers['accept-ranges'], 'bytes');
    const full = await http.get(url);
    assert.equal(full.status, 200);
    assert.equal(full.headers['content-type'], 'application/octet-stream');
    assert.ok(full.body.equals(bytes));
    const part = await http.get(url, { headers: { Range: 'bytes=1000-1999' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers['content-range'], `bytes 1000-1999/${layer.size}`);
    assert.ok(part.body.equals(bytes.subarray(1000, 2000)));
    const tail = await http.get(url, { headers: { Range: 'bytes=-10' } });
    assert.equal(tail.status, 206);
    assert.ok(tail.body.equals(bytes.subarray(bytes.length - 10)));
    const beyond = await http.get(url, { headers: { Range: `bytes=${layer.size}-` } });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers['content-range'], `bytes */${layer.size}`);
    const multi = await http.get(url, { headers: { Range: 'bytes=0-1,10-11' } });
    assert.equal(multi.status, 200);
    assert.equal(multi.body.length, layer.size);
    // An unknown blob: the registry's 404 in the spec's form, and no download.
    const unknown = await http.get(`${mirror}/v2/test/app/blobs/${sha256digest(Buffer.from('nope'))}`);
    assert.equal(unknown.status, 404);
    assert.equal(specError(unknown).code, 'BLOB_UNKNOWN');
  });

  test('manifests byte for byte with Docker-Content-Digest; tags list, referrers and the ping relayed', async () => {
    const accept = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';
    const byTag = await http.get(`${mirror}/v2/test/app/manifests/1`, { headers: { Accept: accept } });
    assert.equal(byTag.status, 200);
    assert.ok(byTag.body.equals(image.manifest));
    assert.equal(byTag.headers['docker-content-digest'], image.manifestDigest);
    assert.equal(byTag.headers['content-type'], 'application/vnd.oci.image.manifest.v1+json');
    const head = await http.get(`${mirror}/v2/test/app/manifests/1`, { method: 'HEAD', headers: { Accept: accept } });
    assert.equal(head.status, 200);
    assert.equal(head.headers['docker-content-digest'], image.manifestDigest);
    assert.equal(head.headers['content-length'], String(image.manifest.length));
    const byDigest = await http.get(`${mirror}/v2/test/app/manifests/${image.manifestDigest}`, { headers: { Accept: accept } });
    assert.ok(byDigest.body.equals(image.manifest));
    const missing = await http.get(`${mirror}/v2/test/app/manifests/nope`, { headers: { Accept: accept } });
    assert.equal(missing.status, 404);
    assert.equal(specError(missing).code, 'MANIFEST_UNKNOWN');
    // containerd names the registry with ns=; it is never forwarded.
    const viaNs = await http.get(`${mirror}/v2/test/app/manifests/1?ns=${registry.host}`, { headers: { Accept: accept } });
    assert.equal(viaNs.status, 200);
    const tags = await http.get(`${mirror}/v2/test/app/tags/list?n=10&ns=${registry.host}`);
    assert.equal(tags.status, 200);
    assert.deepEqual((JSON.parse(tags.body.toString()) as { tags: string[] }).tags.sort(), ['1', '2']);
    assert.ok(registry.accessLog().some((e) => e.path === '/v2/test/app/tags/list?n=10'), 'n was not forwarded');
    assert.ok(!registry.accessLog().some((e) => e.path.includes('ns=')), 'ns reached the registry');
    const referrers = await http.get(`${mirror}/v2/test/app/referrers/${image.manifestDigest}`);
    assert.equal(referrers.status, 404, 'docker-registry 2.8 has no referrers API: its 404 is relayed');
    const ping = await http.get(`${mirror}/v2/`);
    assert.equal(ping.status, 200);
    assert.equal(ping.headers['docker-distribution-api-version'], 'registry/2.0');
  });

  /** Bytes written as they are (HTTP clients normalise paths); resolves with what came back. */
  const raw = (bytes: string): Promise<string> =>
    new Promise<string>((resolve) => {
      const socket = connect(daemon.mirrorPort!, '127.0.0.1');
      let got = '';
      socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
      socket.on('close', () => resolve(got));
      socket.on('error', () => resolve(got));
      socket.write(bytes, 'latin1');
      setTimeout(() => socket.destroy(), 2000).unref();
    });

  test('bad requests get spec errors and the mirror keeps serving', async () => {
    const D = sha256digest(Buffer.from('x'));
    const cases: Array<[string, 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', number, string]> = [
      [`/v2/Upper/manifests/1`, 'GET', 400, 'NAME_INVALID'],
      [`/v2/a//b/blobs/${D}`, 'GET', 400, 'NAME_INVALID'],
      [`/v2/a%2fb/manifests/1`, 'GET', 400, 'NAME_INVALID'],
      [`/v2/${'a'.repeat(256)}/manifests/1`, 'GET', 400, 'NAME_INVALID'],
      [`/v2/a/blobs/sha256:1234`, 'GET', 400, 'DIGEST_INVALID'],
      [`/v2/a/blobs/md5:d41d8cd98f00b204e9800998ecf8427e`, 'GET', 400, 'DIGEST_INVALID'],
      [`/v2/a/manifests/-tag`, 'GET', 400, 'TAG_INVALID'],
      [`/v2/a/blobs/uploads/`, 'POST', 405, 'UNSUPPORTED'],
      [`/v2/a/manifests/1`, 'PUT', 405, 'UNSUPPORTED'],
      [`/v2/a/blobs/uploads/x`, 'PATCH', 405, 'UNSUPPORTED'],
      [`/v2/a/blobs/${D}`, 'DELETE', 405, 'UNSUPPORTED'],
      [`/v2/_catalog`, 'GET', 404, 'UNSUPPORTED'],
      [`/v1/_ping`, 'GET', 404, 'UNSUPPORTED'],
      [`/v2/a/whatever/x`, 'GET', 404, 'UNSUPPORTED'],
      [`/v2/a/manifests/1?x=${'y'.repeat(9000)}`, 'GET', 414, 'UNSUPPORTED'],
    ];
    for (const [path, method, status, code] of cases) {
      const reply = await http.get(`${mirror}${path}`, { method });
      assert.equal(reply.status, status, `${method} ${path.slice(0, 80)}`);
      assert.equal(specError(reply).code, code, `${method} ${path.slice(0, 80)}`);
    }
    // A registry the mirror is not configured for, on plain HTTP or not: refused, nothing asked of it.
    const unlisted = await http.get(`${mirror}/v2/a/manifests/1`, { headers: { 'X-Shoal-Registry': 'http://127.0.0.2:5000' } });
    assert.equal(unlisted.status, 403);
    assert.match(specError(unlisted).message, /UPSTREAM_NOT_ALLOWED/);
    const badNs = await http.get(`${mirror}/v2/a/manifests/1?ns=not%20a%20host`);
    assert.equal(badNs.status, 502);
    // Oversized headers and garbage on the socket.
    const huge = await http.get(`${mirror}/v2/`, { headers: { 'X-Big': 'b'.repeat(20_000) } });
    assert.equal(huge.status, 431);
    for (const garbage of ['\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03', 'GET /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n', '\0\0\0\0\r\n\r\n']) {
      const answer = await raw(garbage);
      assert.match(answer, /^HTTP\/1\.1 400/, JSON.stringify(garbage));
    }
    for (const path of ['/v2/a/../b/manifests/1', '/v2/../../etc/passwd/blobs/' + D, '/v2/a/./b/manifests/1', '/v2/%2e%2e/etc/manifests/1', '/v2/a/%2E%2E/b/manifests/1']) {
      const answer = await raw(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      assert.match(answer, /^HTTP\/1\.1 400 .*"code":"NAME_INVALID"/s, path);
    }
    // Random request lines: every one gets an HTTP answer, none kills the mirror.
    const alphabet = ['/', 'v2', 'a', 'B', '..', '.', '%', '%2F', ':', 'sha256:', 'f'.repeat(64), 'manifests', 'blobs', 'uploads', 'tags', 'list', '?', '&', '=', 'ns', '\\', '~', '@', ' '];
    let seed = 42;
    const next = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let i = 0; i < 150; i++) {
      const path = '/' + Array.from({ length: 1 + next(10) }, () => alphabet[next(alphabet.length)]).join('');
      const method = ['GET', 'HEAD', 'POST', 'OPTIONS', 'BREW'][next(5)]!;
      const answer = await raw(`${method} ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      assert.match(answer, /^HTTP\/1\.1 \d{3} /, `${method} ${path}`);
    }
    const alive = await http.get(`${mirror}/v2/`);
    assert.equal(alive.status, 200);
  });

  test('a lying or oversized registry: refused, relayed or capped, nothing cached', async () => {
    const h = { 'X-Shoal-Registry': fake.host };
    /** Each answer below is the fake registry's: the mirror asked it. */
    const asked = (path: string): void => assert.ok(fake.seen.some((r) => r.path === path), `the mirror never asked the fake registry for ${path}`);
    const big = await http.get(`${mirror}/v2/big/manifests/1`, { headers: h });
    asked('/v2/big/manifests/1');
    assert.equal(big.status, 502);
    assert.equal(specError(big).code, 'MANIFEST_INVALID');
    const chunked = await http.get(`${mirror}/v2/bigchunked/manifests/1`, { headers: h });
    asked('/v2/bigchunked/manifests/1');
    assert.equal(chunked.status, 502);
    assert.equal(specError(chunked).code, 'MANIFEST_INVALID');
    const liar = await http.get(`${mirror}/v2/liar/manifests/${fake.lies.manifestDigest}`, { headers: h });
    asked(`/v2/liar/manifests/${fake.lies.manifestDigest}`);
    assert.equal(liar.status, 502);
    assert.equal(specError(liar).code, 'DIGEST_INVALID');
    // A paginated tags list: n and last forwarded, ns kept in the Link for the next page but never forwarded.
    const paged = await http.get(`${mirror}/v2/paged/tags/list?n=1&ns=${fake.host}&bogus=1`);
    assert.equal(paged.status, 200);
    assert.equal(paged.headers['link'], `</v2/paged/tags/list?last=a&n=1&ns=${encodeURIComponent(fake.host)}>; rel="next"`);
    assert.ok(fake.seen.some((r) => r.path === '/v2/paged/tags/list?n=1'), JSON.stringify(fake.seen.filter((r) => r.path.includes('paged'))));
    const busy = await http.get(`${mirror}/v2/busy/manifests/1`, { headers: h });
    asked('/v2/busy/manifests/1');
    assert.equal(busy.status, 429);
    assert.equal(busy.headers['retry-after'], '7');
    assert.equal(specError(busy).code, 'TOOMANYREQUESTS');
    const priv = await http.get(`${mirror}/v2/private/manifests/1`, { headers: { 'X-Dragonfly-Registry': `http://${fake.host}` } });
    asked('/v2/private/manifests/1');
    assert.equal(priv.status, 401);
    assert.equal(priv.headers['www-authenticate'], 'Bearer realm="http://127.0.0.1:1/token",service="fake",scope="repository:private:pull"');
    // A blob whose bytes do not match its digest: an error, and nothing kept.
    const bad = await http.get(`${mirror}/v2/badblob/blobs/${fake.lies.digest}`, { headers: h });
    asked(`/v2/badblob/blobs/${fake.lies.digest}`);
    assert.equal(bad.status, 502);
    assert.equal(specError(bad).code, 'DIGEST_INVALID');
    const held = daemon.store.get(fake.lies.digest.slice(7));
    assert.ok(held === undefined || (!held.complete && held.digests.size === 0), 'pieces of a bad blob were kept');
    const alive = await http.get(`${mirror}/v2/`);
    assert.equal(alive.status, 200);
  });

  test('registry redirects are followed; Authorization never reaches the other origin', async () => {
    const url = `${mirror}/v2/redir/blobs/${fake.redirected.digest}`;
    const h = { 'X-Shoal-Registry': fake.host, Authorization: 'Bearer secret-token' };
    const head = await http.get(url, { method: 'HEAD', headers: h });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(fake.redirected.blob.length));
    assert.equal(daemon.store.get(fake.redirected.digest.slice(7)), undefined, 'a HEAD downloaded the blob');
    const got = await http.get(url, { headers: h });
    const atStorage = storage.received('/storage/blob');
    assert.ok(atStorage.length >= 2, 'storage was not asked: the redirect was not followed');
    assert.equal(got.status, 200);
    assert.ok(got.body.equals(fake.redirected.blob));
    assert.ok(fake.seen.some((s) => s.path.startsWith('/v2/redir/') && s.authorization === 'Bearer secret-token'), 'the registry did not get the client credentials');
    assert.deepEqual(atStorage.filter((r) => r.headers.authorization !== undefined), [], 'Authorization followed the redirect');
  });

  test('tags go to the registry every time; with tagTtl a mirror answers them from its cache', async () => {
    const accept = 'application/vnd.oci.image.manifest.v1+json';
    const tagRequests = (): number => registry.accessLog().filter((e) => e.path === '/v2/test/app/manifests/1' && e.userAgent.startsWith('shoal-mirror')).length;
    const before = tagRequests();
    for (let i = 0; i < 2; i++) assert.equal((await http.get(`${mirror}/v2/test/app/manifests/1`, { headers: { Accept: accept } })).status, 200);
    assert.equal(tagRequests() - before, 2);
    const cached = createMirror(MirrorSection.parse({ listen: '127.0.0.1:0', upstream: registry.url, tagTtl: '60s' }), { downloads: daemon, upstreams: [], insecure: false });
    await cached.start();
    try {
      const start = tagRequests();
      for (let i = 0; i < 3; i++) {
        const reply = await http.get(`http://127.0.0.1:${cached.port}/v2/test/app/manifests/1`, { headers: { Accept: accept } });
        assert.equal(reply.status, 200);
        assert.ok(reply.body.equals(image.manifest));
      }
      assert.equal(tagRequests() - start, 1, 'tagTtl did not cache the tag');
      assert.equal(cached.stats().manifestsFromCache, 2);
    } finally {
      await cached.stop();
    }
  });

  test('a blob corrupted in the registry: the client gets an error, the daemon keeps nothing, nothing wrong is served', { timeout: 120_000 }, async () => {
    const second = buildImage(join(dir, 'oci-corrupt'), [1 * MiB, 1 * MiB + 1, 2 * MiB]);
    pushImage(second, registry, 'test/corrupt:1');
    const victim = second.layers[1]!;
    const fd = openSync(registry.blobPath(victim.digest), 'r+');
    writeSync(fd, Buffer.from('CORRUPT'), 0, 7, 1000);
    closeSync(fd);
    assert.notEqual(sha256digest(readFileSync(registry.blobPath(victim.digest))), victim.digest, 'the blob in the registry is intact');
    const url = `${mirror}/v2/test/corrupt/blobs/${victim.digest}`;
    for (let i = 0; i < 2; i++) {
      const gets = registry.blobGets(victim.digest, 'shoal-mirror');
      // Streamed as it arrives: a 502 DIGEST_INVALID when nothing went out yet, else a transfer cut short (never a clean end).
      const reply = await http.get(url).catch((err: unknown) => err as Error);
      assert.ok(registry.blobGets(victim.digest, 'shoal-mirror') > gets, 'the mirror did not fetch the corrupt blob from the registry');
      if (!(reply instanceof Error)) {
        assert.equal(reply.status, 502);
        assert.equal(specError(reply).code, 'DIGEST_INVALID');
      }
      const held = daemon.store.get(victim.digest.slice(7));
      assert.ok(held === undefined || (!held.complete && held.digests.size === 0), 'pieces of a corrupt blob were kept');
    }
    const out = join(dir, 'corrupt-out');
    const r = await skopeoCopy(`${registry.host}/test/corrupt:1`, out, { registriesConf: join(dir, 'registries.conf') });
    assert.notEqual(r.code, 0, 'skopeo copied an image with a corrupt layer');
    // A short range of a blob not held is the registry's bytes relayed, as a direct pull would get them; nothing is kept.
    const range = await http.get(url, { headers: { Range: 'bytes=0-9' } });
    assert.equal(range.status, 206);
    assert.ok(range.body.equals(readFileSync(registry.blobPath(victim.digest)).subarray(0, 10)));
    assert.equal(daemon.store.get(victim.digest.slice(7))?.complete ?? false, false);
  });

  test('podman pull through the mirror', { skip: missingTools(['podman']), timeout: 180_000 }, async () => {
    const root = join(dir, 'podman');
    // An image of its own, so every layer goes through the P2P path for podman.
    const own = buildImage(join(dir, 'oci-podman'), [1 * MiB + 11, 2 * MiB, 1 * MiB - 3]);
    pushImage(own, registry, 'test/podman:1');
    const before = registry.accessLog().length;
    const r = await runTool(
      'podman',
      ['--root', join(root, 'root'), '--runroot', join(root, 'run'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'file', 'pull', '--quiet', `${registry.host}/test/podman:1`],
      { env: { CONTAINERS_REGISTRIES_CONF: join(dir, 'registries.conf'), XDG_RUNTIME_DIR: join(root, 'xdg') }, timeoutMs: 150_000 },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^[a-f0-9]{64}\s*$/);
    const direct = registry.accessLog().slice(before).filter((e) => !e.userAgent.startsWith('shoal-mirror') && e.method === 'GET' && e.path.includes('/blobs/'));
    assert.deepEqual(direct, [], 'podman fetched blobs from the registry directly');
    for (const blob of [own.config, ...own.layers]) assert.equal(registry.blobGets(blob.digest, 'shoal-mirror'), 1, `${blob.digest} did not come through Shoal`);
    const inspect = await runTool('podman', ['--root', join(root, 'root'), '--runroot', join(root, 'run'), '--storage-driver', 'vfs', 'image', 'inspect', '--format', '{{.Digest}}', `${registry.host}/test/podman:1`], { timeoutMs: 60_000 });
    assert.equal(inspect.stdout.trim(), own.manifestDigest);
    await runTool('podman', ['--root', join(root, 'root'), '--runroot', join(root, 'run'), '--storage-driver', 'vfs', 'rmi', '-a', '-f'], { timeoutMs: 60_000 });
  });
});

describe('registry mirror: private registry (htpasswd)', { skip: SKIP_AUTH, timeout: 240_000 }, () => {
  const creds = { user: 'shoal', password: 'p2p-secret' };
  let dir: string;
  let registry: Registry;
  let image: BuiltImage;
  let daemon: Daemon;
  let mirror: string;
  const http = client();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shoal-mirror-auth-'));
    registry = await startRegistry({ auth: creds });
    image = buildImage(join(dir, 'oci'), [1 * MiB, 2 * MiB, 1 * MiB + 99]);
    pushImage(image, registry, 'private/app:1', { creds: `${creds.user}:${creds.password}` });
    daemon = createDaemon({ data: join(dir, 'data'), listen: '127.0.0.1:0', mirror: { listen: '127.0.0.1:0', upstream: registry.url } });
    await daemon.start();
    mirror = `http://127.0.0.1:${daemon.mirrorPort}`;
    writeFileSync(join(dir, 'registries.conf'), registriesConf(registry.host, `127.0.0.1:${daemon.mirrorPort}`));
  });

  after(async () => {
    await http.agent.close();
    await daemon?.stop();
    await registry?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  test('with credentials the pull goes through; without them, 401 even for blobs in the P2P cache', { timeout: 120_000 }, async () => {
    const out = join(dir, 'out');
    // Credentials for the mirror's host: containers/image keeps --src-creds for the registry itself.
    const authfile = authFile(join(dir, 'auth.json'), [`127.0.0.1:${daemon.mirrorPort}`], creds.user, creds.password);
    const r = await skopeoCopy(`${registry.host}/private/app:1`, out, { registriesConf: join(dir, 'registries.conf'), authfile });
    assert.equal(r.code, 0, r.stderr);
    verifyDir(out, image);
    const layer = image.layers[0]!;
    assert.equal(registry.blobGets(layer.digest), 1);
    assert.equal(registry.blobGets(layer.digest, 'skopeo'), 0, 'skopeo went to the registry directly');
    const held = daemon.store.get(layer.digest.slice(7));
    assert.ok(held?.complete, `the layer is in the cache: ${JSON.stringify({ complete: held?.complete, pieces: held?.digests.size, tasks: daemon.stats().tasks })}`);

    const url = `${mirror}/v2/private/app/blobs/${layer.digest}`;
    const anonymous = await http.get(url);
    assert.equal(anonymous.status, 401);
    assert.match(String(anonymous.headers['www-authenticate']), /^Basic realm="shoal-test"/);
    assert.equal(specError(anonymous).code, 'UNAUTHORIZED');
    assert.ok(!anonymous.body.includes(image.blobs.get(layer.digest)!.subarray(0, 64)));
    const wrong = await http.get(url, { headers: { Authorization: 'Basic ' + Buffer.from(`${creds.user}:nope`).toString('base64') } });
    assert.equal(wrong.status, 401);
    const headAnon = await http.get(url, { method: 'HEAD' });
    assert.equal(headAnon.status, 401);
    const manifestAnon = await http.get(`${mirror}/v2/private/app/manifests/${image.manifestDigest}`);
    assert.equal(manifestAnon.status, 401, 'a cached manifest was served without credentials');
    const pingAnon = await http.get(`${mirror}/v2/`);
    assert.equal(pingAnon.status, 401);
    assert.match(String(pingAnon.headers['www-authenticate']), /Basic/);

    const good = await http.get(url, { headers: { Authorization: 'Basic ' + Buffer.from(`${creds.user}:${creds.password}`).toString('base64') } });
    assert.equal(good.status, 200);
    assert.ok(good.body.equals(image.blobs.get(layer.digest)!));
    assert.equal(registry.blobGets(layer.digest), 1, 'the cached blob was fetched again');

    const anonymousPull = await skopeoCopy(`${registry.host}/private/app:1`, join(dir, 'out-anon'), { registriesConf: join(dir, 'registries.conf') });
    assert.notEqual(anonymousPull.code, 0, 'a pull without credentials succeeded');
  });

  test('a client naming a registry of its own (ns=, a header) cannot reach a private layer in the cache: the registries are an allowlist', async () => {
    // A registry the attacker runs, which says yes to every access check.
    let asked = 0;
    const evil = createServer((req, res) => {
      asked++;
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': 0 }).end();
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    const evilHost = `127.0.0.1:${(evil.address() as { port: number }).port}`;
    const layer = image.layers[0]!;
    const blob = image.blobs.get(layer.digest)!;
    assert.ok(daemon.store.get(layer.digest.slice(7))?.complete, 'the private layer is in the cache (previous test)');
    // The attack bites where the mirror trusts the registry the client names.
    const trusting = createMirror(MirrorSection.parse({ listen: '127.0.0.1:0', upstream: registry.url, upstreams: [{ host: evilHost, insecure: true }] }), { downloads: daemon, upstreams: [{ host: evilHost, insecure: true }], insecure: false });
    await trusting.start();
    try {
      assert.equal(asked, 0);
      const stolen = await http.get(`http://127.0.0.1:${trusting.port}/v2/private/app/blobs/${layer.digest}?ns=${evilHost}`);
      assert.equal(stolen.status, 200);
      assert.ok(stolen.body.equals(blob), 'with the registry trusted, the private layer goes to anyone');
    } finally {
      await trusting.stop();
    }
    try {
      const before = asked;
      // The daemon's mirror serves the registries it is configured for and no other.
      for (const headers of [{}, { 'X-Shoal-Registry': evilHost }, { 'X-Dragonfly-Registry': `http://${evilHost}` }]) {
        const q = Object.keys(headers).length === 0 ? `?ns=${evilHost}` : '';
        const refused = await http.get(`${mirror}/v2/private/app/blobs/${layer.digest}${q}`, { headers });
        assert.equal(refused.status, 403, JSON.stringify(headers));
        assert.equal(specError(refused).code, 'DENIED');
        assert.match(specError(refused).message, /UPSTREAM_NOT_ALLOWED/);
        assert.ok(!refused.body.includes(blob.subarray(0, 64)));
      }
      assert.equal(asked, before, 'the unlisted registry was never asked');
    } finally {
      evil.closeAllConnections();
      await new Promise<void>((resolve) => evil.close(() => resolve()));
    }
  });
});

describe('registry mirror: HTTPS registry with its own CA', { skip: SKIP, timeout: 120_000 }, () => {
  let dir: string;
  let registry: Registry;
  let image: BuiltImage;
  let daemon: Daemon;
  const http = client();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shoal-mirror-tls-'));
    registry = await startRegistry({ tls: true });
    image = buildImage(join(dir, 'oci'), [1 * MiB, 1 * MiB + 1]);
    pushImage(image, registry, 'secure/app:1');
    writeFileSync(join(dir, 'registry-ca.pem'), TEST_TLS.cert);
    daemon = createDaemon({
      data: join(dir, 'data'),
      listen: '127.0.0.1:0',
      mirror: { listen: '127.0.0.1:0', upstream: registry.host, upstreams: [{ host: registry.host, ca: join(dir, 'registry-ca.pem') }] },
    });
    await daemon.start();
  });

  after(async () => {
    await http.agent.close();
    await daemon?.stop();
    await registry?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  test('the configured CA is trusted for manifests and for blobs through P2P; without it, a clear error', async () => {
    assert.ok(registry.url.startsWith('https://'));
    const mirror = `http://127.0.0.1:${daemon.mirrorPort}`;
    const manifest = await http.get(`${mirror}/v2/secure/app/manifests/1`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(manifest.status, 200);
    assert.ok(manifest.body.equals(image.manifest));
    const layer = image.layers[1]!;
    const blob = await http.get(`${mirror}/v2/secure/app/blobs/${layer.digest}`);
    assert.equal(blob.status, 200);
    assert.ok(blob.body.equals(image.blobs.get(layer.digest)!));
    // The same registry without its CA: TLS fails, and the client is told.
    const untrusting = createMirror(MirrorSection.parse({ listen: '127.0.0.1:0', upstream: `https://${registry.host}` }), { downloads: daemon, upstreams: [], insecure: false });
    await untrusting.start();
    try {
      const reply = await http.get(`http://127.0.0.1:${untrusting.port}/v2/secure/app/manifests/1`);
      assert.equal(reply.status, 502);
      assert.match(specError(reply).message, /SOURCE_NETWORK.*cert/i);
    } finally {
      await untrusting.stop();
    }
  });
});
