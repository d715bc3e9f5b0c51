/**
 * What the scheduler tells its observers (metrics, the console) as it
 * decides: a port with no-op defaults, so the swarm pays nothing when nobody
 * listens. Counts only; no task, host or peer identity crosses it.
 */
export interface SchedulerEvents {
  /** A peer registered for a task (again, after losing its stream: `reconnect`). */
  registered(reconnect: boolean): void;
  /** A host re-announced complete tasks it holds (after it or the scheduler restarted). */
  reannounced(tasks: number): void;
  /** A seed was asked to fetch a task. */
  seedTriggered(cause: 'download' | 'preheat'): void;
  /** A peer was sent to the origin, and why. */
  sentToSource(reason: string): void;
  /** One scheduling decision took this long. */
  decided(seconds: number): void;
  /** A peer reported new pieces; `fromOrigin`: it is fetching from the origin. */
  piecesReported(count: number, fromOrigin: boolean): void;
}

export const NO_EVENTS: SchedulerEvents = {
  registered: () => undefined,
  reannounced: () => undefined,
  seedTriggered: () => undefined,
  sentToSource: () => undefined,
  decided: () => undefined,
  piecesReported: () => undefined,
};
