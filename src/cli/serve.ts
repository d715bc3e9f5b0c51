/**
 * `shoal daemon` and `shoal scheduler`: long-running services until
 * SIGINT/SIGTERM. Flags are merged over the config file, which is merged over
 * the defaults that depend on who runs the command (data directory, API
 * socket); the components parse the result through the one schema
 * (src/common/config/schema.ts) themselves.
 */
import { dirname, join } from 'node:path';
import { readConfigFile, validateConfig } from '../common/config/load.js';
import { DaemonConfigSchema, SchedulerConfigSchema, type DaemonInit, type SchedulerInit } from '../common/config/schema.js';
import { createLogger } from '../common/log.js';
import { defaultConsoleTokenFile, defaultDataDir, defaultEndpoint } from './defaults.js';
import type { CliIo } from './io.js';

export interface DaemonFlags {
  config?: string;
  /** Repeatable: one URL or several. */
  scheduler?: string | string[];
  listen?: string;
  advertise?: string;
  api?: string;
  data?: string;
  seed?: boolean;
  idc?: string;
  location?: string;
  uploadRate?: string;
  downloadRate?: string;
  sourceRate?: string;
  logLevel?: string;
  mirror?: string;
  tls?: string;
  insecure?: boolean;
  metrics?: string;
  /** Registries the mirror serves; the first is its default. */
  upstream?: string[];
  proxy?: string;
}

export interface SchedulerFlags {
  config?: string;
  listen?: string;
  logLevel?: string;
  tls?: string;
  insecure?: boolean;
  metrics?: string;
  /** The web console's HOST:PORT. */
  console?: string;
}

/** `--tls DIR/NAME`: the cluster CA and NAME's certificate and key, as `shoal cluster init` lays them out. */
function tlsFlag(prefix: string | undefined): Raw {
  if (prefix === undefined) return {};
  return { tls: { ca: join(dirname(prefix), 'ca.crt'), cert: `${prefix}.crt`, key: `${prefix}.key` } };
}

function waitForSignal(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

type Raw = Record<string, unknown>;

/** `value` when it is a mapping (a section of the file), else nothing to merge into. */
function section(value: unknown): Raw {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Raw) : {};
}

/** The keys of `values` that are set. */
function defined(values: Raw): Raw {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined));
}

/** A section of the file with flags over it; the file's own value when no flag is set (so the schema reports it). */
function withFlags(file: Raw, key: string, flags: Raw): Raw {
  const set = defined(flags);
  if (Object.keys(set).length === 0) return file[key] === undefined ? {} : { [key]: file[key] };
  return { [key]: { ...section(file[key]), ...set } };
}

/** The daemon's settings as `createDaemon` takes them: defaults for this user, the file, then the flags. */
/** `--scheduler` given once is one URL, given more often a list; not given, nothing. */
function schedulerFlag(flag: string | string[] | undefined): string | string[] | undefined {
  if (flag === undefined || typeof flag === 'string') return flag;
  if (flag.length === 0) return undefined;
  return flag.length === 1 ? flag[0] : flag;
}

export function daemonInit(flags: DaemonFlags, env: NodeJS.ProcessEnv): DaemonInit {
  const file = readConfigFile(flags.config);
  return {
    data: defaultDataDir(env),
    api: defaultEndpoint(env),
    ...file,
    ...defined({
      scheduler: schedulerFlag(flags.scheduler),
      listen: flags.listen,
      advertise: flags.advertise,
      api: flags.api,
      data: flags.data,
      seed: flags.seed === true ? true : undefined,
      idc: flags.idc,
      location: flags.location,
      logLevel: flags.logLevel,
      insecure: flags.insecure === true ? true : undefined,
    }),
    ...tlsFlag(flags.tls),
    ...withFlags(file, 'upload', { rate: flags.uploadRate }),
    ...withFlags(file, 'download', { rate: flags.downloadRate }),
    ...withFlags(file, 'source', { rate: flags.sourceRate }),
    ...withFlags(file, 'mirror', { listen: flags.mirror, ...upstreamFlags(flags.upstream ?? [], section(file['mirror'])) }),
    ...withFlags(file, 'proxy', { listen: flags.proxy }),
    ...withFlags(file, 'metrics', { listen: flags.metrics }),
  };
}

