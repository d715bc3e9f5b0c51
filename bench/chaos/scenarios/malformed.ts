/**
 * Randomized malformed input on every listener: the upload port (raw bytes
 * at its TLS handshake; inside TLS with a member's certificate, HTTP and the
 * binary piece protocol), the local API, the scheduler's RPC, the registry
 * mirror and the HTTP proxy. Each input that reached its listener is a fault
 * that landed. After each one the process must still run, and after each
 * listener's batch every listener must still answer; at the end real
 * downloads through the fuzzed daemon must complete.
 */
import { readFileSync } from 'node:fs';
import { get as httpGet, request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { taskId } from '../../../src/common/ids.js';
import { createSchedulerClient } from '../../../src/daemon/scheduler-link.js';
import { loadTls } from '../../../src/identity/tls.js';
import { MAX_PIPELINE, binaryCase, countResponses, pipelineFlood } from '../fuzz/binary.js';
import { httpCase, type HttpGrammar } from '../fuzz/http.js';
import { deliverRawTls, deliverRpc, rawTlsCase, rpcCase } from '../fuzz/rpc.js';
import { deliver, type Case, type Endpoint } from '../fuzz/send.js';
import type { Rng } from '../rng.js';
import type { Context, Scenario } from '../scenario.js';
import type { Node } from '../swarm.js';
import { KiB, freshFile, swarmArgs } from './common.js';

let target: Node | undefined;

interface Listener {
  readonly name: string;
  /** The process that owns it. */
  readonly owner: () => { alive: boolean; restart: () => Promise<void>; stderr: () => string };
  /** One case, made from `rng`: what it is, and sending it (resolves with whether it reached the listener). */
  make(rng: Rng): { what: string; send: () => Promise<boolean> };
  /** Answers a well-formed request (within a bound); a string says how it did not. */
  probe(): Promise<true | string>;
  /** Probe after every case, not only after the batch (a stall passes before the batch ends). */
  readonly probeEachCase?: boolean;
}

function status(call: (done: (s: number | string) => void) => void, within = 5_000): Promise<true | string> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(`no answer within ${within} ms`), within);
    call((s) => {
      clearTimeout(timer);
      resolve(typeof s === 'number' && s < 500 ? true : `answered ${s}`);
    });
  });
}

function apiBody(rng: Rng, originUrl: string): string {
  const url = rng.pick([`${originUrl}/fuzz-missing`, 'ftp://x', 'http://', '', `${originUrl}/${rng.text(300)}`]);
  const fields: Record<string, unknown> = { url };
  if (rng.chance(0.5)) fields['timeoutMs'] = rng.pick([0, -1, 1, 2 ** 31, 2 ** 53, 1e308, 'x']);
  if (rng.chance(0.5)) fields['pieceSize'] = rng.pick([0, 1, 16 * 1024, 2 ** 32, -5, 1.5]);
  if (rng.chance(0.3)) fields['headers'] = rng.pick([[['Range', 'bytes=0-1']], [['a']], 'x', [[1, 2]], Array.from({ length: 2000 }, () => ['X-A', 'b'])]);
  if (rng.chance(0.3)) fields['digest'] = rng.pick(['sha256:' + '0'.repeat(64), 'sha256:zz', 'md5:1']);
  if (rng.chance(0.2)) fields['urls'] = Array.from({ length: rng.pick([0, 1, 2000]) }, () => ({ url }));
  if (rng.chance(0.2)) fields['image'] = { ref: rng.text(50) };
  return JSON.stringify(fields);
}

