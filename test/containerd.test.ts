/**
 * containerd for real (Debian's containerd 1.6, run as root with its own root,
 * state and sockets under a temp dir): hosts.toml written by `shoal
 * runtime-config containerd`, a multi-layer two-platform image pulled with
 * `ctr images pull --hosts-dir` through two daemons (two nodes, two
 * containerds), every blob leaving the registry once; with a node's daemon
 * stopped, containerd falls back to the registry.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../src/cli/main.js';
import { Cluster, type Proc } from './fixtures/cluster.js';
import { sha256digest } from './fixtures/hash.js';
import { buildImage, missingTools, runTool, startRegistry, type BuiltImage, type Registry } from './fixtures/registry.js';

const MiB = 1024 * 1024;
const SKIP =
  missingTools(['containerd', 'ctr', 'docker-registry', 'skopeo']) ?? (process.getuid?.() === 0 ? undefined : 'containerd needs root');

interface Containerd {
  readonly socket: string;
  ctr(args: readonly string[], timeoutMs?: number): Promise<{ code: number | string; stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

/** containerd with everything of its own under `dir`, the CRI plugin off (ctr needs none of it). */
async function startContainerd(dir: string): Promise<Containerd> {
  mkdirSync(dir, { recursive: true });
  const socket = join(dir, 'containerd.sock');
  const config = [
    'version = 2',
    `root = "${join(dir, 'root')}"`,
    `state = "${join(dir, 'state')}"`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]',
    '[grpc]',
    `  address = "${socket}"`,
    '[ttrpc]',
    `  address = "${join(dir, 'containerd.ttrpc.sock')}"`,
    '[debug]',
    '  address = ""',
    '[metrics]',
    '  address = ""',
  ].join('\n');
  writeFileSync(join(dir, 'config.toml'), config);
  const child: ChildProcess = spawn('containerd', ['--config', join(dir, 'config.toml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const killOnExit = (): void => void child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const ctr = (args: readonly string[], timeoutMs = 120_000) => runTool('ctr', ['-a', socket, ...args], { timeoutMs });
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`containerd exited: ${log}`);
    if ((await ctr(['version'], 5_000)).code === 0) break;
    if (Date.now() > deadline) throw new Error(`containerd did not start: ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    socket,
    ctr,
    async stop() {
      process.off('exit', killOnExit);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Two single-platform images (linux/amd64, linux/arm64) of several layers each, under one OCI index tagged `tag`, pushed with skopeo --all. */
function pushTwoPlatforms(dir: string, registry: Registry, ref: string, tag: string): { index: string; blobs: Map<string, Buffer> } {
  const amd = buildImage(join(dir, 'amd64'), [3 * MiB, 1 * MiB + 5, 2 * MiB - 3]);
  const arm = buildImage(join(dir, 'arm64'), [2 * MiB + 1, 1 * MiB]);
  const layout = join(dir, 'index');
  mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
  const blobs = new Map<string, Buffer>();
  for (const img of [amd, arm] as BuiltImage[]) {
    for (const [digest, bytes] of img.blobs) blobs.set(digest, bytes);
    for (const file of readdirSync(join(img.dir, 'blobs', 'sha256'))) copyFileSync(join(img.dir, 'blobs', 'sha256', file), join(layout, 'blobs', 'sha256', file));
  }
  const entry = (img: BuiltImage, architecture: string) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: img.manifestDigest, size: img.manifest.length, platform: { os: 'linux', architecture } });
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [entry(amd, 'amd64'), entry(arm, 'arm64')] }));
  const indexDigest = sha256digest(index);
  writeFileSync(join(layout, 'blobs', 'sha256', indexDigest.slice(7)), index);
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(layout, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', digest: indexDigest, size: index.length, annotations: { 'org.opencontainers.image.ref.name': tag } }] }),
  );
  const r = spawnSync('skopeo', ['copy', '--all', '--quiet', '--dest-tls-verify=false', '--insecure-policy', `oci:${layout}:${tag}`, `docker://${registry.host}/${ref}:${tag}`], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`skopeo push failed: ${r.stderr}`);
  // Config and layer blobs: manifests are not counted as blob GETs.
  for (const img of [amd, arm]) blobs.delete(img.manifestDigest);
  return { index: indexDigest, blobs };
}

async function runtimeConfig(args: string[]): Promise<void> {
  const stderr = new PassThrough();
  let err = '';
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await runCli(['runtime-config', 'containerd', ...args], { stdout: new PassThrough(), stderr, env: {}, signal: new AbortController().signal });
  assert.equal(code, 0, err);
}

describe('containerd pulls through the mirror (ctr --hosts-dir)', { skip: SKIP, timeout: 300_000 }, () => {
  let dir: string;
  let registry: Registry;
  let cluster: Cluster;
  const containerds: Containerd[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shoal-containerd-'));
    registry = await startRegistry();
    cluster = new Cluster();
  });

  after(async () => {
    for (const c of containerds) await c.stop();
    await cluster?.close();
    await registry?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  test('two nodes pull a two-platform image: digests checked by containerd, each blob leaves the registry once; a node whose daemon is down falls back', { timeout: 240_000 }, async (t) => {
    const image = pushTwoPlatforms(join(dir, 'image'), registry, 'team/multi', '1');
    const { url: scheduler } = await cluster.scheduler();
    const mirrorArgs = ['--mirror', '127.0.0.1:0', '--upstream', registry.url];
    const daemons: Array<{ proc: Proc; mirror: string }> = [];
    for (let i = 0; i < 2; i++) {
      const d = await cluster.daemon({ scheduler, extra: mirrorArgs });
      const m = /mirror 127\.0\.0\.1:(\d+)/.exec(d.proc.stderr());
      assert.ok(m !== null, d.proc.stderr());
      daemons.push({ proc: d.proc, mirror: `127.0.0.1:${m[1]}` });
    }
    const ref = `${registry.host}/team/multi:1`;
    for (let i = 0; i < 2; i++) {
      const hosts = join(dir, `certs.d-${i}`);
      await runtimeConfig(['--mirror', daemons[i]!.mirror, '--registry', registry.url, '--write', hosts]);
      const node = await startContainerd(join(dir, `containerd-${i}`));
      containerds.push(node);
      const pull = await node.ctr(['images', 'pull', '--all-platforms', '--hosts-dir', hosts, ref]);
      assert.equal(pull.code, 0, `node ${i}: ${pull.stderr}\n${pull.stdout}`);
      const images = await node.ctr(['images', 'ls']);
      assert.match(images.stdout, new RegExp(`${ref.replace(/[.]/g, '\\.')}\\s+\\S+\\s+${image.index}`), images.stdout);
      const content = (await node.ctr(['content', 'ls', '-q'])).stdout;
      for (const digest of image.blobs.keys()) assert.ok(content.includes(digest), `node ${i} lacks ${digest}`);
    }
    for (const digest of image.blobs.keys()) {
      assert.equal(registry.blobGets(digest, 'containerd'), 0, `containerd bypassed the mirror for ${digest}`);
      assert.equal(registry.blobGets(digest), 1, `blob ${digest} left the registry ${registry.blobGets(digest)} times`);
    }
    t.diagnostic(`${image.blobs.size} blobs, each GET once from the registry for two nodes`);

    // Node 1's daemon stops (the port refuses): containerd falls back to the registry (server).
    await daemons[1]!.proc.kill('SIGKILL');
    const other = pushTwoPlatforms(join(dir, 'image-2'), registry, 'team/other', '1');
    const fallback = await containerds[1]!.ctr(['images', 'pull', '--all-platforms', '--hosts-dir', join(dir, 'certs.d-1'), `${registry.host}/team/other:1`]);
    assert.equal(fallback.code, 0, fallback.stderr);
    for (const digest of other.blobs.keys()) assert.equal(registry.blobGets(digest, 'containerd'), 1, `${digest} not fetched from the registry after the fallback`);
  });
});
