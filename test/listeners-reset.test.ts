/**
 * No listener socket without an error handler (issue 15, item 3): a real
 * `shoal daemon` with the registry mirror and the HTTP proxy, and a real
 * `shoal scheduler`, without TLS and with mutual TLS. Every listener (upload
 * server: HTTP and binary; local API; mirror; proxy, CONNECT tunnels
 * included, both sides; scheduler, h2c or h2) gets connections reset (RST) at
 * every stage: right after connect, mid-request-line, mid-headers, mid-body,
 * mid-response, after a CONNECT (to the proxy itself, a closed port, a live
 * port), mid-TLS-handshake. Then every process must still run and serve a
 * normal request. The case: `curl -p -x http://PROXY http://PROXY/`
 * (a CONNECT to the proxy itself) crashed the daemon with an unhandled
 * 'error' on the CONNECT socket.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { ConnectionOptions } from 'node:tls';
import { create, toBinary } from '@bufbuild/protobuf';
import { requestDownload } from '../src/cli/daemon-client.js';
import { PREFACE, encodeRequest } from '../src/common/wire.js';
import { createSchedulerClient } from '../src/daemon/scheduler-link.js';
import { HostRequestSchema, type HostRequest } from '../src/gen/shoal/v1/scheduler_pb.js';
import { clientTls, loadTls } from '../src/identity/tls.js';
import { AsyncQueue } from '../src/common/async-queue.js';
import { Cluster, type Proc } from './fixtures/cluster.js';
import { startOrigin, type Origin } from './fixtures/origin.js';
import { freePort } from './fixtures/registry.js';
import { cutConnection, cutHttp2Stream, grpcFrame, type Cut, type Listener } from './fixtures/resets.js';
import { statsOf } from './fixtures/stats.js';
import { until } from './fixtures/wait.js';

const MIB = 1024 * 1024;
const blob = randomBytes(2 * MIB);
const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
const files = new Map<string, Buffer>([
  ['/v2/', Buffer.from('{}')],
  ['/small.bin', randomBytes(MIB)],
  ['/slow.bin', randomBytes(8 * MIB)],
  ['/after.bin', randomBytes(3 * MIB)],
  [`/v2/library/img/blobs/${digest}`, blob],
  [`/p2p/blobs/${digest}`, blob],
]);

/** What a normal answer needs: status and body. */
async function get(port: number, path: string, tls?: ConnectionOptions): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const options = { host: '127.0.0.1', port, path, headers: { host: `127.0.0.1:${port}` }, signal: AbortSignal.timeout(20_000) };
    const req = tls === undefined ? httpRequest(options) : httpsRequest({ ...options, ...tls });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function request(method: string, path: string, headers: Record<string, string> = {}, body = ''): string {
  const lines = Object.entries({ Host: '127.0.0.1', ...headers }).map(([k, v]) => `${k}: ${v}\r\n`);
  return `${method} ${path} HTTP/1.1\r\n${lines.join('')}\r\n${body}`;
}

/** The cuts every HTTP/1.1 listener gets; `slow` is a request whose answer takes a while. */
function httpCuts(slow: string): Cut[] {
  return [
    { what: 'right after connect' },
    { what: 'mid-request-line', send: ['GET /heal'] },
    { what: 'mid-headers', send: ['GET /healthy HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Partial: ab'] },
    { what: 'mid-body', send: [request('POST', '/v1/download', { 'Content-Type': 'application/json', 'Content-Length': '1000' }, '{"url":"http://')] },
    { what: 'mid-chunked-body', send: [request('POST', '/v1/download', { 'Transfer-Encoding': 'chunked' }, '40\r\n{"url":')] },
    { what: 'mid-response', send: [slow], at: 'answer' },
    { what: 'right after a request', send: [slow], at: 'sent' },
    { what: 'after two pipelined requests', send: [slow + slow], at: 'sent' },
    { what: 'after a CONNECT', send: [request('CONNECT', '127.0.0.1:1', { Host: '127.0.0.1:1' })], at: 'answer' },
    { what: 'after an Upgrade', send: [request('GET', '/', { Connection: 'Upgrade', Upgrade: 'websocket' })], at: 'answer' },
    { what: 'after garbage', send: [randomBytes(300)], at: 'answer' },
    { what: 'after oversized headers', send: [request('GET', '/', { 'X-Big': 'x'.repeat(20_000) })], at: 'answer' },
  ];
}

/** The cuts a TLS listener gets besides: before and after the handshake. */
const TLS_CUTS: Cut[] = [
  { what: 'mid-TLS-handshake', plain: true, send: [Buffer.from('16030100c8010000c40303', 'hex')] },
  { what: 'plain bytes on a TLS port', plain: true, send: ['GET / HTTP/1.1\r\n\r\n'], at: 'answer' },
  { what: 'right after the handshake', at: 'handshake' },
];

