/**
 * Connect-RPC handlers: turn the SyncHost and AnnouncePeer streams into calls
 * on the Swarm, Preheat into a Preheater run. Each stream's replies go
 * through an AsyncQueue. Every error that ends a call is coded
 * (../common/rpc-errors.ts): USAGE for protocol misuse (announce without a
 * host, a second register, a message before register), LIMIT_EXCEEDED past
 * the RPC limits (./rpc-limits.ts), INTERNAL for anything else.
 */
import { create } from '@bufbuild/protobuf';
import { Code, type ConnectRouter, type HandlerContext } from '@connectrpc/connect';
import {
  HostCommandSchema,
  PreheatProgressSchema,
  Scheduler,
  type HostCommand,
  type HostRequest,
  type PeerRequest,
  type PeerResponse,
  type PreheatProgress,
  type PreheatRequest,
} from '../gen/shoal/v1/scheduler_pb.js';
import { AsyncQueue } from '../common/async-queue.js';
import { ShoalError, isErrorCode } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { toConnectError } from '../common/rpc-errors.js';
import { hostInfo } from './host-info.js';
import type { PeerEntry } from './model.js';
import { PREHEAT_LIMITS, type Preheater, type PreheatUpdate } from './preheat.js';
import { RPC_LIMITS, checkCount, checkHeldTask, checkLength, checkPieceNumbers, checkRegister, checkShape } from './rpc-limits.js';
import { statResponse } from './stat.js';
import { checkSameHost, checkTaskId } from './task-identity.js';
import { callerOf, mayAct, requireRole } from './caller.js';
import { CacheListSchema, type CacheQuery, type ImportCacheRequest } from '../gen/shoal/v1/scheduler_pb.js';
import { checkCacheId } from '../common/cache-id.js';
import type { Swarm } from './swarm.js';

function progressMessage(update: PreheatUpdate): PreheatProgress {
  return create(PreheatProgressSchema, {
    taskId: update.taskId,
    url: update.url,
    state: update.state,
    seedHostId: update.seedHostId,
    completedBytes: BigInt(update.completedBytes),
    ...(update.contentLength === undefined ? {} : { contentLength: BigInt(update.contentLength) }),
    errorCode: update.error?.code ?? '',
    errorMessage: update.error?.message ?? '',
  });
}

function checkPreheat(request: PreheatRequest): void {
  checkCount('tasks in one preheat', request.tasks.length, PREHEAT_LIMITS.tasks);
  for (const task of request.tasks) {
    if (task.taskId === '' || task.url === '') throw new ShoalError('USAGE', 'a preheat task needs a task ID and a URL');
    checkLength('task ID', task.taskId);
    checkLength('URL', task.url);
    checkTaskId(task);
  }
}