export const malformed: Scenario = {
  name: 'malformed-input',
  fault: 'randomized malformed frames on every listener (upload HTTP and binary, API, scheduler RPC, mirror, proxy)',
  async prepare(ctx) {
    const originPort = new URL(ctx.swarm.origin.server.url).port;
    target = ctx.swarm.node({ extra: ['--mirror', '127.0.0.1:0', '--proxy', '127.0.0.1:0', '--upstream', `http://127.0.0.1:${originPort}`] });
    ctx.swarm.extras.push(target);
    await target.start();
  },
  async run(ctx) {
    const node = target!;
    const { swarm, sizes } = ctx;
    const tlsFiles = (name: string): { ca: string; cert: string; key: string } => ({
      ca: readFileSync(join(swarm.tlsDir, 'ca.crt'), 'utf8'),
      cert: readFileSync(join(swarm.tlsDir, `${name}.crt`), 'utf8'),
      key: readFileSync(join(swarm.tlsDir, `${name}.key`), 'utf8'),
    });
    const peerTls = tlsFiles('peer');
    const admin = createSchedulerClient(swarm.scheduler.url, loadTls({ ca: join(swarm.tlsDir, 'ca.crt'), cert: join(swarm.tlsDir, 'admin.crt'), key: join(swarm.tlsDir, 'admin.key') }, ['admin']));
    const originUrl = swarm.origin.server.url;
    const probePath = '/malformed-probe.bin';
    freshFile(ctx, probePath, 64 * KiB);
    const known = [taskId({ url: swarm.origin.url(probePath), pieceSize: sizes.pieceBytes })];
    const daemonOwner = () => ({ alive: node.pid !== undefined, restart: () => node.restart(), stderr: () => node.proc.stderr() });
    const schedulerOwner = () => ({ alive: swarm.scheduler.pid !== undefined, restart: () => swarm.scheduler.restart(), stderr: () => swarm.scheduler.proc.stderr() });
    const viaEndpoint = (endpoint: () => Endpoint, make: (rng: Rng) => Case) => (rng: Rng) => {
      const c = make(rng);
      return { what: c.what, send: async () => (await deliver(endpoint(), c)).delivered };
    };
    const uploadTls = (): Endpoint => ({ kind: 'tls', port: node.uploadPort, tls: peerTls });
    const uploadProbe = (): Promise<true | string> =>
      status((done) => {
        const req = httpsRequest({ host: '127.0.0.1', port: node.uploadPort, path: '/healthy', ...peerTls, rejectUnauthorized: false }, (res) => (res.resume(), done(res.statusCode ?? 0)));
        req.on('error', (err) => done(err.message));
        req.end();
      });
    const apiProbe = (): Promise<true | string> =>
      status((done) => {
        const req = request({ socketPath: node.api, path: '/healthy' }, (res) => (res.resume(), done(res.statusCode ?? 0)));
        req.on('error', (err) => done(err.message));
        req.end();
      });
    const http = (port: () => number | undefined, g: HttpGrammar) => viaEndpoint(() => ({ kind: 'tcp', port: port() ?? 0 }), (rng) => httpCase(rng, g));
    const listeners: Listener[] = [
      { name: 'upload port, before TLS', owner: daemonOwner, make: viaEndpoint(() => ({ kind: 'tcp', port: node.uploadPort }), (rng) => httpCase(rng, { targets: ['/healthy'], methods: ['GET'] })), probe: uploadProbe },
      { name: 'upload HTTP (in TLS)', owner: daemonOwner, make: viaEndpoint(uploadTls, (rng) => httpCase(rng, { targets: ['/healthy', `/pieces/${known[0]}/0`, `/pieces/${known[0]}/99999999`, '/pieces/', '/pieces/../../etc/passwd'], methods: ['GET', 'HEAD'] })), probe: uploadProbe },
      { name: 'upload binary (in TLS)', owner: daemonOwner, make: viaEndpoint(uploadTls, (rng) => binaryCase(rng, known)), probe: uploadProbe },
      {
        name: 'local API',
        owner: daemonOwner,
        make: viaEndpoint(() => ({ kind: 'unix', path: node.api }), (rng) => httpCase(rng, { targets: ['/healthy', '/v1/stats', '/v1/download', '/v1/preheat', '/v1/'], methods: ['GET', 'POST'], bodies: Array.from({ length: 20 }, () => apiBody(rng, originUrl)) })),
        probe: apiProbe,
      },
      {
        name: 'scheduler RPC',
        owner: schedulerOwner,
        probeEachCase: true,
        make: (rng) => {
          if (rng.chance(0.2)) {
            const raw = rawTlsCase(rng);
            return { what: raw.what, send: () => deliverRawTls(swarm.scheduler.port, peerTls, raw) };
          }
          const c = rpcCase(rng, originUrl);
          return { what: c.what, send: async () => (await deliverRpc(swarm.scheduler.port, peerTls, c)).delivered };
        },
        probe: async () => {
          const started = performance.now();
          try {
            await admin.stat({}, { timeoutMs: 5_000 });
            const ms = performance.now() - started;
            return ms < 2_000 ? true : `Stat took ${Math.round(ms)} ms`;
          } catch (err) {
            return `Stat failed: ${(err as Error).message}`;
          }
        },
      },
      {
        name: 'registry mirror',
        owner: daemonOwner,
        make: http(() => node.mirrorPort, { targets: ['/v2/', '/v2/library/x/manifests/latest', `/v2/a/b/blobs/sha256:${'0'.repeat(64)}`, '/v2/_catalog', '/v2/x/tags/list?ns=127.0.0.1', '/v2/x/manifests/sha256:zz'], methods: ['GET', 'HEAD'] }),
        probe: () =>
          status((done) => {
            const req = httpGet({ host: '127.0.0.1', port: node.mirrorPort, path: '/v2/' }, (res) => (res.resume(), done(res.statusCode ?? 0)));
            req.on('error', (err) => done(err.message));
          }),
      },
      {
        name: 'HTTP proxy',
        owner: daemonOwner,
        make: http(() => node.proxyPort, { targets: [swarm.origin.url(probePath), `http://127.0.0.1:${node.proxyPort}/`, `127.0.0.1:${node.proxyPort}`, '127.0.0.1:1', `127.0.0.1:${new URL(originUrl).port}`, 'http://[::1', 'x.invalid:443', '*'], methods: ['GET', 'CONNECT', 'HEAD'] }),
        probe: () =>
          status((done) => {
            const req = httpGet({ host: '127.0.0.1', port: node.proxyPort, path: swarm.origin.url(probePath) }, (res) => (res.resume(), done(res.statusCode ?? 0)));
            req.on('error', (err) => done(err.message));
          }),
      },
    ];
    for (const listener of listeners) await fuzz(ctx, listener);
    await pipelineLimit(ctx, uploadTls());
    const own = await ctx.ledger.get(node, probePath, { args: swarmArgs(ctx) });
    const peer = await ctx.ledger.get(ctx.rng.pick(swarm.peers), probePath, { args: swarmArgs(ctx) });
    ctx.expect(own.outcome === 'completed' && peer.outcome === 'completed', `downloads after the malformed input: fuzzed daemon ${own.outcome} ${own.detail}, a peer ${peer.outcome} ${peer.detail}`);
  },
  async cleanup() {
    await target?.kill();
  },
};