interface Swarm {
  cluster: Cluster;
  origin: Origin;
  procs: Proc[];
  api: string;
  listeners: Record<'upload' | 'api' | 'mirror' | 'proxy' | 'scheduler', Listener>;
  /** The upload port's client options (TLS), the scheduler client's, and a task held with its first piece. */
  uploadTls: ConnectionOptions | undefined;
  schedulerTls: ConnectionOptions | undefined;
  schedulerUrl: string;
  taskId: string;
  /** A port that answers CONNECTs' bytes, and one that resets a tunnel as soon as bytes come. */
  echo: Server;
  resetter: Server;
}

async function tcpServer(onSocket: (socket: Socket) => void): Promise<Server> {
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

function portOf(server: Server): number {
  return (server.address() as { port: number }).port;
}

async function startSwarm(secure: boolean): Promise<Swarm> {
  const cluster = new Cluster();
  if (secure) await cluster.secure();
  const origin = await startOrigin({ files });
  // The slow file: 1 MiB, then nothing (the daemon's download and the proxied GET hang there).
  origin.fault('/slow.bin', { kind: 'stall', afterBytes: MIB });
  const scheduler = await cluster.scheduler();
  const apiPort = await freePort();
  const api = `127.0.0.1:${apiPort}`;
  const daemon = await cluster.daemon({
    scheduler: scheduler.url,
    extra: ['--api', api, '--mirror', '127.0.0.1:0', '--proxy', '127.0.0.1:0', '--upstream', origin.url],
  });
  const line = daemon.proc.stderr();
  const mirror = Number(/mirror 127\.0\.0\.1:(\d+)/.exec(line)?.[1]);
  const proxy = Number(/proxy 127\.0\.0\.1:(\d+)/.exec(line)?.[1]);
  assert.ok(mirror > 0 && proxy > 0, line);
  const tlsOf = (role: 'peer' | 'admin', serverRoles: Array<'peer' | 'seed' | 'scheduler'>): ConnectionOptions | undefined => {
    if (cluster.tlsDir === undefined) return undefined;
    const dir = cluster.tlsDir;
    return clientTls(loadTls({ ca: join(dir, 'ca.crt'), cert: join(dir, `${role}.crt`), key: join(dir, `${role}.key`) }, [role]), serverRoles);
  };
  const uploadTls = tlsOf('peer', ['peer', 'seed']);
  const schedulerTls = tlsOf('peer', ['scheduler']);
  // A task held, so the upload server has a piece to answer with.
  let taskId = '';
  for await (const event of requestDownload(api, { url: `${origin.url}/small.bin`, progress: false }, AbortSignal.timeout(30_000))) {
    if (event.event === 'started') taskId = event.taskId ?? '';
    if (event.event === 'error') assert.fail(`the first download failed: ${JSON.stringify(event.error)}`);
  }
  const echo = await tcpServer((socket) => socket.pipe(socket));
  const resetter = await tcpServer((socket) => socket.once('data', () => socket.resetAndDestroy()));
  return {
    cluster,
    origin,
    procs: [scheduler.proc, daemon.proc],
    api,
    listeners: {
      upload: { name: 'upload server', port: daemon.uploadPort, tls: uploadTls },
      api: { name: 'local API', port: apiPort },
      mirror: { name: 'registry mirror', port: mirror },
      proxy: { name: 'HTTP proxy', port: proxy },
      scheduler: { name: 'scheduler', port: scheduler.port, tls: schedulerTls },
    },
    uploadTls,
    schedulerTls,
    schedulerUrl: scheduler.url,
    taskId,
    echo,
    resetter,
  };
}

function alive(s: Swarm): void {
  for (const p of s.procs) assert.ok(p.child.exitCode === null && p.child.signalCode === null, `a process died:\n${p.stderr().slice(-3000)}`);
}

async function cutAll(s: Swarm, listener: Listener, cuts: readonly Cut[]): Promise<void> {
  for (const cut of cuts) {
    try {
      await cutConnection(listener, cut);
    } catch (err) {
      alive(s);
      throw err;
    }
    alive(s);
  }
}

for (const secure of [false, true]) {
  describe(`every listener survives connections reset at every stage (${secure ? 'mutual TLS' : 'no TLS'})`, { timeout: 240_000 }, () => {
    let s: Swarm;
    after(async () => {
      s?.echo.close();
      s?.resetter.close();
      await s?.cluster.close();
      await s?.origin.close();
    });

    it('starts a scheduler and a daemon with the mirror and the proxy', async () => {
      s = await startSwarm(secure);
      assert.notEqual(s.taskId, '');
    });

    it('the proxy: a CONNECT to itself (curl -p -x PROXY PROXY), to a closed port, to live ports; resets on both sides of a tunnel', async () => {
      const proxy = s.listeners.proxy;
      const closed = await freePort();
      const targets = [`127.0.0.1:${proxy.port}`, `localhost:${proxy.port}`, `127.0.0.1:${closed}`, `127.0.0.1:${portOf(s.echo)}`, `127.0.0.1:${portOf(s.resetter)}`, 'not a host', '127.0.0.1:99999'];
      for (const target of targets) {
        const connect = request('CONNECT', target, { Host: target });
        await cutAll(s, proxy, [
          { what: `CONNECT ${target}, reset at once`, send: [connect], at: 'sent' },
          { what: `CONNECT ${target}, reset after the answer`, send: [connect], at: 'answer' },
          { what: `CONNECT ${target} with bytes behind it`, send: [connect + 'hello through the tunnel'], at: 'answer' },
          { what: `CONNECT ${target}, half its request line`, send: [connect.slice(0, 12)] },
        ]);
      }
      // The tunnel to the live port was made (the test reaches where it means to).
      const echoed = await cutConnection(proxy, { what: 'a tunnel', send: [request('CONNECT', `127.0.0.1:${portOf(s.echo)}`, { Host: 'echo' })], at: 'answer' });
      assert.match(echoed.toString(), /^HTTP\/1\.1 200 /);
      const self = await cutConnection(proxy, { what: 'a CONNECT to itself', send: [request('CONNECT', `127.0.0.1:${proxy.port}`, { Host: 'self' })], at: 'answer' });
      assert.match(self.toString(), /^HTTP\/1\.1 508 /);
      // curl -p -x http://PROXY http://PROXY/: the CONNECT to itself, then the request inside it.
      await cutAll(s, proxy, [{ what: 'curl -p -x PROXY PROXY', send: [request('CONNECT', `127.0.0.1:${proxy.port}`, { Host: `127.0.0.1:${proxy.port}` }), request('GET', '/')], at: 'answer' }]);
      // Pass-through and P2P requests cut mid-way.
      const pass = request('GET', `${s.origin.url}/slow.bin`);
      const p2p = request('GET', `${s.origin.url}/p2p/blobs/${digest}`);
      await cutAll(s, proxy, [
        ...httpCuts(pass),
        { what: 'a P2P GET, waiting', send: [p2p], at: 'sent' },
        { what: 'a P2P GET, mid-response', send: [p2p], at: 'answer' },
        { what: 'a pass-through POST mid-body', send: [request('POST', `${s.origin.url}/small.bin`, { 'Content-Length': '5000' }, 'abc')] },
      ]);
      alive(s);
    });

    it('the upload server: HTTP, the binary protocol, and TLS', async () => {
      const upload = s.listeners.upload;
      const piece = `/pieces/${s.taskId}/0`;
      const raw = Buffer.from(s.taskId, 'hex');
      await cutAll(s, upload, [
        ...httpCuts(request('GET', piece)),
        { what: 'binary: half the preface', send: [PREFACE.subarray(0, 4)] },
        { what: 'binary: preface, half a request', send: [PREFACE, encodeRequest(raw, 0).subarray(0, 17)] },
        { what: 'binary: mid-answer', send: [Buffer.concat([PREFACE, encodeRequest(raw, 0)])], at: 'answer' },
        { what: 'HTTP: a HEAD', send: [request('HEAD', piece)], at: 'answer' },
        { what: 'binary: eight pipelined, mid-answer', send: [Buffer.concat([PREFACE, ...Array.from({ length: 8 }, () => encodeRequest(raw, 0))])], at: 'answer' },
        { what: 'binary: a WAIT request', send: [Buffer.concat([PREFACE, encodeRequest(raw, 5, true)])], at: 'answer' },
        { what: 'binary: a wrong preface', send: ['\0SHOALP9xxxxxxxx'], at: 'answer' },
        ...(secure ? TLS_CUTS : []),
      ]);
      if (secure) await cutAll(s, { ...upload, name: 'upload server, no client certificate', tls: { ca: s.uploadTls!.ca, checkServerIdentity: () => undefined } }, [{ what: 'a request', send: [request('GET', piece)], at: 'answer' }]);
    });

    it('the local API and the registry mirror', async () => {
      const download = JSON.stringify({ url: `${s.origin.url}/slow.bin` });
      await cutAll(s, s.listeners.api, [
        ...httpCuts(request('POST', '/v1/download', { 'Content-Type': 'application/json', 'Content-Length': String(download.length) }, download)),
        { what: 'mid-stats', send: [request('GET', '/v1/stats')], at: 'answer' },
        { what: 'a preheat', send: [request('POST', '/v1/preheat', { 'Content-Type': 'application/json', 'Content-Length': '37' }, '{"urls":[{"url":"http://origin/x.bin"}]}'.slice(0, 37))], at: 'answer' },
      ]);
      await cutAll(s, s.listeners.mirror, [
        ...httpCuts(request('GET', `/v2/library/img/blobs/${digest}`)),
        { what: 'mid-ping', send: [request('GET', '/v2/')], at: 'answer' },
        { what: 'a HEAD of a blob', send: [request('HEAD', `/v2/library/img/blobs/${digest}`)], at: 'answer' },
      ]);
    });

    it('the scheduler: HTTP/2 cut at every stage', async () => {
      const scheduler = s.listeners.scheduler;
      const announce = toBinary(HostRequestSchema, create(HostRequestSchema, { request: { case: 'announce', value: { host: { id: 'resetting-host', ip: '127.0.0.1', uploadPort: 1 } } } }));
      const grpc = { ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers' };
      await cutAll(s, scheduler, [
        { what: 'right after connect' },
        { what: 'half the HTTP/2 preface', send: ['PRI * HTTP/2.0\r\n'] },
        { what: 'the preface and half a SETTINGS frame', send: [Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from('000006040000', 'hex')])] },
        { what: 'an HTTP/1.1 request', send: [request('GET', '/')], at: 'answer' },
        { what: 'garbage', send: [randomBytes(500)], at: 'answer' },
        ...(secure ? TLS_CUTS : []),
      ]);
      const frame = grpcFrame(announce);
      assert.equal(await cutHttp2Stream(scheduler, { ...grpc, ':path': '/shoal.v1.Scheduler/SyncHost' }, frame), 200, 'an HTTP/2 stream reaches the scheduler');
      for (const [path, body] of [
        ['/shoal.v1.Scheduler/SyncHost', frame.subarray(0, 7)],
        ['/shoal.v1.Scheduler/SyncHost', frame],
        ['/shoal.v1.Scheduler/AnnouncePeer', frame.subarray(0, 3)],
        ['/shoal.v1.Scheduler/Preheat', frame],
        ['/no/such/method', frame],
      ] as const) {
        await cutHttp2Stream(scheduler, { ...grpc, ':path': path }, body);
        alive(s);
      }
    });

    it('every process still runs and serves a normal request', async () => {
      alive(s);
      const { upload, api, mirror, proxy } = s.listeners;
      assert.equal((await get(api.port, '/healthy')).status, 200, 'local API');
      assert.equal((await get(upload.port, '/healthy', s.uploadTls)).status, 200, 'upload server, HTTP');
      const piece = await get(upload.port, `/pieces/${s.taskId}/0`, s.uploadTls);
      assert.ok(piece.status === 200 && piece.body.equals(files.get('/small.bin')!), 'upload server: a piece');
      assert.equal((await get(mirror.port, '/v2/')).status, 200, 'registry mirror');
      const passed = await get(proxy.port, `${s.origin.url}/small.bin`);
      assert.ok(passed.status === 200 && passed.body.equals(files.get('/small.bin')!), `HTTP proxy: ${passed.status}`);
      // The scheduler: a new host is acknowledged, and the daemon's next download goes through it.
      const requests = new AsyncQueue<HostRequest>();
      requests.push(create(HostRequestSchema, { request: { case: 'announce', value: { host: { id: 'after-resets', ip: '127.0.0.1', uploadPort: 1 } } } }));
      const dir = s.cluster.tlsDir;
      const peerTls = dir === undefined ? undefined : loadTls({ ca: join(dir, 'ca.crt'), cert: join(dir, 'peer.crt'), key: join(dir, 'peer.key') }, ['peer']);
      const commands = createSchedulerClient(s.schedulerUrl, peerTls).syncHost(requests, { signal: AbortSignal.timeout(10_000) });
      const ack = await commands[Symbol.asyncIterator]().next();
      requests.end();
      assert.equal(ack.done, false, 'the scheduler acknowledges a host');
      await until(async () => (await statsOf(s.api)).scheduler.connected, 'the daemon to be connected to its scheduler');
      let done = false;
      for await (const event of requestDownload(s.api, { url: `${s.origin.url}/after.bin`, progress: false }, AbortSignal.timeout(30_000))) {
        if (event.event === 'done') done = event.contentLength === files.get('/after.bin')!.length;
        if (event.event === 'error') assert.fail(`a download after the resets failed: ${JSON.stringify(event.error)}`);
      }
      assert.ok(done, 'a download after the resets completes');
      alive(s);
    });
  });
}
