/**
 * Configuration files (YAML), one zod schema per component: types, defaults
 * and validation in one place. Errors name the bad key. Command-line flags
 * override the file.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { ShoalError } from './errors.js';
import { parseDuration, parseSize } from './units.js';

/** A string-or-number field turned into a number by `parse`, whose error becomes the field's issue. */
function parsed(parse: (value: string | number) => number) {
  return z.union([z.string(), z.number()]).transform((v, ctx) => {
    try {
      return parse(v);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });
}
const size = parsed(parseSize);
const duration = parsed(parseDuration);
const hostPort = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[\w.-]+):\d{1,5}$/, 'must be HOST:PORT');
const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

export const DaemonConfigSchema = z
  .object({
    scheduler: z.url({ protocol: /^https?$/ }).optional().describe('scheduler URL, e.g. http://10.0.0.1:8002'),
    listen: hostPort.default('0.0.0.0:4000').describe('upload server address'),
    advertise: z.string().min(1).optional().describe('address other peers use to reach this host'),
    api: z.string().min(1).optional().describe('local API: unix socket path or 127.0.0.1:PORT'),
    data: z.string().min(1).optional().describe('data directory (cache and metadata)'),
    seed: z.boolean().default(false).describe('run as a seed peer'),
    idc: z.string().max(255).default(''),
    location: z.string().max(1024).default(''),
    logLevel: logLevel.default('info'),
    upload: z
      .object({
        slots: z.number().int().min(1).max(10_000).optional().describe('concurrent piece uploads'),
        rate: size.default(0).describe('upload bandwidth cap, bytes/s (0 = none)'),
      })
      .strict()
      .default({ rate: 0 }),
    download: z
      .object({
        concurrentPieces: z.number().int().min(1).max(256).default(16),
        perParent: z.number().int().min(1).max(64).default(4),
        pieceTimeout: duration.default(10_000).describe('a parent sending nothing this long loses the piece'),
        scheduleTimeout: duration.default(15_000).describe('with no scheduler for this long, go to the origin'),
        protocol: z.enum(['tcp', 'http']).default('tcp').describe('how pieces are fetched from parents: the binary piece protocol, or HTTP/1.1'),
        askAhead: z.boolean().default(false).describe('ask a parent still fetching for the pieces it is about to get (binary protocol, FLAG_WAIT)'),
      })
      .strict()
      .default({ concurrentPieces: 16, perParent: 4, pieceTimeout: 10_000, scheduleTimeout: 15_000, protocol: 'tcp', askAhead: false }),
    cache: z
      .object({
        quota: size.default(0).describe('bytes of content kept (0 = no quota)'),
        ttl: duration.default(0).describe('drop tasks unused this long (0 = never)'),
        gcInterval: duration.default(60_000),
      })
      .strict()
      .default({ quota: 0, ttl: 0, gcInterval: 60_000 }),
    source: z
      .object({
        retries: z.number().int().min(0).max(100).default(5),
        timeout: duration.default(30_000).describe('origin idle timeout'),
        ca: z.string().optional().describe('PEM file with extra CA certificates'),
        insecure: z.boolean().default(false),
      })
      .strict()
      .default({ retries: 5, timeout: 30_000, insecure: false }),
    mirror: z
      .object({
        listen: hostPort.optional().describe('registry mirror address, e.g. 127.0.0.1:4001; absent: no mirror'),
        upstream: z.string().min(1).max(300).optional().describe('registry used when a request names none: a host (docker.io) or URL'),
        upstreams: z
          .array(
            z
              .object({
                host: z.string().min(1).max(261).describe('the registry as clients name it: docker.io, 127.0.0.1:5000'),
                url: z.url({ protocol: /^https?$/ }).optional().describe('where it is served; default https://<host>'),
                insecure: z.boolean().default(false).describe('allow plain HTTP'),
                ca: z.string().min(1).optional().describe('PEM file with extra CA certificates for this registry'),
              })
              .strict()
              .refine((u) => u.insecure || u.url === undefined || !u.url.startsWith('http:'), {
                message: 'url is plain http: set insecure: true to allow it',
                path: ['url'],
              }),
          )
          .max(256)
          .default([]),
        tagTtl: duration.default(0).describe('cache tag → digest this long; 0 = ask the registry every time'),
        authTtl: duration.default(60_000).describe('cache a successful registry access check this long'),
        manifestCache: size.default(64 * 1024 * 1024).describe('bytes of manifests kept in memory'),
        prefetch: z.boolean().default(true).describe('start an image\'s layer downloads when its manifest is served'),
      })
      .strict()
      .optional(),
    proxy: z
      .object({
        listen: z
          .union([hostPort, z.string().regex(/^\d{1,5}$/, 'must be HOST:PORT or PORT'), z.number().int().min(0).max(65535)])
          .optional()
          .describe('HTTP proxy address, e.g. 127.0.0.1:4002; a bare port listens on 127.0.0.1; absent: no proxy'),
        rules: z
          .array(
            z
              .object({
                regex: z.string().min(1).max(1024).describe('regular expression searched in the absolute URL'),
                direct: z.boolean().default(false).describe('matching URLs go straight to the origin'),
              })
              .strict(),
          )
          .max(256)
          .default([{ regex: 'blobs/sha256.*', direct: false }])
          .describe('first match decides: P2P unless direct; no match: straight to the origin'),
        upstreamTimeout: duration.default(120_000).describe('the origin must answer, and keep sending, within this'),
        connectTimeout: duration.default(10_000),
        tunnelIdleTimeout: duration.default(300_000).describe('a CONNECT tunnel idle this long is closed'),
      })
      .strict()
      .optional(),
  })
  .strict();

