/** The Stat RPC's answer: the swarm's hosts, tasks and peers as `shoal status` shows them. */
import { create } from '@bufbuild/protobuf';
import { StatResponseSchema, type StatResponse } from '../gen/shoal/v1/scheduler_pb.js';
import { redactUrl } from '../common/ids.js';
import type { HostEntry, PeerEntry, TaskEntry } from './model.js';

function hostStat(h: HostEntry) {
  return {
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
  };
}

function peerStat(p: PeerEntry) {
  return { peerId: p.id, hostId: p.host.info.id, state: p.state, pieces: p.pieces.size, parents: [...p.parents].map((q) => q.id) };
}

function taskStat(t: TaskEntry) {
  const shape = t.shape;
  return {
    taskId: t.id,
    // Signed query parameters and credentials never leave the scheduler.
    url: t.spec === undefined ? '' : redactUrl(t.spec.url),
    ...(shape === undefined ? {} : { metadata: { pieceSize: shape.pieceSize, ...(shape.contentLength === undefined ? {} : { contentLength: BigInt(shape.contentLength) }) } }),
    backToSourceCount: t.backToSourceCount,
    peers: [...t.peers.values()].map(peerStat),
  };
}

export function statResponse(hosts: Iterable<HostEntry>, tasks: Iterable<TaskEntry>): StatResponse {
  return create(StatResponseSchema, { hosts: [...hosts].map(hostStat), tasks: [...tasks].map(taskStat) });
}
