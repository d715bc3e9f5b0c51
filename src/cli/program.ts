/**
 * The whole `shoal` command line on commander: every command, its flags and
 * help. ./main.ts loads it for everything but the plain `shoal get`, which
 * starts without it (./get-command.ts). Each command loads its own modules
 * when it runs: `shoal get` through a running daemon starts without
 * evaluating the daemon, the scheduler or their dependencies.
 */
import { Command, CommanderError, Option } from 'commander';
import { ShoalError } from '../common/errors.js';
import { defaultEndpoint } from './defaults.js';
import type { StartEmbedded } from './fetcher.js';
import { GET_FLAGS, flagShape, outputOf, runGetCommand, type GetFlags } from './get-command.js';
import type { Filter } from './recursive/glob.js';
import type { PreheatFlags } from './preheat.js';
import type { CliIo } from './io.js';
import { reportFailure } from './report.js';
import type { RuntimeConfigFlags } from './runtime-config.js';
import type { IssueFlags } from './cluster.js';
import type { ImportFlags } from './cache.js';
import type { DaemonFlags, SchedulerFlags } from './serve.js';
import { VERSION } from './version.js';

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** `shoal get` with no daemon running: one in this process (./embedded.ts), loaded only then. */
const startEmbedded: StartEmbedded = async (io) => (await import('./embedded.js')).embedded(io);

