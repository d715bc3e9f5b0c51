/**
 * A preheat as the daemon runs it for the CLI (`POST /v1/preheat`): URLs, or an
 * image resolved through its registry into blob tasks, handed to the
 * scheduler's Preheat RPC, which has seed peers fetch them; the scheduler's
 * progress comes back as events, ending with a summary.
 */
import type { TaskSpec } from '../../gen/shoal/v1/scheduler_pb.js';
import { ShoalError, isErrorCode, type ErrorCode } from '../../common/errors.js';
import { fromConnectError } from '../../common/rpc-errors.js';
import { RegistryClient } from '../registry/client.js';
import { UpstreamResolver, type UpstreamEntry } from '../registry/upstream.js';
import { blobDigestOf, toTaskSpec, type DownloadRequest } from '../request.js';
import type { SchedulerClient } from '../scheduler-link.js';
import { PREHEAT_USER_AGENT, resolveImage } from './image.js';
import { parseImageReference, parsePlatform } from './reference.js';
import { redactUrl } from '../../common/ids.js';

export interface PreheatInput {
  /** Files to preheat; a blob URL's `sha256:` digest becomes the task's digest unless one is given. */
  urls?: ReadonlyArray<{ url: string; digest?: string | undefined }> | undefined;
  /** An image to preheat: every blob of the platform's manifest. */
  image?: { ref: string; platform?: string | undefined; upstream?: string | undefined } | undefined;
  /** Headers for the origin or registry (Authorization), on every task. */
  headers?: ReadonlyArray<readonly [string, string]> | undefined;
  /** Give up on a task after this long; 0/undefined = the scheduler's default (1 h). */
  timeoutMs?: number | undefined;
}

export interface PreheatTaskEvent {
  event: 'task';
  taskId: string;
  url: string;
  state: 'running' | 'done' | 'failed';
  seedHostId: string;
  completedBytes: number;
  contentLength?: number;
  error?: { code: ErrorCode; message: string };
}

export type PreheatEvent =
  | { event: 'resolved'; image: string; registry: string; name: string; manifest: string; index?: string; platform?: string; blobs: Array<{ digest: string; size?: number; mediaType: string }> }
  | { event: 'started'; tasks: Array<{ taskId: string; url: string; digest?: string }> }
  | PreheatTaskEvent
  | { event: 'end'; tasks: number; done: number; failed: number; bytes: number }
  | { event: 'error'; error: { code: ErrorCode; message: string } };

export interface PreheatDeps {
  /** The scheduler, or the one each task lives on (several schedulers: ../scheduler-pool.ts); undefined when the daemon runs without one. */
  client: SchedulerClient | ((taskId: string) => SchedulerClient) | undefined;
  /** The mirror's registries (their URLs, CAs, insecure flags). */
  upstreams: readonly UpstreamEntry[];
  registryTimeoutMs?: number;
}