export type DaemonConfig = z.infer<typeof DaemonConfigSchema>;
export type MirrorConfig = NonNullable<DaemonConfig['mirror']>;

export const SchedulerConfigSchema = z
  .object({
    listen: hostPort.default('0.0.0.0:8002'),
    logLevel: logLevel.default('info'),
    candidateParents: z.number().int().min(1).max(20).default(4),
    backToSourceLimit: z.number().int().min(1).max(1000).default(1),
    seedChildren: z.number().int().min(0).max(10_000).default(1).describe('children of a seed peer per task, 0 = its upload slots'),
    peerChildren: z.number().int().min(0).max(10_000).default(1).describe('children of a normal peer per task, 0 = its upload slots'),
    stripes: z.number().int().min(1).max(8).default(2).describe('split trees: pieces dealt into this many stripes, each down a tree of its own; 1 = one chain'),
    stripesFrom: z.number().int().min(1).max(1_000_000).default(16).describe('a task is one chain until this many peers download it, then split trees'),
    seedTimeout: duration.default(10_000),
    recoveryWindow: duration.default(3000),
  })
  .strict();

export type SchedulerConfig = z.infer<typeof SchedulerConfigSchema>;

function describeIssues(error: z.ZodError, file: string): string {
  return error.issues
    .map((issue) => {
      const key = issue.path.length === 0 ? '(top level)' : issue.path.join('.');
      return `${file}: ${key}: ${issue.message}`;
    })
    .join('\n');
}

/** Reads a YAML config file as an unvalidated object; an absent path gives `{}`. */
export function readConfigFile(path: string | undefined): Record<string, unknown> {
  if (path === undefined) return {};
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ShoalError('CONFIG_INVALID', `cannot read config file ${path}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text) ?? {};
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos !== undefined ? ` at line ${err.linePos[0].line}` : '';
    throw new ShoalError('CONFIG_INVALID', `${path}: not valid YAML${where}: ${(err as Error).message.split('\n')[0] ?? ''}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ShoalError('CONFIG_INVALID', `${path}: (top level): expected a mapping of keys to values`);
  }
  return raw as Record<string, unknown>;
}

/** Reads and validates a YAML config file; an absent path gives the defaults. */
export function loadConfig<S extends z.ZodType>(schema: S, path: string | undefined): z.infer<S> {
  return validateConfig(schema, readConfigFile(path), path ?? '(defaults)');
}

export function validateConfig<S extends z.ZodType>(schema: S, raw: unknown, label: string): z.infer<S> {
  const result = schema.safeParse(raw);
  if (!result.success) throw new ShoalError('CONFIG_INVALID', describeIssues(result.error, label));
  return result.data;
}

export function splitHostPort(value: string): { host: string; port: number } {
  const m = /^(\[([0-9a-fA-F:]+)\]|[\w.-]+):(\d{1,5})$/.exec(value);
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || port > 65535) throw new ShoalError('USAGE', `${JSON.stringify(value)} is not HOST:PORT`);
  return { host: m[2] ?? m[1]!, port };
}
