/**
 * deploy/kubernetes, checked offline (no cluster): every object against the
 * Kubernetes API schemas (kubernetes-models, with unknown fields refused),
 * the objects against each other (selectors, Services, ports, probes,
 * Secrets), and every container's command line against Shoal itself: its
 * flags parsed by the real CLI, the config file from the ConfigMap merged
 * and validated by the one schema, every path it uses on a volume, its
 * certificate of the role it needs, and the init container's containerd
 * hosts.toml written by running it.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { after, describe, test } from 'node:test';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import type { IDaemonSetSpec, IStatefulSetSpec } from 'kubernetes-models/apps/v1';
import type { IPodDisruptionBudgetSpec } from 'kubernetes-models/policy/v1';
import type { IContainer, IPodSpec, IServiceSpec } from 'kubernetes-models/v1';
import { runCli } from '../src/cli/main.js';
import { VERSION } from '../src/cli/version.js';
import { daemonInit, schedulerInit, type DaemonFlags, type SchedulerFlags } from '../src/cli/serve.js';
import { validateConfig } from '../src/common/config/load.js';
import { DaemonConfigSchema, SchedulerConfigSchema, type DaemonConfig } from '../src/common/config/schema.js';
import { createCa, issueCert } from '../src/identity/issue.js';
import { ROLES, type Role } from '../src/identity/roles.js';
import { loadTls } from '../src/identity/tls.js';
import { parseFlags, quietIo } from './fixtures/cli-flags.js';
import { kubernetesProblems } from './fixtures/k8s-schema.js';

/** One object of a manifest, as far as every kind shares it. */
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string>; labels?: Record<string, string> };
  spec?: unknown;
  data?: Record<string, string>;
}

/** A StatefulSet or DaemonSet, reduced to what the checks use. */
interface Workload {
  readonly kind: string;
  readonly name: string;
  readonly selector: Record<string, string>;
  readonly labels: Record<string, string>;
  readonly annotations: Record<string, string>;
  readonly pod: IPodSpec;
  readonly serviceName: string | undefined;
  /** Names of the volumeClaimTemplates (StatefulSet). */
  readonly claims: readonly string[];
}

const DIR = join(import.meta.dirname, '../deploy/kubernetes');
const kustomization = parseYaml(readFileSync(join(DIR, 'kustomization.yaml'), 'utf8')) as { namespace: string; resources: string[]; images: unknown };
const docs: Array<{ file: string; doc: K8sObject }> = kustomization.resources.flatMap((file) =>
  parseAllDocuments(readFileSync(join(DIR, file), 'utf8')).map((d) => ({ file, doc: d.toJS() as K8sObject })),
);
const objects = docs.map((d) => d.doc);
const named = (kind: string, name: string): K8sObject | undefined => objects.find((o) => o.kind === kind && o.metadata.name === name);
const NAMESPACE = kustomization.namespace;

function workload(o: K8sObject): Workload {
  const spec = o.spec as IStatefulSetSpec | IDaemonSetSpec;
  const pod = spec.template.spec;
  assert.ok(pod !== undefined, `${o.kind} ${o.metadata.name}: no pod spec`);
  return {
    kind: o.kind,
    name: o.metadata.name,
    selector: spec.selector.matchLabels ?? {},
    labels: spec.template.metadata?.labels ?? {},
    annotations: spec.template.metadata?.annotations ?? {},
    pod,
    serviceName: 'serviceName' in spec ? spec.serviceName : undefined,
    claims: 'volumeClaimTemplates' in spec ? (spec.volumeClaimTemplates ?? []).map((t) => t.metadata?.name ?? '') : [],
  };
}
const workloads = objects.filter((o) => o.kind === 'StatefulSet' || o.kind === 'DaemonSet').map(workload);
const containersOf = (w: Workload): IContainer[] => [...(w.pod.initContainers ?? []), ...w.pod.containers];
const serviceSpec = (o: K8sObject): IServiceSpec => o.spec as IServiceSpec;

/** Where deploy/container/Dockerfile puts the binary. */
const IMAGE_BINARY = /^COPY dist-sea\/shoal (\S+)$/m.exec(readFileSync(join(import.meta.dirname, '../deploy/container/Dockerfile'), 'utf8'))?.[1];