/** The command line, each action writing its exit code to `result` (exported for tests that check command lines: deploy/). */
export function program(io: CliIo, result: { code: number }): Command {
  /** --include and --exclude of `get`, in the order given (the last match decides: ./recursive/glob.ts). */
  const filters: Filter[] = [];
  const root = new Command('shoal')
    .description('Peer-to-peer file and container-image distribution')
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });

  const get = root.command('get').description('download URL to FILE through the local daemon (or an in-process one when none runs)');
  get.argument('<url>', 'http://, https:// or s3://BUCKET/KEY URL (with --recursive: a directory index or an s3:// prefix)');
  for (const flag of GET_FLAGS) {
    const option = new Option(flag.flags, flag.help);
    const { long } = flagShape(flag);
    if (flag.hidden === true) option.hideHelp();
    // --include and --exclude in the order given (the last match decides: ./recursive/glob.ts).
    if (long === 'include' || long === 'exclude') option.argParser((glob: string) => void filters.push({ kind: long, glob }));
    else if (flag.repeat === true) option.argParser(collect).default([]);
    else if (!option.negate && !option.required) option.default(false);
    get.addOption(option);
  }
  get.action(async (url: string, opts: GetFlags) => {
    if (opts.recursive) {
      const { runRecursive } = await import('./recursive/run.js');
      result.code = await runRecursive(url, { ...opts, output: outputOf(opts), filters }, io, startEmbedded);
    } else {
      result.code = await runGetCommand(url, opts, filters, io, startEmbedded);
    }
  });

  root
    .command('daemon')
    .description('run a peer daemon (with --seed, a seed peer)')
    .option('--config <file>', 'YAML config file (docs/configuration.md)')
    .option('--scheduler <url>', 'scheduler URL, e.g. http://10.0.0.1:8002 (repeatable: several schedulers; a name with several addresses: one each; none: an in-process scheduler)', collect, [])
    .option('--listen <host:port>', 'upload server address (default 0.0.0.0:4000)')
    .option('--advertise <host>', 'address other peers use to reach this host')
    .option('--api <socket>', 'local API: unix socket path or 127.0.0.1:PORT')
    .option('--data <dir>', 'data directory')
    .option('--seed', 'run as a seed peer')
    .option('--idc <idc>', 'idc label')
    .option('--location <location>', 'location label, "|"-separated hierarchy')
    .option('--upload-rate <size>', 'upload bandwidth cap per second (e.g. 100MiB)')
    .option('--download-rate <size>', 'daemon-wide download cap per second, from peers and origins (e.g. 200M)')
    .option('--source-rate <size>', 'back-to-source cap per second, bytes read from origins (e.g. 50M)')
    .option('--mirror <host:port>', 'run the OCI registry mirror here (e.g. 127.0.0.1:4001; docs/containers.md)')
    .option('--upstream <registry>', 'mirror: a registry it serves (repeatable; the first is for requests that name none): a host such as docker.io, or a URL (http:// = plain HTTP)', collect, [])
    .option('--proxy <host:port>', 'run the HTTP forward proxy here (e.g. 127.0.0.1:4002, or a port on loopback; docs/containers.md)')
    .option('--tls <dir/name>', "the cluster's mutual TLS: DIR/ca.crt, DIR/NAME.crt, DIR/NAME.key (shoal cluster init DIR)")
    .option('--metrics <port|host:port>', 'Prometheus metrics at /metrics (a bare port: on 127.0.0.1; docs/metrics.md)')
    .option('--insecure', 'allow listening on a non-loopback address without TLS (trusts everyone who reaches it)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent')
    .action(async (opts: DaemonFlags) => {
      const { runDaemon } = await import('./serve.js');
      result.code = await runDaemon(opts, io);
    });

  root
    .command('scheduler')
    .description('run a scheduler')
    .option('--config <file>', 'YAML config file')
    .option('--listen <host:port>', 'address (default 0.0.0.0:8002)')
    .option('--tls <dir/name>', "the cluster's mutual TLS: DIR/ca.crt, DIR/NAME.crt, DIR/NAME.key (shoal cluster init DIR)")
    .option('--metrics <port|host:port>', 'Prometheus metrics at /metrics (a bare port: on 127.0.0.1; docs/metrics.md)')
    .option('--console <host:port>', 'the web console here, for admins: admin certificate or login token (e.g. 127.0.0.1:8080; docs/console.md)')
    .option('--insecure', 'allow listening on a non-loopback address without TLS (trusts everyone who reaches it)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent')
    .action(async (opts: SchedulerFlags) => {
      const { runScheduler } = await import('./serve.js');
      result.code = await runScheduler(opts, io);
    });

  root
    .command('runtime-config')
    .description('print (or --write) the containerd, podman/CRI-O or docker files that send pulls through the mirror')
    .argument('<runtime>', 'containerd | podman | docker')
    .option('--mirror <host:port>', 'the mirror as the runtime reaches it', '127.0.0.1:4001')
    .option('--registry <host|url>', 'registry to pull through the mirror (repeatable; default docker.io)', collect, [])
    .option('--dial-timeout <duration>', 'containerd ≥ 1.7: fall back to the registry after this (default 1s)')
    .option('--plain-http', 'registries given as HOST[:PORT] are plain HTTP (or give http://HOST:PORT)')
    .option('--write <dir>', 'write the files under DIR instead of printing them')
    .action(async (runtime: string, opts: RuntimeConfigFlags) => {
      const { runRuntimeConfig } = await import('./runtime-config.js');
      result.code = runRuntimeConfig(runtime, opts, io);
    });

  root
    .command('preheat')
    .description('have seed peers fetch URLs, or an image (shoal preheat image REF), ahead of demand')
    .argument('<targets...>', 'URL… | image REF')
    .option('-H, --header <header>', 'request header "Name: value" for the origin or registry (repeatable)', collect, [])
    .option('--digest <digest>', 'expected content digest of a URL, sha256:<hex> (one per URL, in order)', collect, [])
    .option('--platform <os/arch>', 'image: the platform picked from an index (default linux/amd64)')
    .option('--upstream <url>', 'image: where the registry is reached, e.g. http://127.0.0.1:5000 (default: the reference\'s registry)')
    .option('--timeout <duration>', 'fail a task not held by its seed after this long (default 1h)')
    .option('-e, --endpoint <socket>', 'daemon API: unix socket or 127.0.0.1:PORT')
    .option('--scheduler <url>', 'ask this scheduler directly instead of through the local daemon (with --tls: an admin certificate)')
    .option('--tls <dir/name>', 'with --scheduler: DIR/ca.crt, DIR/NAME.crt, DIR/NAME.key of an admin (shoal cluster init DIR makes DIR/admin)')
    .option('--json', 'print the result as JSON on stdout', false)
    .option('-q, --quiet', 'print only failures', false)
    .action(async (targets: string[], opts: PreheatFlags) => {
      const { runPreheat } = await import('./preheat.js');
      result.code = await runPreheat(targets, opts, io);
    });

  const cluster = root.command('cluster').description("the cluster's CA and its members' certificates (mutual TLS, roles; docs/security.md)");
  cluster
    .command('init')
    .description('make a cluster CA in DIR and a certificate per role: scheduler, seed, peer, admin')
    .argument('<dir>', 'where the CA and the certificates go (created mode 0700)')
    .option('--days <n>', 'validity of the member certificates (default 365)')
    .option('--force', 'replace existing files', false)
    .action(async (dir: string, opts: { force: boolean; days?: string }) => {
      const { runClusterInit } = await import('./cluster.js');
      result.code = await runClusterInit(dir, opts, io);
    });
  cluster
    .command('issue')
    .description("issue a member certificate signed by DIR's CA")
    .argument('<dir>', 'the cluster directory (ca.crt, ca.key)')
    .option('--name <name>', 'the member name (certificate CN, file name)')
    .option('--role <role>', 'scheduler | seed | peer | admin (repeatable)', collect, [])
    .option('--host <host>', 'a DNS name or IP address it is reached by (repeatable; informational)', collect, [])
    .option('--days <n>', 'validity (default 365, never past the CA)')
    .option('--out <dir>', 'write NAME.crt and NAME.key here instead of DIR')
    .option('--force', 'replace existing files', false)
    .action(async (dir: string, opts: IssueFlags) => {
      const { runClusterIssue } = await import('./cluster.js');
      result.code = await runClusterIssue(dir, opts, io);
    });
  cluster
    .command('inspect')
    .description("show a certificate's name, roles and expiry (exit 2 when expired)")
    .argument('<file>', 'a PEM certificate')
    .action(async (file: string) => {
      const { runClusterInspect } = await import('./cluster.js');
      result.code = runClusterInspect(file, io);
    });

  const cache = root.command('cache').description('cache distribution: a local file as a task with no origin, kept on K hosts, fetched anywhere by its ID (docs/cache.md)');
  const endpointOption = (c: Command): Command => c.option('-e, --endpoint <socket>', 'daemon API (default: the standard local socket)');
  endpointOption(
    cache
      .command('import')
      .description('make FILE a cache task of the cluster; prints its ID')
      .argument('<file>', 'a regular file')
      .option('--id <id>', 'its cache ID: 1-128 of A-Z a-z 0-9 . _ - : (default: its content digest, sha256:<hex>)')
      .option('--replicas <k>', 'copies the scheduler keeps on distinct hosts, seeds first (default 2, at most 16)')
      .option('--ttl <duration>', 'kept this long (e.g. 12h, 7d); default: until shoal cache rm')
      .option('--json', 'print the entry as JSON', false)
      .option('-q, --quiet', 'print only the ID', false),
  ).action(async (file: string, opts: ImportFlags) => {
    const { runCacheImport } = await import('./cache.js');
    result.code = await runCacheImport(file, opts, io);
  });
  endpointOption(
    cache
      .command('export')
      .description('fetch cache task ID to FILE through the swarm, every piece verified')
      .argument('<id>', 'the cache ID')
      .option('-O, --output <file>', 'output file ("-" for stdout)')
      .option('-q, --quiet', 'print nothing but errors', false),
  ).action(async (id: string, opts: { output?: string; endpoint?: string; quiet: boolean }) => {
    if (opts.output === undefined) throw new ShoalError('USAGE', 'an output file is required: -O FILE');
    const { runCacheExport } = await import('./cache.js');
    result.code = await runCacheExport(id, { ...opts, output: opts.output }, io);
  });
  endpointOption(cache.command('stat').description("a cache task's entry: size, digest, holders, expiry").argument('<id>', 'the cache ID').option('--json', 'print JSON', false)).action(
    async (id: string, opts: { endpoint?: string; json: boolean }) => {
      const { runCacheList } = await import('./cache.js');
      result.code = await runCacheList(id, opts, io);
    },
  );
  endpointOption(cache.command('ls').description("the cluster's cache tasks").option('--json', 'print JSON', false)).action(async (opts: { endpoint?: string; json: boolean }) => {
    const { runCacheList } = await import('./cache.js');
    result.code = await runCacheList(undefined, opts, io);
  });
  endpointOption(cache.command('rm').description('remove a cache task from every host (its importer or an admin, with TLS)').argument('<id>', 'the cache ID').option('-q, --quiet', 'print nothing', false)).action(
    async (id: string, opts: { endpoint?: string; quiet: boolean }) => {
      const { runCacheRemove } = await import('./cache.js');
      result.code = await runCacheRemove(id, opts, io);
    },
  );

  root
    .command('status')
    .description("show where the local daemon's bytes came from, per task and in total")
    .option('-e, --endpoint <socket>', 'daemon API')
    .option('--json', 'print JSON', false)
    .action(async (opts: { endpoint?: string; json: boolean }) => {
      const [{ fetchStats }, { formatStatus }] = await Promise.all([import('./daemon-client.js'), import('./status.js')]);
      const stats = await fetchStats(opts.endpoint ?? defaultEndpoint(io.env));
      io.stdout.write(opts.json ? JSON.stringify(stats, null, 2) + '\n' : formatStatus(stats));
    });
  return root;
}

/** Runs `argv` through commander; a failure is reported on stderr. The exit code. */
export async function runProgram(argv: readonly string[], io: CliIo): Promise<number> {
  const result = { code: 0 };
  try {
    await program(io, result).parseAsync([...argv], { from: 'user' });
    return result.code;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
      return 2;
    }
    return reportFailure(err, io);
  }
}
