/**
 * The fluid model of links: every edge carrying a piece gets a rate, in
 * bytes/s, that shares each parent's upload and each child's download
 * max-min fairly (water-filling, alternating twice between the two ends, a
 * close approximation of TCP flows sharing two bottlenecks). Pure.
 */

/** An edge as the allocator sees it: its two ends' capacities are read through `up` and `down`. */
export interface Flow {
  rate: number;
  /** Scratch: the last allocation. */
  cap: number;
}

/**
 * Shares `capacity` among flows with ceilings `caps` max-min fairly: each
 * gets the same share, except those whose ceiling is below it, which get
 * their ceiling. Writes into `out`.
 */
export function waterfill(capacity: number, caps: readonly number[], out: number[]): void {
  const n = caps.length;
  if (n === 1) {
    out[0] = Math.min(capacity, caps[0]!);
    return;
  }
  const order = [...caps.keys()].sort((a, b) => caps[a]! - caps[b]!);
  let left = capacity;
  for (let i = 0; i < n; i++) {
    const share = left / (n - i);
    const j = order[i]!;
    const take = Math.min(share, caps[j]!);
    out[j] = take;
    left -= take;
  }
}

/** One end of many flows: its capacity and the flows through it. */
export interface End<F extends Flow> {
  readonly capacity: number;
  readonly flows: readonly F[];
}

function fill<F extends Flow>(ends: Iterable<End<F>>, ceiling: (flow: F) => number): void {
  const caps: number[] = [];
  const out: number[] = [];
  for (const end of ends) {
    const flows = end.flows;
    if (flows.length === 0) continue;
    caps.length = flows.length;
    out.length = flows.length;
    for (let i = 0; i < flows.length; i++) caps[i] = ceiling(flows[i]!);
    waterfill(end.capacity, caps, out);
    for (let i = 0; i < flows.length; i++) flows[i]!.cap = out[i]!;
  }
}

/**
 * Rates for every flow, given the senders' and receivers' ends (each flow
 * in exactly one of each): senders share first, then receivers among what
 * was offered, then senders again with each receiver's headroom, then
 * receivers once more; the last pass sets `rate`.
 */
export function allocate<F extends Flow>(senders: readonly End<F>[], receivers: readonly End<F>[], receiverOf: (flow: F) => End<F>): void {
  fill(senders, (f) => receiverOf(f).capacity);
  fill(receivers, (f) => f.cap);
  const headroom = new Map<End<F>, number>();
  for (const r of receivers) {
    let used = 0;
    for (const f of r.flows) used += f.cap;
    headroom.set(r, Math.max(0, r.capacity - used));
  }
  fill(senders, (f) => f.cap + headroom.get(receiverOf(f))!);
  fill(receivers, (f) => f.cap);
  for (const r of receivers) for (const f of r.flows) f.rate = f.cap;
}