/** Sends the listener's cases a few at a time; a death or a listener that stops answering is a finding naming the cases in flight. */
async function fuzz(ctx: Context, listener: Listener): Promise<void> {
  const rng = ctx.rng.fork(listener.name);
  const n = ctx.sizes.fuzzCases;
  let landed = 0;
  let deaths = 0;
  let stalls = 0;
  let next = 0;
  const inFlight = new Map<number, string>();
  /** While the owner is being restarted, no case is sent (it would find nobody listening). */
  let restarting: Promise<void> | undefined;
  const worker = async (): Promise<void> => {
    while (next < n && !ctx.signal.aborted) {
      await restarting;
      const i = next++;
      const caseRng = rng.fork(String(i));
      const c = listener.make(caseRng);
      inFlight.set(i, c.what);
      const delivered = await c.send().catch(() => false);
      if (ctx.fault(`malformed input, ${listener.name}`, delivered, c.what, { quiet: true })) landed++;
      const owner = listener.owner();
      if (!owner.alive && restarting === undefined) {
        if (++deaths > 3) break;
        const cases = [...inFlight.entries()].map(([k, w]) => `#${k} ${w}`).join(' | ');
        if (deaths === 1) ctx.findings.push(`${listener.name}: the process died (seed ${ctx.rng.seed}; cases in flight: ${cases}); its stderr: ${owner.stderr().slice(-600).trim()}`);
        restarting = owner.restart().finally(() => (restarting = undefined));
      }
      if (listener.probeEachCase === true && owner.alive) {
        const answer = await listener.probe();
        if (answer !== true && stalls++ === 0) {
          const cases = [...inFlight.entries()].map(([k, w]) => `#${k} ${w}`).join(' | ');
          ctx.findings.push(`${listener.name}: a well-formed request after malformed input: ${answer} (seed ${ctx.rng.seed}; cases in flight: ${cases})`);
        }
      }
      inFlight.delete(i);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: 8 }, worker));
  const answer = await listener.probe();
  ctx.expect(answer === true, `${listener.name}: after ${n} malformed inputs it does not answer a well-formed request: ${String(answer)}`);
  ctx.notes.push(`${listener.name}: ${landed} of ${n} malformed inputs reached it (${((performance.now() - started) / 1000).toFixed(1)} s)${stalls > 0 ? `; ${stalls} probes failed` : ''}${deaths > 0 ? `; died ${deaths} times` : ''}`);
}

/** More than MAX_PIPELINE requests in one segment is malformed: at most that many are answered before the refusal. */
async function pipelineLimit(ctx: Context, endpoint: Endpoint): Promise<void> {
  const count = 200;
  const d = await deliver(endpoint, pipelineFlood(ctx.rng, count));
  ctx.fault('binary pipeline flood', d.delivered, `${count} requests in one segment`);
  const answers = countResponses(d.answer);
  ctx.expect(answers <= MAX_PIPELINE + 1, `${count} binary requests sent in one segment got ${answers} answers (at most ${MAX_PIPELINE} then a refusal expected)`);
}
