/** A checked download request as the task the scheduler and peers know. */
import { create } from '@bufbuild/protobuf';
import { TaskSpecSchema, type TaskSpec } from '../gen/shoal/v1/scheduler_pb.js';
import { taskId } from '../common/ids.js';
import { cacheTaskId } from '../common/cache-id.js';
import { checkDownloadRequest, type DownloadRequest } from './request-check.js';

export { blobDigestOf, type DownloadRequest, type Requester } from './request-check.js';

export function toTaskSpec(request: DownloadRequest): TaskSpec {
  checkDownloadRequest(request);
  if (request.cacheId !== undefined && request.cacheId !== '') return create(TaskSpecSchema, { taskId: cacheTaskId(request.cacheId), cacheId: request.cacheId });
  const headers = request.headers ?? [];
  const filters = request.filteredQueryParams ?? [];
  return create(TaskSpecSchema, {
    taskId: taskId({ url: request.url, tag: request.tag, application: request.application, filteredQueryParams: filters, digest: request.digest, pieceSize: request.pieceSize }),
    url: request.url,
    headers: headers.map(([name, value]) => ({ name, value })),
    digest: request.digest ?? '',
    pieceSize: request.pieceSize ?? 0,
    tag: request.tag ?? '',
    application: request.application ?? '',
    filteredQueryParams: [...filters],
  });
}