export function schedulerRoutes(swarm: Swarm, preheater: Preheater, log: Logger) {
  return (router: ConnectRouter): void => {
    router.service(Scheduler, {
      syncHost(requests: AsyncIterable<HostRequest>, context: HandlerContext): AsyncIterable<HostCommand> {
        const caller = callerOf(context);
        const out = new AsyncQueue<HostCommand>();
        let hostId: string | undefined;
        void (async () => {
          try {
            for await (const message of requests) {
              const request = message.request;
              switch (request.case) {
                case 'announce': {
                  const { host, tasks } = request.value;
                  if (host === undefined || host.id === '') throw new ShoalError('USAGE', 'announce without a host');
                  requireRole(caller, ['peer', 'seed'], 'announcing a host');
                  if (host.seed) requireRole(caller, ['seed'], 'announcing a seed peer');
                  checkCount('held tasks in one announce', tasks.length, RPC_LIMITS.heldTasksPerHost);
                  for (const item of tasks) checkHeldTask(item, swarm.tasks.get(item.taskId)?.shape);
                  // A host ID taken by another member's certificate is not taken over.
                  checkSameHost(caller, swarm.hosts.get(host.id));
                  const info = hostInfo(host, caller.identity?.name ?? '');
                  hostId = info.id;
                  swarm.announceHost(info, (command) => out.push(command), tasks);
                  out.push(create(HostCommandSchema, { command: { case: 'ack', value: {} } }));
                  break;
                }
                case 'load':
                  if (hostId !== undefined) swarm.updateLoad(hostId, request.value.uploadLoad);
                  break;
                case 'evicted':
                  checkCount('evicted tasks in one report', request.value.taskIds.length, RPC_LIMITS.heldTasksPerHost);
                  if (hostId !== undefined) swarm.evict(hostId, request.value.taskIds);
                  break;
                case 'leave':
                  if (hostId !== undefined) swarm.leaveHost(hostId);
                  hostId = undefined;
                  break;
                default:
                  break;
              }
            }
          } catch (err) {
            if (!context.signal.aborted) log.debug({ err }, 'host stream ended with an error');
            out.end(toConnectError(err));
          } finally {
            if (hostId !== undefined) swarm.leaveHost(hostId);
            out.end();
          }
        })();
        return out;
      },

      announcePeer(requests: AsyncIterable<PeerRequest>, context: HandlerContext): AsyncIterable<PeerResponse> {
        const caller = callerOf(context);
        const out = new AsyncQueue<PeerResponse>();
        let peer: PeerEntry | undefined;
        void (async () => {
          try {
            for await (const message of requests) {
              const request = message.request;
              if (request.case === 'register') {
                if (peer !== undefined) throw new ShoalError('USAGE', 'registered twice on one stream');
                requireRole(caller, ['peer', 'seed'], 'registering a download');
                checkRegister(request.value, swarm.tasks.get(request.value.task?.taskId ?? '')?.shape);
                if (request.value.task !== undefined) checkTaskId(request.value.task);
                checkSameHost(caller, swarm.hosts.get(request.value.hostId));
                peer = swarm.register(request.value, (response) => out.push(response));
                // A race more than a misuse: the peer registers again once its host stream is up.
                if (peer === undefined) throw toConnectError(new ShoalError('USAGE', 'register before the host announced itself, or without a task'), Code.FailedPrecondition);
                continue;
              }
              if (peer === undefined) throw new ShoalError('USAGE', `${String(request.case)} before register`);
              switch (request.case) {
                case 'metadata': {
                  const shape = checkShape(request.value.metadata);
                  if (shape !== undefined) swarm.metadata(peer, shape.contentLength, shape.pieceSize, request.value.metadata?.validator ?? '');
                  break;
                }
                case 'pieces':
                  checkCount('piece numbers in one report', request.value.numbers.length, RPC_LIMITS.piecesPerReport);
                  checkPieceNumbers('a piece report', request.value.numbers, peer.task.shape);
                  swarm.piecesFinished(peer, request.value.numbers, request.value.digests);
                  break;
                case 'parentFailed':
                  checkLength('parent peer ID', request.value.parentPeerId);
                  swarm.parentFailed(peer, request.value.parentPeerId, request.value.corrupt);
                  break;
                case 'reschedule':
                  swarm.reschedule(peer);
                  break;
                case 'finished':
                  swarm.finished(peer);
                  break;
                case 'failed': {
                  const { code, status } = request.value;
                  checkLength('error code', code);
                  const text = request.value.message.slice(0, RPC_LIMITS.stringLength);
                  preheater.peerFailed(peer, isErrorCode(code) ? code : 'INTERNAL', text);
                  swarm.failed(peer, code, text, status);
                  peer = undefined;
                  break;
                }
                default:
                  break;
              }
            }
          } catch (err) {
            if (!context.signal.aborted) log.debug({ err }, 'peer stream ended with an error');
            out.end(toConnectError(err));
          } finally {
            if (peer !== undefined) swarm.disconnected(peer);
            out.end();
          }
        })();
        return out;
      },

      async *preheat(request: PreheatRequest, context: HandlerContext): AsyncIterable<PreheatProgress> {
        try {
          requireRole(callerOf(context), ['admin'], 'preheat');
          checkPreheat(request);
          for await (const update of preheater.run(request.tasks, request.timeoutMs, context.signal)) yield progressMessage(update);
        } catch (err) {
          throw toConnectError(err);
        }
      },

      importCache(request: ImportCacheRequest, context: HandlerContext) {
        try {
          const caller = callerOf(context);
          requireRole(caller, ['peer', 'seed'], 'importing a cache task');
          checkLength('peer ID', request.peerId);
          const host = swarm.hosts.get(request.hostId);
          if (host === undefined) throw new ShoalError('USAGE', 'a cache import before the host announced itself');
          checkSameHost(caller, host);
          return swarm.importCache(host, request, caller.identity?.name ?? '');
        } catch (err) {
          throw toConnectError(err);
        }
      },

      listCache(request: CacheQuery, context: HandlerContext) {
        try {
          requireRole(callerOf(context), ['peer', 'seed', 'admin'], 'listing cache tasks');
          if (request.id === '') return create(CacheListSchema, { entries: swarm.cache.list().map((r) => swarm.cache.entry(r)) });
          const record = swarm.cache.get(checkCacheId(request.id));
          return create(CacheListSchema, { entries: record === undefined ? [] : [swarm.cache.entry(record)] });
        } catch (err) {
          throw toConnectError(err);
        }
      },

      removeCache(request: CacheQuery, context: HandlerContext) {
        try {
          const caller = callerOf(context);
          requireRole(caller, ['peer', 'seed', 'admin'], 'removing a cache task');
          const record = swarm.cache.get(checkCacheId(request.id));
          if (record === undefined) throw new ShoalError('CACHE_NOT_FOUND', `no cache ID ${request.id} in the cluster`);
          swarm.cache.checkMayRemove(record, { secure: caller.secure, name: caller.identity?.name ?? '', admin: caller.secure && mayAct(caller, 'admin') });
          const entry = swarm.cache.entry(record);
          swarm.cache.remove(record, 'removed');
          return create(CacheListSchema, { entries: [entry] });
        } catch (err) {
          throw toConnectError(err);
        }
      },

      stat(_request, context: HandlerContext) {
        try {
          requireRole(callerOf(context), ['admin'], 'the cluster-wide Stat');
        } catch (err) {
          throw toConnectError(err);
        }
        return statResponse(swarm.hosts.values(), swarm.tasks.values());
      },
    });
  };
}
