/** A host as it announces itself on the wire, checked against the RPC limits, as the swarm keeps it. */
import { ShoalError } from '../common/errors.js';
import type { Host } from '../gen/shoal/v1/scheduler_pb.js';
import type { HostInfo } from './model.js';
import { RPC_LIMITS, checkLength } from './rpc-limits.js';

/** Upload slots of a host that announces none: the daemon's default. */
const UNANNOUNCED_UPLOAD_SLOTS = 64;

/** LIMIT_EXCEEDED when an ID or label is over its limit. */
export function hostInfo(raw: Host, identity: string): HostInfo {
  checkLength('host ID', raw.id);
  checkLength('host IP', raw.ip);
  checkLength('hostname', raw.hostname, RPC_LIMITS.hostnameLength);
  checkLength('idc label', raw.idc, RPC_LIMITS.idcLength);
  checkLength('location label', raw.location, RPC_LIMITS.locationLength);
  // A uint64 past 2^53 would be kept as a number that no longer encodes (every later Stat would fail).
  if (raw.uploadRate > BigInt(Number.MAX_SAFE_INTEGER)) throw new ShoalError('LIMIT_EXCEEDED', `an upload rate of ${raw.uploadRate} bytes/s: at most ${Number.MAX_SAFE_INTEGER}`);
  return {
    id: raw.id,
    hostname: raw.hostname,
    ip: raw.ip,
    port: raw.uploadPort,
    idc: raw.idc,
    location: raw.location,
    seed: raw.seed,
    uploadSlots: raw.uploadSlots === 0 ? UNANNOUNCED_UPLOAD_SLOTS : raw.uploadSlots,
    uploadLoad: raw.uploadLoad,
    uploadRate: Number(raw.uploadRate),
    identity,
  };
}