/** The Secrets an operator makes (docs/deployment.md), by the role of the certificate they hold. */
const SECRETS: Record<string, Role> = { 'shoal-tls-scheduler': 'scheduler', 'shoal-tls-seed': 'seed', 'shoal-tls-peer': 'peer' };

const scratch = mkdtempSync(join(tmpdir(), 'shoal-k8s-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A CA and one certificate per role, laid out as the Secrets are (ca.crt, ROLE.crt, ROLE.key). */
const tlsDir = join(scratch, 'tls');
const tlsReady = (async () => {
  await createCa(tlsDir);
  for (const role of ROLES) await issueCert({ dir: tlsDir, name: role, roles: [role] });
})();

const labelsMatch = (selector: Record<string, string> | undefined, labels: Record<string, string>): boolean =>
  selector !== undefined && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);

test('the kustomization lists every manifest, and sets the image tag to the version', () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort();
  assert.deepEqual([...kustomization.resources].sort(), files);
  assert.deepEqual(kustomization.images, [{ name: 'shoal', newTag: VERSION }]);
  for (const w of workloads) for (const c of containersOf(w)) assert.equal(c.image, 'shoal', `${w.name}/${c.name}`);
});

test('every object is valid against the Kubernetes API schemas, with no unknown field', async () => {
  for (const { file, doc } of docs) {
    assert.deepEqual(await kubernetesProblems(doc as unknown as Record<string, unknown>), [], `${file}: ${doc.kind} ${doc.metadata.name}`);
    if (doc.kind !== 'Namespace') assert.equal(doc.metadata.namespace, NAMESPACE, `${file}: ${doc.kind} ${doc.metadata.name}: namespace`);
  }
});

test('selectors, Services, ports, probes, resources and Secrets fit together', () => {
  for (const w of workloads) {
    const name = `${w.kind} ${w.name}`;
    assert.ok(labelsMatch(w.selector, w.labels), `${name}: the selector does not match its pods`);
    if (w.kind === 'StatefulSet') {
      const svc = named('Service', w.serviceName ?? '');
      assert.ok(svc !== undefined, `${name}: no Service ${w.serviceName}`);
      assert.equal(serviceSpec(svc).clusterIP, 'None', `${name}: serviceName is not a headless Service`);
      assert.ok(labelsMatch(serviceSpec(svc).selector, w.labels), `${name}: its Service does not select its pods`);
    }
    assert.equal(w.pod.automountServiceAccountToken, false, `${name}: no API token`);
    const volumes = new Set([...(w.pod.volumes ?? []).map((v) => v.name), ...w.claims]);
    for (const c of containersOf(w)) {
      const where = `${name}/${c.name}`;
      const { requests = {}, limits = {} } = c.resources ?? {};
      assert.ok(requests['cpu'] !== undefined && requests['memory'] !== undefined, `${where}: cpu and memory requests`);
      assert.ok(limits['memory'] !== undefined, `${where}: a memory limit`);
      for (const r of [...Object.keys(requests), ...Object.keys(limits)]) assert.ok(['cpu', 'memory', 'ephemeral-storage'].includes(r), `${where}: resource ${r}`);
      assert.equal(c.securityContext?.allowPrivilegeEscalation, false, where);
      assert.equal(c.securityContext?.readOnlyRootFilesystem, true, where);
      assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL'], where);
      for (const m of c.volumeMounts ?? []) assert.ok(volumes.has(m.name), `${where}: mounts ${m.name}, which is no volume`);
    }
    for (const c of w.pod.containers) {
      const ports = new Set((c.ports ?? []).map((p) => p.name));
      for (const probe of [c.startupProbe, c.readinessProbe, c.livenessProbe]) {
        assert.ok(probe !== undefined, `${name}/${c.name}: a startup, readiness and liveness probe`);
        if (probe.exec !== undefined) continue; // a command: checked with the container's command line
        const port = probe.tcpSocket?.port ?? probe.httpGet?.port;
        assert.ok(typeof port === 'string' && ports.has(port), `${name}/${c.name}: a probe on ${port}, not a named port of the container`);
      }
    }
    for (const v of w.pod.volumes ?? []) {
      if (v.secret === undefined) continue;
      assert.ok((v.secret.secretName ?? '') in SECRETS, `${name}: Secret ${v.secret.secretName} is not one docs/deployment.md tells to make`);
      const mode = v.secret.defaultMode ?? 0o644;
      assert.equal(mode & 0o137, 0, `${name}: Secret files mode ${mode.toString(8)}: no write for the group, nothing for others`);
    }
  }
  for (const svc of objects.filter((o) => o.kind === 'Service')) {
    const pods = workloads.filter((w) => labelsMatch(serviceSpec(svc).selector, w.labels));
    assert.ok(pods.length > 0, `Service ${svc.metadata.name} selects no pods`);
    const portNames = new Set(pods.flatMap((w) => w.pod.containers.flatMap((c) => (c.ports ?? []).map((p) => p.name))));
    for (const p of serviceSpec(svc).ports ?? []) assert.ok(typeof p.targetPort === 'string' && portNames.has(p.targetPort), `Service ${svc.metadata.name}: targetPort ${p.targetPort}`);
  }
  for (const pdb of objects.filter((o) => o.kind === 'PodDisruptionBudget')) {
    const selector = (pdb.spec as IPodDisruptionBudgetSpec).selector?.matchLabels;
    assert.ok(workloads.some((w) => labelsMatch(selector, w.labels)), `PodDisruptionBudget ${pdb.metadata.name} selects no pods`);
  }
  const guide = readFileSync(join(import.meta.dirname, '../docs/deployment.md'), 'utf8');
  for (const secret of Object.keys(SECRETS)) assert.ok(guide.includes(secret), `docs/deployment.md does not say how to make ${secret}`);
});

