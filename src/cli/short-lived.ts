/**
 * A V8 setting for every `shoal` process, made when the command line's modules
 * load: it matters to the short-lived ones, such as `shoal get`.
 *
 * V8's memory reducer arms itself when a small heap first grows (its "for small
 * heaps" rule). About 8 s later, once the process looks idle, it runs two full
 * collections to give memory back. A `shoal get` through a daemon spends most of
 * its life waiting for the daemon, so each get of more than 8 s paid for those
 * collections: 10–40 ms of CPU unloaded, about a fifth of the get's own CPU, and more
 * on a busy host, where every peer pays it at once. The memory goes back when the
 * process exits in any case. A full collection the heap actually needs still runs,
 * and so does the reducer after one: only the arming before the first full
 * collection is turned off. `shoal daemon` and `shoal scheduler` turn V8's
 * default back on as they start (`longLivedHeap`): a service idle for hours
 * should give its memory back.
 * Measured in docs/benchmarks.md, "A get's idle-time collections".
 */
import { setFlagsFromString } from 'node:v8';

export function shortLivedHeap(): void {
  // A flag V8 reads each time the heap grows, so setting it after start-up takes effect (Node 20 and 24).
  setFlagsFromString('--no-memory-reducer-for-small-heaps');
}

/** Back to V8's default, for a process that serves for long: `shoal daemon`, `shoal scheduler`. */
export function longLivedHeap(): void {
  setFlagsFromString('--memory-reducer-for-small-heaps');
}
