/** The registry mirror's pure parts: routes and grammar, Range, upstream choice, caches, runtime config files. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { runCli } from '../src/cli/main.js';
import { describe, test } from 'node:test';
import { parse as parseToml } from 'smol-toml';
import { validateConfig } from '../src/common/config/load.js';
import { DaemonConfigSchema } from '../src/common/config/schema.js';
import { ShoalError } from '../src/common/errors.js';
import { ManifestCache, TtlCache } from '../src/daemon/mirror/caches.js';
import { withNs } from '../src/daemon/mirror/passthrough.js';
import { manifestBlobs, PREFETCH_MAX_BLOBS } from '../src/daemon/mirror/prefetch.js';
import { answerRange } from '../src/daemon/content/range.js';
import { isRefusal, route, splitNamespace } from '../src/daemon/mirror/route.js';
import { isValidName } from '../src/daemon/registry/grammar.js';
import { mergeDaemonJson, runtimeConfig } from '../src/daemon/mirror/runtime-config.js';
import { UpstreamResolver, upstreamName } from '../src/daemon/registry/upstream.js';

const D = 'sha256:' + 'a'.repeat(64);

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ShoalError, String(err));
    return err.code;
  }
  return 'none';
}

describe('mirror routes', () => {
  test('pull endpoints', () => {
    assert.deepEqual(route('GET', '/v2/'), { kind: 'base' });
    assert.deepEqual(route('HEAD', '/v2'), { kind: 'base' });
    assert.deepEqual(route('GET', '/v2/library/alpine/manifests/3.20'), { kind: 'manifest', name: 'library/alpine', reference: { kind: 'tag', tag: '3.20' } });
    assert.deepEqual(route('HEAD', `/v2/a/b/c/manifests/${D}`), { kind: 'manifest', name: 'a/b/c', reference: { kind: 'digest', digest: D } });
    assert.deepEqual(route('GET', `/v2/test/app/blobs/${D}`), { kind: 'blob', name: 'test/app', digest: D });
    assert.deepEqual(route('GET', '/v2/test/app/tags/list'), { kind: 'tags', name: 'test/app' });
    assert.deepEqual(route('GET', `/v2/test/app/referrers/${D}`), { kind: 'referrers', name: 'test/app', digest: D });
    // A component named like an endpoint stays part of the name.
    assert.deepEqual(route('GET', '/v2/x/manifests/y/manifests/latest'), { kind: 'manifest', name: 'x/manifests/y', reference: { kind: 'tag', tag: 'latest' } });
  });

  test('name, tag and digest grammar', () => {
    for (const good of ['a', 'a/b', 'foo.bar/baz_qux', 'a__b', 'a---b/c.d', 'x'.repeat(255)]) assert.ok(isValidName(good), good);
    for (const bad of ['', 'A', 'a//b', '/a', 'a/', '..', 'a/../b', 'a/./b', '_a', 'a_', 'a___b', 'a..b', 'a%2fb', 'a b', 'x'.repeat(256)]) {
      assert.ok(!isValidName(bad), bad);
    }
    assert.equal(code(() => route('GET', '/v2/a/../b/manifests/1')), 'NAME_INVALID');
    assert.equal(code(() => route('GET', '/v2/a//b/blobs/' + D)), 'NAME_INVALID');
    assert.equal(code(() => route('GET', '/v2/UPPER/manifests/1')), 'NAME_INVALID');
    assert.equal(code(() => route('GET', '/v2/%2e%2e/manifests/1')), 'NAME_INVALID');
    assert.equal(code(() => route('GET', '/v2/a/manifests/-bad')), 'TAG_INVALID');
    assert.equal(code(() => route('GET', `/v2/a/manifests/${'t'.repeat(129)}`)), 'TAG_INVALID');
    assert.equal(code(() => route('GET', '/v2/a/manifests/sha256:abc')), 'DIGEST_INVALID');
    assert.equal(code(() => route('GET', '/v2/a/blobs/sha512:' + 'a'.repeat(128))), 'DIGEST_INVALID');
    assert.equal(code(() => route('GET', '/v2/a/blobs/' + D.toUpperCase())), 'DIGEST_INVALID');
    assert.equal(code(() => route('GET', '/v2/a/blobs/latest')), 'DIGEST_INVALID');
  });

  test('push and unknown endpoints are refused with the spec code', () => {
    for (const [method, path] of [
      ['POST', '/v2/a/blobs/uploads/'],
      ['PUT', '/v2/a/manifests/1'],
      ['PATCH', '/v2/a/blobs/uploads/123'],
      ['DELETE', `/v2/a/blobs/${D}`],
      ['GET', '/v2/a/blobs/uploads/123'],
    ] as const) {
      const r = route(method, path);
      assert.ok(isRefusal(r) && r.status === 405 && r.code === 'UNSUPPORTED', `${method} ${path}`);
    }
    for (const path of ['/', '/v1/_ping', '/v2/_catalog', '/v2/a/unknown/x', '/healthy']) {
      const r = route('GET', path);
      assert.ok(isRefusal(r) && r.status === 404 && r.code === 'UNSUPPORTED', path);
    }
  });
});

describe('mirror Range', () => {
  test('single ranges, suffixes, open ends', () => {
    assert.deepEqual(answerRange(undefined, 100), { kind: 'full' });
    assert.deepEqual(answerRange('bytes=0-9', 100), { kind: 'partial', start: 0, end: 9 });
    assert.deepEqual(answerRange('bytes=90-', 100), { kind: 'partial', start: 90, end: 99 });
    assert.deepEqual(answerRange('bytes=90-500', 100), { kind: 'partial', start: 90, end: 99 });
    assert.deepEqual(answerRange('bytes=-10', 100), { kind: 'partial', start: 90, end: 99 });
    assert.deepEqual(answerRange('bytes=-500', 100), { kind: 'partial', start: 0, end: 99 });
  });
  test('unsatisfiable, multi-range and malformed', () => {
    assert.deepEqual(answerRange('bytes=100-', 100), { kind: 'unsatisfiable' });
    assert.deepEqual(answerRange('bytes=-0', 100), { kind: 'unsatisfiable' });
    assert.deepEqual(answerRange('bytes=0-0', 0), { kind: 'unsatisfiable' });
    assert.deepEqual(answerRange('bytes=0-1,5-6', 100), { kind: 'full' });
    assert.deepEqual(answerRange('bytes=5-1', 100), { kind: 'full' });
    assert.deepEqual(answerRange('items=0-1', 100), { kind: 'full' });
    assert.deepEqual(answerRange('bytes=x-y', 100), { kind: 'full' });
    assert.deepEqual(answerRange('bytes=-', 100), { kind: 'full' });
  });
});

describe('mirror upstreams', () => {
  const resolver = new UpstreamResolver({
    upstreams: [
      { host: '127.0.0.1:5000', insecure: true },
      { host: 'registry.internal', url: 'https://mirror.internal:8443', ca: 'PEM' },
    ],
    defaultUpstream: 'docker.io',
  });

  test('ns, then the header, then the default', () => {
    const wide = new UpstreamResolver({
      upstreams: [{ host: 'ghcr.io' }, { host: 'quay.io' }, { host: '127.0.0.1:5000', insecure: true }, { host: 'registry.internal', url: 'https://mirror.internal:8443', ca: 'PEM' }],
      defaultUpstream: 'docker.io',
    });
    assert.equal(wide.resolve('ghcr.io', 'quay.io').origin, 'https://ghcr.io');
    assert.equal(wide.resolve(undefined, 'quay.io').origin, 'https://quay.io');
    assert.equal(wide.resolve(undefined, undefined).origin, 'https://registry-1.docker.io');
    assert.equal(wide.resolve('docker.io', undefined).dockerHub, true);
    assert.equal(wide.resolve('index.docker.io', undefined).dockerHub, true, "Docker Hub under any of its names");
    assert.equal(wide.resolve('127.0.0.1:5000', undefined).origin, 'http://127.0.0.1:5000');
    const internal = wide.resolve('registry.internal', undefined);
    assert.equal(internal.origin, 'https://mirror.internal:8443');
    assert.equal(internal.ca, 'PEM');
  });

  test('the registries are an allowlist: one the mirror is not configured for is refused, by ns, header or URL', () => {
    for (const [ns, header] of [['ghcr.io', undefined], ['evil.example:443', undefined], [undefined, 'quay.io'], [undefined, 'https://evil.example'], [undefined, 'https://index.docker.io:444']] as const) {
      assert.equal(code(() => resolver.resolve(ns, header)), 'UPSTREAM_NOT_ALLOWED', `${String(ns)} ${String(header)}`);
    }
    assert.equal(resolver.resolve(undefined, 'https://registry-1.docker.io').dockerHub, true, 'the default is allowed by its URL too');
    // A default given as a URL is on the list as well.
    const byUrl = new UpstreamResolver({ defaultUpstream: 'http://127.0.0.1:5000' });
    assert.equal(byUrl.resolve('127.0.0.1:5000', undefined).origin, 'http://127.0.0.1:5000');
    assert.equal(code(() => byUrl.resolve('127.0.0.1:5001', undefined)), 'UPSTREAM_NOT_ALLOWED');
  });

  test('plain HTTP only when configured; malformed hosts refused', () => {
    assert.equal(code(() => resolver.resolve(undefined, 'http://registry.internal')), 'UPSTREAM_INVALID', 'a configured registry is reached over plain HTTP only if it says insecure');
    assert.equal(code(() => resolver.resolve(undefined, 'http://10.1.2.3:5000')), 'UPSTREAM_NOT_ALLOWED');
    assert.equal(resolver.resolve(undefined, 'http://127.0.0.1:5000').origin, 'http://127.0.0.1:5000');
    for (const bad of ['a b', 'evil.com/path', 'x@y', 'http://a/b', '-a.com', 'a'.repeat(300)]) assert.equal(code(() => resolver.resolve(bad, undefined)), 'UPSTREAM_INVALID', bad);
    assert.equal(code(() => resolver.resolve(undefined, 'https://u:p@host')), 'UPSTREAM_INVALID');
    assert.equal(code(() => new UpstreamResolver({}).resolve(undefined, undefined)), 'UPSTREAM_INVALID');
    assert.equal(code(() => new UpstreamResolver({ upstreams: [{ host: 'r', url: 'http://r' }] })), 'CONFIG_INVALID');
    // The operator's own http:// default is their explicit choice.
    assert.equal(new UpstreamResolver({ defaultUpstream: 'http://127.0.0.1:5000' }).resolve(undefined, undefined).origin, 'http://127.0.0.1:5000');
  });

  test("Docker Hub's official images get library/", () => {
    const hub = resolver.resolve('docker.io', undefined);
    assert.equal(upstreamName(hub, 'alpine'), 'library/alpine');
    assert.equal(upstreamName(hub, 'bitnami/redis'), 'bitnami/redis');
    assert.equal(upstreamName(resolver.resolve('registry.internal', undefined), 'alpine'), 'alpine');
  });

  test('Link headers keep ns', () => {
    assert.equal(withNs('</v2/a/tags/list?last=b&n=2>; rel="next"', '127.0.0.1:5000'), '</v2/a/tags/list?last=b&n=2&ns=127.0.0.1%3A5000>; rel="next"');
    assert.equal(withNs('<https://elsewhere/v2/a>; rel="next"', 'x'), '<https://elsewhere/v2/a>; rel="next"');
  });
});

describe('mirror caches', () => {
  test('manifests: LRU by bytes', () => {
    const cache = new ManifestCache(100);
    const m = (d: string, n: number) => ({ digest: d, body: Buffer.alloc(n), contentType: 't' });
    cache.set(m('a', 40));
    cache.set(m('b', 40));
    cache.get('a');
    cache.set(m('c', 40));
    assert.equal(cache.get('b'), undefined);
    assert.ok(cache.get('a') !== undefined && cache.get('c') !== undefined);
    cache.set(m('huge', 101));
    assert.equal(cache.get('huge'), undefined);
    assert.ok(cache.bytes <= 100);
  });
  test('ttl entries expire; a TTL of 0 keeps nothing', () => {
    let now = 0;
    const cache = new TtlCache<number>(1000, 2, () => now);
    cache.set('a', 1);
    now = 999;
    assert.equal(cache.get('a'), 1);
    now = 1000;
    assert.equal(cache.get('a'), undefined);
    cache.set('a', 1);
    cache.set('b', 2);
    cache.set('c', 3);
    assert.equal(cache.size, 2);
    assert.equal(cache.get('a'), undefined);
    const none = new TtlCache<number>(0, 10);
    none.set('a', 1);
    assert.equal(none.get('a'), undefined);
  });
});

describe('shoal runtime-config', () => {
  test('containerd: hosts.toml per registry and _default, parsed back', () => {
    const files = runtimeConfig({ runtime: 'containerd', mirror: '127.0.0.1:4001', registries: ['docker.io', 'http://127.0.0.1:5000'] });
    assert.deepEqual(files.map((f) => f.path), ['docker.io/hosts.toml', '127.0.0.1:5000/hosts.toml', '_default/hosts.toml']);
    const hub = parseToml(files[0]!.content) as { server: string; host: Record<string, { capabilities: string[]; dial_timeout: string; header: Record<string, string[]> }> };
    assert.equal(hub.server, 'https://registry-1.docker.io');
    const host = hub.host['http://127.0.0.1:4001']!;
    assert.deepEqual(host.capabilities, ['pull', 'resolve']);
    assert.equal(host.dial_timeout, '1s');
    assert.deepEqual(host.header['X-Shoal-Registry'], ['docker.io']);
    assert.equal((parseToml(files[1]!.content) as { server: string }).server, 'http://127.0.0.1:5000');
    const def = parseToml(files[2]!.content) as { server?: string; host: Record<string, { capabilities: string[] }> };
    assert.equal(def.server, undefined);
    assert.deepEqual(def.host['http://127.0.0.1:4001']!.capabilities, ['pull', 'resolve']);
  });

  test('podman: a registries.conf drop-in per registry, the registry in the mirror location, insecure for plain HTTP', () => {
    type Conf = { registry: Array<{ prefix: string; location: string; insecure?: boolean; mirror: Array<{ location: string; insecure: boolean }> }> };
    const files = runtimeConfig({ runtime: 'podman', mirror: '127.0.0.1:4001', registries: ['http://127.0.0.1:5000', 'ghcr.io'] });
    assert.deepEqual(files.map((f) => f.path), ['shoal-mirror-127.0.0.1_5000.conf', 'shoal-mirror-ghcr.io.conf']);
    const local = parseToml(files[0]!.content) as Conf;
    assert.deepEqual(JSON.parse(JSON.stringify(local.registry)), [
      { prefix: '127.0.0.1:5000', location: '127.0.0.1:5000', insecure: true, mirror: [{ location: '127.0.0.1:4001/shoal-ns/127.0.0.1_5000', insecure: true }] },
    ]);
    const ghcr = parseToml(files[1]!.content) as Conf;
    assert.equal(ghcr.registry[0]!.insecure, undefined);
    assert.equal(ghcr.registry[0]!.mirror[0]!.location, '127.0.0.1:4001/shoal-ns/ghcr.io');
    const hub = parseToml(runtimeConfig({ runtime: 'podman' })[0]!.content) as Conf;
    assert.equal(hub.registry[0]!.prefix, 'docker.io');
    assert.equal(hub.registry[0]!.insecure, undefined);
    // --plain-http: a registry given as HOST:PORT is plain HTTP, for containerd and podman alike.
    const plain = parseToml(runtimeConfig({ runtime: 'podman', registries: ['10.0.0.5:5000'], plainHttp: true })[0]!.content) as Conf;
    assert.equal(plain.registry[0]!.insecure, true);
    const server = (parseToml(runtimeConfig({ runtime: 'containerd', registries: ['10.0.0.5:5000'], plainHttp: true })[0]!.content) as { server: string }).server;
    assert.equal(server, 'http://10.0.0.5:5000');
    assert.equal(code(() => runtimeConfig({ runtime: 'podman', registries: ['docker.io'], plainHttp: true })), 'USAGE');
  });

  test('the mirror reads the registry from a shoal-ns/ name prefix', () => {
    assert.deepEqual(splitNamespace('shoal-ns/127.0.0.1_5000/team/app'), { registry: '127.0.0.1:5000', name: 'team/app' });
    assert.deepEqual(splitNamespace('shoal-ns/ghcr.io/app'), { registry: 'ghcr.io', name: 'app' });
    assert.equal(splitNamespace('shoal-ns/ghcr.io'), undefined);
    assert.equal(splitNamespace('team/app'), undefined);
  });

  test('docker: daemon.json merged into an existing one', () => {
    const [file] = runtimeConfig({ runtime: 'docker', mirror: '127.0.0.1:4001' });
    assert.deepEqual(JSON.parse(file!.content), { 'registry-mirrors': ['http://127.0.0.1:4001'], 'insecure-registries': ['127.0.0.1:4001'] });
    const merged = JSON.parse(mergeDaemonJson('{"log-driver":"json-file","registry-mirrors":["https://other"]}', file!.content)) as Record<string, unknown>;
    assert.deepEqual(merged, { 'log-driver': 'json-file', 'registry-mirrors': ['http://127.0.0.1:4001', 'https://other'], 'insecure-registries': ['127.0.0.1:4001'] });
    assert.equal(code(() => mergeDaemonJson('[1]', file!.content)), 'CONFIG_INVALID');
    assert.equal(code(() => runtimeConfig({ runtime: 'docker', registries: ['ghcr.io'] })), 'USAGE');
    assert.equal(code(() => runtimeConfig({ runtime: 'docker', mirror: 'nope' })), 'USAGE');
  });
});

describe('shoal runtime-config (CLI)', () => {
  async function cli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (d: Buffer) => (out += d.toString()));
    stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await runCli(argv, { stdout, stderr, env: {}, signal: new AbortController().signal });
    return { code, stdout: out, stderr: err };
  }

  test('prints, writes, merges daemon.json, and refuses what a runtime cannot do', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shoal-runtime-config-'));
    try {
      const printed = await cli(['runtime-config', 'containerd', '--mirror', '127.0.0.1:4555']);
      assert.equal(printed.code, 0);
      assert.match(printed.stdout, /# \/etc\/containerd\/certs\.d\/docker\.io\/hosts\.toml\n/);
      assert.match(printed.stdout, /\[host\."http:\/\/127\.0\.0\.1:4555"\]/);
      const written = await cli(['runtime-config', 'containerd', '--registry', 'ghcr.io', '--registry', 'http://127.0.0.1:5000', '--dial-timeout', '300ms', '--write', join(dir, 'certs.d')]);
      assert.equal(written.code, 0, written.stderr);
      const ghcr = parseToml(readFileSync(join(dir, 'certs.d/ghcr.io/hosts.toml'), 'utf8')) as { server: string; host: Record<string, { dial_timeout: string }> };
      assert.equal(ghcr.server, 'https://ghcr.io');
      assert.equal(ghcr.host['http://127.0.0.1:4001']!.dial_timeout, '300ms');
      parseToml(readFileSync(join(dir, 'certs.d/127.0.0.1:5000/hosts.toml'), 'utf8'));
      parseToml(readFileSync(join(dir, 'certs.d/_default/hosts.toml'), 'utf8'));
      writeFileSync(join(dir, 'daemon.json'), '{"data-root":"/srv/docker"}');
      assert.equal((await cli(['runtime-config', 'docker', '--write', dir])).code, 0);
      assert.deepEqual(JSON.parse(readFileSync(join(dir, 'daemon.json'), 'utf8')), {
        'data-root': '/srv/docker',
        'registry-mirrors': ['http://127.0.0.1:4001'],
        'insecure-registries': ['127.0.0.1:4001'],
      });
      assert.equal((await cli(['runtime-config', 'podman', '--write', join(dir, 'containers')])).code, 0);
      parseToml(readFileSync(join(dir, 'containers/shoal-mirror-docker.io.conf'), 'utf8'));
      const twoRegistries = await cli(['runtime-config', 'podman', '--registry', 'a.io', '--registry', '10.0.0.5:5000', '--plain-http', '--write', join(dir, 'containers')]);
      assert.equal(twoRegistries.code, 0, twoRegistries.stderr);
      assert.match(readFileSync(join(dir, 'containers/shoal-mirror-10.0.0.5_5000.conf'), 'utf8'), /location = "127\.0\.0\.1:4001\/shoal-ns\/10\.0\.0\.5_5000"/);
      assert.match(readFileSync(join(dir, 'containers/shoal-mirror-a.io.conf'), 'utf8'), /insecure = true/);
      assert.equal((await cli(['runtime-config', 'rkt'])).code, 2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('mirror config', () => {
  test('mirror section: defaults and validation', () => {
    const config = validateConfig(DaemonConfigSchema, { mirror: { listen: '127.0.0.1:4001', upstreams: [{ host: '127.0.0.1:5000', url: 'http://127.0.0.1:5000', insecure: true }] } }, 'f');
    assert.equal(config.mirror?.tagTtl, 0);
    assert.equal(config.mirror?.authTtl, 60_000);
    assert.equal(config.mirror?.manifestCache, 64 * 1024 * 1024);
    assert.equal(validateConfig(DaemonConfigSchema, {}, 'f').mirror, undefined);
    assert.equal(code(() => validateConfig(DaemonConfigSchema, { mirror: { upstreams: [{ host: 'r', url: 'http://r:5000' }] } }, 'f')), 'CONFIG_INVALID');
    assert.equal(code(() => validateConfig(DaemonConfigSchema, { mirror: { listen: 'x' } }, 'f')), 'CONFIG_INVALID');
    assert.equal(code(() => validateConfig(DaemonConfigSchema, { mirror: { tagTTL: '5s' } }, 'f')), 'CONFIG_INVALID');
  });
});

describe('layer prefetch', () => {
  const d = (c: string): string => 'sha256:' + c.repeat(64);
  test('an image manifest names its config and layers, once each; anything else names nothing', () => {
    const oci = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { digest: d('a') }, layers: [{ digest: d('b') }, { digest: d('c') }, { digest: d('b') }] };
    assert.deepEqual(manifestBlobs(Buffer.from(JSON.stringify(oci))), [d('a'), d('b'), d('c')]);
    const index = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ digest: d('d') }] };
    assert.deepEqual(manifestBlobs(Buffer.from(JSON.stringify(index))), []);
    for (const junk of ['', 'null', '[]', '{"layers": 5}', '{"layers": [null, 7, {"digest": "sha512:ab"}, {"digest": "sha256:XYZ"}]}', '{not json']) {
      assert.deepEqual(manifestBlobs(Buffer.from(junk)), [], junk);
    }
    const many = { config: { digest: d('a') }, layers: Array.from({ length: 300 }, (_, i) => ({ digest: 'sha256:' + i.toString(16).padStart(64, '0') })) };
    assert.equal(manifestBlobs(Buffer.from(JSON.stringify(many))).length, PREFETCH_MAX_BLOBS);
  });
});