/**
 * `--upstream` (repeatable): each registry joins the mirror's allowlist
 * (`mirror.upstreams`; an http:// URL is that registry on plain HTTP), and the
 * first is the default for requests that name none.
 */
function upstreamFlags(values: readonly string[], fileMirror: Raw): Raw {
  if (values.length === 0) return {};
  const listed = Array.isArray(fileMirror['upstreams']) ? (fileMirror['upstreams'] as unknown[]) : [];
  const entries = values.map((value) => {
    if (!/^https?:\/\//i.test(value)) return { host: value };
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      return { host: value };
    }
    return { host: url.host, url: url.origin, ...(url.protocol === 'http:' ? { insecure: true } : {}) };
  });
  const known = new Set(listed.map((u) => (typeof u === 'object' && u !== null ? String((u as Raw)['host']) : '')));
  return { upstream: values[0], upstreams: [...listed, ...entries.filter((e) => !known.has(e.host))] };
}

export function schedulerInit(flags: SchedulerFlags, env: NodeJS.ProcessEnv = process.env): SchedulerInit {
  const file = readConfigFile(flags.config);
  return {
    ...file,
    ...defined({ listen: flags.listen, logLevel: flags.logLevel, insecure: flags.insecure === true ? true : undefined }),
    ...tlsFlag(flags.tls),
    ...withFlags(file, 'metrics', { listen: flags.metrics }),
    ...consoleInit(file, flags.console, env),
  };
}

/** The console's section: the file's with `--console` over it, and this user's token file unless one is given. */
function consoleInit(file: Raw, listen: string | undefined, env: NodeJS.ProcessEnv): Raw {
  const merged = withFlags(file, 'console', { listen });
  const given = merged['console'];
  if (given === undefined) return {};
  return { console: { tokenFile: defaultConsoleTokenFile(env), ...section(given) } };
}

export async function runDaemon(flags: DaemonFlags, io: CliIo): Promise<number> {
  const { createDaemon } = await import('../daemon/daemon.js');
  const init = daemonInit(flags, io.env);
  // Checked here too, so that an error names the file it is in.
  const settings = validateConfig(DaemonConfigSchema, init, flags.config ?? 'command line');
  const daemon = createDaemon(init, { logger: createLogger(settings.logLevel, 'shoal-daemon') });
  await daemon.start();
  const listening = Object.entries(daemon.addresses).map(([what, address]) => `${what} ${address}`);
  io.stderr.write(`shoal daemon ${daemon.hostId}: upload port ${daemon.uploadPort}, scheduler ${daemon.schedulerUrls.join(' ') || 'none'}, ${listening.join(', ')}\n`);
  await waitForSignal(io.signal);
  await daemon.stop();
  return 0;
}

export async function runScheduler(flags: SchedulerFlags, io: CliIo): Promise<number> {
  const { createScheduler } = await import('../scheduler/server.js');
  const init = schedulerInit(flags, io.env);
  const settings = validateConfig(SchedulerConfigSchema, init, flags.config ?? 'command line');
  const scheduler = createScheduler(init, { logger: createLogger(settings.logLevel, 'shoal-scheduler') });
  await scheduler.start();
  const metrics = scheduler.metricsPort === undefined ? '' : `, metrics ${scheduler.metricsPort}`;
  // The token file's path, never the token.
  const web = scheduler.consoleUrl === undefined ? '' : `, console ${scheduler.consoleUrl} (login token in ${settings.console?.tokenFile ?? ''})`;
  io.stderr.write(`shoal scheduler listening on ${scheduler.host}:${scheduler.port}${metrics}${web}\n`);
  await waitForSignal(io.signal);
  await scheduler.stop();
  return 0;
}
