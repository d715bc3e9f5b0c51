/**
 * What a daemon tells its scheduler about itself: the Host message (address,
 * labels, upload capacity and load) and, on every (re)connect, the tasks it
 * holds complete, so a restarted scheduler relearns the swarm.
 */
import { create } from '@bufbuild/protobuf';
import { hostname, networkInterfaces } from 'node:os';
import { CacheEntrySchema, HeldTaskSchema, HostSchema, type CacheEntry, type HeldTask, type Host } from '../gen/shoal/v1/scheduler_pb.js';
import { uploadSlots, type DaemonConfig } from '../common/config/schema.js';
import { packDigests } from '../common/pieces.js';
import type { StoredTask } from './storage/store.js';

export interface HostAddress {
  id: string;
  /** Where other peers reach the upload server. */
  advertise: string;
  uploadPort: number;
}

export function hostMessage(settings: DaemonConfig, address: HostAddress, uploadLoad: number): Host {
  return create(HostSchema, {
    id: address.id,
    hostname: hostname(),
    ip: address.advertise,
    uploadPort: address.uploadPort,
    idc: settings.idc,
    location: settings.location,
    seed: settings.seed,
    uploadSlots: uploadSlots(settings),
    uploadLoad,
    uploadRate: BigInt(settings.upload.rate),
  });
}

/** The complete tasks of `tasks`, as re-announced to the scheduler. */
export function heldTasks(tasks: readonly StoredTask[], peerId: (taskId: string) => string): HeldTask[] {
  return tasks
    .filter((t) => t.complete && t.shape !== undefined)
    .map((t) => {
      const numbers = [...t.digests.keys()].sort((a, b) => a - b);
      return create(HeldTaskSchema, {
        taskId: t.id,
        peerId: peerId(t.id),
        metadata: {
          pieceSize: t.shape!.pieceSize,
          validator: t.validator,
          ...(t.shape!.contentLength === undefined ? {} : { contentLength: BigInt(t.shape!.contentLength) }),
        },
        pieces: numbers,
        digests: packDigests(numbers.map((n) => t.digests.get(n)!)),
        complete: true,
        private: t.private,
        ...(t.cache === undefined ? {} : { cache: cacheEntryOf(t) }),
      });
    });
}

/** A cache task as held here, for the scheduler (./cache/import.ts makes them). */
export function cacheEntryOf(t: StoredTask): CacheEntry {
  return create(CacheEntrySchema, {
    id: t.cache!.id,
    taskId: t.id,
    contentDigest: t.digest ?? '',
    metadata: { contentLength: BigInt(t.shape?.contentLength ?? 0), pieceSize: t.shape?.pieceSize ?? 0, validator: '' },
    replicas: t.cache!.replicas,
    expiresAtMs: BigInt(t.cache!.expiresAt),
  });
}

/** The address to advertise when none is configured: the listen address, or for a wildcard the first non-loopback IPv4. */
export function defaultAdvertise(listenHost: string): string {
  if (listenHost !== '0.0.0.0' && listenHost !== '::') return listenHost;
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}
