/** `shoal runtime-config containerd|podman|docker`: prints, or with --write DIR writes, the files that point a runtime at the mirror. */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ShoalError } from '../common/errors.js';
import { mergeDaemonJson, runtimeConfig, type Runtime } from '../daemon/mirror/runtime-config.js';
import type { CliIo } from './io.js';

export interface RuntimeConfigFlags {
  mirror?: string;
  registry: string[];
  write?: string;
  dialTimeout?: string;
  plainHttp?: boolean;
}

const RUNTIMES = new Set<string>(['containerd', 'podman', 'docker']);
const WHERE: Record<Runtime, string> = {
  containerd: '/etc/containerd/certs.d (config_path in containerd config.toml)',
  podman: '/etc/containers/registries.conf.d',
  docker: '/etc/docker',
};

export function runRuntimeConfig(runtime: string, flags: RuntimeConfigFlags, io: CliIo): number {
  if (!RUNTIMES.has(runtime)) throw new ShoalError('USAGE', `unknown runtime ${JSON.stringify(runtime)}: containerd, podman or docker`);
  const rt = runtime as Runtime;
  const files = runtimeConfig({ runtime: rt, mirror: flags.mirror, registries: flags.registry, dialTimeout: flags.dialTimeout, plainHttp: flags.plainHttp });
  if (flags.write === undefined) {
    for (const file of files) io.stdout.write(`# ${WHERE[rt].split(' ')[0]}/${file.path}\n${file.content}\n`);
    return 0;
  }
  for (const file of files) {
    const path = join(flags.write, file.path);
    let content = file.content;
    if (file.merge === 'json') {
      let existing = '';
      try {
        existing = readFileSync(path, 'utf8');
      } catch {
        // No file yet.
      }
      content = mergeDaemonJson(existing, content);
    }
    try {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(`${path}.shoal-tmp`, content, { mode: 0o644 });
      renameSync(`${path}.shoal-tmp`, path);
    } catch (err) {
      throw new ShoalError('OUTPUT_UNWRITABLE', `cannot write ${path}: ${(err as Error).message}`);
    }
    io.stderr.write(`wrote ${path}\n`);
  }
  if (rt === 'docker') io.stderr.write('restart dockerd to apply; registry-mirrors apply to Docker Hub only\n');
  if (rt === 'podman') io.stderr.write('podman and skopeo read it on each run; reload CRI-O\n');
  return 0;
}
