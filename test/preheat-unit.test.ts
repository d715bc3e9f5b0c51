/**
 * Preheat's parts without the swarm of processes: image references and
 * platforms, image resolution against a fake token-auth registry (an index
 * resolved per platform, manifests checked against their digests, a Bearer
 * token fetched from the realm with the caller's Basic credentials), and the
 * scheduler's Preheater driving a Swarm directly.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { RegisterPeerSchema, TaskSpecSchema, type HostCommand, type PeerResponse } from '../src/gen/shoal/v1/scheduler_pb.js';
import { SchedulerConfigSchema, type SchedulerInit } from '../src/common/config/schema.js';
import { silentLogger } from '../src/common/log.js';
import { RegistryClient } from '../src/daemon/registry/client.js';
import { UpstreamResolver } from '../src/daemon/registry/upstream.js';
import { parseBearerChallenge, resolveImage } from '../src/daemon/preheat/image.js';
import { parseImageReference, parsePlatform } from '../src/daemon/preheat/reference.js';
import type { HostInfo } from '../src/scheduler/model.js';
import { Preheater, type PreheatUpdate } from '../src/scheduler/preheat.js';
import { Swarm } from '../src/scheduler/swarm.js';
import { sha256digest as sha256 } from './fixtures/hash.js';

const D = sha256('x');

describe('image references', () => {
  it('parses registry, name, tag and digest as docker pull does', () => {
    assert.deepEqual(parseImageReference('alpine'), { registry: 'docker.io', name: 'alpine', reference: { kind: 'tag', tag: 'latest' } });
    assert.deepEqual(parseImageReference('library/alpine:3.20'), { registry: 'docker.io', name: 'library/alpine', reference: { kind: 'tag', tag: '3.20' } });
    assert.deepEqual(parseImageReference('ghcr.io/org/app:v1'), { registry: 'ghcr.io', name: 'org/app', reference: { kind: 'tag', tag: 'v1' } });
    assert.deepEqual(parseImageReference('127.0.0.1:5000/team/app'), { registry: '127.0.0.1:5000', name: 'team/app', reference: { kind: 'tag', tag: 'latest' } });
    assert.deepEqual(parseImageReference('localhost/app:1'), { registry: 'localhost', name: 'app', reference: { kind: 'tag', tag: '1' } });
    assert.deepEqual(parseImageReference(`reg.io:443/a/b:t@${D}`), { registry: 'reg.io:443', name: 'a/b', reference: { kind: 'digest', digest: D } });
  });

  it('refuses malformed references with the mirror grammar codes', () => {
    const code = (ref: string): string | undefined => {
      try {
        parseImageReference(ref);
        return undefined;
      } catch (err) {
        return (err as { code?: string }).code;
      }
    };
    assert.equal(code('Alpine'), 'NAME_INVALID');
    assert.equal(code('a/../b'), 'NAME_INVALID');
    assert.equal(code('app:bad tag'), 'TAG_INVALID');
    assert.equal(code('app@sha256:1234'), 'DIGEST_INVALID');
    assert.equal(code(''), 'NAME_INVALID');
    assert.equal(code('re_g.io/app'), 'UPSTREAM_INVALID');
  });

  it('parses platforms', () => {
    assert.deepEqual(parsePlatform('linux/amd64'), { os: 'linux', architecture: 'amd64', variant: undefined });
    assert.deepEqual(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
    assert.throws(() => parsePlatform('amd64'), /os\/arch/);
  });

  it('parses Bearer challenges', () => {
    assert.deepEqual(parseBearerChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"'), {
      realm: 'https://auth.example/token',
      service: 'registry.example',
      scope: 'repository:a/b:pull',
    });
    assert.equal(parseBearerChallenge('Basic realm="x"'), undefined);
  });
});

describe('resolveImage against a token-auth registry', () => {
  let server: Server;
  let origin: string;
  const seen: string[] = [];
  const blob = (n: number): { mediaType: string; digest: string; size: number } => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(`layer${n}`), size: 100 + n });
  const manifest = (arch: string): Buffer =>
    Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(`config-${arch}`), size: 10 }, layers: [blob(1), blob(arch === 'amd64' ? 2 : 3), blob(1)] }));
  const amd64 = manifest('amd64');
  const arm64 = manifest('arm64');
  const lying = Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}');
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(amd64), size: amd64.length, platform: { os: 'linux', architecture: 'amd64' } },
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(arm64), size: arm64.length, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256('riscv'), size: 5, platform: { os: 'linux', architecture: 'riscv64' } },
      ],
    }),
  );
  const byRef = new Map<string, Buffer>([
    ['multi', index],
    [sha256(amd64), amd64],
    [sha256(arm64), arm64],
    [sha256('riscv'), lying],
  ]);

  before(async () => {
    server = createServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? '-'}`);
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/token') {
        if (req.headers.authorization !== `Basic ${Buffer.from('u:p').toString('base64')}`) return void res.writeHead(401).end();
        assert.equal(url.searchParams.get('scope'), 'repository:org/app:pull');
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: 'tok123' }));
      }
      if (req.headers.authorization !== 'Bearer tok123') {
        return void res
          .writeHead(401, { 'www-authenticate': `Bearer realm="${origin}/token",service="fake",scope="repository:org/app:pull"`, 'content-type': 'application/json' })
          .end('{"errors":[{"code":"UNAUTHORIZED","message":"auth required"}]}');
      }
      const m = /^\/v2\/org\/app\/manifests\/(.+)$/.exec(url.pathname);
      const body = m === null ? undefined : byRef.get(m[1]!);
      if (body === undefined) return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no"}]}');
      assert.match(String(req.headers.accept), /application\/vnd\.oci\.image\.index\.v1\+json/);
      res.writeHead(200, { 'content-type': (JSON.parse(body.toString()) as { mediaType: string }).mediaType, 'content-length': body.length }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });

  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const resolve = async (ref: string, platform: string, headers: Array<[string, string]> = [['Authorization', `Basic ${Buffer.from('u:p').toString('base64')}`]]) => {
    const client = new RegistryClient({ timeoutMs: 5000 });
    try {
      const upstream = new UpstreamResolver({ defaultUpstream: origin }).resolve(undefined, undefined);
      return await resolveImage({ ref: parseImageReference(ref), upstream, platform: parsePlatform(platform), headers, client, signal: AbortSignal.timeout(10_000) });
    } finally {
      await client.close();
    }
  };

  it('an index resolves to the platform manifest: config and layers once each, with the token for the blobs', async () => {
    const image = await resolve('127.0.0.1:1/org/app:multi', 'linux/amd64');
    assert.equal(image.indexDigest, sha256(index));
    assert.equal(image.manifestDigest, sha256(amd64));
    assert.equal(image.platform, 'linux/amd64');
    assert.deepEqual(
      image.blobs.map((b) => b.digest),
      [sha256('config-amd64'), sha256('layer1'), sha256('layer2')],
    );
    assert.ok(image.blobHeaders.some(([n, v]) => n === 'Authorization' && v === 'Bearer tok123'));
    assert.ok(seen.some((s) => s.startsWith('GET /token')));
    const arm = await resolve('127.0.0.1:1/org/app:multi', 'linux/arm64');
    assert.equal(arm.manifestDigest, sha256(arm64));
    assert.equal(arm.platform, 'linux/arm64');
  });

  it('fails clearly: no such platform, a manifest that does not match its digest, a missing tag, bad credentials', async () => {
    await assert.rejects(resolve('127.0.0.1:1/org/app:multi', 'windows/amd64'), (err: Error & { code?: string }) => err.code === 'PLATFORM_UNKNOWN');
    await assert.rejects(resolve('127.0.0.1:1/org/app:multi', 'linux/riscv64'), (err: Error & { code?: string }) => err.code === 'DIGEST_MISMATCH');
    await assert.rejects(resolve('127.0.0.1:1/org/app:nope', 'linux/amd64'), (err: Error & { code?: string }) => err.code === 'SOURCE_NOT_FOUND' && /MANIFEST_UNKNOWN/.test(err.message));
    await assert.rejects(resolve('127.0.0.1:1/org/app:multi', 'linux/amd64', []), (err: Error & { code?: string }) => err.code === 'SOURCE_AUTH');
  });
});

describe('Preheater (scheduler)', () => {
  const deps = { logger: silentLogger, now: Date.now };
  const newSwarm = (): Swarm => {
    const swarm = new Swarm(SchedulerConfigSchema.parse({ recoveryWindow: '0ms' }), deps);
    void swarm.start();
    return swarm;
  };
  /** A preheater polling every 10 ms, with the schema's other preheat settings but for `preheat`. */
  const newPreheater = (swarm: Swarm, preheat: SchedulerInit['preheat'] = {}): Preheater => new Preheater(swarm, SchedulerConfigSchema.parse({ preheat: { pollInterval: '10ms', ...preheat } }).preheat, deps);
  const info = (id: string, seed: boolean): HostInfo => ({ id, hostname: id, ip: '10.0.0.1', port: 4000, idc: '', location: '', seed, uploadSlots: 64, uploadLoad: 0, uploadRate: 0, identity: '' });
  const spec = (n: number) => create(TaskSpecSchema, { taskId: String(n).repeat(64).slice(0, 64), url: `http://origin/${n}` });

  async function collect(iterable: AsyncIterable<PreheatUpdate>): Promise<PreheatUpdate[]> {
    const out: PreheatUpdate[] = [];
    for await (const u of iterable) out.push(u);
    return out;
  }

  it('asks the seed with a preheat SeedTask, reports progress, done when the seed finishes, and failures the seed reports', async () => {
    const swarm = newSwarm();
    const commands: HostCommand[] = [];
    swarm.announceHost(info('seed', true), (c) => commands.push(c), []);
    swarm.announceHost(info('peer', false), () => undefined, []);
    const preheater = newPreheater(swarm);
    const a = spec(1);
    const b = spec(2);
    const run = collect(preheater.run([a, b, a], 0, AbortSignal.timeout(5000)));
    const seedTasks = commands.filter((c) => c.command.case === 'seedTask').map((c) => c.command.value as { task: { taskId: string }; preheat: boolean });
    assert.deepEqual(
      seedTasks.map((s) => [s.task.taskId, s.preheat]),
      [
        [a.taskId, true],
        [b.taskId, true],
      ],
    );
    // The seed registers both; a finishes, b fails at the origin.
    const responses: PeerResponse[] = [];
    const pa = swarm.register(create(RegisterPeerSchema, { peerId: 'seed/a', hostId: 'seed', task: a }), (r) => responses.push(r))!;
    const pb = swarm.register(create(RegisterPeerSchema, { peerId: 'seed/b', hostId: 'seed', task: b }), (r) => responses.push(r))!;
    swarm.metadata(pa, 4 * 1024 * 1024, 1024 * 1024);
    swarm.piecesFinished(pa, [0, 1], new Uint8Array(64));
    await new Promise((r) => setTimeout(r, 50));
    swarm.piecesFinished(pa, [2, 3], new Uint8Array(64));
    swarm.finished(pa);
    preheater.peerFailed(pb, 'SOURCE_NOT_FOUND', 'origin answered 404');
    swarm.failed(pb, 'SOURCE_NOT_FOUND', 'origin answered 404', 404);
    const updates = await run;
    const ends = updates.filter((u) => u.state !== 'running');
    assert.deepEqual(
      ends.map((u) => [u.taskId, u.state, u.seedHostId, u.completedBytes, u.error?.code]),
      [
        [b.taskId, 'failed', 'seed', 0, 'SOURCE_NOT_FOUND'],
        [a.taskId, 'done', 'seed', 4 * 1024 * 1024, undefined],
      ],
    );
    assert.ok(updates.some((u) => u.taskId === a.taskId && u.state === 'running' && u.completedBytes === 2 * 1024 * 1024), JSON.stringify(updates));
    await swarm.stop();
  });

  it('done at once when a seed already holds the task; SEED_UNAVAILABLE without seeds or when the seed never starts', async () => {
    const swarm = newSwarm();
    const none = await collect(newPreheater(swarm).run([spec(3)], 0, AbortSignal.timeout(5000)));
    assert.deepEqual(
      none.map((u) => [u.state, u.error?.code]),
      [['failed', 'SEED_UNAVAILABLE']],
    );
    const commands: HostCommand[] = [];
    swarm.announceHost(info('seed', true), (c) => commands.push(c), []);
    const p = swarm.register(create(RegisterPeerSchema, { peerId: 'seed/4', hostId: 'seed', task: spec(4) }), () => undefined)!;
    swarm.metadata(p, 10, 1024 * 1024);
    swarm.finished(p);
    const held = await collect(newPreheater(swarm).run([spec(4)], 0, AbortSignal.timeout(5000)));
    assert.deepEqual(
      held.map((u) => [u.state, u.completedBytes]),
      [['done', 10]],
    );
    assert.equal(commands.length, 0, 'a held task was sent to the seed again');
    const silent = await collect(newPreheater(swarm, { startTimeout: '100ms' }).run([spec(5)], 0, AbortSignal.timeout(5000)));
    assert.equal(silent.at(-1)?.error?.code, 'SEED_UNAVAILABLE');
    assert.match(silent.at(-1)!.error!.message, /did not start the task/);
    const slow = await collect(newPreheater(swarm).run([spec(6)], 100, AbortSignal.timeout(5000)));
    assert.equal(slow.at(-1)?.error?.code, 'TIMEOUT');
    await swarm.stop();
  });

  it('stop() ends every run, and a run asked for after it fails with ABORTED', async () => {
    const swarm = newSwarm();
    swarm.announceHost(info('seed', true), () => undefined, []);
    const preheater = newPreheater(swarm);
    const run = collect(preheater.run([spec(7)], 0, AbortSignal.timeout(5000)));
    await preheater.stop();
    assert.deepEqual((await run).map((u) => u.state), ['running'], 'the run ended without an end state');
    assert.throws(() => preheater.run([spec(8)], 0, AbortSignal.timeout(5000)), (err: Error & { code?: string }) => err.code === 'ABORTED');
    await swarm.stop();
  });
});
