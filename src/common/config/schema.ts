/**
 * The one configuration schema: types, defaults, validation and the
 * reference in docs/configuration.md (generated from this file by
 * `npm run docs`). Each component's settings are a section of it, and the
 * component takes that section's parsed type: the CLI, the embedded
 * scheduler and the tests all get these defaults and no others. Defaults
 * live here only; a library never writes `?? 4` of its own.
 *
 * Two top-level views: DaemonConfigSchema (`shoal daemon --config`,
 * `createDaemon(init)`) and SchedulerConfigSchema (`shoal scheduler
 * --config`, `createScheduler(init)`, and the scheduler a daemon runs
 * in-process).
 */
import { z } from 'zod';
import { MAX_AGE_MS, duration, hostPort, logLevel, size } from './fields.js';

// ---- both ----

export const TlsSection = z
  .object({
    ca: z.string().min(1).describe('PEM file: the cluster CA certificate (shoal cluster init DIR makes DIR/ca.crt)'),
    cert: z.string().min(1).describe("PEM file: this member's certificate, carrying its role (shoal cluster issue)"),
    key: z.string().min(1).describe('PEM file: its private key (mode 0600)'),
  })
  .strict();

const tls = () =>
  TlsSection.optional().describe('mutual TLS with the rest of the cluster, roles from certificates (docs/security.md); absent: plain TCP, on loopback only unless insecure');
export const MetricsSection = z
  .object({
    listen: z
      .union([hostPort(), z.string().regex(/^\d{1,5}$/, 'must be HOST:PORT or PORT')])
      .describe('Prometheus metrics at /metrics here (--metrics); a bare port listens on 127.0.0.1; off loopback with tls (or insecure)'),
  })
  .strict();

const metrics = () => MetricsSection.optional().describe('the metrics listener (docs/metrics.md); absent: none');

const insecure = () =>
  z.boolean().default(false).describe('allow listening on a non-loopback address without TLS (--insecure): anyone who reaches the port is trusted, roles are not checked');

// ---- daemon sections ----

export const UploadSection = z
  .object({
    slots: z.number().int().min(1).max(10_000).optional().describe('concurrent piece uploads (default 64; 256 on a seed peer)'),
    rate: size().default(0).describe('upload bandwidth cap, bytes/s (0 = none); announced to the scheduler (docs/design.md, "Slow links")'),
  })
  .strict();

export const DownloadSection = z
  .object({
    concurrentPieces: z.number().int().min(1).max(256).default(16).describe('pieces in flight for one task'),
    perParent: z.number().int().min(1).max(64).default(4).describe('pieces in flight from one parent (pipelined on one connection)'),
    pieceTimeout: duration().default(10_000).describe('a parent sending nothing this long loses the piece'),
    scheduleTimeout: duration().default(15_000).describe('with no scheduler for this long, go to the origin'),
    starvationTimeout: duration().default(10_000).describe('with no piece in flight for this long, ask the scheduler for other parents'),
    protocol: z.enum(['tcp', 'http']).default('tcp').describe('how pieces are fetched from parents: the binary piece protocol, or HTTP/1.1 (baseline, debugging)'),
    askAhead: z.boolean().default(false).describe('ask a parent still fetching for the pieces it is about to get (tcp only; docs/design.md, "Asking ahead")'),
    rate: size().default(0).describe('daemon-wide download cap, bytes/s, over every byte received from parents and origins (0 = none); a get\'s --limit-rate applies within it'),
  })
  .strict();

export const CacheSection = z
  .object({
    quota: size().default(0).describe('bytes of content kept; least recently used complete tasks go first (0 = no quota)'),
    ttl: duration(MAX_AGE_MS).default(0).describe('drop tasks unused this long (0 = never)'),
    gcInterval: duration().default(60_000).describe('how often the quota and TTL are applied'),
    directIo: z.boolean().default(true).describe('write the pieces received from peers with O_DIRECT, past the page cache (where the file system refuses it, the page cache is used)'),
    recentPieces: size().default(16 * 1024 * 1024).describe('bytes of the pieces received last kept in memory, so that uploads of them read no file (0 = none)'),
  })
  .strict();

export const SourceSection = z
  .object({
    retries: z.number().int().min(0).max(100).default(5).describe('attempts after the first on a network error or 5xx'),
    timeout: duration().default(30_000).describe('origin idle timeout'),
    ca: z.string().min(1).optional().describe('PEM file with extra CA certificates for origins'),
    insecure: z.boolean().default(false).describe('skip TLS certificate checks of origins'),
    accessTtl: duration(MAX_AGE_MS).default(60_000).describe("private content (fetched with credentials): an origin's yes to a requester's own credentials is reused this long"),
    rate: size().default(0).describe('back-to-source cap, bytes/s, over every byte this daemon reads from origins (0 = none); within download.rate'),
  })
  .strict();