test('the ConfigMap holds one config file per component, each valid against the schema', () => {
  const data = named('ConfigMap', 'shoal-config')?.data;
  assert.ok(data !== undefined);
  assert.deepEqual(Object.keys(data).sort(), ['daemon.yaml', 'scheduler.yaml', 'seed.yaml']);
  for (const [key, text] of Object.entries(data)) validateConfig(key === 'scheduler.yaml' ? SchedulerConfigSchema : DaemonConfigSchema, parseYaml(text), `shoal-config ${key}`);
  assert.equal(validateConfig(DaemonConfigSchema, parseYaml(data['seed.yaml'] ?? ''), 'seed.yaml').seed, true);
});

interface Mount {
  readonly at: string;
  readonly dir: string;
  readonly readOnly: boolean;
}

/** The container's mounts as directories under `root`: ConfigMap keys and the Secret's certificates written, the rest empty. */
function mountsOf(w: Workload, c: IContainer, root: string): Mount[] {
  return (c.volumeMounts ?? []).map((m) => {
    const dir = join(root, m.name + (m.subPath !== undefined ? `-${m.subPath}` : ''));
    mkdirSync(dir, { recursive: true });
    const volume = (w.pod.volumes ?? []).find((v) => v.name === m.name);
    assert.ok(volume !== undefined || w.claims.includes(m.name), `no volume ${m.name}`);
    if (volume?.configMap !== undefined) {
      const data = named('ConfigMap', volume.configMap.name ?? '')?.data;
      assert.ok(data !== undefined, `no ConfigMap ${volume.configMap.name}`);
      if (m.subPath !== undefined) {
        const text = data[m.subPath];
        assert.ok(text !== undefined, `ConfigMap ${volume.configMap.name} has no ${m.subPath}`);
        writeFileSync(join(dir, 'file'), text);
        return { at: m.mountPath, dir: join(dir, 'file'), readOnly: true };
      }
      for (const [k, v] of Object.entries(data)) writeFileSync(join(dir, k), v);
    }
    if (volume?.secret !== undefined) {
      const role = SECRETS[volume.secret.secretName ?? ''];
      assert.ok(role !== undefined);
      for (const f of ['ca.crt', `${role}.crt`, `${role}.key`]) writeFileSync(join(dir, f), readFileSync(join(tlsDir, f)));
    }
    return { at: m.mountPath, dir, readOnly: m.readOnly === true || volume?.configMap !== undefined || volume?.secret !== undefined };
  });
}

