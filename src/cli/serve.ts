/** `shoal daemon` and `shoal scheduler`: long-running services until SIGINT/SIGTERM. */
import { readFileSync } from 'node:fs';
import { DaemonConfigSchema, SchedulerConfigSchema, readConfigFile, splitHostPort, validateConfig } from '../common/config.js';
import { ShoalError } from '../common/errors.js';
import { createLogger } from '../common/log.js';
import { createDaemon } from '../daemon/daemon.js';
import { createScheduler } from '../scheduler/server.js';
import { defaultDataDir, defaultEndpoint } from './defaults.js';
import type { CliIo } from './io.js';

export interface DaemonFlags {
  config?: string;
  scheduler?: string;
  listen?: string;
  advertise?: string;
  api?: string;
  data?: string;
  seed?: boolean;
  idc?: string;
  location?: string;
  uploadRate?: string;
  logLevel?: string;
  mirror?: string;
  upstream?: string;
  proxy?: string;
}

function readPem(path: string, key: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ShoalError('CONFIG_INVALID', `${key}: cannot read ${path}: ${(err as Error).message}`);
  }
}

function waitForSignal(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

export async function runDaemon(flags: DaemonFlags, io: CliIo): Promise<number> {
  // Flags override the file; the merged raw values are validated once, by the same schema.
  const file = readConfigFile(flags.config);
  const upload = typeof file['upload'] === 'object' && file['upload'] !== null ? (file['upload'] as Record<string, unknown>) : file['upload'];
  const mirror = typeof file['mirror'] === 'object' && file['mirror'] !== null ? (file['mirror'] as Record<string, unknown>) : file['mirror'];
  const proxy = typeof file['proxy'] === 'object' && file['proxy'] !== null ? (file['proxy'] as Record<string, unknown>) : file['proxy'];
  const merged = validateConfig(
    DaemonConfigSchema,
    {
      ...file,
      ...(flags.scheduler === undefined ? {} : { scheduler: flags.scheduler }),
      ...(flags.listen === undefined ? {} : { listen: flags.listen }),
      ...(flags.advertise === undefined ? {} : { advertise: flags.advertise }),
      ...(flags.api === undefined ? {} : { api: flags.api }),
      ...(flags.data === undefined ? {} : { data: flags.data }),
      ...(flags.seed === true ? { seed: true } : {}),
      ...(flags.idc === undefined ? {} : { idc: flags.idc }),
      ...(flags.location === undefined ? {} : { location: flags.location }),
      ...(flags.logLevel === undefined ? {} : { logLevel: flags.logLevel }),
      ...(flags.uploadRate === undefined ? {} : { upload: { ...(upload as Record<string, unknown> | undefined), rate: flags.uploadRate } }),
      ...(flags.mirror === undefined && flags.upstream === undefined
        ? {}
        : {
            mirror: {
              ...(mirror as Record<string, unknown> | undefined),
              ...(flags.mirror === undefined ? {} : { listen: flags.mirror }),
              ...(flags.upstream === undefined ? {} : { upstream: flags.upstream }),
            },
          }),
      ...(flags.proxy === undefined ? {} : { proxy: { ...(proxy as Record<string, unknown> | undefined), listen: flags.proxy } }),
    },
    flags.config ?? 'command line',
  );
  const log = createLogger(merged.logLevel, 'shoal-daemon');
  const listen = splitHostPort(merged.listen);
  const ca = merged.source.ca === undefined ? undefined : readPem(merged.source.ca, 'source.ca');
  const m = merged.mirror;
  if (m?.upstream !== undefined && m.listen === undefined) throw new ShoalError('CONFIG_INVALID', 'mirror.upstream (--upstream) needs mirror.listen (--mirror HOST:PORT)');
  const mirrorListen = m?.listen === undefined ? undefined : splitHostPort(m.listen);
  const p = merged.proxy;
  const proxyListen = p?.listen === undefined ? undefined : proxyAddress(p.listen);
  const upstreams = (m?.upstreams ?? []).map((u, i) => ({ ...u, ca: u.ca === undefined ? undefined : readPem(u.ca, `mirror.upstreams.${i}.ca`) }));
  const daemon = createDaemon({
    dataDir: merged.data ?? defaultDataDir(io.env),
    schedulerUrl: merged.scheduler,
    embeddedScheduler: merged.scheduler === undefined,
    listenHost: listen.host,
    listenPort: listen.port,
    advertise: merged.advertise,
    api: merged.api ?? defaultEndpoint(io.env),
    seed: merged.seed,
    idc: merged.idc,
    location: merged.location,
    ...(merged.upload.slots === undefined ? {} : { uploadSlots: merged.upload.slots }),
    uploadRate: merged.upload.rate,
    cacheQuotaBytes: merged.cache.quota,
    cacheTtlMs: merged.cache.ttl,
    gcIntervalMs: merged.cache.gcInterval,
    limits: {
      maxInflight: merged.download.concurrentPieces,
      perParent: merged.download.perParent,
      stallMs: merged.download.pieceTimeout,
      scheduleTimeoutMs: merged.download.scheduleTimeout,
      protocol: merged.download.protocol,
      askAhead: merged.download.askAhead,
    },
    source: { retries: merged.source.retries, idleTimeoutMs: merged.source.timeout, insecure: merged.source.insecure, ca },
    mirror:
      m === undefined || mirrorListen === undefined
        ? undefined
        : {
            host: mirrorListen.host,
            port: mirrorListen.port,
            upstreams,
            defaultUpstream: m.upstream,
            tagTtlMs: m.tagTtl,
            authTtlMs: m.authTtl,
            manifestCacheBytes: m.manifestCache,
            prefetch: m.prefetch,
          },
    proxy:
      p === undefined || proxyListen === undefined
        ? undefined
        : {
            host: proxyListen.host,
            port: proxyListen.port,
            rules: p.rules,
            upstreamTimeoutMs: p.upstreamTimeout,
            connectTimeoutMs: p.connectTimeout,
            tunnelIdleTimeoutMs: p.tunnelIdleTimeout,
          },
    logger: log,
  });
  await daemon.start();
  const mirrorNote = mirrorListen === undefined ? '' : `, mirror ${mirrorListen.host}:${daemon.mirrorPort ?? 0}`;
  const proxyNote = proxyListen === undefined ? '' : `, proxy ${proxyListen.host}:${daemon.proxyPort ?? 0}`;
  io.stderr.write(`shoal daemon ${daemon.hostId}: upload port ${daemon.uploadPort}, scheduler ${daemon.schedulerUrl ?? 'none'}, api ${merged.api ?? defaultEndpoint(io.env)}${mirrorNote}${proxyNote}\n`);
  await waitForSignal(io.signal);
  await daemon.stop();
  return 0;
}

/** `--proxy` / `proxy.listen`: HOST:PORT, or a bare port on loopback. */
function proxyAddress(value: string | number): { host: string; port: number } {
  const text = String(value);
  if (!/^\d{1,5}$/.test(text)) return splitHostPort(text);
  if (Number(text) > 65535) throw new ShoalError('USAGE', `proxy port ${text} is over 65535`);
  return { host: '127.0.0.1', port: Number(text) };
}

export async function runScheduler(flags: { config?: string; listen?: string; logLevel?: string }, io: CliIo): Promise<number> {
  const merged = validateConfig(
    SchedulerConfigSchema,
    {
      ...readConfigFile(flags.config),
      ...(flags.listen === undefined ? {} : { listen: flags.listen }),
      ...(flags.logLevel === undefined ? {} : { logLevel: flags.logLevel }),
    },
    flags.config ?? 'command line',
  );
  const listen = splitHostPort(merged.listen);
  const scheduler = createScheduler({
    host: listen.host,
    port: listen.port,
    candidateParentLimit: merged.candidateParents,
    backToSourceLimit: merged.backToSourceLimit,
    seedChildren: merged.seedChildren,
    stripes: merged.stripes,
    stripesFrom: merged.stripesFrom,
    peerChildren: merged.peerChildren,
    seedTimeoutMs: merged.seedTimeout,
    recoveryWindowMs: merged.recoveryWindow,
    logger: createLogger(merged.logLevel, 'shoal-scheduler'),
  });
  await scheduler.start();
  io.stderr.write(`shoal scheduler listening on ${listen.host}:${scheduler.port}\n`);
  await waitForSignal(io.signal);
  await scheduler.stop();
  return 0;
}
