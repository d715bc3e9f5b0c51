/**
 * Where a cache task's missing copies go (docs/cache.md, "Replicas"): a pure
 * policy over the model. A copy is a complete peer of the task on a
 * connected host; copies being made count as copies until their time is up.
 * New copies go to hosts that hold none and are making none, seed hosts
 * first, then by rendezvous hashing on the task (the same hosts are chosen
 * again while the set of hosts is stable). Nothing is asked while no copy is
 * left to copy from (a cache task has no origin).
 */
import type { HostEntry, TaskEntry } from './model.js';
import { rendezvous } from './seeds.js';

/** Hosts holding the task complete, by host ID. */
export function holdersOf(task: TaskEntry | undefined, hosts: ReadonlyMap<string, HostEntry>): Set<string> {
  const holders = new Set<string>();
  for (const peer of task?.peers.values() ?? []) if (peer.state === 'complete' && hosts.get(peer.host.info.id) === peer.host) holders.add(peer.host.info.id);
  return holders;
}

export interface ReplicaPlanInput {
  readonly taskId: string;
  readonly replicas: number;
  readonly holders: ReadonlySet<string>;
  /** Hosts asked for a copy and still within their time. */
  readonly restoring: ReadonlySet<string>;
  readonly hosts: Iterable<HostEntry>;
}

/** The hosts to ask for a copy now (none when enough copies exist or are under way, or none is left to copy from). */
export function replicaTargets(input: ReplicaPlanInput): HostEntry[] {
  const missing = input.replicas - input.holders.size - input.restoring.size;
  if (missing <= 0 || input.holders.size === 0) return [];
  const candidates = [...input.hosts].filter((h) => !input.holders.has(h.info.id) && !input.restoring.has(h.info.id));
  candidates.sort((a, b) => {
    if (a.info.seed !== b.info.seed) return a.info.seed ? -1 : 1;
    return rendezvous(input.taskId, b.info.id) - rendezvous(input.taskId, a.info.id);
  });
  return candidates.slice(0, missing);
}