/** Where a path of the container is in the scratch copy of its mounts; fails for a path on no volume. */
function onVolume(mounts: readonly Mount[], path: string, writable: boolean, what: string): string {
  const m = mounts.filter((x) => path === x.at || path.startsWith(`${x.at}/`)).sort((a, b) => b.at.length - a.at.length)[0];
  assert.ok(m !== undefined, `${what} ${path} is on no volume (the root file system is read-only)`);
  assert.ok(!writable || !m.readOnly, `${what} ${path} is on a read-only volume`);
  return m.dir + path.slice(m.at.length);
}

/** The container's args with `$(VAR)` expanded from its downward-API env, as the kubelet does. */
function argsOf(c: IContainer): string[] {
  const values: Record<string, string> = { 'status.podIP': '10.244.1.7', 'status.hostIP': '10.0.0.7' };
  return (c.args ?? []).map((arg) =>
    arg.replace(/\$\(([A-Z_]+)\)/g, (_, name: string) => {
      const field = c.env?.find((e) => e.name === name)?.valueFrom?.fieldRef?.fieldPath;
      const value = field === undefined ? undefined : values[field];
      assert.ok(value !== undefined, `${c.name}: $(${name}) is not set from the pod's fields`);
      return value;
    }),
  );
}

const portOf = (hostPort: string): number => Number(hostPort.slice(hostPort.lastIndexOf(':') + 1));
const isLoopback = (hostPort: string): boolean => /^(127\.|\[::1\]|localhost)/.test(hostPort);

/** The daemon's settings as `shoal daemon` with these args and mounts would take them. */
async function daemonSettings(c: IContainer, mounts: readonly Mount[]): Promise<DaemonConfig> {
  const flags = (await parseFlags(argsOf(c))) as DaemonFlags;
  return validateConfig(DaemonConfigSchema, daemonInit({ ...flags, config: onVolume(mounts, String(flags.config), false, '--config') }, {}), c.name);
}

async function checkRuntimeConfig(w: Workload, c: IContainer, root: string): Promise<void> {
  const args = argsOf(c);
  const flags = await parseFlags(args);
  const target = String(flags['write']);
  const out = onVolume(mountsOf(w, c, root), target, true, '--write');
  const io = quietIo();
  assert.equal(await runCli(args.map((a) => (a === target ? out : a)), io), 0, io.err());
  const daemon = w.pod.containers[0];
  assert.ok(daemon !== undefined);
  const config = await daemonSettings(daemon, mountsOf(w, daemon, join(root, 'daemon')));
  assert.equal(flags['mirror'], config.mirror?.listen, 'the hosts.toml points at another address than the mirror listens on');
  const served = new Set([config.mirror?.upstream, ...(config.mirror?.upstreams ?? []).map((u) => u.host)]);
  const registries = flags['registry'] as string[];
  assert.ok(registries.length > 0);
  for (const registry of registries) {
    assert.ok(served.has(registry), `hosts.toml for ${registry}, which the mirror does not serve`);
    assert.match(readFileSync(join(out, registry, 'hosts.toml'), 'utf8'), new RegExp(`\\[host\\."http://${String(flags['mirror']).replace(/\./g, '\\.')}"\\]`));
  }
}

