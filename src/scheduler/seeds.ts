/**
 * Which seed host a task's first download asks, and how long it is waited
 * for. Shared by the swarm (a first download) and the preheater, so that a
 * preheated task lands where a download would look for it. Pure functions
 * over the model.
 */
import { rendezvous } from '../common/rendezvous.js';
import type { HostEntry, TaskEntry } from './model.js';

export { rendezvous };

/** The seed host the task belongs to by rendezvous (on a tie, the first of `hosts`); undefined without seeds. */
export function seedHostFor(taskId: string, hosts: Iterable<HostEntry>): HostEntry | undefined {
  let best: HostEntry | undefined;
  let bestHash = 0;
  for (const host of hosts) {
    if (!host.info.seed) continue;
    const hash = rendezvous(taskId, host.info.id);
    if (best === undefined || hash > bestHash) {
      best = host;
      bestHash = hash;
    }
  }
  return best;
}

/**
 * Whether the seed host `seed`, asked to fetch `task`, is still worth
 * waiting for: within `timeout` of being asked, or it registered the task
 * and is working on it.
 */
export function seedStillExpected(task: TaskEntry, seed: HostEntry, now: number, timeout: number): boolean {
  if (now - task.seedRequestedAt < timeout) return true;
  return [...seed.peers].some((p) => p.task === task && p.active);
}
