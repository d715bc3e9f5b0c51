/**
 * The console's picture of the swarm, read from the scheduler's model
 * (../model.ts) at `now`: hosts, tasks, and one task's graph (who feeds whom,
 * with the rates on the edges). Pure, and bounded (SNAPSHOT_LIMITS), so one
 * snapshot stays small whatever the swarm's size.
 */
import { redactUrl } from '../../common/ids.js';
import { inStripes } from '../../common/stripes.js';
import type { HostEntry, PeerEntry, TaskEntry } from '../model.js';
import type { SourceEvent, SwarmJournal } from './journal.js';
import type { GraphEdge, GraphView, HostView, PeerStateView, PreheatView, Snapshot, SourceEventView, TaskView } from './types.js';

export const SNAPSHOT_LIMITS = { hosts: 500, tasks: 200, events: 100, graphNodes: 400 } as const;

/** A task whose peers reported a piece this recently is active. */
const ACTIVE_MS = 5000;

export function hostView(h: HostEntry): HostView {
  const i = h.info;
  return {
    id: i.id,
    hostname: i.hostname,
    ip: i.ip,
    port: i.port,
    idc: i.idc,
    location: i.location,
    seed: i.seed,
    uploadSlots: i.uploadSlots,
    uploadLoad: i.uploadLoad,
    announcedRate: i.uploadRate,
    measuredRate: h.peakRate,
    slow: h.measuredSlow,
    peers: [...h.peers].length,
  };
}

function lastPieceAt(task: TaskEntry): number {
  let last = 0;
  for (const p of task.peers.values()) last = Math.max(last, p.lastPieceAt ?? 0);
  return last;
}

export function taskView(t: TaskEntry, now: number): TaskView {
  const count = t.pieceCount;
  const states: Partial<Record<PeerStateView, number>> = {};
  let held = 0;
  for (const p of t.peers.values()) {
    states[p.state] = (states[p.state] ?? 0) + 1;
    held += p.pieces.size;
  }
  const known = count !== undefined && count > 0;
  return {
    id: t.id,
    url: t.spec === undefined ? '' : redactUrl(t.spec.url),
    size: t.shape?.contentLength,
    pieceSize: t.shape?.pieceSize,
    pieceCount: count,
    peers: t.peers.size,
    states,
    progress: known && t.peers.size > 0 ? Math.min(1, held / (count * t.peers.size)) : undefined,
    originCopies: known ? t.originPieces / count : undefined,
    backToSource: t.backToSourceCount,
    stripes: t.stripes,
    active: now - lastPieceAt(t) < ACTIVE_MS,
  };
}

/** Active tasks first, then the most recently fed; at most SNAPSHOT_LIMITS.tasks. */
export function taskViews(tasks: Iterable<TaskEntry>, now: number): TaskView[] {
  const ordered = [...tasks].map((t) => ({ t, last: lastPieceAt(t) })).sort((a, b) => b.last - a.last);
  return ordered
    .slice(0, SNAPSHOT_LIMITS.tasks)
    .map(({ t }) => taskView(t, now))
    .sort((a, b) => Number(b.active) - Number(a.active));
}

/** Seeds first, then by name; at most SNAPSHOT_LIMITS.hosts. */
export function hostViews(hosts: Iterable<HostEntry>): HostView[] {
  return [...hosts]
    .sort((a, b) => Number(b.info.seed) - Number(a.info.seed) || a.info.hostname.localeCompare(b.info.hostname) || a.info.id.localeCompare(b.info.id))
    .slice(0, SNAPSHOT_LIMITS.hosts)
    .map(hostView);
}

export function eventViews(events: readonly SourceEvent[], tasks: ReadonlyMap<string, TaskEntry>): SourceEventView[] {
  return events.slice(0, SNAPSHOT_LIMITS.events).map((e) => {
    const spec = tasks.get(e.taskId)?.spec;
    return { at: e.at, taskId: e.taskId, url: spec === undefined ? undefined : redactUrl(spec.url), hostId: e.hostId, peerId: e.peerId, seed: e.seed, reason: e.reason };
  });
}

/** What `child` took from `parent` lately, of the stripes the edge carries (bytes/s). */
function edgeRate(child: PeerEntry, parent: PeerEntry, mask: number | undefined, now: number): number | undefined {
  const pieceSize = child.task.shape?.pieceSize;
  if (pieceSize === undefined || child.state === 'complete') return undefined;
  const k = child.task.stripes;
  return child.recentRate(now, pieceSize, mask === undefined ? undefined : (n) => inStripes(n, k, mask));
}

/**
 * The task's swarm as a graph: its peers (seeds and sources first, at most
 * SNAPSHOT_LIMITS.graphNodes) and an edge from each parent to each child,
 * live ones with their rates, and those of children that completed while
 * the parent fed them (`done`), so a finished chain still shows its shape.
 */
export function graphView(task: TaskEntry, now: number): GraphView {
  const all = [...task.peers.values()].sort((a, b) => Number(b.seedLike) - Number(a.seedLike));
  const peers = all.slice(0, SNAPSHOT_LIMITS.graphNodes);
  const shown = new Set(peers);
  const edges: GraphEdge[] = [];
  for (const child of peers) {
    for (const parent of child.parents) {
      if (!shown.has(parent)) continue;
      const mask = child.parentMasks.get(parent);
      edges.push({ from: parent.id, to: child.id, mask, rate: edgeRate(child, parent, mask, now), done: false });
    }
  }
  for (const parent of peers) {
    for (const [child, mask] of parent.retiredChildren) {
      if (shown.has(child) && !child.parents.has(parent)) edges.push({ from: parent.id, to: child.id, mask, rate: undefined, done: true });
    }
  }
  return {
    taskId: task.id,
    stripes: task.stripes,
    pieceCount: task.pieceCount,
    nodes: peers.map((p) => ({ id: p.id, hostId: p.host.info.id, hostname: p.host.info.hostname, seed: p.host.info.seed, state: p.state, pieces: p.pieces.size, stripe: p.stripe })),
    edges,
    more: all.length - peers.length,
  };
}

/** What a snapshot is read from. */
export interface SnapshotSource {
  readonly hosts: ReadonlyMap<string, HostEntry>;
  readonly tasks: ReadonlyMap<string, TaskEntry>;
  readonly journal: Pick<SwarmJournal, 'events' | 'recent'>;
  readonly preheats: { views(): PreheatView[] };
}

/** Everything the console shows at `now`, with the graph of task `taskId` when it is known. */
export function consoleSnapshot(source: SnapshotSource, taskId: string | undefined, now: number): Snapshot {
  const task = taskId === undefined ? undefined : source.tasks.get(taskId);
  const hosts = hostViews(source.hosts.values());
  const tasks = taskViews(source.tasks.values(), now);
  return {
    at: now,
    recent: source.journal.recent(),
    hosts,
    tasks,
    events: eventViews(source.journal.events(SNAPSHOT_LIMITS.events), source.tasks),
    preheats: source.preheats.views(),
    graph: task === undefined ? undefined : graphView(task, now),
    totals: { hosts: source.hosts.size, tasks: source.tasks.size, moreHosts: source.hosts.size - hosts.length, moreTasks: source.tasks.size - tasks.length },
  };
}
