/**
 * What the scheduler tells its observers (metrics, the console) as it
 * decides: a port with no-op defaults, so the swarm pays nothing when nobody
 * listens. Metrics take counts only; the task, host and peer a back-to-source
 * event names are for the console's list of them, never a metric label.
 */

/** Who was sent to the origin. */
export interface SourceSubject {
  readonly taskId: string;
  readonly peerId: string;
  readonly hostId: string;
  /** A seed peer (its fetching first is the plan, not a fallback). */
  readonly seed: boolean;
}

export interface SchedulerEvents {
  /** A peer registered for a task (again, after losing its stream: `reconnect`). */
  registered(reconnect: boolean): void;
  /** A host re-announced complete tasks it holds (after it or the scheduler restarted). */
  reannounced(tasks: number): void;
  /** A seed was asked to fetch a task. */
  seedTriggered(cause: 'download' | 'preheat'): void;
  /** A peer was sent to the origin, and why. */
  sentToSource(reason: string, subject: SourceSubject): void;
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

/** One port that tells every observer given (metrics and the console); NO_EVENTS when none is. */
export function fanOut(...observers: ReadonlyArray<SchedulerEvents | undefined>): SchedulerEvents {
  const all = observers.filter((o): o is SchedulerEvents => o !== undefined);
  if (all.length === 0) return NO_EVENTS;
  if (all.length === 1) return all[0]!;
  return {
    registered: (reconnect) => all.forEach((o) => o.registered(reconnect)),
    reannounced: (tasks) => all.forEach((o) => o.reannounced(tasks)),
    seedTriggered: (cause) => all.forEach((o) => o.seedTriggered(cause)),
    sentToSource: (reason, subject) => all.forEach((o) => o.sentToSource(reason, subject)),
    decided: (seconds) => all.forEach((o) => o.decided(seconds)),
    piecesReported: (count, fromOrigin) => all.forEach((o) => o.piecesReported(count, fromOrigin)),
  };
}
