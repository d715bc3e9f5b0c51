/**
 * The scheduler's Prometheus metrics (docs/metrics.md): counters fed by the
 * swarm's events (./events.ts), gauges read from the swarm at each scrape.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { reasonLabel } from '../common/metrics/labels.js';
import type { SchedulerEvents } from './events.js';
import type { Swarm } from './swarm.js';

export interface SchedulerMetrics {
  readonly registry: Registry;
  readonly events: SchedulerEvents;
}

/** `swarm` is read lazily: the events exist before the swarm they are given to. */
export function createSchedulerMetrics(swarm: () => Swarm | undefined): SchedulerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'shoal_' });
  const registrations = new Counter({ name: 'shoal_scheduler_registrations_total', help: 'Peers registering for a task', labelNames: ['reconnect'], registers: [registry] });
  const reannounced = new Counter({ name: 'shoal_scheduler_reannounced_tasks_total', help: 'Complete tasks hosts re-announced (after the scheduler or the host restarted)', registers: [registry] });
  const seedTriggers = new Counter({ name: 'shoal_scheduler_seed_triggers_total', help: 'A seed asked to fetch a task, by why', labelNames: ['cause'], registers: [registry] });
  const toSource = new Counter({ name: 'shoal_scheduler_back_to_source_total', help: 'Peers sent to the origin, by why', labelNames: ['reason'], registers: [registry] });
  const decisions = new Histogram({
    name: 'shoal_scheduler_decision_seconds',
    help: "One scheduling decision (a peer's parents, or its going to the origin)",
    buckets: [0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25],
    registers: [registry],
  });
  const pieces = new Counter({ name: 'shoal_scheduler_pieces_total', help: 'Pieces peers reported, by whether they fetched them from the origin', labelNames: ['from'], registers: [registry] });
  new Gauge({
    name: 'shoal_scheduler_hosts',
    help: 'Hosts announced',
    labelNames: ['seed'],
    registers: [registry],
    collect() {
      const hosts = [...(swarm()?.hosts.values() ?? [])];
      this.set({ seed: 'true' }, hosts.filter((h) => h.info.seed).length);
      this.set({ seed: 'false' }, hosts.filter((h) => !h.info.seed).length);
    },
  });
  new Gauge({ name: 'shoal_scheduler_tasks', help: 'Tasks known', registers: [registry], collect() { this.set(swarm()?.tasks.size ?? 0); } });
  new Gauge({
    name: 'shoal_scheduler_peers',
    help: 'Peers of all tasks, by state',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const counts = new Map<string, number>([['waiting', 0], ['running', 0], ['source', 0], ['complete', 0]]);
      for (const task of swarm()?.tasks.values() ?? []) for (const p of task.peers.values()) if (counts.has(p.state)) counts.set(p.state, counts.get(p.state)! + 1);
      for (const [state, n] of counts) this.set({ state }, n);
    },
  });
  new Gauge({
    name: 'shoal_scheduler_origin_copies',
    help: "The most copies of one task's content fetched from the origin, over the tasks known (1 = each byte once)",
    registers: [registry],
    collect() {
      let most = 0;
      for (const task of swarm()?.tasks.values() ?? []) {
        const count = task.pieceCount;
        if (count !== undefined && count > 0) most = Math.max(most, task.originPieces / count);
      }
      this.set(most);
    },
  });
  new Gauge({
    name: 'shoal_scheduler_slow_hosts',
    help: 'Hosts measured or announced slow',
    registers: [registry],
    collect() {
      this.set([...(swarm()?.hosts.values() ?? [])].filter((h) => h.measuredSlow).length);
    },
  });
  const events: SchedulerEvents = {
    registered: (reconnect) => registrations.inc({ reconnect: String(reconnect) }),
    reannounced: (n) => reannounced.inc(n),
    seedTriggered: (cause) => seedTriggers.inc({ cause }),
    sentToSource: (reason) => toSource.inc({ reason: reasonLabel(reason) }),
    decided: (seconds) => decisions.observe(seconds),
    piecesReported: (n, fromOrigin) => pieces.inc({ from: fromOrigin ? 'origin' : 'peer' }, n),
  };
  return { registry, events };
}