export const MirrorUpstream = z
  .object({
    host: z.string().min(1).max(261).describe('the registry as clients name it: docker.io, 127.0.0.1:5000'),
    url: z.url({ protocol: /^https?$/ }).optional().describe('where it is served; default https://<host>'),
    insecure: z.boolean().default(false).describe('allow plain HTTP'),
    ca: z.string().min(1).optional().describe('PEM file with extra CA certificates for this registry (also trusted for its blobs)'),
  })
  .strict()
  .refine((u) => u.insecure || u.url === undefined || !u.url.startsWith('http:'), {
    message: 'url is plain http: set insecure: true to allow it',
    path: ['url'],
  });

export const MirrorSection = z
  .object({
    listen: hostPort().optional().describe('registry mirror address, e.g. 127.0.0.1:4001 (--mirror); absent: no mirror'),
    upstream: z.string().min(1).max(300).optional().describe('registry used when a request names none: a host (docker.io) or URL (--upstream)'),
    upstreams: z.array(MirrorUpstream).max(256).default([]).describe('registries by the host clients name them with'),
    tagTtl: duration(MAX_AGE_MS).default(0).describe('cache tag → digest this long; 0 = ask the registry every time'),
    authTtl: duration(MAX_AGE_MS).default(60_000).describe('cache a registry\'s yes to a client\'s credentials this long'),
    manifestCache: size().default(64 * 1024 * 1024).describe('bytes of manifests kept in memory, by digest'),
    upstreamTimeout: duration().default(30_000).describe('a registry sending nothing this long fails the request'),
    stallTimeout: duration()
      .default(30_000)
      .describe('a blob bringing no new piece this long fails: 504 before its first byte (the runtime falls back), the connection cut after'),
    prefetch: z.boolean().default(true).describe('start an image\'s layer downloads when its manifest is served'),
  })
  .strict();

export const ProxyRule = z
  .object({
    regex: z.string().min(1).max(1024).describe('regular expression searched in the absolute URL'),
    direct: z.boolean().default(false).describe('matching URLs go straight to the origin'),
  })
  .strict();

export const ProxySection = z
  .object({
    listen: z
      .union([hostPort(), z.string().regex(/^\d{1,5}$/, 'must be HOST:PORT or PORT'), z.number().int().min(0).max(65535)])
      .optional()
      .describe('HTTP proxy address, e.g. 127.0.0.1:4002 (--proxy); a bare port listens on 127.0.0.1; absent: no proxy'),
    rules: z
      .array(ProxyRule)
      .max(256)
      .default([{ regex: 'blobs/sha256.*', direct: false }])
      .describe('tried in order against the absolute URL; the first match decides: P2P unless direct; no match: straight to the origin'),
    upstreamTimeout: duration().default(120_000).describe('the origin must answer, and keep sending, within this'),
    connectTimeout: duration().default(10_000).describe('connecting to an origin (pass-through and CONNECT)'),
    tunnelIdleTimeout: duration().default(300_000).describe('a CONNECT tunnel idle this long is closed'),
  })
  .strict();

export const DaemonConfigSchema = z
  .object({
    scheduler: z
      .union([z.url({ protocol: /^https?$/ }), z.array(z.url({ protocol: /^https?$/ })).min(1).max(64)])
      .optional()
      .describe(
        'scheduler URL, e.g. http://10.0.0.1:8002, or a list of them (--scheduler repeated); each task lives on one, by rendezvous hashing, and moves to the next when it dies; one URL whose name resolves to several addresses is one scheduler per address (docs/architecture.md, "Several schedulers"); absent: an in-process scheduler',
      ),
    listen: hostPort().default('0.0.0.0:4000').describe('upload server address'),
    advertise: z.string().min(1).optional().describe('address other peers use to reach this host (default: the listen address, or the first non-loopback IPv4)'),
    api: z.string().min(1).optional().describe('local API: unix socket path or 127.0.0.1:PORT (the CLI defaults it to the standard socket); absent: no API'),
    data: z.string().min(1).optional().describe('data directory: cache and metadata (required by createDaemon; the CLI defaults it to $SHOAL_DATA, /var/lib/shoal for root, else ~/.cache/shoal)'),
    seed: z.boolean().default(false).describe('run as a seed peer'),
    idc: z.string().max(255).default('').describe('idc label, for parent scoring'),
    location: z.string().max(1024).default('').describe('location label, a "|"-separated hierarchy, for parent scoring'),
    logLevel: logLevel().default('info').describe('how much is logged (JSON lines on stderr)'),
    tls: tls(),
    insecure: insecure(),
    metrics: metrics(),
    upload: UploadSection.prefault({}),
    download: DownloadSection.prefault({}),
    cache: CacheSection.prefault({}),
    source: SourceSection.prefault({}),
    mirror: MirrorSection.optional().describe('the OCI registry mirror (docs/containers.md); runs when listen is set'),
    proxy: ProxySection.optional().describe('the HTTP forward proxy (docs/containers.md); runs when listen is set'),
  })
  .strict()
  .refine((c) => c.mirror?.upstream === undefined || c.mirror.listen !== undefined, {
    message: 'mirror.upstream (--upstream) needs mirror.listen (--mirror HOST:PORT)',
    path: ['mirror', 'upstream'],
  });

