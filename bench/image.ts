/**
 * Image pull benchmark (loopback): N hosts pull one multi-layer image at once,
 * straight from a real registry (docker-registry) and then through Shoal's
 * registry mirror (a scheduler, a seed and N peer daemons), in the same run.
 * Prints the time until the last pull is done and the registry's egress as
 * copies of the image.
 *   IMAGE_MIB (default 500, split over 5 layers), IMAGE_HOSTS (default 4)
 * Needs docker-registry and skopeo (Debian packages).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from '../test/fixtures/cluster.js';
import { buildImage, missingTools, pushImage, registriesConf, skopeoCopy, startRegistry } from '../test/fixtures/registry.js';

const MiB = 1024 * 1024;
const total = Number(process.env['IMAGE_MIB'] ?? 500) * MiB;
const hosts = Number(process.env['IMAGE_HOSTS'] ?? 4);
const missing = missingTools(['docker-registry', 'skopeo']);
if (missing !== undefined) {
  console.error(`bench/image: ${missing}`);
  process.exit(2);
}

const dir = mkdtempSync(join(tmpdir(), 'shoal-image-bench-'));
const registry = await startRegistry();
const cluster = new Cluster();
try {
  const layers = [0.35, 0.25, 0.2, 0.15, 0.05].map((f) => Math.round(total * f));
  const image = buildImage(join(dir, 'oci'), layers);
  pushImage(image, registry, 'bench/app:v1');
  const blobs = [image.config, ...image.layers];
  const imageBytes = blobs.reduce((n, b) => n + b.size, 0);
  const egress = (): number => blobs.reduce((n, b) => n + registry.blobGets(b.digest) * b.size, 0);

  async function pullAll(label: string, mirrors: Array<string | undefined>): Promise<void> {
    const before = egress();
    const started = Date.now();
    const times = await Promise.all(
      mirrors.map(async (mirror, i) => {
        const conf = join(dir, `${label}-${i}.conf`);
        writeFileSync(conf, mirror === undefined ? registriesConf(registry.host, []) : registriesConf(registry.host, mirror));
        const r = await skopeoCopy(`${registry.host}/bench/app:v1`, join(dir, `${label}-out-${i}`), { registriesConf: conf, timeoutMs: 900_000 });
        if (r.code !== 0) throw new Error(`${label} pull ${i} failed: ${r.stderr}`);
        return (Date.now() - started) / 1000;
      }),
    );
    const copies = (egress() - before) / imageBytes;
    console.log(`${label.padEnd(6)} ${hosts} hosts, ${(imageBytes / MiB).toFixed(0)} MiB image: last pull ${Math.max(...times).toFixed(1)} s, registry egress ${copies.toFixed(2)} copies`);
  }

  await pullAll('direct', Array.from({ length: hosts }, () => undefined));
  const { url: scheduler } = await cluster.scheduler();
  const mirrorArgs = ['--mirror', '127.0.0.1:0', '--upstream', registry.url];
  await cluster.daemon({ scheduler, seed: true, extra: mirrorArgs });
  const peers = await Promise.all(Array.from({ length: hosts }, () => cluster.daemon({ scheduler, extra: mirrorArgs })));
  const mirrors = peers.map((d) => `127.0.0.1:${/mirror 127\.0\.0\.1:(\d+)/.exec(d.proc.stderr())![1]!}`);
  await pullAll('shoal', mirrors);
} finally {
  await cluster.close();
  await registry.close();
  rmSync(dir, { recursive: true, force: true });
}
