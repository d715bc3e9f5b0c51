/**
 * Where the swarm graph's nodes go: in columns by how far down the swarm
 * they are from its sources (seeds and peers fetching from the origin, or
 * whoever has no parent), so a chain reads left to right and split trees fan
 * out; within a column, near the average height of their parents, to keep
 * edges short.
 * Pure (no DOM), so it is tested like any policy (test/console-ui.test.ts).
 */

export interface LayoutNode {
  readonly id: string;
  /** A seed or a peer fetching from the origin: a source of the swarm. */
  readonly source: boolean;
}

export interface LayoutEdge {
  readonly from: string;
  readonly to: string;
}

export interface Point {
  readonly x: number;
  readonly y: number;
  readonly column: number;
}

export interface Layout {
  readonly points: ReadonlyMap<string, Point>;
  readonly width: number;
  readonly height: number;
}

/** Pixels: between columns and rows, and around the drawing (room for the labels under the nodes and the arcs over them). */
export const LAYOUT = { column: 170, row: 72, padX: 80, padY: 48 } as const;

/**
 * Each node's column: the longest path to it from a source (layered
 * drawing), so a chain stays a row even when a peer was also fed by one
 * further up. Edges that close a loop (split trees: two peers feeding each
 * other a stripe) are left out of the layering. Peers no edge reaches come
 * after the rest.
 */
function columns(nodes: readonly LayoutNode[], edges: readonly LayoutEdge[]): Map<string, number> {
  const ids = new Set(nodes.map((n) => n.id));
  const children = new Map<string, string[]>();
  const hasParent = new Set<string>();
  for (const e of edges) {
    if (!ids.has(e.from) || !ids.has(e.to) || e.from === e.to) continue;
    children.set(e.from, [...(children.get(e.from) ?? []), e.to]);
    hasParent.add(e.to);
  }
  const roots = nodes.filter((n) => n.source || (!hasParent.has(n.id) && children.has(n.id))).map((n) => n.id);
  // Depth-first from the roots: an edge back to a node on the path closes a loop; the others, in finishing order reversed, are a topological order.
  const state = new Map<string, 'open' | 'done'>();
  const order: string[] = [];
  const forward = new Map<string, string[]>();
  const visit = (root: string): void => {
    const stack: Array<{ id: string; next: number }> = [{ id: root, next: 0 }];
    state.set(root, 'open');
    while (stack.length > 0) {
      const top = stack.at(-1)!;
      const kids = children.get(top.id) ?? [];
      if (top.next >= kids.length) {
        state.set(top.id, 'done');
        order.push(top.id);
        stack.pop();
        continue;
      }
      const child = kids[top.next++]!;
      if (state.get(child) === 'open') continue;
      forward.set(top.id, [...(forward.get(top.id) ?? []), child]);
      if (state.get(child) === undefined) {
        state.set(child, 'open');
        stack.push({ id: child, next: 0 });
      }
    }
  };
  for (const root of roots) if (!state.has(root)) visit(root);
  // Loops no source reaches: entered anywhere.
  for (const n of nodes) if (!state.has(n.id) && hasParent.has(n.id)) visit(n.id);
  const column = new Map<string, number>();
  for (const id of order.reverse()) {
    const c = column.get(id) ?? 0;
    column.set(id, c);
    for (const child of forward.get(id) ?? []) column.set(child, Math.max(column.get(child) ?? 0, c + 1));
  }
  const last = Math.max(-1, ...column.values()) + 1;
  for (const n of nodes) if (!column.has(n.id)) column.set(n.id, last);
  return column;
}

export function layoutGraph(nodes: readonly LayoutNode[], edges: readonly LayoutEdge[]): Layout {
  const column = columns(nodes, edges);
  const parents = new Map<string, string[]>();
  for (const e of edges) parents.set(e.to, [...(parents.get(e.to) ?? []), e.from]);
  const byColumn = new Map<number, string[]>();
  for (const n of nodes) {
    const c = column.get(n.id)!;
    byColumn.set(c, [...(byColumn.get(c) ?? []), n.id]);
  }
  const points = new Map<string, Point>();
  let rows = 1;
  for (const c of [...byColumn.keys()].sort((a, b) => a - b)) {
    const ids = byColumn.get(c)!;
    const wanted = (id: string): number => {
      const ys = (parents.get(id) ?? []).map((p) => points.get(p)?.y).filter((y): y is number => y !== undefined);
      return ys.length === 0 ? Number.POSITIVE_INFINITY : ys.reduce((a, b) => a + b, 0) / ys.length;
    };
    const ordered = ids.map((id, i) => ({ id, i, y: wanted(id) })).sort((a, b) => a.y - b.y || a.i - b.i);
    ordered.forEach(({ id }, row) => points.set(id, { x: LAYOUT.padX + c * LAYOUT.column, y: LAYOUT.padY + row * LAYOUT.row, column: c }));
    rows = Math.max(rows, ids.length);
  }
  const width = 2 * LAYOUT.padX + Math.max(0, ...byColumn.keys()) * LAYOUT.column;
  const height = 2 * LAYOUT.padY + (rows - 1) * LAYOUT.row;
  return { points, width, height };
}
