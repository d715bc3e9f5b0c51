/**
 * The Kubernetes manifests' config files, run: a scheduler, a seed and a peer
 * daemon started with deploy/kubernetes's ConfigMap and the containers' own
 * arguments (paths moved into a temp dir, addresses onto 127.0.0.1 port 0,
 * the scheduler's URL and the advertised address those of this machine),
 * with certificates laid out as the Secrets are. A download through the
 * daemon comes from the seed, byte-exact, and the daemon's metrics answer
 * the scraper's certificate only. With SHOAL_BIN, the binary runs them.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { createCa, issueCert } from '../src/identity/issue.js';
import { Cluster, run, type Proc } from './fixtures/cluster.js';
import { startOrigin, type Origin } from './fixtures/origin.js';
import { until } from './fixtures/wait.js';

const MiB = 1024 * 1024;
const DIR = join(import.meta.dirname, '../deploy/kubernetes');

interface Doc {
  kind: string;
  metadata: { name: string };
  data?: Record<string, string>;
  spec?: { template: { spec: { containers: Array<{ args: string[]; livenessProbe?: { exec?: { command: string[] } } }> } } };
}
const docs = ['config.yaml', 'scheduler.yaml', 'seed.yaml', 'daemon.yaml'].flatMap((f) => parseAllDocuments(readFileSync(join(DIR, f), 'utf8')).map((d) => d.toJS() as Doc));
const config = docs.find((d) => d.kind === 'ConfigMap')?.data ?? {};
const containerOf = (name: string) => docs.find((d) => d.metadata.name === name && (d.kind === 'StatefulSet' || d.kind === 'DaemonSet'))?.spec?.template.spec.containers[0];
const argsOf = (name: string): string[] => containerOf(name)?.args ?? [];

const cluster = new Cluster();
const content = randomBytes(6 * MiB);
let origin: Origin;
before(async () => {
  origin = await startOrigin({ files: new Map([['/model.bin', content]]) });
  const tls = cluster.path('tls');
  await createCa(tls);
  for (const role of ['scheduler', 'seed', 'peer'] as const) await issueCert({ dir: tls, name: role, roles: [role] });
});
after(async () => {
  await cluster.close();
  await origin.close();
});

/** `key` of the ConfigMap with its paths under the cluster's dir and its listeners on 127.0.0.1:0. */
function localConfig(key: string): string {
  const dir = cluster.path(key.replace('.yaml', ''));
  mkdirSync(dir, { recursive: true });
  const text = (config[key] ?? '')
    .replaceAll('/etc/shoal/tls', cluster.path('tls'))
    .replaceAll('/var/lib/shoal', join(dir, 'data'))
    .replaceAll('/run/shoal', join(dir, 'run'))
    .replace(/\b(?:0\.0\.0\.0|127\.0\.0\.1):\d+/g, '127.0.0.1:0');
  const file = join(dir, key);
  writeFileSync(file, text);
  return file;
}

/** A container's args with the config file moved, and these values for the flags named. */
function localArgs(container: string, file: string, values: Record<string, string>): string[] {
  const args = argsOf(container);
  assert.ok(args.length > 0, `no container args for ${container}`);
  return args.map((a, i) => (args[i - 1] === '--config' ? file : (values[args[i - 1] ?? ''] ?? a)));
}

async function started(proc: Proc, pattern: RegExp): Promise<RegExpExecArray> {
  cluster.procs.push(proc);
  let m: RegExpExecArray | null = null;
  await until(() => (m = pattern.exec(proc.stderr())) !== null || proc.child.exitCode !== null, `${pattern}`, { within: 30_000 });
  assert.ok(m !== null, proc.stderr());
  return m;
}

function scrape(port: number, cert?: string): Promise<{ status: number; body: string }> {
  const tls = cluster.path('tls');
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/metrics',
        ca: readFileSync(join(tls, 'ca.crt')),
        ...(cert === undefined ? {} : { cert: readFileSync(join(tls, `${cert}.crt`)), key: readFileSync(join(tls, `${cert}.key`)) }),
        checkServerIdentity: () => undefined, // as Prometheus with insecure_skip_verify: pod IPs are in no certificate
        timeout: 10_000,
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

test("the ConfigMap's scheduler, seed and daemon serve a download from the seed, and metrics to a member's certificate", { timeout: 120_000 }, async () => {
  const sched = await started(run(localArgs('shoal-scheduler', localConfig('scheduler.yaml'), {})), /listening on 127\.0\.0\.1:(\d+), metrics (\d+)/);
  const values = { '--scheduler': `https://127.0.0.1:${sched[1]}`, '--advertise': '127.0.0.1' };
  await started(run(localArgs('shoal-seed', localConfig('seed.yaml'), values)), /shoal daemon .*upload port \d+/);
  const daemonProc = run(localArgs('shoal-daemon', localConfig('daemon.yaml'), values));
  const daemon = await started(daemonProc, /shoal daemon .*upload port \d+.*api (\S+), mirror 127\.0\.0\.1:\d+, metrics 127\.0\.0\.1:(\d+)/);

  const out = cluster.path('model.out');
  const get = cluster.get(`${origin.url}/model.bin`, out, ['-e', daemon[1] ?? '']);
  assert.equal(await get.exited, 0, get.stderr());
  assert.deepEqual(readFileSync(out), content);
  assert.ok(origin.bytesServed('/model.bin') <= content.length * 1.05, `the origin sent ${origin.bytesServed('/model.bin') / content.length} copies`);

  const metrics = await scrape(Number(daemon[2]), 'peer');
  assert.equal(metrics.status, 200);
  const fromSeed = /^shoal_download_bytes_total\{source="seed",requester="get"\} (\d+)/m.exec(metrics.body);
  assert.equal(Number(fromSeed?.[1]), content.length, 'the daemon got the content from the seed');
  await assert.rejects(scrape(Number(daemon[2])), 'metrics without a client certificate');
  assert.equal((await scrape(Number(sched[2]), 'peer')).status, 200);

  // The daemon's liveness probe passes while it runs, and fails once it is frozen (SIGSTOP: the kernel still accepts connections).
  const probe = (containerOf('shoal-daemon')?.livenessProbe?.exec?.command ?? []).slice(1).map((a) => (a === '/run/shoal/shoal.sock' ? (daemon[1] ?? '') : a));
  assert.equal(probe[0], 'status');
  const alive = run(probe);
  assert.equal(await alive.exited, 0, alive.stderr());
  const pid = daemonProc.child.pid;
  assert.ok(pid !== undefined);
  process.kill(pid, 'SIGSTOP');
  try {
    const stuck = run(probe);
    assert.notEqual(await stuck.exited, 0, 'the probe passed on a frozen daemon');
    assert.match(stuck.stderr(), /DAEMON_UNREACHABLE/);
  } finally {
    process.kill(pid, 'SIGCONT');
  }
});
