/**
 * `shoal preheat URL…` and `shoal preheat image REF`: seed peers fetch ahead
 * of demand. The local daemon resolves an image through its registry and asks
 * the scheduler, which has the seed peers fetch; progress goes to stderr (a
 * line per task as it ends), and the exit code says whether every task is now
 * held by a seed peer: 0, else PREHEAT_INCOMPLETE with each failure listed (or
 * the code of what stopped the whole preheat).
 */
import { parseDuration } from '../common/units.js';
import { ShoalError, fromJSON } from '../common/errors.js';
import { parseDigest, parseSourceUrl } from '../common/ids.js';
import type { PreheatEvent, PreheatInput, PreheatTaskEvent } from '../daemon/preheat/run.js';
import { requestPreheat } from './daemon-client.js';
import { defaultEndpoint } from './defaults.js';
import { parseHeader } from './get.js';
import type { CliIo } from './io.js';

export interface PreheatFlags {
  header: string[];
  digest: string[];
  platform?: string;
  upstream?: string;
  timeout?: string;
  endpoint?: string;
  /** Ask this scheduler directly (with an admin certificate, `tls`) instead of through the local daemon. */
  scheduler?: string;
  /** DIR/NAME: the cluster CA and an admin certificate (shoal cluster init DIR makes DIR/admin). */
  tls?: string;
  json: boolean;
  quiet: boolean;
}

/**
 * The preheat's events: from the scheduler directly (`--scheduler`, as an
 * admin: only admin certificates may make seeds fetch), else through the
 * local daemon, which asks with its own certificate (enough only where the
 * scheduler checks no roles).
 */
async function* preheatEvents(input: PreheatInput, flags: PreheatFlags, io: CliIo): AsyncGenerator<PreheatEvent> {
  if (flags.scheduler === undefined) {
    if (flags.tls !== undefined) throw new ShoalError('USAGE', '--tls goes with --scheduler URL (a preheat through the local daemon uses the daemon\'s certificate)');
    yield* requestPreheat(flags.endpoint ?? defaultEndpoint(io.env), input, io.signal);
    return;
  }
  const [{ runPreheat: preheat }, { createSchedulerClient }, { loadTls }, path] = await Promise.all([
    import('../daemon/preheat/run.js'),
    import('../daemon/scheduler-link.js'),
    import('../identity/tls.js'),
    import('node:path'),
  ]);
  const tls = flags.tls === undefined ? undefined : loadTls({ ca: path.join(path.dirname(flags.tls), 'ca.crt'), cert: `${flags.tls}.crt`, key: `${flags.tls}.key` }, ['admin']);
  yield* preheat(input, { client: createSchedulerClient(flags.scheduler, tls), upstreams: [] }, io.signal);
}

export function buildPreheat(targets: readonly string[], flags: PreheatFlags): PreheatInput {
  const headers = flags.header.map(parseHeader);
  let timeoutMs: number | undefined;
  if (flags.timeout !== undefined) {
    try {
      timeoutMs = parseDuration(flags.timeout);
    } catch (err) {
      throw new ShoalError('USAGE', `--timeout: ${(err as Error).message}`);
    }
  }
  if (targets[0] === 'image') {
    if (targets.length !== 2) throw new ShoalError('USAGE', 'shoal preheat image REF: give one image reference');
    if (flags.digest.length > 0) throw new ShoalError('USAGE', '--digest is for URLs; an image names its blobs by digest itself');
    return { image: { ref: targets[1]!, platform: flags.platform, upstream: flags.upstream }, headers, timeoutMs };
  }
  if (flags.platform !== undefined || flags.upstream !== undefined) throw new ShoalError('USAGE', '--platform and --upstream are for shoal preheat image REF');
  if (targets.length === 0) throw new ShoalError('USAGE', 'shoal preheat URL… or shoal preheat image REF');
  if (flags.digest.length > 0 && flags.digest.length !== targets.length) {
    throw new ShoalError('USAGE', `give one --digest per URL, in order (${targets.length} URLs, ${flags.digest.length} digests)`);
  }
  return {
    urls: targets.map((url, i) => {
      parseSourceUrl(url);
      const digest = flags.digest[i];
      if (digest !== undefined) parseDigest(digest);
      return { url, digest };
    }),
    headers,
    timeoutMs,
  };
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

function label(e: PreheatTaskEvent): string {
  const blob = /\/blobs\/(sha256:[a-f0-9]{12})/.exec(e.url);
  return blob !== null ? `${blob[1]!}…` : e.url;
}

export async function runPreheat(targets: readonly string[], flags: PreheatFlags, io: CliIo): Promise<number> {
  const input = buildPreheat(targets, flags);
  const say = (line: string): void => {
    if (!flags.quiet) io.stderr.write(line + '\n');
  };
  const ends = new Map<string, PreheatTaskEvent>();
  let summary: Extract<PreheatEvent, { event: 'end' }> | undefined;
  let resolved: Extract<PreheatEvent, { event: 'resolved' }> | undefined;
  for await (const event of preheatEvents(input, flags, io)) {
    switch (event.event) {
      case 'resolved':
        resolved = event;
        say(`preheat ${event.image}: ${event.registry}/${event.name}@${event.manifest}${event.platform === undefined ? '' : ` (${event.platform})`}, ${event.blobs.length} blobs`);
        break;
      case 'started':
        say(`preheat: ${event.tasks.length} task${event.tasks.length === 1 ? '' : 's'} sent to the scheduler`);
        break;
      case 'task':
        if (event.state === 'running') break;
        ends.set(event.taskId, event);
        if (event.state === 'done') say(`done    ${label(event)}  ${mib(event.completedBytes)}  on seed ${event.seedHostId}`);
        else say(`failed  ${label(event)}  ${event.error?.code ?? 'INTERNAL'}: ${event.error?.message ?? ''}`);
        break;
      case 'end':
        summary = event;
        break;
      case 'error':
        throw fromJSON(event.error);
    }
  }
  if (summary === undefined) throw new ShoalError('DAEMON_UNREACHABLE', 'the daemon ended the preheat without a result');
  const failures = [...ends.values()].filter((e) => e.state === 'failed');
  if (flags.json) {
    io.stdout.write(
      JSON.stringify(
        {
          ...(resolved === undefined ? {} : { image: { ref: resolved.image, registry: resolved.registry, name: resolved.name, manifest: resolved.manifest, index: resolved.index, platform: resolved.platform } }),
          ...summary,
          event: undefined,
          results: [...ends.values()].map((e) => ({ taskId: e.taskId, url: e.url, state: e.state, seedHostId: e.seedHostId, bytes: e.completedBytes, error: e.error })),
        },
        null,
        2,
      ) + '\n',
    );
  }
  if (summary.failed === 0) {
    say(`preheat: all ${summary.tasks} tasks held by seed peers (${mib(summary.bytes)})`);
    return 0;
  }
  io.stderr.write(`preheat: ${summary.done} of ${summary.tasks} tasks done, ${summary.failed} failed:\n`);
  for (const f of failures) io.stderr.write(`  ${f.url}: ${f.error?.code ?? 'INTERNAL'}: ${f.error?.message ?? ''}\n`);
  throw new ShoalError('PREHEAT_INCOMPLETE', `${summary.failed} of ${summary.tasks} preheat tasks failed`);
}