async function checkService(w: Workload, c: IContainer, root: string): Promise<void> {
  const mounts = mountsOf(w, c, root);
  const args = argsOf(c);
  const isDaemon = args[0] === 'daemon';
  assert.ok(isDaemon || args[0] === 'scheduler', `unexpected command ${args[0]}`);
  const flags = await parseFlags(args);
  const configFile = onVolume(mounts, String(flags['config']), false, '--config');
  const daemon = isDaemon ? await daemonSettings(c, mounts) : undefined;
  const scheduler = isDaemon ? undefined : validateConfig(SchedulerConfigSchema, schedulerInit({ ...(flags as SchedulerFlags), config: configFile }, {}), c.name);
  const common = daemon ?? scheduler;
  assert.ok(common !== undefined);
  const ports = new Map((c.ports ?? []).map((p) => [p.name, p.containerPort]));

  // Mutual TLS, with a certificate of the role this component needs, from its Secret.
  const tls = common.tls;
  assert.ok(tls !== undefined, 'no tls: every listener off loopback needs it');
  const roles: Role[] = daemon === undefined ? ['scheduler'] : daemon.seed ? ['seed'] : ['peer', 'seed'];
  loadTls({ ca: onVolume(mounts, tls.ca, false, 'tls.ca'), cert: onVolume(mounts, tls.cert, false, 'tls.cert'), key: onVolume(mounts, tls.key, false, 'tls.key') }, roles);
  assert.equal(common.insecure, false);

  // Its listeners are the container's ports, which the probes and Prometheus use.
  assert.equal(portOf(common.listen), ports.get(isDaemon ? 'upload' : 'grpc'), 'listen');
  const metrics = String(common.metrics?.listen ?? '');
  assert.ok(metrics !== '' && !isLoopback(metrics) && metrics.includes(':'), 'metrics on HOST:PORT off loopback, for the scraper');
  assert.equal(portOf(metrics), ports.get('metrics'), 'metrics port');
  assert.equal(w.annotations['prometheus.io/scrape'], 'true');
  assert.equal(w.annotations['prometheus.io/port'], String(ports.get('metrics')));
  assert.equal(w.annotations['prometheus.io/scheme'], 'https', 'metrics are HTTPS with tls');

  if (scheduler?.console !== undefined) onVolume(mounts, posix.dirname(String(scheduler.console.tokenFile)), true, 'console.tokenFile');
  if (daemon === undefined) return;
  onVolume(mounts, String(daemon.data), true, 'data');
  if (daemon.api?.startsWith('/') === true) onVolume(mounts, posix.dirname(daemon.api), true, 'api socket');
  if (daemon.mirror?.listen !== undefined) {
    assert.ok(isLoopback(daemon.mirror.listen), 'the mirror has no TLS: loopback only');
    assert.equal(w.pod.hostNetwork, true, "a mirror for the node's containerd needs the host network");
  }
  if (w.pod.hostNetwork === true) assert.equal(w.pod.dnsPolicy, 'ClusterFirstWithHostNet', 'on the host network, cluster DNS needs ClusterFirstWithHostNet');
  // Liveness asks the daemon itself: `shoal status` on its local API (a frozen process still accepts TCP connections).
  const [binary, ...probe] = c.livenessProbe?.exec?.command ?? [];
  assert.equal(binary, IMAGE_BINARY, 'the liveness probe runs the image\'s shoal');
  assert.equal(probe[0], 'status', 'the liveness probe is shoal status');
  assert.equal((await parseFlags(probe))['endpoint'], daemon.api, "the liveness probe asks the daemon's own API socket");
  assert.ok((c.livenessProbe?.timeoutSeconds ?? 1) >= 6, 'shoal status waits up to 5 s for an answer: the probe must wait longer');
  assert.match(String(daemon.advertise), /^\d+\.\d+\.\d+\.\d+$/, 'advertise: the pod or node IP');
  const url = new URL(String(daemon.scheduler));
  assert.equal(url.protocol, 'https:');
  const [svcName, ns, svc] = url.hostname.split('.');
  assert.equal(svc, 'svc');
  assert.equal(ns, NAMESPACE);
  const service = named('Service', svcName ?? '');
  assert.ok(service !== undefined, `the scheduler URL names no Service ${svcName}`);
  assert.ok((serviceSpec(service).ports ?? []).some((p) => p.port === Number(url.port)), 'the scheduler URL port');
  assert.ok(workloads.some((s) => labelsMatch(serviceSpec(service).selector, s.labels) && s.pod.containers.some((x) => x.args?.[0] === 'scheduler')), 'the scheduler URL names a Service of schedulers');
}

describe('every container runs a command line Shoal accepts', () => {
  for (const w of workloads) {
    for (const c of containersOf(w)) {
      test(`${w.name}/${c.name}: shoal ${(c.args ?? []).slice(0, 2).join(' ')}`, async () => {
        await tlsReady;
        const root = join(scratch, `${w.name}-${c.name}`);
        if (c.args?.[0] === 'runtime-config') await checkRuntimeConfig(w, c, root);
        else await checkService(w, c, root);
      });
    }
  }
});
