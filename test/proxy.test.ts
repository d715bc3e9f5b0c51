/**
 * The daemon's HTTP forward proxy with real clients: curl through it for a
 * rule-matched URL (P2P, Range) and a pass-through one (status, headers and
 * body relayed, hop-by-hop headers stripped both ways, checked on the origin's
 * side), CONNECT to a local TLS server (self-signed with openssl), and
 * garbage: bad request lines, CONNECT to a closed port, requests for the proxy
 * itself, oversized headers, an origin that never answers. The daemon runs in
 * this process as the CLI starts it; curl runs as a child process.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect, createServer as createNetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createDaemon, type Daemon } from '../src/daemon/daemon.js';
import { sha256digest } from './fixtures/hash.js';
import { startOrigin, type Origin } from './fixtures/origin.js';
import { freePort, runTool } from './fixtures/registry.js';
import { tasksOf } from './fixtures/stats.js';
import { until } from './fixtures/wait.js';

const MiB = 1024 * 1024;
const SKIP = spawnSync('sh', ['-c', 'command -v curl && command -v openssl']).status === 0 ? undefined : 'curl and openssl are needed';
/** curl must not skip the proxy for loopback addresses. */
const ENV = { no_proxy: '', NO_PROXY: '', http_proxy: '', https_proxy: '', HTTPS_PROXY: '', ALL_PROXY: '', all_proxy: '' };

/** One raw exchange: bytes in, everything the proxy answers until it closes (or 5 s). */
function raw(port: number, request: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let out = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(out);
    }, 5000);
    socket.on('data', (d: Buffer) => (out += d.toString('latin1')));
    socket.on('error', (err) => {
      clearTimeout(timer);
      if (out !== '') resolve(out);
      else reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
    socket.write(request);
  });
}

function statusOf(answer: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0);
}