// ---- scheduler ----

export const PreheatSection = z
  .object({
    startTimeout: duration().default(30_000).describe('a seed that has not started a preheated task this long after being asked fails it'),
    timeout: duration().default(3_600_000).describe('a preheated task not held by its seed after this long fails (when the request gives no timeout)'),
    pollInterval: duration().default(250).describe('how often the swarm is read for a preheat\'s progress'),
  })
  .strict();

export const ConsoleSection = z
  .object({
    listen: hostPort().describe('the web console here (--console HOST:PORT; docs/console.md); off loopback with tls (or insecure)'),
    tokenFile: z
      .string()
      .min(1)
      .describe("the console's login token, made at first start (mode 0600) and kept across restarts; shoal scheduler's default: $XDG_STATE_HOME/shoal/console-token (root: /var/lib/shoal/console-token)"),
  })
  .strict();

export const SchedulerConfigSchema = z
  .object({
    listen: hostPort().default('0.0.0.0:8002').describe('scheduler address (gRPC/Connect over HTTP/2: TLS with tls, else h2c)'),
    logLevel: logLevel().default('info').describe('how much is logged (JSON lines on stderr)'),
    tls: tls(),
    insecure: insecure(),
    metrics: metrics(),
    console: ConsoleSection.optional().describe('the web console on an admin listener: admin certificate or login token (docs/console.md); absent: none'),
    candidateParents: z.number().int().min(1).max(20).default(4).describe('parents a downloading peer is given at most'),
    backToSourceLimit: z.number().int().min(1).max(1000).default(1).describe('peers of one task fetching from the origin at once'),
    seedChildren: z.number().int().min(0).max(10_000).default(1).describe('children of a seed peer per task, 0 = its upload slots'),
    peerChildren: z.number().int().min(0).max(10_000).default(1).describe('children of a normal peer per task, 0 = its upload slots'),
    stripes: z.number().int().min(1).max(8).default(2).describe('split trees: pieces dealt into this many stripes, each down a tree of its own; 1 = one chain'),
    stripesFrom: z.number().int().min(1).max(1_000_000).default(16).describe('a task is one chain until this many peers download it, then split trees'),
    seedTimeout: duration().default(10_000).describe('a seed peer asked to fetch that has not registered this long: a normal peer goes to the origin instead'),
    cacheRestoreTimeout: duration().default(60_000).describe('shoal cache: a host asked to make a missing copy of a cache task that holds none this long is given up on, and another is asked'),
    recoveryWindow: duration().default(3000).describe('after a start, peers re-registering are not sent to the origin for this long (the one that was fetching re-announces first)'),
    preheat: PreheatSection.prefault({}),
  })
  .strict();

export type DaemonConfig = z.infer<typeof DaemonConfigSchema>;
/** What `createDaemon` takes: the config file's shape, defaults still to apply. */
export type DaemonInit = z.input<typeof DaemonConfigSchema>;
export type UploadSettings = DaemonConfig['upload'];
export type DownloadSettings = DaemonConfig['download'];
export type CacheSettings = DaemonConfig['cache'];
export type SourceSettings = DaemonConfig['source'];
export type MirrorSettings = NonNullable<DaemonConfig['mirror']>;
export type MirrorUpstreamSettings = MirrorSettings['upstreams'][number];
export type ProxySettings = NonNullable<DaemonConfig['proxy']>;
export type ProxyRuleSettings = ProxySettings['rules'][number];

export type TlsSettings = z.infer<typeof TlsSection>;

export type SchedulerConfig = z.infer<typeof SchedulerConfigSchema>;
/** What `createScheduler` takes: the config file's shape, defaults still to apply. */
export type SchedulerInit = z.input<typeof SchedulerConfigSchema>;
export type PreheatSettings = SchedulerConfig['preheat'];
export type ConsoleSettings = NonNullable<SchedulerConfig['console']>;

/** The scheduler URLs of a daemon's `scheduler` setting (none: []). */
export function schedulerList(scheduler: DaemonConfig['scheduler']): string[] {
  if (scheduler === undefined) return [];
  return typeof scheduler === 'string' ? [scheduler] : [...scheduler];
}

/** The upload slots a daemon offers: configured, or 64 (a seed peer, 256). */
export function uploadSlots(config: Pick<DaemonConfig, 'upload' | 'seed'>): number {
  return config.upload.slots ?? (config.seed ? 256 : 64);
}

/**
 * What the scheduler a daemon without `scheduler` runs in its own process is
 * given: `shoal scheduler`'s defaults, on a loopback port, with no recovery
 * window (nobody can have been fetching before it started).
 */
export function embeddedSchedulerInit(logLevel: DaemonConfig['logLevel']): SchedulerInit {
  return { listen: '127.0.0.1:0', logLevel, recoveryWindow: 0 };
}
