/**
 * What the console's JSON API and its server-sent events carry: the types the
 * server builds (./snapshot.ts) and the page reads (console/). Types only, no
 * imports, so the browser bundle takes them without pulling in Node code.
 * Rates are in bytes/s, sizes in bytes, times in ms since the epoch.
 */

export type PeerStateView = 'waiting' | 'running' | 'source' | 'complete' | 'failed' | 'left';

export interface HostView {
  id: string;
  hostname: string;
  ip: string;
  port: number;
  idc: string;
  location: string;
  seed: boolean;
  /** Upload slots it offers, and how many are in use (its last load report). */
  uploadSlots: number;
  uploadLoad: number;
  /** The upload cap it announced (0: none). */
  announcedRate: number;
  /** The best rate one of its peers kept up (a lower bound on its link); 0 until measured. */
  measuredRate: number;
  /** Measured slow (docs/design.md, "Slow links"): its link then counts as measuredRate. */
  slow: boolean;
  /** Peers it has in tasks now. */
  peers: number;
}

export interface TaskView {
  id: string;
  /** Without query string or credentials. */
  url: string;
  /** Content length; undefined while unknown. */
  size: number | undefined;
  pieceSize: number | undefined;
  pieceCount: number | undefined;
  peers: number;
  /** Peers by state (only the states that have any). */
  states: Partial<Record<PeerStateView, number>>;
  /** Pieces its peers hold over the pieces all of them will hold, 0..1; undefined while the size is unknown. */
  progress: number | undefined;
  /** Copies of its content the origin sent (1: each byte once); undefined while the size is unknown. */
  originCopies: number | undefined;
  /** Peers the scheduler sent to the origin for it, over its life. */
  backToSource: number;
  /** 1: one chain; more: split trees of that many stripes. */
  stripes: number;
  /** A peer reported a piece within the last few seconds. */
  active: boolean;
}

export interface SourceEventView {
  at: number;
  taskId: string;
  /** The task's URL when the scheduler still knows the task. */
  url: string | undefined;
  hostId: string;
  peerId: string;
  seed: boolean;
  reason: string;
}

export type Verdict = 'working' | 'degraded' | 'idle';

/** The one-line answer to "is P2P working", over the last `windowMs`. */
export interface RecentView {
  windowMs: number;
  /** Pieces peers reported getting from other peers, and from the origin. */
  peerPieces: number;
  originPieces: number;
  /** Peers sent to the origin; `fallbacks`: of them, normal peers (not a seed fetching first). */
  backToSource: number;
  fallbacks: number;
  verdict: Verdict;
  line: string;
}

export interface PreheatTaskView {
  taskId: string;
  url: string;
  state: 'waiting' | 'running' | 'done' | 'failed';
  seedHostId: string;
  completedBytes: number;
  contentLength: number | undefined;
  error: { code: string; message: string } | undefined;
}

export interface PreheatView {
  id: string;
  startedAt: number;
  state: 'running' | 'done' | 'failed';
  tasks: PreheatTaskView[];
  /** Tasks left out of `tasks` (the snapshot's bound). */
  more: number;
}

export interface GraphNode {
  /** The peer ID. */
  id: string;
  hostId: string;
  hostname: string;
  seed: boolean;
  state: PeerStateView;
  pieces: number;
  /** Split trees: the stripe it passes on. */
  stripe: number;
}

/** `from` feeds `to` (a parent and its child). */
export interface GraphEdge {
  from: string;
  to: string;
  /** Split trees: the stripes `from` sends `to` (bit s for stripe s); undefined: every piece. */
  mask: number | undefined;
  /** What `to` took from `from` lately, bytes/s; undefined while unmeasured or once `to` is complete. */
  rate: number | undefined;
  /** `to` completed while `from` fed it (the edge is history, kept while `to` stays). */
  done: boolean;
}

export interface GraphView {
  taskId: string;
  stripes: number;
  pieceCount: number | undefined;
  nodes: GraphNode[];
  edges: GraphEdge[];
  /** Peers left out (the snapshot's bound). */
  more: number;
}

export interface Snapshot {
  at: number;
  recent: RecentView;
  hosts: HostView[];
  tasks: TaskView[];
  /** Back-to-source events, newest first. */
  events: SourceEventView[];
  preheats: PreheatView[];
  /** The graph of the task asked for (`?task=ID`), when it is known. */
  graph: GraphView | undefined;
  /** Totals, and how many hosts and tasks the lists left out. */
  totals: { hosts: number; tasks: number; moreHosts: number; moreTasks: number };
}