export async function* runPreheat(input: PreheatInput, deps: PreheatDeps, signal: AbortSignal): AsyncGenerator<PreheatEvent> {
  const headers = input.headers ?? [];
  const requests: DownloadRequest[] = [];
  if (input.image !== undefined) {
    const ref = parseImageReference(input.image.ref);
    const platform = parsePlatform(input.image.platform ?? 'linux/amd64');
    // An operator-given --upstream URL is used as it is (plain HTTP included), as the mirror's --upstream is.
    const resolver = new UpstreamResolver({ upstreams: deps.upstreams, defaultUpstream: input.image.upstream ?? ref.registry });
    const upstream = resolver.resolve(undefined, undefined);
    const client = new RegistryClient({ timeoutMs: deps.registryTimeoutMs ?? 30_000 });
    try {
      const image = await resolveImage({ ref, upstream, platform, headers, client, signal });
      yield {
        event: 'resolved',
        image: input.image.ref,
        registry: upstream.origin,
        name: image.name,
        manifest: image.manifestDigest,
        ...(image.indexDigest === undefined ? {} : { index: image.indexDigest }),
        ...(image.platform === undefined ? {} : { platform: image.platform }),
        blobs: image.blobs.map((b) => ({ digest: b.digest, ...(b.size === undefined ? {} : { size: b.size }), mediaType: b.mediaType })),
      };
      for (const blob of image.blobs) {
        requests.push({ url: `${upstream.origin}/v2/${image.name}/blobs/${blob.digest}`, digest: blob.digest, headers: image.blobHeaders, requester: 'preheat' });
      }
    } finally {
      await client.close();
    }
  }
  const withAgent = headers.some(([n]) => n.toLowerCase() === 'user-agent') ? headers : [['User-Agent', PREHEAT_USER_AGENT] as const, ...headers];
  for (const item of input.urls ?? []) {
    requests.push({ url: item.url, digest: item.digest ?? blobDigestOf(item.url), headers: withAgent, requester: 'preheat' });
  }
  if (requests.length === 0) throw new ShoalError('USAGE', 'nothing to preheat: give URLs or an image');
  const specs: TaskSpec[] = requests.map((r) => toTaskSpec(r));
  yield { event: 'started', tasks: specs.map((s) => ({ taskId: s.taskId, url: redactUrl(s.url), ...(s.digest === '' ? {} : { digest: s.digest }) })) };
  if (deps.client === undefined) throw new ShoalError('SEED_UNAVAILABLE', 'this daemon runs without a scheduler: preheat needs a scheduler and a seed peer');

  const last = new Map<string, PreheatTaskEvent>();
  try {
    // Each task is preheated on its own scheduler, where its downloads will look for it.
    const route = deps.client;
    const groups = new Map<SchedulerClient, TaskSpec[]>();
    for (const spec of specs) {
      const client = typeof route === 'function' ? route(spec.taskId) : route;
      groups.set(client, [...(groups.get(client) ?? []), spec]);
    }
    const timeoutMs = Math.min(input.timeoutMs ?? 0, 0xffffffff);
    const stream = merged([...groups].map(([client, tasks]) => client.preheat({ tasks, timeoutMs }, { signal })));
    for await (const p of stream) {
      const event: PreheatTaskEvent = {
        event: 'task',
        taskId: p.taskId,
        url: redactUrl(p.url),
        state: p.state === 'done' || p.state === 'failed' ? p.state : 'running',
        seedHostId: p.seedHostId,
        completedBytes: Number(p.completedBytes),
        ...(p.contentLength === undefined ? {} : { contentLength: Number(p.contentLength) }),
        ...(p.state === 'failed' ? { error: { code: isErrorCode(p.errorCode) ? p.errorCode : 'INTERNAL', message: p.errorMessage } } : {}),
      };
      last.set(p.taskId, event);
      yield event;
    }
  } catch (err) {
    if (signal.aborted) throw new ShoalError('ABORTED', 'preheat cancelled');
    const e = fromConnectError(err, 'SCHEDULER_UNREACHABLE');
    throw e.code === 'SCHEDULER_UNREACHABLE' ? new ShoalError('SCHEDULER_UNREACHABLE', `preheat through the scheduler failed: ${e.message}`) : e;
  }
  let done = 0;
  let failed = 0;
  let bytes = 0;
  for (const spec of specs) {
    const end = last.get(spec.taskId);
    if (end?.state === 'done') {
      done++;
      bytes += end.completedBytes;
    } else {
      failed++;
      if (end?.state !== 'failed') {
        // The stream ended without this task's end state: say so rather than count it done.
        yield { event: 'task', taskId: spec.taskId, url: redactUrl(spec.url), state: 'failed', seedHostId: end?.seedHostId ?? '', completedBytes: end?.completedBytes ?? 0, error: { code: 'SCHEDULER_UNREACHABLE', message: 'the scheduler ended the preheat without an answer for this task' } };
      }
    }
  }
  yield { event: 'end', tasks: specs.length, done, failed, bytes };
}


/** The items of several streams, as each comes; ends when all have (the first error ends it). */
async function* merged<T>(streams: readonly AsyncIterable<T>[]): AsyncGenerator<T> {
  const iterators = streams.map((s) => s[Symbol.asyncIterator]());
  const pending = new Map<number, Promise<{ i: number; r: IteratorResult<T> }>>();
  const pull = (i: number): void => {
    pending.set(
      i,
      iterators[i]!.next().then((r) => ({ i, r })),
    );
  };
  iterators.forEach((_, i) => pull(i));
  try {
    while (pending.size > 0) {
      const { i, r } = await Promise.race(pending.values());
      if (r.done === true) {
        pending.delete(i);
        continue;
      }
      pull(i);
      yield r.value;
    }
  } finally {
    for (const [i] of pending) void iterators[i]!.return?.();
  }
}