describe('HTTP proxy', { skip: SKIP, timeout: 120_000 }, () => {
  let dir: string;
  let origin: Origin;
  let daemon: Daemon;
  let proxy: string;
  let port: number;
  const blob = randomBytes(3 * MiB + 123);
  const digest = sha256digest(blob);
  const blobPath = `/v2/team/app/blobs/${digest}`;
  const model = randomBytes(2 * MiB + 5);
  const files = new Map<string, Buffer>([
    [blobPath, blob],
    ['/models/m.bin', model],
    ['/models/skip.bin', randomBytes(1000)],
    ['/page.txt', Buffer.from('hello through the proxy\n')],
    ['/stall', Buffer.from('never')],
  ]);
  let echo: Server;
  let echoUrl: string;
  let echoSeen: { method: string; headers: IncomingHttpHeaders; body: Buffer } | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shoal-proxy-'));
    origin = await startOrigin({ files });
    // An origin that echoes what it received, for request bodies and methods.
    echo = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        echoSeen = { method: req.method ?? '', headers: req.headers, body };
        res.writeHead(201, { 'content-type': 'text/plain', 'x-echo-sha': sha256digest(body), connection: 'x-resp-hop', 'x-resp-hop': 'gone', 'keep-alive': 'timeout=5', 'x-kept': 'yes' });
        res.end(`got ${body.length} bytes\n`);
      });
    });
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    echoUrl = `http://127.0.0.1:${(echo.address() as { port: number }).port}`;
    daemon = createDaemon({
      data: join(dir, 'data'),
      listen: '127.0.0.1:0',
      proxy: {
        listen: '127.0.0.1:0',
        rules: [{ regex: 'skip\\.bin$', direct: true }, { regex: '\\.bin$' }, { regex: 'blobs/sha256.*' }],
        upstreamTimeout: '1500ms',
        connectTimeout: '1500ms',
        tunnelIdleTimeout: '2s',
      },
    });
    await daemon.start();
    port = daemon.proxyPort!;
    proxy = `http://127.0.0.1:${port}`;
  });

  after(async () => {
    await daemon?.stop();
    await origin?.close();
    await new Promise<void>((resolve) => (echo === undefined ? resolve() : echo.close(() => resolve())));
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  const curl = (args: string[], env: NodeJS.ProcessEnv = {}) => runTool('curl', ['-sS', ...args], { env: { ...ENV, ...env }, timeoutMs: 30_000 });

  test('a rule-matched blob URL comes through P2P: verified by its digest, one origin fetch, Range answered here', async () => {
    const out = join(dir, 'blob');
    const r = await curl(['-o', out, '-D', join(dir, 'blob.h'), `${origin.url}${blobPath}`], { http_proxy: proxy });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(readFileSync(out).equals(blob));
    const head = readFileSync(join(dir, 'blob.h'), 'utf8');
    assert.match(head, /^HTTP\/1\.1 200/);
    assert.match(head, new RegExp(`content-length: ${blob.length}`, 'i'));
    assert.match(head, /^via: 1\.1 shoal-/im);
    assert.match(head, /^x-shoal-task: [0-9a-f]{64}/im);
    // The digest is the task: the same blob again is served from the cache, the origin untouched.
    const again = await curl(['-o', join(dir, 'blob2'), `${origin.url}${blobPath}`], { http_proxy: proxy });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(origin.bytesServed(blobPath), blob.length);
    // Range, from the verified file.
    const part = await curl(['-r', '1000-1999', '-o', join(dir, 'part'), '-w', '%{http_code}', `${origin.url}${blobPath}`], { http_proxy: proxy });
    assert.equal(part.stdout, '206');
    assert.ok(readFileSync(join(dir, 'part')).equals(blob.subarray(1000, 2000)));
    const past = await curl(['-r', `${blob.length}-`, '-o', '/dev/null', '-w', '%{http_code}', `${origin.url}${blobPath}`], { http_proxy: proxy });
    assert.equal(past.stdout, '416');
    assert.equal(origin.requests(blobPath), 1);
    const stats = daemon.stats();
    const task = tasksOf(stats).find((t) => t.taskId === digest.slice(7));
    assert.ok(task !== undefined, JSON.stringify(stats.tasks));
    assert.deepEqual(task.requesters, ['proxy']);
    assert.ok(stats.proxy!.p2p >= 3);
  });

  test('rules: first match decides; direct rules and unmatched URLs pass through', async () => {
    const r = await curl(['-o', join(dir, 'm'), `${origin.url}/models/m.bin`], { http_proxy: proxy });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(readFileSync(join(dir, 'm')).equals(model));
    const before = daemon.stats().proxy!;
    const skip = await curl(['-o', '/dev/null', '-w', '%{http_code}', `${origin.url}/models/skip.bin`], { http_proxy: proxy });
    assert.equal(skip.stdout, '200');
    const after = daemon.stats().proxy!;
    assert.equal(after.p2p, before.p2p, 'a direct rule went through P2P');
    assert.equal(after.passThrough, before.passThrough + 1);
    assert.ok(tasksOf(daemon.stats()).some((t) => t.url.endsWith('/models/m.bin')));
    assert.ok(!tasksOf(daemon.stats()).some((t) => t.url.endsWith('/models/skip.bin')));
  });

  test('pass-through: status, headers and body relayed; hop-by-hop headers stripped both ways; Via added', async () => {
    const page = await curl(['-D', '-', `${origin.url}/page.txt`], { http_proxy: proxy });
    assert.equal(page.code, 0, page.stderr);
    assert.match(page.stdout, /^HTTP\/1\.1 200/);
    assert.match(page.stdout, /hello through the proxy/);
    const missing = await curl(['-o', '/dev/null', '-w', '%{http_code}', `${origin.url}/nope`], { http_proxy: proxy });
    assert.equal(missing.stdout, '404');

    const body = randomBytes(3 * MiB);
    const bodyFile = join(dir, 'upload');
    (await import('node:fs')).writeFileSync(bodyFile, body);
    const r = await curl(
      [
        '-D', join(dir, 'echo.h'),
        '-o', join(dir, 'echo.out'),
        '-X', 'PUT',
        '--data-binary', `@${bodyFile}`,
        '-H', 'Connection: keep-alive, X-Named-Hop',
        '-H', 'X-Named-Hop: secret',
        '-H', 'Keep-Alive: timeout=5',
        '-H', 'Proxy-Authorization: Basic dXNlcjpwYXNz',
        '-H', 'TE: trailers',
        '-H', 'Upgrade: websocket',
        '-H', 'X-End-To-End: kept',
        '-H', 'Authorization: Bearer for-the-origin',
        `${echoUrl}/put?x=1`,
      ],
      { http_proxy: proxy },
    );
    assert.equal(r.code, 0, r.stderr);
    const seen = echoSeen!;
    assert.equal(seen.method, 'PUT');
    assert.equal(sha256digest(seen.body), sha256digest(body), 'the request body changed on the way');
    for (const name of ['x-named-hop', 'keep-alive', 'proxy-authorization', 'proxy-connection', 'te', 'upgrade']) {
      assert.equal(seen.headers[name], undefined, `${name} reached the origin`);
    }
    assert.notEqual(String(seen.headers['connection'] ?? '').toLowerCase(), 'x-named-hop');
    assert.equal(seen.headers['x-end-to-end'], 'kept');
    assert.equal(seen.headers['authorization'], 'Bearer for-the-origin');
    assert.match(String(seen.headers['via']), /^1\.1 shoal-/);
    assert.equal(seen.headers['host'], new URL(echoUrl).host);
    const head = readFileSync(join(dir, 'echo.h'), 'utf8');
    assert.match(head, /^HTTP\/1\.1 201/m);
    assert.match(head, /^x-kept: yes/im);
    assert.match(head, new RegExp(`^x-echo-sha: ${sha256digest(body)}`, 'im'));
    assert.doesNotMatch(head, /^x-resp-hop:/im);
    // The proxy's own Keep-Alive towards the client is its hop's; the origin's (timeout=5) is not relayed.
    assert.doesNotMatch(head, /^keep-alive: timeout=5/im);
    assert.match(head, /^via: 1\.1 shoal-/im);
    assert.equal(readFileSync(join(dir, 'echo.out'), 'utf8'), `got ${body.length} bytes\n`);
  });

  test('CONNECT tunnels TLS untouched to a local HTTPS server (self-signed with openssl)', async () => {
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(made.status, 0, made.stderr);
    const secret = randomBytes(1 * MiB);
    const tls = createHttpsServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-path': req.url ?? '' });
      res.end(secret);
    });
    await new Promise<void>((resolve) => tls.listen(0, '127.0.0.1', resolve));
    try {
      const url = `https://127.0.0.1:${(tls.address() as { port: number }).port}/secret?q=1`;
      const before = daemon.stats().proxy!;
      const viaEnv = await curl(['-k', '-o', join(dir, 'tls1'), '-D', join(dir, 'tls1.h'), url], { https_proxy: proxy });
      assert.equal(viaEnv.code, 0, viaEnv.stderr);
      assert.ok(readFileSync(join(dir, 'tls1')).equals(secret));
      assert.match(readFileSync(join(dir, 'tls1.h'), 'utf8'), /x-path: \/secret\?q=1/i);
      // --proxytunnel -x, and the certificate checked against the real CA file: the proxy did not touch TLS.
      const pinned = await curl(['--cacert', cert, '--proxytunnel', '-x', proxy, '-o', join(dir, 'tls2'), url]);
      assert.equal(pinned.code, 0, pinned.stderr);
      assert.ok(readFileSync(join(dir, 'tls2')).equals(secret));
      assert.equal(daemon.stats().proxy!.tunnels, before.tunnels + 2);
      // Both tunnels end with their clients; a tunnel's bytes are counted when it closes.
      const deadline = Date.now() + 5000;
      while (daemon.stats().proxy!.activeTunnels > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const after = daemon.stats().proxy!;
      assert.equal(after.activeTunnels, 0);
      assert.ok(after.tunnelBytes - before.tunnelBytes > 2 * secret.length);
    } finally {
      tls.closeAllConnections();
      await new Promise<void>((resolve) => tls.close(() => resolve()));
    }
  });

  test('an idle tunnel is closed after the idle timeout, both ends together', async () => {
    // A TCP server that accepts and stays silent.
    const sockets: Socket[] = [];
    const silent = createNetServer((s) => sockets.push(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const target = `127.0.0.1:${(silent.address() as { port: number }).port}`;
      const started = Date.now();
      const answer = await raw(port, `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
      const took = Date.now() - started;
      assert.equal(sockets.length, 1, 'the tunnel never reached the silent server: nothing was idle');
      assert.equal(statusOf(answer), 200, answer);
      assert.ok(took >= 1500 && took < 4900, `tunnel closed after ${took} ms (idle timeout 2 s)`);
      await until(() => sockets[0]!.destroyed, 'the origin side of the tunnel to close', { within: 1_000, every: 10 });
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  test('garbage and loops are refused without harm: bad request lines, CONNECT to a closed port, the proxy itself, huge headers, a silent origin', async () => {
    const closed = await freePort();
    const answers = {
      garbage: await raw(port, 'GARBAGE\r\n\r\n'),
      binary: await raw(port, randomBytes(2000)),
      originForm: await raw(port, 'GET /page.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'),
      badConnect: await raw(port, 'CONNECT nonsense HTTP/1.1\r\n\r\n'),
      closedConnect: await raw(port, `CONNECT 127.0.0.1:${closed} HTTP/1.1\r\nHost: 127.0.0.1:${closed}\r\n\r\n`),
      closedGet: await raw(port, `GET http://127.0.0.1:${closed}/x HTTP/1.1\r\nHost: 127.0.0.1:${closed}\r\nConnection: close\r\n\r\n`),
      selfGet: await raw(port, `GET http://127.0.0.1:${port}/x HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`),
      selfLocalhost: await raw(port, `GET http://localhost:${port}/blobs/sha256:${'a'.repeat(64)} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`),
      selfConnect: await raw(port, `CONNECT 127.0.0.1:${port} HTTP/1.1\r\n\r\n`),
      hugeHeader: await raw(port, `GET ${origin.url}/page.txt HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`),
      longUrl: await raw(port, `GET ${origin.url}/${'a'.repeat(9000)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`),
      badScheme: await raw(port, 'GET ftp://127.0.0.1/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
    };
    assert.equal(statusOf(answers.garbage), 400, answers.garbage);
    assert.equal(statusOf(answers.binary), 400, answers.binary);
    assert.equal(statusOf(answers.originForm), 400, answers.originForm);
    assert.equal(statusOf(answers.badConnect), 400, answers.badConnect);
    assert.equal(statusOf(answers.closedConnect), 502, answers.closedConnect);
    assert.equal(statusOf(answers.closedGet), 502, answers.closedGet);
    assert.equal(statusOf(answers.selfGet), 508, answers.selfGet);
    assert.equal(statusOf(answers.selfLocalhost), 508, answers.selfLocalhost);
    assert.equal(statusOf(answers.selfConnect), 508, answers.selfConnect);
    assert.equal(statusOf(answers.hugeHeader), 431, answers.hugeHeader);
    assert.equal(statusOf(answers.longUrl), 414, answers.longUrl);
    assert.equal(statusOf(answers.badScheme), 400, answers.badScheme);
    assert.match(answers.selfGet, /X-Shoal-Error: PROXY_LOOP/i);

    // An origin that never answers: 504 after the upstream timeout (1.5 s here).
    origin.fault('/stall', { kind: 'stall' });
    const started = Date.now();
    const stalled = await curl(['-o', '/dev/null', '-w', '%{http_code}', `${origin.url}/stall`], { http_proxy: proxy });
    assert.deepEqual(origin.cuts('/stall').map((c) => c.headers), [false], 'the request never reached the origin, or the origin answered');
    assert.equal(stalled.stdout, '504');
    assert.ok(Date.now() - started < 10_000);
    origin.clearFaults();

    // A P2P URL the origin does not have: its 404 comes back.
    const missing = await curl(['-o', '/dev/null', '-w', '%{http_code}', `${origin.url}/v2/x/blobs/sha256:${'b'.repeat(64)}`], { http_proxy: proxy });
    assert.equal(missing.stdout, '404');

    // Still serving.
    const ok = await curl(['-o', '/dev/null', '-w', '%{http_code}', `${origin.url}/page.txt`], { http_proxy: proxy });
    assert.equal(ok.stdout, '200');
    assert.ok(daemon.stats().proxy!.refused >= 10);
  });
});
