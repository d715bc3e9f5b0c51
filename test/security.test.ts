/**
 * The closed-cluster issue's exploits, each as a regression test of real
 * processes: first the attack succeeding where nothing stops it (a cluster
 * without TLS, where every caller is trusted alike), so the test bites; then
 * the same attack failing against a cluster with mutual TLS and roles from
 * certificates (docs/security.md). The mirror's allowlist is tested in
 * test/mirror.test.ts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { request as undiciRequest } from 'undici';
import { taskId } from '../src/common/ids.js';
import { fromConnectError } from '../src/common/rpc-errors.js';
import { PreheatRequestSchema } from '../src/gen/shoal/v1/scheduler_pb.js';
import { loadTls, type TlsMaterial } from '../src/identity/tls.js';
import { attackerClient, fakeSeed } from './fixtures/attacker.js';
import { Cluster, run } from './fixtures/cluster.js';
import { startOrigin, type Origin } from './fixtures/origin.js';
import { until } from './fixtures/wait.js';

const MiB = 1024 * 1024;
const T = { timeout: 120_000 };

function material(dir: string, name: string): TlsMaterial {
  return loadTls({ ca: join(dir, 'ca.crt'), cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) }, ['scheduler', 'seed', 'peer', 'admin']);
}

/** A cluster for one attack: its scheduler (a seed that never comes is given up on after 1 s), and its certificates when secure. */
async function cluster(secure: boolean): Promise<{ cluster: Cluster; scheduler: string; tls: string | undefined }> {
  const c = new Cluster();
  const tls = secure ? await c.secure() : undefined;
  const config = c.path('scheduler.yaml');
  writeFileSync(config, 'seedTimeout: 1s\n');
  const { url } = await c.scheduler(0, ['--config', config]);
  return { cluster: c, scheduler: url, tls };
}

