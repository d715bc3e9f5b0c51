/**
 * A task's swarm drawn as the graph it is: a node per peer (seeds and the
 * origin's fetchers on the left), an arrow from each parent to each child it
 * feeds, labelled with the rate the child takes from it; split trees colour
 * each edge by its stripe; dashed: the child completed while it fed it.
 */
import type { GraphEdge, GraphNode, GraphView } from '../src/scheduler/console/types.js';
import { percent, shortRate } from './format.js';
import { layoutGraph, type Point } from './graph-layout.js';

const STRIPE_COLOURS = ['#2563eb', '#d97706', '#059669', '#db2777', '#7c3aed', '#0891b2', '#65a30d', '#dc2626'];

function stripeColour(mask: number | undefined, stripes: number): string {
  if (mask === undefined || stripes < 2) return '#475569';
  const bits = [...Array(stripes).keys()].filter((s) => (mask & (1 << s)) !== 0);
  return bits.length === 1 ? STRIPE_COLOURS[bits[0]! % STRIPE_COLOURS.length]! : '#475569';
}

function isSource(n: GraphNode): boolean {
  return n.seed || n.state === 'source';
}

function Edge({ edge, from, to, stripes, bend }: { edge: GraphEdge; from: Point; to: Point; stripes: number; bend: number }) {
  const r = 18;
  const dx = to.x - from.x;
  const dy = to.y - from.y;
  const len = Math.max(1, Math.hypot(dx, dy));
  const [ux, uy] = [dx / len, dy / len];
  const [x1, y1, x2, y2] = [from.x + ux * r, from.y + uy * r, to.x - ux * (r + 4), to.y - uy * (r + 4)];
  // Two edges between one pair (split trees: each feeds the other a stripe) bend apart.
  const [cx, cy] = [(x1 + x2) / 2 - uy * bend, (y1 + y2) / 2 + ux * bend];
  const colour = stripeColour(edge.mask, stripes);
  const label = edge.done ? '' : shortRate(edge.rate);
  return (
    <g class={`edge${edge.done ? ' done' : ''}`} data-from={edge.from} data-to={edge.to}>
      <path d={`M${x1},${y1} Q${cx},${cy} ${x2},${y2}`} stroke={colour} marker-end="url(#arrow)" />
      {label !== '' && (
        <text x={cx} y={cy - 6} class="rate">
          {label}
        </text>
      )}
    </g>
  );
}

function Node({ node, at, pieceCount, label }: { node: GraphNode; at: Point; pieceCount: number | undefined; label: string }) {
  const share = pieceCount === undefined || pieceCount === 0 ? undefined : node.pieces / pieceCount;
  return (
    <g class={`node state-${node.state}${node.seed ? ' seed' : ''}`} data-peer={node.id}>
      <title>{`${node.id}\n${node.state}, ${node.pieces} pieces`}</title>
      <circle cx={at.x} cy={at.y} r={18} />
      <text x={at.x} y={at.y + 4} class="inner">
        {node.seed ? 'seed' : node.state === 'source' ? 'origin' : percent(share)}
      </text>
      <text x={at.x} y={at.y + 34} class="label">
        {label.length > 24 ? `…${label.slice(-23)}` : label}
      </text>
    </g>
  );
}

export function SwarmGraph({ graph }: { graph: GraphView }) {
  const layout = layoutGraph(
    graph.nodes.map((n) => ({ id: n.id, source: isSource(n) })),
    graph.edges,
  );
  const pairs = new Set(graph.edges.map((e) => `${e.from} ${e.to}`));
  // Hosts of one name (containers, one machine) are told apart by their IDs.
  const names = new Map<string, number>();
  for (const n of graph.nodes) names.set(n.hostname, (names.get(n.hostname) ?? 0) + 1);
  const labelOf = (n: GraphNode): string => (n.hostname === '' || (names.get(n.hostname) ?? 0) > 1 ? n.hostId : n.hostname);
  const live = graph.edges.filter((e) => !e.done).length;
  return (
    <div class="graph">
      <p class="muted">
        {graph.stripes > 1 ? `split trees, ${graph.stripes} stripes` : 'one chain'} · {graph.nodes.length} peers · {live} live edges, {graph.edges.length - live} completed
        {graph.more > 0 && ` · ${graph.more} more peers not drawn`}
      </p>
      <svg class="swarm" data-testid="swarm-graph" viewBox={`0 0 ${layout.width} ${layout.height}`} width={layout.width} height={layout.height} role="img" aria-label="the task's swarm: who feeds whom">
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="8" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M0,0 L10,5 L0,10 z" fill="#475569" />
          </marker>
        </defs>
        {graph.edges.map((e) => {
          const from = layout.points.get(e.from);
          const to = layout.points.get(e.to);
          if (from === undefined || to === undefined) return null;
          // Apart when two edges join one pair; over the nodes between when an edge skips columns; around when it goes back.
          const span = to.column - from.column;
          const bend = pairs.has(`${e.to} ${e.from}`) ? 24 : span <= 0 ? 40 : -Math.min(72, (span - 1) * 36);
          return <Edge key={`${e.from} ${e.to}`} edge={e} from={from} to={to} stripes={graph.stripes} bend={bend} />;
        })}
        {graph.nodes.map((n) => {
          const at = layout.points.get(n.id);
          return at === undefined ? null : <Node key={n.id} node={n} at={at} pieceCount={graph.pieceCount} label={labelOf(n)} />;
        })}
      </svg>
    </div>
  );
}
