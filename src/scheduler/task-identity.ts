/**
 * What the scheduler checks itself rather than take on a client's word: a
 * task's ID is derived from its URL, tag, application, filters, digest and
 * piece size (../common/ids.ts), and a peer registers only for the host its
 * own certificate announced.
 */
import type { TaskSpec } from '../gen/shoal/v1/scheduler_pb.js';
import { ShoalError } from '../common/errors.js';
import { redactUrl, taskId } from '../common/ids.js';
import { cacheTaskId } from '../common/cache-id.js';
import type { Caller } from './caller.js';
import type { HostEntry } from './model.js';

/** USAGE unless `spec.taskId` is the ID its URL and the rest make (URL_INVALID, DIGEST_INVALID for a malformed one). */
export function checkTaskId(spec: TaskSpec): void {
  if (spec.cacheId !== '') {
    // A cache task has no origin: its ID comes from its cache ID alone (CACHE_ID_INVALID for a malformed one).
    if (spec.url !== '' || cacheTaskId(spec.cacheId) !== spec.taskId) throw new ShoalError('USAGE', `task ID ${spec.taskId.slice(0, 16)}… is not the one cache ID ${spec.cacheId.slice(0, 80)} makes, or it has a URL`);
    return;
  }
  const derived = taskId({
    url: spec.url,
    tag: spec.tag,
    application: spec.application,
    filteredQueryParams: spec.filteredQueryParams,
    digest: spec.digest,
    pieceSize: spec.pieceSize,
  });
  if (derived !== spec.taskId) throw new ShoalError('USAGE', `task ID ${spec.taskId.slice(0, 16)}… is not the one ${redactUrl(spec.url)} makes`);
}

/** ROLE_REQUIRED when, with TLS, the peer's certificate is not the one its host announced with. */
export function checkSameHost(caller: Caller, host: HostEntry | undefined): void {
  if (!caller.secure || host === undefined) return;
  const name = caller.identity?.name ?? '';
  if (host.info.identity !== name) {
    throw new ShoalError('ROLE_REQUIRED', `a download for host ${host.info.id} must come with the certificate that host announced with (${host.info.identity}), not ${name || 'none'}`);
  }
}