/** Whether a TLS client without a certificate gets any HTTP answer from `port` (it must not). */
function answersWithoutCertificate(port: number, path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`));
    socket.setTimeout(5000, () => socket.destroy());
    socket.once('data', (d: Buffer) => {
      socket.destroy();
      resolve(d.toString('latin1').startsWith('HTTP/1.1'));
    });
    socket.once('error', () => resolve(false));
    socket.once('close', () => resolve(false));
  });
}

/** What an RPC call ends with: undefined (it went through) or the Shoal code of its refusal. */
async function outcome(call: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await call();
    return undefined;
  } catch (err) {
    return fromConnectError(err, 'SCHEDULER_UNREACHABLE').code;
  }
}

describe('closed cluster: the exploits of the security review', T, () => {
  let origin: Origin;
  const real = randomBytes(3 * MiB + 17);
  const secret = randomBytes(2 * MiB + 5);

  before(async () => {
    origin = await startOrigin({
      files: new Map([
        ['/file', real],
        ['/internal/secret', secret],
        ['/private', secret],
        ['/signed', real],
      ]),
      authorization: new Map([['/private', 'Bearer t0ken']]),
    });
  });

  after(() => origin.close());

  for (const secure of [false, true]) {
    describe(secure ? 'with mutual TLS: each attack fails' : 'without TLS: each attack works (the tests bite)', () => {
      it('1. a process announcing itself as a seed with its own digests poisons a download', async () => {
        const { cluster: c, scheduler, tls } = await cluster(secure);
        const url = `${origin.url}/file`;
        const fake = randomBytes(real.length);
        const peer = await c.daemon({ scheduler });
        const outsider = await fakeSeed({ scheduler, taskId: taskId({ url }), content: fake });
        const insider = secure ? await fakeSeed({ scheduler, tls: material(tls!, 'peer'), taskId: taskId({ url }), content: fake }) : undefined;
        try {
          if (secure) {
            assert.equal((await outsider.ended)?.code, 'SCHEDULER_UNREACHABLE', 'no certificate, no TLS session');
            assert.equal((await insider!.ended)?.code, 'ROLE_REQUIRED', 'a peer certificate cannot announce a seed');
          } else {
            await until(() => outsider.commands.some((cmd) => cmd.command.case === 'ack'), 'the scheduler took the fake seed');
          }
          const out = c.path('out');
          const get = c.get(url, out, ['-e', peer.api]);
          assert.equal(await get.exited, 0, get.stderr());
          if (secure) assert.ok(readFileSync(out).equals(real), 'the origin’s bytes');
          else assert.ok(readFileSync(out).equals(fake), 'the attack bites without TLS: the fake seed’s bytes, exit 0');
        } finally {
          await outsider.close();
          await insider?.close();
          await c.close();
        }
      });

      it('2. an unauthenticated Preheat makes a seed fetch an internal URL with injected headers, its piece readable after', async () => {
        const { cluster: c, scheduler, tls } = await cluster(secure);
        try {
          const seed = await c.daemon({ scheduler, seed: true });
          const url = `${origin.url}/internal/secret`;
          const spec = { taskId: taskId({ url }), url, headers: [{ name: 'X-Injected', value: `by-attacker-${String(secure)}` }] };
          const injected = (): number => origin.received('/internal/secret').filter((r) => r.headers['x-injected'] === `by-attacker-${String(secure)}`).length;
          const preheat = (who: TlsMaterial | undefined, tasks = [spec]) =>
            outcome(async () => {
              for await (const p of attackerClient(scheduler, who).preheat(create(PreheatRequestSchema, { tasks, timeoutMs: 30_000 }))) void p;
            });
          // In either mode, a task ID that is not its URL's is refused: the scheduler derives IDs itself.
          const other = { ...spec, taskId: taskId({ url: `${origin.url}/file` }) };
          assert.equal(await preheat(secure ? material(tls!, 'admin') : undefined, [other]), 'USAGE');
          const piece = `/pieces/${spec.taskId}/0`;
          if (!secure) {
            assert.equal(await preheat(undefined), undefined);
            assert.ok(injected() > 0, 'the attack bites: the seed fetched the internal URL with the injected header');
            const res = await undiciRequest(`http://127.0.0.1:${seed.uploadPort}${piece}`);
            assert.equal(res.statusCode, 200);
            assert.ok(Buffer.from(await res.body.arrayBuffer()).equals(secret.subarray(0, 1 * MiB)), 'and its first piece is readable by anyone');
            return;
          }
          assert.equal(await preheat(undefined), 'SCHEDULER_UNREACHABLE', 'no certificate');
          assert.equal(await preheat(material(tls!, 'peer')), 'ROLE_REQUIRED', 'a peer is not an admin');
          assert.equal(await preheat(material(tls!, 'seed')), 'ROLE_REQUIRED', 'nor is a seed');
          assert.equal(injected(), 0, 'the origin was never asked');
          // The upload port answers cluster members only: not plain HTTP, not TLS without a certificate.
          await assert.rejects(undiciRequest(`http://127.0.0.1:${seed.uploadPort}${piece}`, { headersTimeout: 5000 }));
          assert.equal(await answersWithoutCertificate(seed.uploadPort, piece), false);
          // An admin preheats with shoal preheat --scheduler … --tls DIR/admin; a peer's certificate is refused, by name.
          const asPeer = run(['preheat', '--scheduler', scheduler, '--tls', join(tls!, 'peer'), `${origin.url}/file`]);
          assert.equal(await asPeer.exited, 2, 'a peer certificate is not loaded as an admin one');
          assert.match(asPeer.stderr(), /CERT_INVALID: .*has role peer; this needs admin/);
          const asAdmin = run(['preheat', '--scheduler', scheduler, '--tls', join(tls!, 'admin'), `${origin.url}/file`]);
          assert.equal(await asAdmin.exited, 0, asAdmin.stderr());
          assert.match(asAdmin.stderr(), /preheat: all 1 tasks held by seed peers/);
        } finally {
          await c.close();
        }
      });

      it('3. a process announcing itself as a seed receives other users’ credentials in SeedTask', async () => {
        const { cluster: c, scheduler, tls } = await cluster(secure);
        const thief = await fakeSeed({ scheduler, tls: secure ? material(tls!, 'peer') : undefined });
        try {
          if (secure) assert.equal((await thief.ended)?.code, 'ROLE_REQUIRED');
          else await until(() => thief.commands.some((cmd) => cmd.command.case === 'ack'), 'the scheduler took the fake seed');
          const peer = await c.daemon({ scheduler });
          const get = c.get(`${origin.url}/private`, c.path('out'), ['-e', peer.api, '-H', 'Authorization: Bearer t0ken']);
          assert.equal(await get.exited, 0, get.stderr());
          const stolen = thief.commands.flatMap((cmd) => (cmd.command.case === 'seedTask' ? (cmd.command.value.task?.headers ?? []) : [])).filter((h) => h.value === 'Bearer t0ken');
          if (secure) assert.equal(stolen.length, 0, 'no SeedTask reached it');
          else assert.ok(stolen.length > 0, 'the attack bites: the token reached the fake seed');
        } finally {
          await thief.close();
          await c.close();
        }
      });

      it('4. private content: a requester without the credentials, raw piece reads, signed URLs in Stat', async () => {
        const { cluster: c, scheduler, tls } = await cluster(secure);
        try {
          const url = `${origin.url}/private`;
          const a = await c.daemon({ scheduler });
          const b = await c.daemon({ scheduler });
          const first = c.get(url, c.path('a'), ['-e', a.api, '-H', 'Authorization: Bearer t0ken']);
          assert.equal(await first.exited, 0, first.stderr());
          const before = origin.bytesServed('/private');
          // In either mode, another requester gets it only once the origin accepts its own credentials.
          const none = c.get(url, c.path('b'), ['-e', b.api]);
          assert.equal(await none.exited, 6, none.stderr());
          assert.match(none.stderr(), /SOURCE_AUTH/);
          assert.equal(await c.get(url, c.path('b2'), ['-e', b.api, '-H', 'Authorization: Bearer wrong']).exited, 6);
          assert.equal(await c.get(url, c.path('b3'), ['-e', b.api, '-H', 'Authorization: Bearer t0ken']).exited, 0);
          assert.ok(readFileSync(c.path('b3')).equals(secret));
          assert.ok(origin.bytesServed('/private') - before <= 16, 'the checks cost the origin a byte each, not the file');
          // A raw piece read from a holder's upload port.
          const piece = `/pieces/${taskId({ url })}/0`;
          if (!secure) {
            const res = await undiciRequest(`http://127.0.0.1:${a.uploadPort}${piece}`);
            assert.equal(res.statusCode, 200, 'the attack bites: anyone who reaches the port reads a piece of a private file');
            await res.body.dump();
          } else {
            await assert.rejects(undiciRequest(`http://127.0.0.1:${a.uploadPort}${piece}`, { headersTimeout: 5000 }));
            assert.equal(await answersWithoutCertificate(a.uploadPort, piece), false);
          }
          // Signed URL parameters never leave the scheduler; with TLS, Stat is for admins.
          const signed = c.get(`${origin.url}/signed?X-Amz-Signature=c0ffee&X-Amz-Credential=AKIA`, c.path('s'), ['-e', a.api]);
          assert.equal(await signed.exited, 0, signed.stderr());
          let urls = '';
          const stat = (who: TlsMaterial | undefined) =>
            outcome(async () => {
              urls = JSON.stringify((await attackerClient(scheduler, who).stat({})).tasks.map((t) => t.url));
            });
          if (secure) {
            assert.equal(await stat(undefined), 'SCHEDULER_UNREACHABLE');
            assert.equal(await stat(material(tls!, 'peer')), 'ROLE_REQUIRED');
            assert.equal(await stat(material(tls!, 'admin')), undefined);
          } else {
            assert.equal(await stat(undefined), undefined, 'Stat answers anyone without TLS');
          }
          assert.match(urls, /\/signed/);
          assert.doesNotMatch(urls, /c0ffee|AKIA|X-Amz/, 'the signature is redacted in either mode');
        } finally {
          await c.close();
        }
      });
    });
  }

  it('6. nothing listens off loopback without TLS unless --insecure; roles a certificate lacks are named', async () => {
    const c = new Cluster();
    try {
      const refused = run(['scheduler', '--listen', '0.0.0.0:0']);
      assert.equal(await refused.exited, 2);
      assert.match(refused.stderr(), /INSECURE_LISTEN: scheduler would listen on 0\.0\.0\.0:0 without TLS/);
      const daemon = run(['daemon', '--listen', '0.0.0.0:0', '--data', c.path('d'), '--api', c.path('d.sock')]);
      assert.equal(await daemon.exited, 2);
      assert.match(daemon.stderr(), /INSECURE_LISTEN: upload server would listen on 0\.0\.0\.0:0 without TLS/);
      const allowed = run(['scheduler', '--listen', '0.0.0.0:0', '--insecure']);
      c.procs.push(allowed);
      await until(() => /listening on/.test(allowed.stderr()), 'the scheduler with --insecure');
      const tls = await c.secure();
      const secured = run(['scheduler', '--listen', '0.0.0.0:0', '--tls', join(tls, 'scheduler')]);
      c.procs.push(secured);
      await until(() => /listening on/.test(secured.stderr()), 'the scheduler with TLS off loopback');
      const wrongRole = run(['scheduler', '--listen', '127.0.0.1:0', '--tls', join(tls, 'peer')]);
      assert.equal(await wrongRole.exited, 2);
      assert.match(wrongRole.stderr(), /CERT_INVALID: .*peer\.crt has role peer; this needs scheduler/);
      const seedWithPeerCert = run(['daemon', '--seed', '--listen', '127.0.0.1:0', '--data', c.path('e'), '--api', c.path('e.sock'), '--tls', join(tls, 'peer')]);
      assert.equal(await seedWithPeerCert.exited, 2);
      assert.match(seedWithPeerCert.stderr(), /CERT_INVALID: .*has role peer; this needs seed/);
    } finally {
      await c.close();
    }
  });
});
