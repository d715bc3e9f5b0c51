/**
 * Connect-RPC handlers: turn the SyncHost and AnnouncePeer streams into calls
 * on the Swarm. Each stream's replies go through an AsyncQueue.
 */
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from '@connectrpc/connect';
import {
  HostCommandSchema,
  PreheatProgressSchema,
  Scheduler,
  StatResponseSchema,
  type HostCommand,
  type HostRequest,
  type PeerRequest,
  type PeerResponse,
  type PreheatProgress,
  type PreheatRequest,
} from '../gen/shoal/v1/scheduler_pb.js';
import { AsyncQueue } from '../common/async-queue.js';
import { isErrorCode } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { HostInfo, PeerEntry } from './model.js';
import { PREHEAT_LIMITS, type Preheater } from './preheat.js';
import type { Swarm } from './swarm.js';

/** Caps on what a peer may send (docs/LIMITS.md). */
export const RPC_LIMITS = {
  /** Piece numbers in one report. */
  piecesPerReport: 65_536,
  /** Tasks re-announced by one host. */
  heldTasksPerHost: 100_000,
  /** Length of IDs, labels and URLs. */
  stringLength: 8192,
} as const;

function hostInfo(raw: NonNullable<Extract<HostRequest['request'], { case: 'announce' }>['value']['host']>): HostInfo {
  return {
    id: raw.id.slice(0, RPC_LIMITS.stringLength),
    hostname: raw.hostname.slice(0, 255),
    ip: raw.ip,
    port: raw.uploadPort,
    idc: raw.idc.slice(0, 255),
    location: raw.location.slice(0, 1024),
    seed: raw.seed,
    uploadSlots: raw.uploadSlots === 0 ? 64 : raw.uploadSlots,
    uploadLoad: raw.uploadLoad,
    uploadRate: Number(raw.uploadRate),
  };
}

export function schedulerRoutes(swarm: Swarm, preheater: Preheater, log: Logger) {
  return (router: ConnectRouter): void => {
    router.service(Scheduler, {
      syncHost(requests: AsyncIterable<HostRequest>, context: HandlerContext): AsyncIterable<HostCommand> {
        const out = new AsyncQueue<HostCommand>();
        let hostId: string | undefined;
        void (async () => {
          try {
            for await (const message of requests) {
              const request = message.request;
              switch (request.case) {
                case 'announce': {
                  if (request.value.host === undefined || request.value.host.id === '') throw new Error('announce without a host');
                  if (request.value.tasks.length > RPC_LIMITS.heldTasksPerHost) throw new Error('too many held tasks');
                  const info = hostInfo(request.value.host);
                  hostId = info.id;
                  swarm.announceHost(info, (command) => out.push(command), request.value.tasks);
                  out.push(create(HostCommandSchema, { command: { case: 'ack', value: {} } }));
                  break;
                }
                case 'load':
                  if (hostId !== undefined) swarm.updateLoad(hostId, request.value.uploadLoad);
                  break;
                case 'evicted':
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
          } finally {
            if (hostId !== undefined) swarm.leaveHost(hostId);
            out.end();
          }
        })();
        return out;
      },

      announcePeer(requests: AsyncIterable<PeerRequest>, context: HandlerContext): AsyncIterable<PeerResponse> {
        const out = new AsyncQueue<PeerResponse>();
        let peer: PeerEntry | undefined;
        void (async () => {
          try {
            for await (const message of requests) {
              const request = message.request;
              if (request.case === 'register') {
                if (peer !== undefined) throw new Error('registered twice on one stream');
                peer = swarm.register(request.value, (response) => out.push(response));
                if (peer === undefined) throw new ConnectError('register before the host announced itself, or without a task', Code.FailedPrecondition);
                continue;
              }
              if (peer === undefined) throw new Error(`${String(request.case)} before register`);
              switch (request.case) {
                case 'metadata': {
                  const meta = request.value.metadata;
                  if (meta !== undefined) swarm.metadata(peer, meta.contentLength === undefined ? undefined : Number(meta.contentLength), meta.pieceSize);
                  break;
                }
                case 'pieces':
                  if (request.value.numbers.length > RPC_LIMITS.piecesPerReport) throw new Error('piece report too large');
                  swarm.piecesFinished(peer, request.value.numbers, request.value.digests);
                  break;
                case 'parentFailed':
                  swarm.parentFailed(peer, request.value.parentPeerId, request.value.corrupt);
                  break;
                case 'reschedule':
                  swarm.reschedule(peer);
                  break;
                case 'finished':
                  swarm.finished(peer);
                  break;
                case 'failed':
                  preheater.peerFailed(peer, isErrorCode(request.value.code) ? request.value.code : 'INTERNAL', request.value.message.slice(0, RPC_LIMITS.stringLength));
                  swarm.failed(peer, request.value.code, request.value.message, request.value.status);
                  peer = undefined;
                  break;
                default:
                  break;
              }
            }
          } catch (err) {
            if (!context.signal.aborted) log.debug({ err }, 'peer stream ended with an error');
            out.end(err instanceof ConnectError ? err : new ConnectError(String(err), Code.InvalidArgument));
          } finally {
            if (peer !== undefined) swarm.disconnected(peer);
            out.end();
          }
        })();
        return out;
      },

      async *preheat(request: PreheatRequest, context: HandlerContext): AsyncIterable<PreheatProgress> {
        if (request.tasks.length > PREHEAT_LIMITS.tasks) throw new ConnectError(`at most ${PREHEAT_LIMITS.tasks} tasks per preheat`, Code.InvalidArgument);
        for (const task of request.tasks) {
          if (task.taskId === '' || task.url === '' || task.url.length > RPC_LIMITS.stringLength) throw new ConnectError('a preheat task needs a task ID and a URL', Code.InvalidArgument);
        }
        for await (const update of preheater.run(request.tasks, request.timeoutMs, context.signal)) {
          yield create(PreheatProgressSchema, {
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
      },

      stat() {
        return create(StatResponseSchema, {
          hosts: [...swarm.hosts.values()].map((h) => ({
            id: h.info.id,
            hostname: h.info.hostname,
            ip: h.info.ip,
            uploadPort: h.info.port,
            idc: h.info.idc,
            location: h.info.location,
            seed: h.info.seed,
            uploadSlots: h.info.uploadSlots,
            uploadLoad: h.info.uploadLoad,
            uploadRate: BigInt(h.info.uploadRate),
          })),
          tasks: [...swarm.tasks.values()].map((t) => ({
            taskId: t.id,
            url: t.spec?.url ?? '',
            ...(t.shape === undefined
              ? {}
              : { metadata: { pieceSize: t.shape.pieceSize, ...(t.shape.contentLength === undefined ? {} : { contentLength: BigInt(t.shape.contentLength) }) } }),
            backToSourceCount: t.backToSourceCount,
            peers: [...t.peers.values()].map((p) => ({
              peerId: p.id,
              hostId: p.host.info.id,
              state: p.state,
              pieces: p.pieces.size,
              parents: [...p.parents].map((q) => q.id),
            })),
          })),
        });
      },
    });
  };
}
